"""Layout training for a fill's fine stage: some bridge states start from the unknown part's layout (no
detail finer than a factor) at early times, the loss still asks for the photo; off, training is unchanged."""

import pytest
import torch

from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.training.layout_guess import add_layout_guesses, layout_of
from tests.test_adversarial import _fill_config, photo_like, right_half


def test_a_layout_keeps_the_means_and_drops_what_is_finer_than_its_factor():
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(layout_of(flat, 4), flat, atol=1e-6)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2 - 1.0  # ±1, period 2
    out = layout_of(checker.expand(1, 3, 16, 16), 4)
    assert float(out.abs().max()) < 1e-5  # the checkerboard's mean is 0
    ramp = torch.linspace(-1, 1, 32).expand(1, 3, 32, 32)  # a slow gradient survives
    assert float((layout_of(ramp, 4) - ramp).abs()[..., 4:-4].max()) < 0.05


def test_guesses_replace_the_photo_only_inside_the_mask_and_only_for_drawn_examples():
    photo, mask = photo_like(0, n=64, size=32), right_half(64, 32)
    photo = photo + 0.5 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1))  # some detail
    batch = {"target": photo, "mask": mask, "cond": photo * (1 - mask)}
    out = add_layout_guesses(batch, 0.5, [4, 8], 0.4, torch.Generator().manual_seed(0))
    used = out["guess_time"] < 1
    assert 20 < int(used.sum()) < 44  # about half of 64
    assert torch.allclose(out["guess_time"][used], torch.tensor(0.4))
    assert torch.equal(out["guess"][~used], photo[~used])
    known = (1 - mask).bool().expand_as(photo)
    assert torch.equal(out["guess"][known], photo[known])  # the known half stays the photo
    made = out["guess"][used] - photo[used]
    assert float(made[mask[used].bool().expand_as(made)].abs().mean()) > 0.2  # the detail is gone there
    for i in used.nonzero().flatten().tolist():  # and what is left is one of the two layouts
        m = mask[i:i + 1].bool()
        assert any(torch.allclose(out["guess"][i:i + 1], torch.where(m, layout_of(photo[i:i + 1], f), photo[i:i + 1]))
                   for f in (4, 8))
    off = add_layout_guesses(batch, 0.0, [4], 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(off["guess"], photo) and torch.all(off["guess_time"] == 1)


def test_the_bridge_state_starts_from_the_guess_at_scaled_times():
    """With guesses the state is the bridge between the guess and the start at t × guess_time (same noise);
    with the photo as the guess and times of 1, exactly the state without guesses."""
    proc = PreconditionedBridgeProcess(sigma=0.5, p_start=0.0, start="smooth", spread=0.35)
    photo, mask = photo_like(3), right_half()
    start = torch.zeros_like(photo)
    batch = {"target": photo, "mask": mask, "cond": start, "start": start}
    t0, x0 = proc.training_state(batch, torch.Generator().manual_seed(7))
    same = {**batch, "guess": photo.clone(), "guess_time": torch.ones(4)}
    t1, x1 = proc.training_state(same, torch.Generator().manual_seed(7))
    assert torch.equal(t0, t1) and torch.equal(x0, x1)
    guess = layout_of(photo, 4)
    g = {**batch, "guess": guess, "guess_time": torch.full((4,), 0.25)}
    t2, x2 = proc.training_state(g, torch.Generator().manual_seed(7))
    assert torch.allclose(t2, t0 * 0.25)
    gen = torch.Generator().manual_seed(7)
    proc.draw_times(4, gen)
    noise = torch.randn(photo.shape, generator=gen)
    expect = mask * proc.noisy(guess, start, t2, noise) + (1 - mask) * photo
    assert torch.allclose(x2, expect, atol=1e-6)
    # the loss still asks for the photo: a network that returns the photo's correction has zero loss
    tt = t2.view(-1, 1, 1, 1)
    g_, c_ = proc._scales(t2, x2)
    want = (photo - start - g_ * (x2 - start)) / c_
    loss = proc.loss(lambda x, t, cond: want, g, torch.Generator().manual_seed(7))
    assert float(loss) == pytest.approx(0.0, abs=1e-8) and float(tt.max()) <= 0.25


def test_a_run_with_layout_training_trains_and_resumes_bit_identically(tmp_path):
    from palette_cli.training import Trainer
    from palette_cli.training.checkpoints import list_checkpoints
    from tests.conftest import make_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        make_photo(48, 48, i).save(photos / f"p{i}.png")
    lay = ["layout_training=1.0", "layout_factors=[4]", "layout_max_time=0.3"]
    plain = Trainer(_fill_config(photos, 1), tmp_path / "plain").run()["loss"]
    first = Trainer(_fill_config(photos, 1, lay), tmp_path / "first").run()["loss"]
    assert first != pytest.approx(plain, rel=1e-4)  # the states differ
    straight = Trainer(_fill_config(photos, 4, lay), tmp_path / "a")
    straight.run()
    Trainer(_fill_config(photos, 2, lay), tmp_path / "b").run()
    assert list_checkpoints(tmp_path / "b")
    resumed = Trainer(_fill_config(photos, 4, lay), tmp_path / "b", resume=True)
    resumed.run()
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_layout_training_is_refused_where_nothing_starts_from_a_guess(tmp_path):
    from palette_cli.training import load_config
    from palette_cli.training.config import ConfigError

    fill = ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
            "process={sigma = 0.5, start = \"smooth\", spread = 0.35}", f"data.source={tmp_path}"]
    assert load_config(None, fill + ["layout_training=0.5"]).layout_training == 0.5
    for bad, message in [("layout_training=1.5", "fraction in"), ("layout_factors=[1]", "whole numbers >= 2"),
                         ("layout_factors=[]", "whole numbers >= 2"), ("layout_max_time=0", r"\(0, 1\]")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, fill + ["layout_training=0.5", bad])
    with pytest.raises(ConfigError, match="only a bridge fill"):
        load_config(None, ["task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
                           "layout_training=0.5", f"data.source={tmp_path}"])
    with pytest.raises(ConfigError, match="only a bridge fill"):
        load_config(None, ["task=inpaint", "objective=diffusion", "layout_training=0.5", f"data.source={tmp_path}"])


