"""Classical baselines for ``palette eval --method``: what a user already has, run on the same inputs.

Each baseline maps the evaluation input (an RGB ``uint8`` array) and, for inpainting and uncropping, its
mask (``True`` = unknown) to an output of the same size; it never sees the original photo.

- ``identity``: the degraded input itself (the grey photo, the JPEG, the photo with its hole) — the
  floor every method should beat; its scores measure the degradation.
- ``telea`` / ``ns``: OpenCV's inpainting (Telea's fast marching method; Navier–Stokes), for inpaint
  and uncrop.
- ``nlmeans``: OpenCV's non-local means denoising of colour images, for JPEG restoration.
- ``mirror``: uncropping by reflecting the known part across its border (``numpy.pad``'s symmetric mode),
  for any uncrop direction.

OpenCV comes from the ``eval`` extra (``opencv-python-headless``); it is never imported unless an OpenCV
baseline runs.

:class:`ClassicalModel` makes a baseline a model of the registry (:mod:`palette_cli.models`), beside the
neural ones: evaluation, comparisons and the study page run it through the same calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

INPAINT_RADIUS = 3  # px: the neighbourhood each filled pixel is estimated from (OpenCV's customary value)
# Non-local means: luminance and colour filter strengths, patch and search window sizes (OpenCV's parameter
# order). The strengths gave the best PSNR at the paper's JPEG quality 10 on the example photos (3–15 tried).
NLMEANS = {"h": 6.0, "h_color": 6.0, "template": 7, "search": 21}
OPENCV_HINT = "pip install 'palette-cli[eval]' (or: pip install opencv-python-headless)"

Run = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


class BaselineError(ValueError):
    """A baseline that cannot run here or on this task; the message is one line."""


@dataclass(frozen=True)
class Baseline:
    """A classical method: the tasks it applies to, what it is, and the function that runs it."""

    name: str
    tasks: tuple[str, ...]
    description: str
    run: Run
    needs_opencv: bool = False
    parameters: tuple[tuple[str, Any], ...] = ()


def opencv() -> ModuleType:
    """The ``cv2`` module, or a one-line :class:`BaselineError` saying what to install."""
    try:
        import cv2
    except ImportError:
        raise BaselineError(f"the OpenCV baselines need OpenCV: {OPENCV_HINT}") from None
    return cv2


def _hole(mask: np.ndarray | None, name: str) -> np.ndarray:
    if mask is None:
        raise BaselineError(f"{name} needs a mask")
    return np.asarray(mask, dtype=bool)


def identity(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The input unchanged."""
    return image.copy()


