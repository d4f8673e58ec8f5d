"""Input and output paths: which files are images, expanding files, folders and glob patterns into inputs,
and planning output names (``-o``, ``--suffix``, ``--ext``).
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from PIL import Image

from .files import ImageInputError, name_problem, path_kind, short_name

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
DEFAULT_OUTPUT_EXTENSION = ".png"


def is_image_path(path: Path) -> bool:
    """Whether the extension is one of the image extensions (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def images_in_folder(folder: Path, recursive: bool) -> list[tuple[Path, Path]]:
    """(file, path relative to ``folder``) of the folder's image files, sorted by relative path; hidden
    files and folders are skipped, subfolders searched only if ``recursive``."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for file in candidates:
        rel = file.relative_to(folder)
        if file.is_file() and is_image_path(file) and not _is_hidden(rel):
            found.append((file, rel))
    return sorted(found, key=lambda pair: pair[1].as_posix())


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _relative_inside(file: Path, base: Path) -> Path:
    """``file`` relative to ``base``, compared after resolving ``..``; a file outside ``base`` (a pattern such
    as ``w/*/../../x*.jpg``) gets its bare name, so its output stays inside the output folder."""
    rel = Path(os.path.relpath(os.path.normpath(file), os.path.normpath(base)))
    return Path(file.name) if ".." in rel.parts or rel.is_absolute() else rel


_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off"})  # what a flag's value was typed as


def expand_inputs(inputs: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """Files, folders and glob patterns → sorted, de-duplicated (input file, relative output path).

    A file is taken as given (its relative path is its name). A folder gives its image files
    (subfolders only if ``recursive``; hidden files skipped) relative to the folder, so a folder in
    gives the same tree out. A glob (``*``, ``?``, ``[]``; ``**`` when ``recursive``) gives the
    matching image files relative to the pattern's fixed leading folders. A path that does not exist,
    a folder without images or a pattern matching no image is an :class:`ImageInputError`.
    """
    pairs: dict[Path, tuple[Path, Path]] = {}
    for spec in inputs:
        path = Path(spec)
        if not spec:
            raise ImageInputError("''", "an empty input name names no file")
        kind = path_kind(path)
        if kind == "file":
            found = [(path, Path(path.name))]
        elif kind == "folder":
            found = images_in_folder(path, recursive)
            if not found:
                hint = "" if recursive else " (pass --recursive to include subfolders)"
                raise ImageInputError(path, f"folder holds no image files{hint}")
        elif kind != "missing":
            raise ImageInputError(path, f"is {kind}, not a regular file")
        elif glob.has_magic(spec):
            base = _glob_base(spec)
            found = []
            for match in glob.glob(spec, recursive=recursive):
                file = Path(match)
                if file.is_file() and is_image_path(file):
                    found.append((file, _relative_inside(file, base)))
                elif file.is_dir() and recursive:
                    found.extend((f, _relative_inside(f, base)) for f, _ in images_in_folder(file, True))
            if not found:
                raise ImageInputError(spec, "pattern matches no image files")
        else:
            hint = (" (flags take no value: write --overwrite, not --overwrite true)"
                    if spec.lower() in _FLAG_VALUES else "")
            raise ImageInputError(path, f"no such file or folder{hint}")
        for file, rel in found:
            pairs.setdefault(file.resolve(), (file, rel))
    return sorted(pairs.values(), key=lambda pair: (str(pair[0]), str(pair[1])))


def subfolders_left_out(inputs: list[str]) -> int:
    """How many sub-folders of the folder inputs hold image files (at any depth) that a run without
    ``--recursive`` leaves out; hidden ones are not counted."""
    count = 0
    for spec in inputs:
        try:
            if not spec or not Path(spec).is_dir():
                continue
            subfolders = [p for p in Path(spec).iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError:
            continue
        count += sum(1 for sub in subfolders if _holds_images(sub))
    return count


def _holds_images(folder: Path) -> bool:
    """Whether a folder holds an image file anywhere below it (hidden files and folders skipped)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(is_image_path(Path(f)) and not f.startswith(".") for f in files):
            return True
    return False


def normalise_extension(ext: str | None) -> str:
    """'png', '.PNG' → '.png'; None → the default '.png'. Unknown extensions raise ValueError."""
    if not ext:
        return DEFAULT_OUTPUT_EXTENSION
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output extension '{ext}' (use one of: {' '.join(sorted(OUTPUT_FORMATS))})")
    return ext


def output_extension(ext: str | None, input_path: Path | None) -> str:
    """The extension of a generated output name: ``ext`` ('png', 'jpg'...; default '.png'), or with
    ``ext='auto'`` the input's own when outputs can be written in its format (else '.png')."""
    if ext == "auto":
        suffix = input_path.suffix.lower() if input_path is not None else ""
        return suffix if suffix in OUTPUT_FORMATS else DEFAULT_OUTPUT_EXTENSION
    return normalise_extension(ext)


# A suffix that reads as a file type (letters, maybe digits: '.xyz', '.jp2'); '.2' or '.d' read as part of a
# folder name ('v1.2', 'conf.d').
_TYPE_SUFFIX = re.compile(r"^\.(?=[0-9]*[A-Za-z])[A-Za-z0-9]{2,5}$")


def _names_an_unwritable_image(path: Path) -> bool:
    """Whether ``path`` ends in an image extension Pillow knows (.gif, .ico, .jp2...) that outputs cannot use."""
    suffix = path.suffix.lower()
    if not suffix or suffix in OUTPUT_FORMATS:
        return False
    Image.init()
    return suffix in Image.registered_extensions() or suffix in (".heic", ".heif", ".avif", ".jxl", ".svg")


def _output_target_problem(output: Path, ext: str | None) -> str | None:
    """Why ``-o output`` (meant as a file name) cannot be used: an image type outputs cannot be written as
    (``.gif``), a suffix that reads as an unknown file type (``.xyz``: never taken for a folder name), or
    an ``ext`` that contradicts it."""
    known = " ".join(sorted(OUTPUT_FORMATS))
    if _names_an_unwritable_image(output):
        return f"cannot write images of type '{output.suffix}' (use one of: {known})"
    if output.suffix.lower() not in OUTPUT_FORMATS:
        if _TYPE_SUFFIX.match(output.suffix):
            return (f"'{output.suffix}' is not an image type palette can write (use one of: {known}); to write into "
                    f"a folder of that name, end it with '/'")
        return None
    if ext and ext != "auto" and OUTPUT_FORMATS[normalise_extension(ext)] != OUTPUT_FORMATS[output.suffix.lower()]:
        return f"--ext {ext} contradicts the file name's extension '{output.suffix}'"
    return None


def output_path_for(
    rel: Path,
    output: Path | None,
    single_input: bool,
    suffix: str,
    ext: str | None,
    *,
    input_path: Path | None = None,
    folder: bool = False,
) -> Path:
    """The output file for one input, given its relative path from :func:`expand_inputs`.

    * ``output`` names a file (an image extension, not an existing folder, ``folder`` not set) and
      there is one input → that file, as given (its extension picks the format; ``ext`` may only agree).
      With several inputs that is an :class:`ImageInputError`; so are an image extension that outputs
      cannot be written as (``.gif``) and a suffix that reads as another file type (``.xyz``): neither
      is taken for a folder name unless ``folder`` (the name ended with '/').
    * ``output`` is a folder (or anything else) → ``output/rel`` with ``suffix`` added to the
      stem: ``photo.jpg`` → ``output/photo_colorized.png``; subfolders of ``rel`` are kept.
    * no ``output`` → next to ``input_path``: ``dir/photo_colorized.png``.

    The extension is :func:`output_extension` of ``ext`` (default ``.png``, lossless; ``auto``: the
    input's). An output that would be the input file itself is refused, and so is an ``output`` whose
    name is too long for the file system.
    """
    rel = Path(rel)
    if rel.is_absolute() or ".." in rel.parts:
        rel = Path(rel.name)  # never let an input's relative path lead out of the output folder
    name = f"{rel.stem}{suffix}{output_extension(ext, input_path)}"
    if output is not None:
        too_long = name_problem(output)
        if too_long:
            raise ImageInputError(short_name(output), too_long)
        is_folder = folder or output.is_dir()
        problem = None if is_folder else _output_target_problem(output, ext)
        if problem:
            raise ImageInputError(output, problem)
    if output is not None and not is_folder and is_image_path(output):
        if not single_input:
            raise ImageInputError(
                output, "-o names one file but there are several inputs; give a folder instead"
            )
        target = output
    elif output is not None:
        target = output / rel.parent / name
    elif input_path is not None:
        target = Path(input_path).parent / name
    else:
        raise ValueError("output_path_for needs either output or input_path")
    if input_path is not None and target.resolve() == Path(input_path).resolve():
        raise ImageInputError(target, "output would overwrite its input; choose another output or suffix")
    return target


def plan_outputs(
    pairs: list[tuple[Path, Path]], output: Path | None, suffix: str, ext: str | None, *, folder: bool = False
) -> list[tuple[Path, Path]]:
    """(input, output file) for every input (see :func:`output_path_for`); two inputs that would share one
    output raise."""
    single = len(pairs) == 1
    plan: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for file, rel in pairs:
        target = output_path_for(rel, output, single, suffix, ext, input_path=file, folder=folder)
        key = target.resolve()
        if key in seen:
            raise ImageInputError(
                file, f"would be written to {target}, the same output as {seen[key]}; give their folder instead"
            )
        seen[key] = file
        plan.append((file, target))
    return plan
