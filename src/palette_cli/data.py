"""Training and evaluation datasets over image folders or image lists, with the paper's crops.

- ``mode="center"``: the largest centred square, resized to ``size`` (Palette's ImageNet protocol).
- ``mode="random"``: multi-scale random crops for high-resolution photos — the image is shrunk by a
  factor drawn log-uniformly from [min_scale, max_scale] (at most so far that it still covers the
  crop; small images are enlarged to cover it), then a random ``size``×``size`` crop is taken; random
  horizontal flips. Implemented as one resize of the crop's source region, so huge photos stay cheap.

Each item is deterministic in (seed, index, epoch): a ``torch.Generator`` derived from them drives the
crop, the flip and the task, so results do not depend on worker processes or on what ran before.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence, Union

import torch
from PIL import Image
from torch import Tensor

from .imageio import ImageInputError, images_in_folder, is_image_path, load_image, path_kind, pil_to_tensor
from .tasks import TrainingTask, parse_task_spec
from .tasks.base import log_uniform, uniform

Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
CROP_MODES = ("center", "random")
RESAMPLE = Image.Resampling.BICUBIC  # antialiased when shrinking (Pillow widens the filter)


# --------------------------------------------------------------------------- listing


def read_image_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Paths from a text file, one per line; relative ones are taken relative to ``root`` (default:
    the list's folder). Blank lines and ``#`` comments are skipped, and a trailing integer label
    (``n01440764/ILSVRC2012_val_00000293.JPEG 0``, as some ImageNet lists carry) is dropped."""
    list_file = Path(list_file)
    base = Path(root) if root is not None else list_file.parent
    paths = []
    for raw in list_file.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            line = parts[0]
        path = Path(line).expanduser()
        paths.append(path if path.is_absolute() else base / path)
    return paths


class DataSourceError(FileNotFoundError):
    """A data source that is missing, or is no image, folder or list file; the message is one line."""


def list_images(source: Source, root: str | os.PathLike | None = None) -> list[Path]:
    """The images of a folder (recursive, sorted, hidden files skipped), a single image, a list file,
    or a sequence of any of these. Extensions: jpg, jpeg, png, webp, bmp, tif, tiff (any case)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        try:
            kind = path_kind(path)
        except ImageInputError as e:
            raise DataSourceError(str(e)) from None
        if kind == "folder":
            return [file for file, _ in images_in_folder(path, recursive=True)]
        if kind == "missing":
            raise DataSourceError(f"no such file or folder: {path}")
        if kind != "file":  # a list file that is a named pipe would be waited on forever
            raise DataSourceError(f"{path}: is {kind}, not an image, a folder or a list of images")
        return [path] if is_image_path(path) else read_image_list(path, root)
    return [p for item in source for p in list_images(item, root)]


# --------------------------------------------------------------------------- crops


def item_seed(seed: int, index: int, epoch: int) -> int:
    """A 63-bit seed for one item, from (seed, index, epoch) only."""
    digest = hashlib.sha256(f"palette-data:{seed}:{index}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square, resized to ``size``×``size``."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))


def random_crop(image: Image.Image, size: int, generator: torch.Generator,
                min_scale: float = 1.0, max_scale: float = 4.0) -> Image.Image:
    """A ``size``² crop of the image shrunk by a log-uniform factor in [min_scale, max_scale], capped
    so the shrunk image still covers the crop (images smaller than the crop are enlarged to cover it)."""
    w, h = image.size
    cover = min(w, h) / size  # the largest factor that still covers the crop
    high = min(max_scale, cover)
    low = min(min_scale, high)
    factor = log_uniform(generator, low, high) if high > low else high
    side = size * factor  # the crop's extent in source pixels
    left = round(uniform(generator, 0.0, w - side)) if w > side else 0
    top = round(uniform(generator, 0.0, h - side)) if h > side else 0
    left, top = min(left, w - side), min(top, h - side)
    return image.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))


def shrink(image: Image.Image, max_side: int) -> Image.Image:
    """The image scaled down (aspect kept) so its longer side is at most ``max_side``."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# --------------------------------------------------------------------------- dataset


class UnreadableDataError(RuntimeError):
    """None of a dataset's images can be read; the message is one line."""


