"""Reading user images and masks robustly: decoding under Pillow's guards, memory and size checks, damaged
JPEGs, EXIF orientation, alpha, 16-bit/float and CMYK images, masks; and images as tensors.

Decisions:

* Alpha is composited onto **white** (the usual paper/background colour of photos and scans);
  when any pixel was not fully opaque the loaded image says so (:func:`alpha_dropped`, :func:`image_notes`).
* Masks: white / non-zero = 1 = to fill (see :func:`load_mask` for images with alpha).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .files import ImageInputError, path_kind

# Keys this module adds to ``Image.info`` of a loaded image.
INFO_NOTES = "palette_cli.notes"
INFO_ALPHA_DROPPED = "palette_cli.alpha_dropped"
#: A JPEG file's quantization tables, component sampling and EXIF orientation (:func:`quantization_info`), for
#: restoration's quantization constraint (:mod:`palette_cli.tasks.quantization`).
INFO_JPEG_QUANTIZATION = "palette_cli.jpeg_quantization"
INFO_SOURCE_FORMAT = "palette_cli.source_format"
INFO_SOURCE_MODE = "palette_cli.source_mode"

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)
_PILLOW_GLOBALS_LOCK = threading.Lock()


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


def quantization_info(img: Image.Image) -> dict[str, Any] | None:
    """A just-opened JPEG's tables, component sampling and EXIF orientation as plain data, or None for
    anything the constraint does not cover (not a JPEG; CMYK or Adobe-RGB components; odd tables)."""
    if img.format not in ("JPEG", "MPO"):
        return None
    tables = getattr(img, "quantization", None)
    layers = getattr(img, "layer", None)
    if not tables or not layers or img.mode not in ("L", "RGB"):
        return None
    if img.mode == "RGB" and img.info.get("adobe_transform", 1) == 0:
        return None  # RGB components, not YCbCr
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # damaged EXIF: exif_transpose would not have rotated either
        orientation = 1
    return {"tables": {int(k): [int(v) for v in t] for k, t in tables.items()},
            "layers": [tuple(int(v) for v in layer[1:4]) for layer in layers],
            "orientation": orientation if 1 <= orientation <= 8 else 1}


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
                quantization = quantization_info(img)
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
    if quantization is not None:
        decoded.info[INFO_JPEG_QUANTIZATION] = quantization
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
