"""Reading PyTorch pickle files (``.pth`` / ``.pt``) without ever running code from them.

``torch.load(weights_only=True)`` reads tensors and plain containers only. When a file holds anything else
its error advises re-running with ``weights_only=False``, which would execute whatever the file holds: a
message to a user must never pass that on. :func:`load_plain` turns every failure into one line that says
what the file is and that it is not loaded.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any


class PickleLoadError(ValueError):
    """A pickle file that cannot be read safely (or at all); the message is one line naming the file."""


def load_plain(path: str | os.PathLike[str], what: str = "weights file") -> Any:
    """The tensors and plain containers of a PyTorch file, read with ``weights_only=True`` on the CPU.

    Raises :class:`PickleLoadError` naming the file as a ``what``: for a file holding other Python objects
    (never loaded: it could run code), and for a file that is no readable PyTorch file at all.
    """
    import torch

    from .imageio import check_regular_file, display_name

    check_regular_file(path, PickleLoadError)
    name = display_name(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols in several lines; the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise PickleLoadError(f"{name}: not a plain {what} of tensors (it holds other Python objects, or is no "
                              "PyTorch file at all) and cannot be loaded safely") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one line
        first = (str(e).splitlines() or [""])[0]
        if isinstance(e, (KeyError, IndexError)) or "weights_only" in first or not first.strip():
            first = "unrecognised contents"  # torch's parse of junk says KeyError(101) and the like
        raise PickleLoadError(f"{name}: not a readable PyTorch {what} ({first})") from None
