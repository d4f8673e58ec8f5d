"""Shared fixtures: a tiny random model file and small photos made on the fly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

# One torch thread: on a small shared CPU, two threads made tiny convolutions up to ~100x slower when the
# other core was busy, and the suite's results must not depend on the thread count.
torch.set_num_threads(1)


def make_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth colourful test picture (gradients plus a few blobs), deterministic per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([xx / max(1, width - 1), yy / max(1, height - 1), 0.5 + 0.5 * np.sin(xx / 7 + yy / 11)], -1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, 10)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - blob) + blob * rng.uniform(0, 1, 3)
    return Image.fromarray((img * 255).round().astype(np.uint8))


def tiny_net(seed: int = 0, std: float = 0.02):
    """(config, network) of the tiny preset, random, with its zero-initialised layers drawn from N(0, std²)
    so that its output is not identically zero."""
    from palette_cli.nets import UNet, preset

    torch.manual_seed(seed)
    cfg = preset("tiny")
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, std)
    return cfg, net


@pytest.fixture
def photo(tmp_path):
    """A 48x40 test picture, ``a.png`` in the test's folder."""
    path = tmp_path / "a.png"
    make_photo(48, 40, 1).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    """A randomly initialised tiny multi-task model saved in the real format (non-zero output layer)."""
    from palette_cli.checkpoint import ModelInfo, save_model

    cfg, net = tiny_net()
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, ModelInfo(net=cfg.to_dict(), tasks=["colorize", "inpaint", "uncrop", "jpeg"]), net.state_dict())
    return path


def make_rcc(files: dict[str, bytes], *, version: int = 3, compress: frozenset[str] = frozenset()) -> bytes:
    """A Qt binary resource bundle holding ``files`` (path → bytes), those named in ``compress`` stored
    zlib-compressed (uint32 size + zlib stream). Laid out as header, data, names, tree; name hashes are 0."""
    import struct
    import zlib

    root: dict = {}
    for path, blob in files.items():
        *folders, leaf = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = (path, blob)
    data, names, name_at = bytearray(), bytearray(), {}

    def name(text: str) -> int:
        if text not in name_at:
            name_at[text] = len(names)
            names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))
        return name_at[text]

    nodes = [[0, 2, 0, 0]]  # [name offset, flags, count | locale, first child | data offset]
    pending = [(0, root)]  # breadth first: a folder's children are consecutive nodes
    while pending:
        index, folder = pending.pop(0)
        nodes[index][2:] = [len(folder), len(nodes)]
        for key in sorted(folder):
            value = folder[key]
            if isinstance(value, dict):
                nodes.append([name(key), 2, 0, 0])
                pending.append((len(nodes) - 1, value))
                continue
            path, blob = value
            flags = 0
            if path in compress:
                blob, flags = struct.pack(">I", len(blob)) + zlib.compress(blob), 1
            nodes.append([name(key), flags, 1, len(data)])
            data.extend(struct.pack(">I", len(blob)) + blob)
    tree = b"".join(struct.pack(">IHII", *node) + (struct.pack(">Q", 0) if version > 1 else b"")
                    for node in nodes)
    header = 24 if version >= 3 else 20
    offsets = struct.pack(">4I", version, header + len(data) + len(names), header, header + len(data))
    return b"qres" + offsets + (struct.pack(">I", 0) if version >= 3 else b"") + bytes(data) + bytes(names) + tree