def _inpaint(flag: str) -> Run:
    def run(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        cv2 = opencv()
        hole = _hole(mask, flag).astype(np.uint8) * 255
        # channel order does not matter: OpenCV inpaints each channel alike
        return cv2.inpaint(np.ascontiguousarray(image), hole, INPAINT_RADIUS, getattr(cv2, flag))

    return run


def nlmeans(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Non-local means on the colour image (OpenCV works in BGR order, converted to CIELAB inside)."""
    cv2 = opencv()
    bgr = np.ascontiguousarray(image[..., ::-1])
    out = cv2.fastNlMeansDenoisingColored(bgr, None, NLMEANS["h"], NLMEANS["h_color"], NLMEANS["template"],
                                          NLMEANS["search"])
    return np.ascontiguousarray(out[..., ::-1])


def mirror(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Fill everything outside the known rectangle by reflecting it across its border (repeatedly when the
    unknown part is wider than the known one)."""
    hole = _hole(mask, "mirror")
    rows, cols = np.nonzero(~hole)
    if rows.size == 0:
        raise BaselineError("mirror needs some known pixels")
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    known = np.zeros_like(hole)
    known[top:bottom, left:right] = True
    if not np.array_equal(known, ~hole):
        raise BaselineError("mirror needs the known pixels to form one rectangle (an uncropping mask)")
    height, width = hole.shape
    pad = ((top, height - bottom), (left, width - right), (0, 0))
    return np.pad(image[top:bottom, left:right], pad, mode="symmetric")


def exemplar(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Patch-based synthesis from the known pixels (:mod:`palette_cli.tasks.synthesis`), seed 0."""
    import torch

    from .tasks.synthesis import exemplar_fill

    hole = _hole(mask, "exemplar")
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
    out = exemplar_fill(x, torch.from_numpy(hole)[None].float(), torch.Generator().manual_seed(0))
    return ((out.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("identity", ("colorize", "inpaint", "uncrop", "jpeg"), "the degraded input itself", identity),
    Baseline("telea", ("inpaint", "uncrop"), "OpenCV inpainting, Telea's fast marching method",
             _inpaint("INPAINT_TELEA"), True, (("radius", INPAINT_RADIUS),)),
    Baseline("ns", ("inpaint", "uncrop"), "OpenCV inpainting, Navier–Stokes", _inpaint("INPAINT_NS"), True,
             (("radius", INPAINT_RADIUS),)),
    Baseline("nlmeans", ("jpeg",), "OpenCV non-local means denoising (colour)", nlmeans, True,
             tuple(NLMEANS.items())),
    Baseline("mirror", ("uncrop",), "the known part reflected across its border", mirror),
    Baseline("exemplar", ("inpaint", "uncrop"), "patch-based synthesis from the known pixels (Wexler et al. "
             "2007 with PatchMatch search)", exemplar),
)}


def get_baseline(name: str, task: str) -> Baseline:
    """The baseline ``name`` for ``task``, checked to apply and (OpenCV ones) to be importable."""
    baseline = BASELINES.get(name)
    if baseline is None:
        raise BaselineError(f"unknown baseline {name!r} (use one of: {', '.join(BASELINES)})")
    if task not in baseline.tasks:
        raise BaselineError(f"the {name} baseline does not apply to {task} (it applies to "
                            f"{', '.join(baseline.tasks)})")
    if baseline.needs_opencv:
        opencv()
    return baseline


def run_baseline(name: str, task: str, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Run baseline ``name`` on an RGB ``uint8`` image (H, W, 3) and its mask (H, W; True = unknown)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BaselineError(f"baselines take RGB uint8 images, got {image.dtype} of shape {image.shape}")
    out = get_baseline(name, task).run(image, mask)
    if mask is not None:
        # only unknown pixels are the method's: every known one stays exactly as given
        out = np.where(np.asarray(mask, dtype=bool)[..., None], out, image)
    return out


class ClassicalModel:
    """A baseline as a model: what evaluation uses of a :class:`~palette_cli.pipeline.Pipeline` (``infer``,
    ``record``, ``summary``, ``provenance``, ``model_calls``), so every method takes one path. It is
    deterministic (one output per input) and works on the evaluation input at its own size."""

    deterministic = True
    device = "cpu"
    divisor = 1

    def __init__(self, baseline: Baseline):
        self.baseline = baseline
        self.model_id = baseline.name
        # what identifies its outputs, as a model file's hash does: the method and its parameters
        self.model_hash = hashlib.sha256(json.dumps([baseline.name, baseline.parameters]).encode()).hexdigest()[:12]

    def infer(self, task: str, image: "Image.Image", mask: Any, settings: Any = None, generator: Any = None,
              num_samples: int = 1, on_step: Any = None) -> list["Image.Image"]:
        """The method on one evaluation input (``mask``: (1,H,W), 1 = unknown, or None)."""
        from PIL import Image

        hole = None if mask is None else np.asarray(mask[0]) > 0
        return [Image.fromarray(run_baseline(self.model_id, task, np.asarray(image.convert("RGB")), hole))]

    def model_calls(self, settings: Any = None) -> int:
        return 0

    def record(self, settings: Any = None) -> dict[str, Any]:
        """The method and its parameters, as an evaluation records them."""
        return {"model": self.model_id, "model_hash": self.model_hash, **dict(self.baseline.parameters)}

    def summary(self, settings: Any = None) -> str:
        """One phrase for a comparison table: what the method is and its parameters."""
        params = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.baseline.parameters)
        return self.baseline.description + (f"; {params}" if params else "")

    def provenance(self, task: str, settings: Any, seed: int) -> dict[str, str]:
        """What an output records of how it was made."""
        from . import __version__

        return {"palette_cli_version": __version__, "task": task, "seed": str(seed), **{
            k: str(v) for k, v in self.record().items()}}
