"""Reading user images and masks robustly, and writing outputs atomically with provenance.

This is the one place where user files are decoded and results are written. Every problem a
user can cause (a missing, empty, truncated or non-image file, a huge image, an unusable mask,
an unwritable output folder) becomes an :class:`ImageInputError` or :class:`OutputError` whose
message is one line naming the file, so the CLI can print it and carry on with a batch.

Decisions:

* Alpha is composited onto **white** (the usual paper/background colour of photos and scans);
  when any pixel was not fully opaque the loaded image says so (:func:`alpha_dropped`, :func:`image_notes`).
* Masks: white / non-zero = 1 = to fill (see :func:`load_mask` for images with alpha).
* Outputs default to PNG (lossless); metadata goes into PNG text chunks, or into a sidecar
  ``<output>.json`` for other formats.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import re
import stat
import struct
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

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
JPEG_QUALITY = 95
WEBP_QUALITY = 95

# Keys this module adds to ``Image.info`` of a loaded image.
INFO_NOTES = "palette_cli.notes"
INFO_ALPHA_DROPPED = "palette_cli.alpha_dropped"
INFO_SOURCE_FORMAT = "palette_cli.source_format"
INFO_SOURCE_MODE = "palette_cli.source_mode"

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)
_PILLOW_GLOBALS_LOCK = threading.Lock()
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def display_name(path: str | os.PathLike[str]) -> str:
    """A path as printable text: bytes of a file name that are not UTF-8 (kept by Python as surrogates)
    shown as ``\\xe9`` escapes, so messages and metadata never fail on them."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def short_name(path: str | os.PathLike[str], limit: int = 120) -> str:
    """:func:`display_name`, with the middle of a name longer than ``limit`` characters cut out (a message
    about a 5000-character name stays readable)."""
    text = display_name(path)
    if len(text) <= limit:
        return text
    keep = (limit - 30) // 2
    return f"{text[:keep]}…({len(text)} characters)…{text[-keep:]}"


def os_reason(err: OSError) -> str:
    """An OSError's reason without its errno and path: 'No space left on device'."""
    return err.strerror or str(err)