class ImageDataset(torch.utils.data.Dataset):
    """Images → training examples ``{"cond", "target", "mask"}`` (or ``{"image"}`` without a task).

    ``source``: a folder, an image, a list file or a sequence of them (see :func:`list_images`).
    ``task``: a :class:`~palette_cli.tasks.TrainingTask` or a task spec string. ``max_side`` shrinks images at
    load time (before cropping); ``cache`` keeps the decoded (shrunk) images in memory, per process.
    Unreadable images are skipped with a warning: the next readable image (index + 1, …) is used in
    their place and :attr:`skipped` counts them (in this process; each DataLoader worker has its own).
    """

    def __init__(self, source: Source, task: TrainingTask | str | None, size: int, mode: str = "center",
                 seed: int = 0, *, flip: bool | None = None, min_scale: float = 1.0, max_scale: float = 4.0,
                 max_side: int | None = None, cache: bool = False, root: str | os.PathLike | None = None):
        if mode not in CROP_MODES:
            raise ValueError(f"unknown crop mode {mode!r}; choose from {', '.join(CROP_MODES)}")
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        if max_side is not None and max_side < size:
            raise ValueError(f"max_side ({max_side}) must be at least the crop size ({size})")
        self.paths = list_images(source, root)
        self.task = parse_task_spec(task) if isinstance(task, str) else task
        self.size, self.mode, self.seed = size, mode, seed
        self.flip = (mode == "random") if flip is None else flip
        self.min_scale, self.max_scale = min_scale, max_scale
        self.max_side, self.cache = max_side, cache
        self.epoch = 0
        self._cache: dict[int, Image.Image] = {}
        self._unreadable: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops, flips and degradations are drawn (cheap; call any time)."""
        self.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """How many distinct unreadable images this process has met."""
        return len(self._unreadable)

    @property
    def unreadable(self) -> dict[Path, str]:
        """The unreadable images met so far and why."""
        return {self.paths[i]: why for i, why in sorted(self._unreadable.items())}

    def generator(self, index: int) -> torch.Generator:
        """The generator of one item in the current epoch."""
        return torch.Generator().manual_seed(item_seed(self.seed, index, self.epoch))

    def load(self, index: int) -> Image.Image:
        """The decoded RGB image (EXIF orientation applied, shrunk to ``max_side``); raises if unreadable."""
        if index in self._cache:
            return self._cache[index]
        image = load_image(self.paths[index], allow_huge=True)
        if self.max_side is not None:
            image = shrink(image, self.max_side)
        if self.cache:
            self._cache[index] = image
        return image

    def _load_readable(self, index: int, warn: bool = True) -> Image.Image:
        n = len(self.paths)
        for k in range(n):
            j = (index + k) % n
            if j in self._unreadable:
                continue
            try:
                return self.load(j)
            except (ImageInputError, OSError, ValueError) as err:
                self._unreadable[j] = str(err)
                if warn:
                    warnings.warn(f"skipping unreadable image ({len(self._unreadable)} so far): {err}",
                                  RuntimeWarning, stacklevel=3)
        first = next(iter(self._unreadable.values()), "")
        raise UnreadableDataError(f"none of the {n} images can be read (the first: {first})")

    def check_readable(self) -> None:
        """Raise :class:`UnreadableDataError` (one line) unless at least one image can be read: checked
        before training starts, so a data folder of broken files fails at once and says why."""
        if self.paths:
            self._load_readable(0, warn=False)

    def crop(self, image: Image.Image, generator: torch.Generator) -> Tensor:
        """The (3,size,size) crop in [-1,1] of an image, as this dataset's mode and flips make it."""
        if self.mode == "center":
            out = center_crop(image, self.size)
        else:
            out = random_crop(image, self.size, generator, self.min_scale, self.max_scale)
        if self.flip and uniform(generator) < 0.5:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(out)

    def image(self, index: int) -> Tensor:
        """Item ``index``'s crop before any task is applied."""
        return self.crop(self._load_readable(index), self.generator(index))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        index = int(index)
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} images")
        generator = self.generator(index)
        image = self.crop(self._load_readable(index), generator)
        if self.task is None:
            return {"image": image}
        return self.task.make_example(image, generator).as_dict()
