"""Writing outputs atomically with provenance metadata, and reading that metadata back.

Outputs default to PNG (lossless); metadata goes into PNG text chunks, or into a sidecar ``<output>.json``
for other formats. :func:`atomic_write` is the one atomic writer of the project.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .files import ImageInputError, OutputError, os_reason
from .paths import OUTPUT_FORMATS
from .reading import _DECODE_ERRORS, _check_file

JPEG_QUALITY = 95
WEBP_QUALITY = 95
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where metadata of a non-PNG output lives: ``<output>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = " ".join(sorted(OUTPUT_FORMATS))
        raise OutputError(path, f"unsupported output extension '{path.suffix}' (use one of: {known})")
    return fmt


def atomic_write(path: str | os.PathLike[str], write: Any) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it into place: the one atomic
    writer of the project (outputs, model files, checkpoints, reports); :class:`OutputError` when it fails."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(path.parent, f"cannot create output folder ({os_reason(err)})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(path.parent, "output folder is not writable")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputError(path.parent, f"cannot write in output folder ({os_reason(err)})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_name, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(path, f"cannot write ({os_reason(err)})") from err
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; :class:`OutputError` when it cannot be written."""
    path = Path(path)
    atomic_write(path, lambda handle: handle.write(data))
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; :class:`OutputError` when it cannot be written."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def _png_info(metadata: dict[str, str]) -> PngInfo:
    info = PngInfo()
    for key, value in metadata.items():
        if not 1 <= len(key) <= 79:
            raise ValueError(f"PNG text keys must have 1 to 79 characters, got {key!r}")
        info.add_text(key, str(value))
    return info


def save_image_atomic(
    img: Image.Image,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, str] | None = None,
    overwrite: bool,
    icc_profile: bytes | None = None,
) -> Path:
    """Write ``img`` to ``path`` atomically (temporary file in the same folder, then rename).

    The format follows the extension (png, jpg/jpeg at quality 95, webp at quality 95, tif/tiff,
    bmp). ``metadata`` goes into PNG text chunks, or into a sidecar ``<output>.json`` (also atomic,
    written before the image so an existing image always has its metadata). ``icc_profile``
    defaults to the one in ``img.info``. Raises ``FileExistsError`` if the file exists and not
    ``overwrite``; :class:`OutputError` when it cannot be written. Returns the path.
    """
    path = Path(path)
    fmt = _output_format(path)
    if path.is_dir():
        raise OutputError(path, "is a folder; give an image file name")
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "output exists (pass --overwrite to replace it)", str(path))
    if icc_profile is None:
        icc_profile = img.info.get("icc_profile")
    params: dict[str, Any] = {}
    if icc_profile and fmt != "BMP":
        params["icc_profile"] = icc_profile
    if fmt == "JPEG":
        params["quality"] = JPEG_QUALITY
    elif fmt == "WEBP":
        params["quality"] = WEBP_QUALITY
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if metadata:
        if fmt == "PNG":
            params["pnginfo"] = _png_info(metadata)
        else:
            text = json.dumps({k: str(v) for k, v in metadata.items()}, indent=2, sort_keys=True) + "\n"
            atomic_write(sidecar_path(path), lambda handle: handle.write(text.encode("utf-8")))
    atomic_write(path, lambda handle: img.save(handle, format=fmt, **params))
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Metadata written by :func:`save_image_atomic`: PNG text chunks and/or the sidecar JSON."""
    path = Path(path)
    _check_file(path)
    result: dict[str, str] = {}
    if path.suffix.lower() == ".png":
        try:
            with Image.open(path) as img:
                result.update(getattr(img, "text", {}) or {})
        except (UnidentifiedImageError, *_DECODE_ERRORS) as err:
            raise ImageInputError(path, f"cannot read PNG metadata ({err})") from None
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ImageInputError(sidecar, f"unreadable metadata file ({err})") from None
        if not isinstance(data, dict):
            raise ImageInputError(sidecar, "metadata file does not hold a JSON object")
        result.update({str(k): str(v) for k, v in data.items()})
    return result
