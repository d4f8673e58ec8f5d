"""One device resolver for inference and training: auto, cpu, cuda, cuda:N, mps; one-line errors."""

from __future__ import annotations

import pytest
import torch

from palette_cli.scale.devices import resolve_device


def _no_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _no_gpus(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_named_devices(monkeypatch):
    _no_gpus(monkeypatch)
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


@pytest.mark.parametrize("name, message", [
    ("cuda", "device cuda was asked for but no CUDA GPU is available"),
    ("cuda:0", "device cuda:0 was asked for but no CUDA GPU is available"),
    ("mps", "device mps was asked for but Apple MPS is not available"),
    ("tpu", "unknown device 'tpu'; choose auto, cpu, cuda, cuda:N, mps"),
    ("cuda:x", "unknown device 'cuda:x'; choose auto, cpu, cuda, cuda:N, mps"),
    ("cpu:0", "unknown device 'cpu:0'; choose auto, cpu, cuda, cuda:N, mps"),
])
def test_missing_or_unknown_devices_are_one_line_errors(monkeypatch, name, message):
    _no_gpus(monkeypatch)
    with pytest.raises(ValueError) as info:
        resolve_device(name)
    assert str(info.value) == message


def test_a_gpu_index_beyond_the_machine_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="device cuda:1 was asked for but there are only 1 CUDA GPU"):
        resolve_device("cuda:1")


def test_training_reports_a_missing_device_as_a_config_error(monkeypatch):
    from palette_cli.training import ConfigError, init_distributed

    _no_gpus(monkeypatch)
    with pytest.raises(ConfigError, match="^device cuda was asked for but no CUDA GPU is available$"):
        init_distributed("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert init_distributed("auto")[1] == torch.device("mps")


def test_a_rank_beyond_the_gpus_is_an_error_and_cpu_ranks_split_the_cores(monkeypatch):
    """Under torchrun local rank N runs on cuda:N; a rank without a GPU of its own is told so in one line."""
    import palette_cli.scale.distributed as distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="^local rank 1 runs on cuda:1 but this machine has only 1 CUDA GPU"):
        distributed.init_distributed("auto")

    d = distributed.dist_from_env()
    assert (d.rank, d.world, d.local_rank, d.local_world, d.main) == (1, 2, 1, 2, False)
    before = torch.get_num_threads()
    monkeypatch.setattr(distributed, "usable_cores", lambda: 16)
    try:
        assert distributed.split_cpu_threads(d) == 8 and torch.get_num_threads() == 8
    finally:
        torch.set_num_threads(before)
