import json
import struct

import pytest
import torch

from palette_cli.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    ModelInfo,
    file_hash,
    load_model,
    load_state_dict,
    read_info,
    save_model,
)
from palette_cli.nets import UNet, preset


def tiny_model():
    torch.manual_seed(0)
    cfg = preset("tiny")
    net = UNet(cfg)
    # Make the zero-initialised output layers non-zero so the round trip is a real check.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return cfg, net


def info_for(cfg):
    return ModelInfo(net=cfg.to_dict(), schedule={"kind": "linear"}, tasks=["colorize", "jpeg"], training={"steps": 7})


def test_round_trip_is_exact(tmp_path):
    cfg, net = tiny_model()
    path = save_model(tmp_path / "m.safetensors", info_for(cfg), net.state_dict())
    loaded, info = load_model(path)
    assert info.tasks == ["colorize", "jpeg"] and info.training == {"steps": 7}
    for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(2, 3, 16, 16)
    g = torch.tensor([0.3, 0.9])
    with torch.no_grad():
        assert torch.equal(net.eval()(x, g, x), loaded(x, g, x))


@pytest.mark.parametrize("dtype,torch_dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_storage(tmp_path, dtype, torch_dtype):
    cfg, net = tiny_model()
    path = save_model(tmp_path / "m.safetensors", info_for(cfg), net.state_dict(), dtype=dtype)
    raw = load_state_dict(path)
    assert all(v.dtype == torch_dtype for v in raw.values() if v.is_floating_point())
    loaded, _ = load_model(path)
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(loaded.state_dict()[k], v.to(torch_dtype).float())


def write_raw(path, header: dict, data: bytes = b""):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def test_bad_files_give_one_clear_line(tmp_path):
    cfg, net = tiny_model()
    good = save_model(tmp_path / "good.safetensors", info_for(cfg), net.state_dict())
    cases = {}
    cases["missing"] = (tmp_path / "nope.safetensors", "not found")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.safetensors", "too short")
    (tmp_path / "text.safetensors").write_text("hello, I am not a model at all" * 10)
    cases["text"] = (tmp_path / "text.safetensors", "not a safetensors")
    torch.save({"a": torch.zeros(3)}, tmp_path / "model.pth")
    cases["pickle"] = (tmp_path / "model.pth", "palette convert")
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) - 100])
    cases["truncated"] = (tmp_path / "trunc.safetensors", "truncated")
    write_raw(tmp_path / "foreign.safetensors", {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    cases["foreign"] = (tmp_path / "foreign.safetensors", "not a palette-cli model")
    meta = info_for(cfg).to_metadata()
    meta["format_version"] = FORMAT_VERSION + 1
    write_raw(tmp_path / "newer.safetensors", {"__metadata__": {"palette_cli": json.dumps(meta)}})
    cases["newer"] = (tmp_path / "newer.safetensors", "newer than this palette-cli")
    cases["folder"] = (tmp_path, "is a folder")
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        assert message in str(e.value), name
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_mismatched_weights_and_bad_config(tmp_path):
    cfg, net = tiny_model()
    sd = net.state_dict()
    sd.pop(next(iter(sd)))
    path = save_model(tmp_path / "m.safetensors", info_for(cfg), sd)
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(path)
    info = info_for(cfg)
    info.net = {**info.net, "no_such_field": 1}
    path = save_model(tmp_path / "m2.safetensors", info, net.state_dict())
    with pytest.raises(CheckpointError, match="invalid network config"):
        load_model(path)


def test_save_is_atomic_and_hash_stable(tmp_path, monkeypatch):
    cfg, net = tiny_model()
    path = save_model(tmp_path / "m.safetensors", info_for(cfg), net.state_dict())
    h = file_hash(path)
    assert len(h) == 12 and h == file_hash(path)
    assert read_info(path).net == cfg.to_dict()
    import palette_cli.imageio.writing as io_module  # the one atomic writer

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(io_module.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_model(path, info_for(cfg), {k: v * 2 for k, v in net.state_dict().items()})
    assert file_hash(path) == h
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_saving_the_same_model_twice_gives_the_same_bytes(tmp_path):
    """Exports are reproducible: the header's key order does not depend on the serializer's hash map, so
    the same weights and config always give the same file hash (outputs' provenance relies on it)."""
    from safetensors import safe_open

    cfg, net = tiny_model()
    blobs = {save_model(tmp_path / f"m{i}.safetensors", info_for(cfg), net.state_dict()).read_bytes()
             for i in range(12)}
    assert len(blobs) == 1
    blob = blobs.pop()
    n = struct.unpack("<Q", blob[:8])[0]
    assert (8 + n) % 8 == 0
    assert list(json.loads(blob[8:8 + n])["__metadata__"]) == sorted(json.loads(blob[8:8 + n])["__metadata__"])
    with safe_open(str(tmp_path / "m0.safetensors"), "pt") as f:  # the reference reader accepts it
        name = sorted(f.keys())[0]
        assert torch.equal(f.get_tensor(name), net.state_dict()[name])
    loaded, _ = load_model(tmp_path / "m0.safetensors")
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_model_files_name_their_architecture(tmp_path):
    """New files say ``arch``; files written before it existed load as U-Nets; an unknown one is refused."""
    from palette_cli.checkpoint import CheckpointError, ModelInfo, load_model, save_model
    from palette_cli.nets import network_config
    from tests.conftest import tiny_net

    cfg, net = tiny_net()
    assert cfg.to_dict()["arch"] == "unet" and network_config(cfg.to_dict()) == cfg
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("arch", "patch_size")}
    assert network_config(old) == cfg  # an older file's table means the same network
    for name, table in (("new", cfg.to_dict()), ("old", old)):
        save_model(tmp_path / f"{name}.safetensors", ModelInfo(net=table), net.state_dict())
        loaded, _ = load_model(tmp_path / f"{name}.safetensors")
        x = torch.randn(1, 3, 16, 16)
        assert torch.equal(loaded(x, torch.tensor([0.5]), x), net.eval()(x, torch.tensor([0.5]), x))
    save_model(tmp_path / "odd.safetensors", ModelInfo(net={**cfg.to_dict(), "arch": "transformer"}), net.state_dict())
    with pytest.raises(CheckpointError, match="unknown network architecture 'transformer'"):
        load_model(tmp_path / "odd.safetensors")