def _name_limits(path: Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes on the file system that would hold ``path``."""
    folder = path.parent
    while folder != folder.parent:
        try:
            if folder.is_dir():
                break
        except OSError:
            pass
        folder = folder.parent
    limits = []
    for key, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(os.pathconf(folder, key) or default)
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def name_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot name a file here (a part of it or the whole longer than the file system
    allows), found without touching the file; None when its length is fine."""
    path = Path(path)
    name_max, path_max = _name_limits(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > name_max:
        return f"file name too long ({longest} bytes; this file system allows {name_max})"
    if len(os.fsencode(os.path.abspath(path))) >= path_max:
        return f"path too long (over {path_max} bytes)"
    return None


_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def path_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` names, symbolic links followed: 'file', 'folder', 'missing', or another kind of file
    ('a named pipe (FIFO)', 'a character device', 'a broken symbolic link'...). Raises
    :class:`ImageInputError` when it cannot be looked at (a name too long, permission denied)."""
    problem = name_problem(path)
    if problem:
        raise ImageInputError(short_name(path), problem)
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return "a broken symbolic link" if os.path.islink(path) else "missing"
        if err.errno == errno.ELOOP:
            return "a loop of symbolic links"
        raise ImageInputError(path, os_reason(err)) from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def check_regular_file(path: str | os.PathLike[str], error: type[Exception], what: str = "file") -> None:
    """Raise ``error`` (one line naming ``path``) unless it is a regular file: reading a named pipe would
    wait forever, and a device never ends."""
    try:
        kind = path_kind(path)
    except ImageInputError as err:
        raise error(str(err)) from None
    if kind == "missing":
        raise error(f"{display_name(path)}: {what} not found")
    if kind == "folder":
        raise error(f"{display_name(path)}: is a folder, not a {what}")
    if kind != "file":
        raise error(f"{display_name(path)}: is {kind}, not a regular {what}")


class ImageInputError(ValueError):
    """A user input that cannot be used; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = display_name(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class OutputError(OSError):
    """An output that cannot be written; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = display_name(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


# --------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _pillow_guards(allow_huge: bool) -> Iterator[int | None]:
    """Decode strictly (truncated data raises); yield the pixel limit this load must enforce.

    Pillow keeps both settings as module globals, so they are changed under a lock and restored.
    Its own size check is lifted meanwhile, so that the caller can refuse a huge image with a
    message giving its size.
    """
    with _PILLOW_GLOBALS_LOCK:
        saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
        saved_limit = Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield None if allow_huge else saved_limit
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated
            Image.MAX_IMAGE_PIXELS = saved_limit


def _huge_message(width: int, height: int, limit: int) -> str:
    return (
        f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the "
        f"decompression-bomb safety limit of {limit / 1e6:.1f} megapixels; "
        "pass --allow-huge if you trust this file"
    )


# Bytes per pixel of each decoded mode (Pillow keeps 8-bit modes with 1, 3 or 4 bands; I/F are 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "I": 4, "F": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4}
# What a loaded image costs besides its decoded pixels: one more copy while converting and orienting, the
# 8-bit RGB result and the float32 tensor every command makes of it (3 + 12 bytes a pixel).
_WORKING_BYTES_PER_PIXEL = 15
# A canvas that grows while sampling: float32 copies of it (grown, mask, result) and its 8-bit images.
_CANVAS_BYTES_PER_PIXEL = 40


def available_memory() -> int | None:
    """Bytes of memory this machine can give now (``MemAvailable`` on Linux, free pages elsewhere); None
    when it cannot be told."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return os.sysconf(pages) * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            continue
    return None


def memory_needed(width: int, height: int, mode: str) -> int:
    """Estimated peak bytes to decode a ``width`` x ``height`` image of ``mode`` and make it a tensor."""
    bands = _MODE_BYTES.get(mode, 4)
    return width * height * (2 * bands + _WORKING_BYTES_PER_PIXEL)


def check_fits_memory(what: str, needed: int) -> None:
    """Raise ``MemoryError`` with one line when ``needed`` bytes exceed what the machine has available."""
    free = available_memory()
    if free is not None and needed > free:
        raise MemoryError(f"{what} needs about {needed / 2**30:.1f} GiB of memory, but only "
                          f"{free / 2**30:.1f} GiB is available on this machine")


def check_canvas(width: int, height: int, allow_huge: bool) -> None:
    """Refuse an output canvas over the decompression-bomb pixel limit (unless ``allow_huge``) or over memory.

    Raises ``ValueError`` (one line) naming the size; commands that grow images call it before any work.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if not allow_huge and limit and width * height > limit:
        raise ValueError(f"the result would be {width}x{height} = {width * height / 1e6:.1f} megapixels, over "
                         f"the limit of {limit / 1e6:.1f} megapixels; pass --allow-huge to lift it")
    try:
        check_fits_memory(f"a {width}x{height} result", width * height * _CANVAS_BYTES_PER_PIXEL)
    except MemoryError as err:
        raise ValueError(str(err)) from None


_JPEG_SOF_HUFFMAN = {0xC0, 0xC1, 0xC2, 0xC3}  # baseline, extended, progressive, lossless (Huffman coding)


def _jpeg_too_short(data: bytes) -> tuple[int, int] | None:
    """(width, height) when a Huffman-coded JPEG holds less entropy-coded data than its declared size needs.

    libjpeg pads a scan that ends early (at the next marker) with flat blocks and Pillow reports no error,
    so a file whose header was damaged to declare 42726x32 pixels would decode to mostly padding. Each 8x8
    block costs at least one bit in every Huffman-coded JPEG (its first DC code), which gives a bound that
    a sound file always meets.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, n, blocks, size, scan_bytes = 2, len(data), None, None, 0
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _JPEG_SOF_HUFFMAN or len(segment) < 6:
                return None  # arithmetic coding (or a broken segment Pillow will report itself)
            height, width, count = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big"), segment[5]
            factors = [(segment[7 + 3 * k] >> 4, segment[7 + 3 * k] & 15) for k in range(count)
                       if 8 + 3 * k <= len(segment)]
            if not height or not factors or min(min(f) for f in factors) < 1:
                return None
            hmax, vmax = max(f[0] for f in factors), max(f[1] for f in factors)
            mcus = -(-width // (8 * hmax)) * -(-height // (8 * vmax))
            blocks, size = mcus * sum(h * v for h, v in factors), (width, height)
        pos += 2 + length
        if marker == 0xDA:  # entropy-coded data follows, up to the next marker other than RSTn / stuffed 0xFF00
            start = pos
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= n:
                    pos = n
                    break
                if data[pos + 1] == 0 or 0xD0 <= data[pos + 1] <= 0xD7:
                    pos += 2
                    continue
                break
            scan_bytes += pos - start
    if blocks is None or scan_bytes * 8 >= blocks:
        return None
    return size


def _check_file(path: Path) -> None:
    kind = path_kind(path)
    if kind == "missing":
        raise ImageInputError(path, "no such file")
    if kind == "folder":
        raise ImageInputError(path, "is a folder, not an image file")
    if kind != "file":
        raise ImageInputError(path, f"is {kind}, not a regular file")
    if path.stat().st_size == 0:
        raise ImageInputError(path, "file is empty (0 bytes)")


def _open_decoded(path: Path, allow_huge: bool) -> Image.Image:
    """Open and fully decode ``path`` (first frame), with EXIF orientation applied."""
    _check_file(path)
    with _pillow_guards(allow_huge) as limit, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Pillow's warnings about damaged metadata become notes, not stderr noise
        try:
            with Image.open(path) as img:
                width, height = img.size
                if limit is not None and width * height > limit:
                    raise ImageInputError(path, _huge_message(width, height, limit))
                try:
                    check_fits_memory(f"decoding this {width}x{height} image", memory_needed(width, height, img.mode))
                except MemoryError as err:
                    raise ImageInputError(path, str(err)) from None
                if img.format in ("JPEG", "MPO"):
                    with open(path, "rb") as f:
                        short = _jpeg_too_short(f.read())
                    if short is not None:
                        raise ImageInputError(path, "image data is truncated or corrupt (the header declares "
                                                    f"{short[0]}x{short[1]} pixels but the file holds too little "
                                                    "image data for them)")
                frames = getattr(img, "n_frames", 1)
                img.load()
                source_format = img.format
                source_mode = img.mode
                decoded = ImageOps.exif_transpose(img) or img.copy()
        except ImageInputError:
            raise
        except PermissionError:
            raise ImageInputError(path, "permission denied") from None
        except UnidentifiedImageError:
            raise ImageInputError(path, "not an image file (Pillow cannot identify its format)") from None
        except _DECODE_ERRORS as err:
            raise ImageInputError(path, f"image data is truncated or corrupt ({err})") from None
    decoded.info[INFO_SOURCE_FORMAT] = source_format
    decoded.info[INFO_SOURCE_MODE] = source_mode
    notes: list[str] = [f"decoder warning: {w.message}" for w in caught]
    if frames > 1:
        notes.append(f"only the first of {frames} frames is used")
    decoded.info[INFO_NOTES] = notes
    return decoded


def header_pixels(path: str | os.PathLike[str]) -> int | None:
    """Width × height as the file's header declares it, read without decoding the pixels (any size, no
    bomb check: nothing is decoded); None for a file Pillow cannot identify or read."""
    with _pillow_guards(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Exception:  # a bad file is reported when it is loaded, not here
            return None
    return width * height


_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) as the image will load (EXIF orientation applied), read from the file's header
    without decoding the pixels; None for a file that cannot be identified (its load reports why)."""
    try:
        if path_kind(path) != "file":
            return None
    except ImageInputError:
        return None
    with _pillow_guards(True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112)
        except Exception:  # a bad file is reported when it is loaded, not here
            return None
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _to_uint8_gray(img: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit, 32-bit integer and float single-channel pixels scaled (not clipped) to 0..255.

    'I;16*' is 16-bit; 'I' is read as 16-bit when its values fit 0..65535 (Pillow's historical
    16-bit mode); 'F' is read as 0..1 or 0..255 when its values fit; anything else is stretched
    from its minimum to its maximum, with a note.
    """
    values = np.asarray(img).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and low >= 0 and high <= 65535):
        scale, offset = 255.0 / 65535.0, 0.0
    elif img.mode == "F" and low >= 0 and high <= 1:
        scale, offset = 255.0, 0.0
    elif img.mode == "F" and low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    else:
        notes.append(f"pixel values {low:g}..{high:g} of mode {img.mode} were stretched to 0..255")
        scale = 255.0 / (high - low) if high > low else 0.0
        offset = low
    return np.clip(np.rint((values - offset) * scale), 0, 255).astype(np.uint8)


def _icc_colour_space(profile: bytes | None) -> bytes | None:
    """The data colour space signature of an ICC profile (b'RGB ', b'GRAY', b'CMYK', ...)."""
    if not profile or len(profile) < 20:
        return None
    return bytes(profile[16:20])


def _cmyk_to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    """Use the embedded CMYK ICC profile when it is usable; otherwise Pillow's plain conversion."""
    profile = img.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            target = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(img, source, target, outputMode="RGB")
        except Exception as err:  # a broken profile must not stop the image from loading
            notes.append(f"embedded CMYK colour profile unusable ({type(err).__name__}); plain conversion used")
    return img.convert("RGB")


def _composite_on_white(rgba: Image.Image) -> tuple[Image.Image, bool]:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    translucent = rgba.getchannel("A").getextrema()[0] < 255
    return Image.alpha_composite(white, rgba).convert("RGB"), translucent


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def load_image(path: str | os.PathLike[str], *, allow_huge: bool = False) -> Image.Image:
    """Read a user image as 8-bit RGB, fully decoded, with its EXIF orientation applied.

    Alpha (RGBA, LA, palette transparency) is composited onto white; :func:`alpha_dropped`
    tells whether any pixel was translucent. 16-bit and float images are scaled to 8 bits, CMYK
    is converted through its embedded profile when possible. The returned ``info`` keeps an
    RGB ICC profile (``icc_profile``) for the output, the source format and mode, and notes.
    Raises :class:`ImageInputError` for anything unusable; images over Pillow's
    decompression-bomb limit need ``allow_huge=True``.
    """
    path = Path(path)
    img = _open_decoded(path, allow_huge)
    info = dict(img.info)
    notes: list[str] = info[INFO_NOTES]
    alpha_was_dropped = False
    try:
        if img.mode in ("I", "F") or img.mode.startswith("I;16"):
            rgb = Image.fromarray(_to_uint8_gray(img, notes), mode="L").convert("RGB")
        elif img.mode == "CMYK":
            rgb = _cmyk_to_rgb(img, notes)
        elif _has_alpha(img):
            rgb, alpha_was_dropped = _composite_on_white(img.convert("RGBA"))
        else:
            rgb = img.convert("RGB")
    except ValueError as err:
        raise ImageInputError(path, f"colour mode {img.mode} cannot be converted to RGB ({err})") from None
    if alpha_was_dropped:
        notes.append("transparency was dropped: translucent pixels were composited onto white")
    info.pop("transparency", None)
    if _icc_colour_space(info.get("icc_profile")) != b"RGB ":
        info.pop("icc_profile", None)
    info[INFO_ALPHA_DROPPED] = alpha_was_dropped
    rgb.info = info
    return rgb


def image_notes(img: Image.Image) -> list[str]:
    """What :func:`load_image` changed beyond a plain conversion (alpha dropped, frames skipped...)."""
    return list(img.info.get(INFO_NOTES, []))


def alpha_dropped(img: Image.Image) -> bool:
    """True when :func:`load_image` composited translucent pixels onto white."""
    return bool(img.info.get(INFO_ALPHA_DROPPED, False))


def _mask_fill(img: Image.Image) -> np.ndarray:
    """Boolean (H, W) array of the pixels to fill, by the rule documented in :func:`load_mask`."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return np.nan_to_num(np.asarray(img).astype(np.float64)) > 0
    if img.mode == "1":
        return np.asarray(img.convert("L")) > 0
    if img.mode == "L":
        return np.asarray(img) > 0
    if not _has_alpha(img):
        return (np.asarray(img.convert("RGB")) > 0).any(axis=2)
    rgba = np.asarray(img.convert("RGBA"))
    colour, alpha = rgba[..., :3], rgba[..., 3]
    visible = alpha > 0
    visible_colours = colour[visible]
    if visible_colours.size == 0 or (visible_colours == visible_colours[0]).all():
        return visible
    return visible & (colour > 0).any(axis=2)


def load_mask(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None,
    *,
    resize: bool = False,
    allow_huge: bool = False,
) -> torch.Tensor:
    """Read an inpainting mask as a (1, H, W) float tensor of {0, 1}; 1 = fill, 0 = keep.

    Rule: a pixel is filled when any of its colour values is non-zero (white, grey, any colour;
    any mode and bit depth, palette colours looked up). With alpha, fully transparent pixels are
    never filled; if all visible pixels share one colour, the drawing is in the alpha channel, so
    every visible pixel is filled. EXIF orientation is applied. ``size`` is the image's
    (width, height); a different mask size is an error unless ``resize`` (nearest neighbour).
    A mask that marks no pixel, or every pixel, is an error.
    """
    path = Path(path)
    img = _open_decoded(path, allow_huge)
    try:
        fill = _mask_fill(img)
    except ValueError as err:
        raise ImageInputError(path, f"mask colour mode {img.mode} is not supported ({err})") from None
    if size is not None and img.size != tuple(size):
        if not resize:
            raise ImageInputError(
                path,
                f"mask is {img.width}x{img.height} but the image is {size[0]}x{size[1]} (width x height); "
                "pass --resize-mask to scale the mask to the image",
            )
        binary = Image.fromarray(fill.astype(np.uint8) * 255, mode="L")
        fill = np.asarray(binary.resize(tuple(size), Image.Resampling.NEAREST)) > 0
    if not fill.any():
        raise ImageInputError(path, "mask is empty: no white/non-zero pixel marks anything to fill")
    if fill.all():
        raise ImageInputError(path, "mask marks every pixel to fill (none is black, i.e. zero), so nothing would "
                                    "be kept")
    return torch.from_numpy(fill.astype(np.float32)).unsqueeze(0)


# --------------------------------------------------------------------------- tensors


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An image as a (3, H, W) float32 tensor in [-1, 1] (0 → -1, 255 → 1)."""
    array = np.asarray(img.convert("RGB") if img.mode != "RGB" else img, dtype=np.float32)
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """A (3, H, W) tensor in [-1, 1] as an 8-bit RGB image (clamped, rounded to nearest)."""
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(tensor.shape)}")
    values = ((tensor.detach().to("cpu", torch.float32) + 1.0) * 127.5).round().clamp(0, 255)
    return Image.fromarray(values.to(torch.uint8).permute(1, 2, 0).numpy(), mode="RGB")


# --------------------------------------------------------------------------- writing


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


# --------------------------------------------------------------------------- input and output paths


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