def test_coarse_layouts_come_from_the_known_part_alone_with_fresh_noise(tmp_path):
    """With a layout source, a guess is the coarse stage's sample: the target's unknown pixels play no part,
    known pixels are the target's, the same generator gives the same guess and another one another guess."""
    from palette_cli.training.layout_guess import coarse_layout, load_layout_source
    from tests.test_coarse_stage import fill_file

    path, _ = fill_file(tmp_path / "coarse.safetensors", seed=3, zero_out=False, eta=1.0)
    coarse = load_layout_source(path)
    photo = photo_like(1, 2, 32)
    mask = right_half(2, 32)
    other = torch.where(mask.bool(), photo_like(9, 2, 32), photo)  # a different unknown part
    resolution, sample, views = coarse.resolution, coarse.sample, []
    coarse.sample = lambda cond, *args, **kw: views.append(tuple(cond.shape[-2:])) or sample(cond, *args, **kw)
    a = coarse_layout(coarse, photo, mask, 4, torch.Generator().manual_seed(0))
    assert views == [(8, 8)]  # the coarse view is the crop at 1/4
    assert coarse.resolution == resolution  # set for the call only, the pipeline left as it was
    assert torch.equal(a, coarse_layout(coarse, other, mask, 4, torch.Generator().manual_seed(0)))
    assert torch.equal(a, coarse_layout(coarse, photo, mask, 4, torch.Generator().manual_seed(0)))
    b = coarse_layout(coarse, photo, mask, 4, torch.Generator().manual_seed(1))
    inside = mask.bool().expand_as(a)
    assert float((a - b)[inside].abs().mean()) > 0.01  # fresh noise: another layout
    assert torch.equal(a[~inside], photo[~inside])
    assert not torch.allclose(a, torch.where(mask.bool(), layout_of(photo, 4), photo), atol=0.05)
    # the batch hook uses it for the drawn examples only
    batch = {"target": photo, "mask": mask, "cond": photo, "start": photo}
    out = add_layout_guesses(batch, 1.0, [4], 0.3, torch.Generator().manual_seed(0), coarse)
    assert torch.equal(out["guess"][~inside], photo[~inside]) and torch.allclose(out["guess_time"], torch.full((2,), 0.3))
    assert not torch.allclose(out["guess"], torch.where(mask.bool(), layout_of(photo, 4), photo), atol=0.05)


def test_a_run_with_coarse_layouts_resumes_bit_identically_and_a_missing_source_is_refused(tmp_path):
    from palette_cli.training import Trainer, load_config
    from palette_cli.training.config import ConfigError
    from tests.conftest import make_photo
    from tests.test_coarse_stage import fill_file

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        make_photo(48, 48, i).save(photos / f"p{i}.png")
    path, _ = fill_file(tmp_path / "coarse.safetensors", seed=3, zero_out=False, eta=0.75)
    lay = ["layout_training=1.0", "layout_factors=[4]", "layout_max_time=0.3"]
    truth = Trainer(_fill_config(photos, 1, lay), tmp_path / "truth").run()["loss"]
    src = lay + [f"layout_source={path}"]
    own = Trainer(_fill_config(photos, 1, src), tmp_path / "own").run()["loss"]
    assert own != pytest.approx(truth, rel=1e-4)  # other guesses, other states
    straight = Trainer(_fill_config(photos, 4, src), tmp_path / "a")
    straight.run()
    Trainer(_fill_config(photos, 2, src), tmp_path / "b").run()
    resumed = Trainer(_fill_config(photos, 4, src), tmp_path / "b", resume=True)
    resumed.run()
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ConfigError, match="no model file"):
        load_config(None, ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
                           f"data.source={photos}", "layout_training=0.5", f"layout_source={tmp_path / 'nope'}"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="layout_source"):
        Trainer(_fill_config(photos, 1, lay + [f"layout_source={tmp_path / 'bad.safetensors'}"]), tmp_path / "c")
