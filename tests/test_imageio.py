"""Reading user images and masks, tensors, atomic writes with metadata, input and output paths."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile

from palette_cli import imageio
from palette_cli.imageio import (
    ImageInputError,
    OutputError,
    alpha_dropped,
    expand_inputs,
    image_notes,
    load_image,
    load_mask,
    output_path_for,
    pil_to_tensor,
    plan_outputs,
    read_metadata,
    save_image_atomic,
    tensor_to_pil,
)


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG written by hand, for layouts Pillow cannot write (16-bit RGB, absurd sizes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _gradient(width: int = 32, height: int = 24) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                          np.full((height, width, 1), 77.0)], axis=2)
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def _pixels(img: Image.Image) -> list:
    """Pixels in reading order, as tuples (RGB) or numbers (one band)."""
    array = np.asarray(img)
    flat = array.reshape(-1, array.shape[2]) if array.ndim == 3 else array.reshape(-1)
    return [tuple(p) for p in flat.tolist()] if array.ndim == 3 else flat.tolist()


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError) as info:
        load_image(tmp_path / "nope.jpg")
    assert _one_line(info.value) == f"{tmp_path / 'nope.jpg'}: no such file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    assert _one_line(info.value) == f"{path}: file is empty (0 bytes)"


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    assert str(path) in _one_line(info.value)
    assert "not an image file" in str(info.value)


@pytest.mark.parametrize("fmt, ext", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_file_raises_even_if_pillow_is_lenient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, ext: str
) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, fmt)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # another library set it
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    assert "truncated or corrupt" in _one_line(info.value)
    assert str(path) in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def test_huge_image_header_is_refused_without_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_bytes(30000, 30000, 1, 0, b""))  # 900 megapixels declared, no data
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    text = _one_line(info.value)
    assert "--allow-huge" in text and "30000x30000" in text and str(path) in text


@pytest.mark.parametrize("side", [10, 20])  # 100 px: Pillow only warns; 400 px: Pillow raises
def test_huge_image_needs_allow_huge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (side, side), (9, 8, 7)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ImageInputError, match="--allow-huge"):
        load_image(path)
    img = load_image(path, allow_huge=True)
    assert img.size == (side, side) and img.getpixel((3, 3)) == (9, 8, 7)
    assert Image.MAX_IMAGE_PIXELS == 50  # the guard is restored


# --------------------------------------------------------------------------- conversions


def test_plain_rgb_png_is_exact_and_records_its_format(tmp_path: Path) -> None:
    path = tmp_path / "g.png"
    _gradient().save(path)
    img = load_image(path)
    assert img.mode == "RGB"
    assert np.array_equal(np.asarray(img), np.asarray(_gradient()))
    assert img.info[imageio.INFO_SOURCE_FORMAT] == "PNG"
    assert not alpha_dropped(img) and image_notes(img) == []


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # red
    cmyk.paste((255, 0, 0, 0), (16, 0, 32, 16))  # cyan
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, quality=95)
    img = load_image(path)
    assert img.mode == "RGB" and img.info[imageio.INFO_SOURCE_MODE] == "CMYK"
    assert np.abs(np.subtract(img.getpixel((4, 8)), (255, 0, 0))).max() <= 8
    assert np.abs(np.subtract(img.getpixel((28, 8)), (0, 255, 255))).max() <= 8


def test_cmyk_with_broken_profile_falls_back_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, icc_profile=b"not a real profile at all" * 4)
    img = load_image(path)
    assert np.abs(np.subtract(img.getpixel((8, 8)), (255, 0, 0))).max() <= 8
    assert any("CMYK colour profile unusable" in note for note in image_notes(img))
    assert "icc_profile" not in img.info  # a CMYK profile must not travel with an RGB output


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 25700, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    img = load_image(path)
    assert [img.getpixel((x, 0)) for x in range(5)] == [(v, v, v) for v in (0, 4, 100, 128, 255)]


def test_16bit_rgb_png_keeps_the_high_byte(tmp_path: Path) -> None:
    pixel = np.array([[[65535, 32768, 0x1234]]], dtype=">u2")
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png_bytes(1, 1, 16, 2, b"\x00" + pixel.tobytes()))
    assert load_image(path).getpixel((0, 0)) == (255, 128, 0x12)


def test_palette_image_with_transparency_composites_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (2, 0, 4, 2))
    path = tmp_path / "p.png"
    img.save(path, transparency=0)
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == (255, 255, 255)  # transparent red → white
    assert loaded.getpixel((3, 1)) == (0, 0, 255)
    assert alpha_dropped(loaded) and "transparency" not in loaded.info


def test_palette_image_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    path = tmp_path / "p.bmp"
    img.save(path)
    loaded = load_image(path)
    assert loaded.getpixel((0, 0)) == (10, 200, 30) and not alpha_dropped(loaded)


def test_rgba_is_composited_on_white_and_reported(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(0, 0, 0, 128), (10, 20, 30, 255), (200, 100, 0, 0)])
    path = tmp_path / "a.png"
    img.save(path)
    loaded = load_image(path)
    assert _pixels(loaded) == [(127, 127, 127), (10, 20, 30), (255, 255, 255)]
    assert alpha_dropped(loaded)
    assert any("composited onto white" in note for note in image_notes(loaded))


def test_opaque_rgba_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("RGBA", (2, 2), (1, 2, 3, 255)).save(path)
    loaded = load_image(path)
    assert loaded.getpixel((1, 1)) == (1, 2, 3) and not alpha_dropped(loaded)


def test_la_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("LA", (2, 1))
    img.putdata([(0, 0), (60, 255)])
    path = tmp_path / "la.png"
    img.save(path)
    assert _pixels(load_image(path)) == [(255, 255, 255), (60, 60, 60)]


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (3, 2), (0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise for display
    path = tmp_path / "rotated.png"
    img.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.size == (2, 3)
    assert loaded.getpixel((1, 0)) == (255, 0, 0)  # top-left moves to top-right
    assert loaded.getpixel((0, 0)) == (0, 0, 0)


def test_one_bit_image(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    path = tmp_path / "bw.png"
    img.save(path)
    assert _pixels(load_image(path)) == [(0, 0, 0), (255, 255, 255)]


def test_int32_tiff_in_16bit_range_is_scaled(tmp_path: Path) -> None:
    path = tmp_path / "i.tif"
    Image.fromarray(np.array([[0, 65535, 25700]], dtype=np.int32), mode="I").save(path)
    assert [p[0] for p in _pixels(load_image(path))] == [0, 255, 100]


def test_float_tiff_unit_range_and_stretched_range(tmp_path: Path) -> None:
    unit = tmp_path / "unit.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F").save(unit)
    assert [p[0] for p in _pixels(load_image(unit))] == [0, 128, 255]
    wide = tmp_path / "wide.tif"
    Image.fromarray(np.array([[-1.0, 1.0, 3.0]], dtype=np.float32), mode="F").save(wide)
    loaded = load_image(wide)
    assert [p[0] for p in _pixels(loaded)] == [0, 128, 255]
    assert any("stretched" in note for note in image_notes(loaded))


def test_rgb_icc_profile_is_kept_and_written_back(tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "icc.png"
    _gradient(8, 8).save(path, icc_profile=profile)
    loaded = load_image(path)
    assert loaded.info["icc_profile"] == profile
    out = save_image_atomic(tensor_to_pil(pil_to_tensor(loaded)), tmp_path / "out.jpg", overwrite=False,
                            icc_profile=loaded.info["icc_profile"])
    assert Image.open(out).info["icc_profile"] == profile


# --------------------------------------------------------------------------- masks


def _save_mask(tmp_path: Path, img: Image.Image, name: str = "mask.png") -> Path:
    path = tmp_path / name
    img.save(path)
    return path


def test_gray_mask_nonzero_is_fill(tmp_path: Path) -> None:
    array = np.zeros((4, 6), dtype=np.uint8)
    array[1:3, 2:5] = 255
    array[0, 0] = 1  # faint but non-zero
    mask = load_mask(_save_mask(tmp_path, Image.fromarray(array)), (6, 4))
    assert mask.shape == (1, 4, 6) and mask.dtype == torch.float32
    assert torch.equal(mask[0], torch.from_numpy((array > 0).astype(np.float32)))


def test_one_bit_and_16bit_masks(tmp_path: Path) -> None:
    bit = Image.new("1", (3, 1), 0)
    bit.putpixel((2, 0), 1)
    assert load_mask(_save_mask(tmp_path, bit, "b.png"), None)[0, 0].tolist() == [0.0, 0.0, 1.0]
    deep = Image.fromarray(np.array([[0, 3, 65535]], dtype=np.uint16))
    assert load_mask(_save_mask(tmp_path, deep, "d.png"), None)[0, 0].tolist() == [0.0, 1.0, 1.0]


def test_colour_and_palette_masks(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (3, 1))
    rgb.putdata([(0, 0, 0), (255, 0, 0), (0, 0, 9)])
    assert load_mask(_save_mask(tmp_path, rgb, "c.png"), None)[0, 0].tolist() == [0.0, 1.0, 1.0]
    pal = Image.new("P", (3, 1), 0)
    pal.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 0 is white, index 1 black
    pal.putpixel((1, 0), 1)
    assert load_mask(_save_mask(tmp_path, pal, "p.png"), None)[0, 0].tolist() == [1.0, 0.0, 1.0]


def test_rgba_mask_drawn_in_alpha(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4, 1), (255, 255, 255, 0))  # transparent white background
    img.putpixel((1, 0), (0, 0, 0, 255))  # black strokes
    img.putpixel((2, 0), (0, 0, 0, 40))  # a soft edge counts
    assert load_mask(_save_mask(tmp_path, img), None)[0, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_opaque_rgba_mask_uses_colour(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1), (0, 0, 0, 255))
    img.putpixel((0, 0), (255, 255, 255, 255))
    img.putpixel((2, 0), (255, 255, 255, 0))  # white but transparent: not filled
    assert load_mask(_save_mask(tmp_path, img), None)[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_mask_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("L", (3, 2), 0)
    img.putpixel((0, 0), 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "m.png"
    img.save(path, exif=exif)
    mask = load_mask(path, (2, 3))
    assert mask.shape == (1, 3, 2) and mask[0].tolist() == [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]


def test_mask_size_mismatch_and_resize(tmp_path: Path) -> None:
    array = np.zeros((2, 2), dtype=np.uint8)
    array[0, 1] = 255
    path = _save_mask(tmp_path, Image.fromarray(array))
    with pytest.raises(ImageInputError) as info:
        load_mask(path, (4, 6))
    text = _one_line(info.value)
    assert "2x2" in text and "4x6" in text and "--resize-mask" in text and str(path) in text
    mask = load_mask(path, (4, 6), resize=True)
    expected = np.zeros((6, 4), dtype=np.float32)
    expected[:3, 2:] = 1
    assert torch.equal(mask[0], torch.from_numpy(expected))


def test_empty_and_all_white_masks(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="mask is empty"):
        load_mask(_save_mask(tmp_path, Image.new("L", (4, 4), 0), "e.png"), (4, 4))
    with pytest.raises(ImageInputError, match="marks every pixel to fill"):
        load_mask(_save_mask(tmp_path, Image.new("L", (4, 4), 255), "w.png"), (4, 4))
    with pytest.raises(ImageInputError, match="mask is empty"):
        load_mask(_save_mask(tmp_path, Image.new("RGBA", (4, 4), (255, 255, 255, 0)), "t.png"), (4, 4))


def test_bad_mask_file(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    path.write_bytes(b"")
    with pytest.raises(ImageInputError, match="empty"):
        load_mask(path, (4, 4))


# --------------------------------------------------------------------------- tensors


def test_tensor_round_trip_is_exact_for_every_8bit_value() -> None:
    values = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    img = Image.fromarray(values.astype(np.uint8), mode="RGB")
    tensor = pil_to_tensor(img)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
    assert np.array_equal(np.asarray(tensor_to_pil(tensor)), np.asarray(img))


def test_tensor_to_pil_rounds_and_clamps() -> None:
    tensor = torch.tensor([-3.0, 2.5, 100.4 / 127.5 - 1, 100.6 / 127.5 - 1]).reshape(1, 1, 4).repeat(3, 1, 1)
    assert [p[0] for p in _pixels(tensor_to_pil(tensor))] == [0, 255, 100, 101]
    with pytest.raises(ValueError, match="expected a"):
        tensor_to_pil(torch.zeros(4, 2, 2))


# --------------------------------------------------------------------------- writing


def test_png_metadata_round_trip_and_parent_dirs(tmp_path: Path) -> None:
    meta = {"seed": "42", "sampler": "ddim", "note": "naïve ✓"}
    out = save_image_atomic(_gradient(), tmp_path / "a" / "b" / "out.png", metadata=meta, overwrite=False)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(_gradient()))
    assert read_metadata(out) == meta
    assert not imageio.sidecar_path(out).exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]
    assert (os.stat(out).st_mode & 0o777) == 0o666 & ~imageio._UMASK


def test_jpg_metadata_goes_to_a_sidecar(tmp_path: Path) -> None:
    meta = {"seed": "7", "model": "tiny"}
    out = save_image_atomic(_gradient(), tmp_path / "out.JPG", metadata=meta, overwrite=False)
    assert (tmp_path / "out.JPG.json").is_file()
    assert read_metadata(out) == meta
    reference = io.BytesIO()
    _gradient().save(reference, "JPEG", quality=95)
    with Image.open(out) as written, Image.open(reference) as expected:
        assert written.format == "JPEG" and written.quantization == expected.quantization


@pytest.mark.parametrize("name, fmt", [("o.webp", "WEBP"), ("o.tif", "TIFF"), ("o.tiff", "TIFF"), ("o.bmp", "BMP")])
def test_format_follows_extension(tmp_path: Path, name: str, fmt: str) -> None:
    out = save_image_atomic(_gradient(), tmp_path / name, metadata={"k": "v"}, overwrite=False)
    with Image.open(out) as written:
        assert written.format == fmt and written.size == (32, 24)
    assert read_metadata(out) == {"k": "v"}


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="unsupported output extension '.gif'"):
        save_image_atomic(_gradient(), tmp_path / "o.gif", overwrite=False)


def test_overwrite_rules(tmp_path: Path) -> None:
    path = tmp_path / "o.png"
    save_image_atomic(Image.new("RGB", (2, 2), (1, 1, 1)), path, overwrite=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_image_atomic(Image.new("RGB", (2, 2), (2, 2, 2)), path, overwrite=False)
    assert Image.open(path).getpixel((0, 0)) == (1, 1, 1)
    save_image_atomic(Image.new("RGB", (2, 2), (3, 3, 3)), path, overwrite=True)
    assert Image.open(path).getpixel((0, 0)) == (3, 3, 3)


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_save_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = tmp_path / "o.png"
    save_image_atomic(Image.new("RGB", (2, 2), (5, 5, 5)), path, overwrite=False)
    before = path.read_bytes()

    def broken_save(self: Image.Image, fp, *args, **kwargs) -> None:
        fp.write(b"\x89PNG half an image")
        raise error

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(type(error)):
        save_image_atomic(_gradient(), path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]
    assert path.read_bytes() == before


def test_disk_error_becomes_one_line_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(self: Image.Image, fp, *args, **kwargs) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError) as info:
        save_image_atomic(_gradient(), tmp_path / "o.png", overwrite=False)
    assert _one_line(info.value) == f"{tmp_path / 'o.png'}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        save_image_atomic(_gradient(), blocker / "sub" / "o.png", overwrite=False)
    assert "cannot create output folder" in _one_line(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            save_image_atomic(_gradient(), folder / "o.png", overwrite=False)
    finally:
        folder.chmod(0o755)


def test_read_metadata_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="no such file"):
        read_metadata(tmp_path / "x.png")
    out = save_image_atomic(_gradient(), tmp_path / "o.jpg", overwrite=False)
    assert read_metadata(out) == {}
    imageio.sidecar_path(out).write_text("{not json")
    with pytest.raises(ImageInputError, match="unreadable metadata file"):
        read_metadata(out)


# --------------------------------------------------------------------------- input and output paths


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for rel in ["a.JPG", "b.png", "sub/c.jpeg", "sub/deep/d.TIF", ".hidden.png", "notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "outer" / "inner").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "e.png").write_bytes(b"x")
    return root


def _rels(pairs: list[tuple[Path, Path]]) -> list[str]:
    return [rel.as_posix() for _, rel in pairs]


def test_expand_folder(tree: Path) -> None:
    assert _rels(expand_inputs([str(tree)], recursive=False)) == ["a.JPG", "b.png"]
    pairs = expand_inputs([str(tree)], recursive=True)
    assert _rels(pairs) == ["a.JPG", "b.png", "sub/c.jpeg", "sub/deep/d.TIF"]
    assert pairs[3][0] == tree / "sub" / "deep" / "d.TIF"


def test_expand_globs(tree: Path) -> None:
    assert _rels(expand_inputs([str(tree / "*.png")], recursive=False)) == ["b.png"]
    assert _rels(expand_inputs([str(tree / "**" / "*.jp*g")], recursive=True)) == ["sub/c.jpeg"]
    assert _rels(expand_inputs([str(tree / "sub" / "*")], recursive=True)) == ["c.jpeg", "deep/d.TIF"]


def test_expand_removes_duplicates_and_sorts(tree: Path) -> None:
    pairs = expand_inputs([str(tree / "b.png"), str(tree / "*.png"), str(tree), str(tree / "a.JPG")], recursive=False)
    assert [p.name for p, _ in pairs] == ["a.JPG", "b.png"]
    assert pairs == expand_inputs([str(tree), str(tree / "b.png")], recursive=False)


def test_expand_explicit_file_is_taken_as_given(tree: Path) -> None:
    assert expand_inputs([str(tree / "notes.txt")], recursive=False) == [(tree / "notes.txt", Path("notes.txt"))]


def test_expand_errors(tree: Path) -> None:
    with pytest.raises(ImageInputError, match="no such file or folder"):
        expand_inputs([str(tree / "missing.png")], recursive=False)
    with pytest.raises(ImageInputError, match="pattern matches no image files"):
        expand_inputs([str(tree / "*.webp")], recursive=False)
    with pytest.raises(ImageInputError, match="pass --recursive"):
        expand_inputs([str(tree.parent / "outer")], recursive=False)  # only its subfolder has images
    with pytest.raises(ImageInputError, match="holds no image files$"):
        expand_inputs([str(tree.parent / "empty")], recursive=True)


def test_output_path_rules(tmp_path: Path) -> None:
    photo = tmp_path / "in" / "sub" / "photo.jpg"
    rel = Path("sub/photo.jpg")
    assert output_path_for(rel, tmp_path / "x.webp", True, "_c", None, input_path=photo) == tmp_path / "x.webp"
    with pytest.raises(ImageInputError, match="several inputs"):
        output_path_for(rel, tmp_path / "x.png", False, "_c", None)
    in_folder = output_path_for(rel, tmp_path / "out", False, "_colorized", None)
    assert in_folder == tmp_path / "out/sub/photo_colorized.png"
    assert output_path_for(rel, None, True, "_colorized", "JPG", input_path=photo) == photo.with_name(
        "photo_colorized.jpg"
    )
    folder_like_file = tmp_path / "dir.png"
    folder_like_file.mkdir()
    assert output_path_for(rel, folder_like_file, True, "_c", "tif") == folder_like_file / "sub/photo_c.tif"
    with pytest.raises(ValueError, match="unsupported output extension"):
        output_path_for(rel, None, True, "_c", "gif", input_path=photo)


def test_output_that_is_its_input_is_refused(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    with pytest.raises(ImageInputError, match="overwrite its input"):
        output_path_for(Path("photo.png"), None, True, "", None, input_path=photo)


def test_plan_outputs_detects_collisions(tmp_path: Path) -> None:
    pairs = [(tmp_path / "a/x.png", Path("x.png")), (tmp_path / "b/x.jpg", Path("x.jpg"))]
    assert plan_outputs(pairs, None, "_r", None) == [
        (tmp_path / "a/x.png", tmp_path / "a/x_r.png"),
        (tmp_path / "b/x.jpg", tmp_path / "b/x_r.png"),
    ]
    with pytest.raises(ImageInputError, match="same output"):
        plan_outputs(pairs, tmp_path / "out", "_r", None)
