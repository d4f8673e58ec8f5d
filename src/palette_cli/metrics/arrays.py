"""numpy/torch inputs of the metric formulas, as float64 numpy arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = np.ndarray | Tensor


def as_float64(x: ArrayLike) -> np.ndarray:
    """A tensor or array as a float64 numpy array (on the CPU, detached)."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)
