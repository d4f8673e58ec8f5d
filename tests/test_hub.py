"""Model resolution: shipped names, local files, and the Hub cache in offline mode (never the network)."""

import pytest

from palette_cli import hub
from palette_cli.hub import HubRef, ModelNotFoundError, parse_hub_ref, resolve_model


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def put_in_cache(cache, repo, filename, data=b"weights", revision="main", commit="a" * 40):
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(commit)
    snap = root / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.write_bytes(data)
    return snap


@pytest.mark.parametrize(
    "spec,ref",
    [
        ("user/repo", HubRef("user/repo", "model.safetensors", None)),
        ("hf:user/repo", HubRef("user/repo", "model.safetensors", None)),
        ("user/repo@v1.0", HubRef("user/repo", "model.safetensors", "v1.0")),
        ("hf:user/my.repo/sub/colorize.safetensors@main", HubRef("user/my.repo", "sub/colorize.safetensors", "main")),
    ],
)
def test_parse_hub_ref(spec, ref):
    assert parse_hub_ref(spec) == ref


def test_parse_rejects_non_hub_specs():
    assert parse_hub_ref("justaname") is None
    assert parse_hub_ref("a b/c") is None


def test_shipped_name_and_local_file(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    d.mkdir()
    (d / "my-model.safetensors").write_bytes(b"x")
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(d))
    assert resolve_model("my-model") == (d / "my-model.safetensors", "my-model")
    f = tmp_path / "other.safetensors"
    f.write_bytes(b"y")
    assert resolve_model(str(f))[0] == f
    with pytest.raises(ModelNotFoundError, match="model file not found"):
        resolve_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelNotFoundError, match="unknown model 'nonsense'"):
        resolve_model("nonsense")


def test_hub_repo_from_cache_offline(offline_cache):
    snap = put_in_cache(offline_cache, "someone/palette-places", "model.safetensors")
    path, model_id = resolve_model("someone/palette-places")
    assert path.read_bytes() == b"weights" and path.resolve() == snap.resolve()
    assert model_id == "hf:someone/palette-places/model.safetensors"


def test_hub_missing_offline_is_one_clear_line(offline_cache):
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("someone/not-downloaded@v2")
    msg = str(e.value)
    assert "someone/not-downloaded/model.safetensors@v2" in msg and "offline" in msg and "\n" not in msg


def test_default_is_looked_up_in_shipped_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "palette-colorize.safetensors").write_bytes(b"x")
    assert resolve_model(None, "colorize") == (tmp_path / "palette-colorize.safetensors", "palette-colorize")
    with pytest.raises(ModelNotFoundError, match="no model given"):
        resolve_model(None)  # no library-wide default: a task names its own


def test_each_task_defaults_to_its_specialist_else_the_multitask_model(tmp_path, monkeypatch):
    """Without --model, each task (or command) uses its shipped specialist; a task whose specialist is not
    installed falls back to the multi-task model, the next name of its row in TASK_MODELS."""
    monkeypatch.setattr(hub, "weights_dirs", lambda: [tmp_path])
    (tmp_path / "palette-multitask-small.safetensors").write_bytes(b"x")
    assert resolve_model(None, "restore")[1] == "palette-multitask-small"
    (tmp_path / "palette-restore.safetensors").write_bytes(b"x")
    assert resolve_model(None, "restore") == (tmp_path / "palette-restore.safetensors", "palette-restore")
    assert resolve_model(None, "jpeg")[1] == "palette-restore"  # the evaluation's name of the task
    assert resolve_model(None, "colorize")[1] == "palette-multitask-small"  # its specialist is not here
    assert resolve_model("palette-multitask-small", "restore")[1] == "palette-multitask-small"  # --model wins
    assert hub.default_model("panorama", {}) == "palette-extend"  # none installed: the first of its row
    assert hub.default_model("inpaint", {}) == "palette-extend"
    assert resolve_model(None, "uncrop")[1] == "palette-multitask-small"
    (tmp_path / "palette-fill.safetensors").write_bytes(b"x")
    assert resolve_model(None, "uncrop")[1] == "palette-fill"  # the generating fill is not here: the next one
    assert resolve_model(None, "inpaint")[1] == "palette-fill"
    assert {hub.task_of(c) for c in ("colorize", "inpaint", "uncrop", "panorama", "restore")} == set(hub.TASK_MODELS)
    with pytest.raises(ModelNotFoundError, match="no default model for 'sharpen'"):
        hub.default_model("sharpen")


def test_task_refusals_are_one_line_and_force_only_lifts_what_can_run():
    fill, trained = "palette-fill", ["inpaint", "uncrop"]
    assert hub.task_refusal(fill, "inpaint", trained, None) is None
    assert hub.task_refusal(fill, "panorama", trained, None) is None  # panorama is uncropping
    assert hub.task_refusal(fill, "colorize", trained, None) == (
        "model palette-fill was not trained for colorize: it does inpaint, uncrop; colorize's default model is "
        "palette-colorize; add --force to run it anyway")
    assert hub.task_refusal(fill, "colorize", trained, None, force=True) is None
    assert hub.task_refusal("mine.safetensors", "restore", [], None) is None  # tasks not recorded: any
    refused = hub.task_refusal("palette-colorize", "restore", ["colorize"], ("colorize",), force=True)
    assert refused == ("model palette-colorize cannot run restore (jpeg): it does colorize only; restore's "
                       "default model is palette-restore")


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    """Online mode, but the Hub endpoint refuses connections (a closed local port): no network is used."""
    import huggingface_hub.constants as c

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return cache


def test_unreachable_hub_fails_at_once_naming_offline_mode_and_the_cache(unreachable_hub):
    import time

    start = time.monotonic()
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("hf:someone/not-downloaded")
    assert time.monotonic() - start < 20  # not the Hub client's half a minute of retries
    msg = str(e.value)
    assert "\n" not in msg and "someone/not-downloaded/model.safetensors" in msg
    assert "HF_HUB_OFFLINE=1" in msg and str(unreachable_hub) in msg and "http://127.0.0.1:9" in msg


def test_unreachable_hub_still_serves_the_cache(unreachable_hub):
    snap = put_in_cache(unreachable_hub, "someone/palette-places", "model.safetensors")
    path, _ = resolve_model("someone/palette-places")
    assert path.resolve() == snap.resolve()


def test_hub_probe(unreachable_hub):
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub.hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=5)
    assert not hub.hub_reachable("http://127.0.0.1:9", timeout=5)
    assert not hub.hub_reachable("not a url")
