"""The feature (perceptual) loss for the generating fill: what it measures, where, and how it joins the loss."""

import pytest
import torch
import torch.nn.functional as F

from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.diffusion.process import masked_loss
from palette_cli.training.feature_loss import FeatureLoss


def photo_like(seed: int, size: int = 64) -> torch.Tensor:
    """Smooth colour fields with edges (not white noise), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(2, 3, size // 8, size // 8, generator=g), size=(size, size), mode="bicubic",
                      align_corners=False)
    x = x + 0.3 * (torch.rand(2, 3, size, size, generator=g) > 0.9)
    return (x * 2 - 1).clamp(-1, 1)


@pytest.fixture(scope="module")
def judge():
    return FeatureLoss("lite0")  # the package's ImageNet weights (the tests install Lite0)


def test_only_the_made_pixels_count_and_a_blur_costs_more_than_a_little_noise(judge):
    target = photo_like(0)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 32:] = 1
    assert float(judge(target, target, mask)) == pytest.approx(0.0, abs=1e-6)
    outside = target.clone()
    outside[..., :32] = -outside[..., :32]  # wrong, but where the pixels are known: pasted over
    assert float(judge(outside, target, mask)) == pytest.approx(0.0, abs=1e-6)
    blur = F.avg_pool2d(target, 7, 1, 3, count_include_pad=False)
    noisy = target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    other = photo_like(5)
    b, n, o = (float(judge(x, target, mask)) for x in (blur, noisy, other))
    assert 0 < n < b < o  # a little noise is nearer than a blur, which is nearer than another picture


def test_the_gradient_reaches_the_estimate_and_not_the_network(judge):
    target = photo_like(0)
    estimate = photo_like(2).requires_grad_(True)
    mask = torch.ones(2, 1, 64, 64)
    judge(estimate, target, mask).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in judge.parameters())
    judge.train()
    assert not judge.trunk.training  # ImageNet batch-norm statistics


def test_the_bridge_adds_the_weighted_feature_loss_of_its_clean_estimate():
    """loss(feature=(w, fn)) = the L2 loss + w × fn(ŷ0, photo, mask), with ŷ0 the sampler's clean estimate."""
    p = PreconditionedBridgeProcess(sigma=0.5, p_start=0.1, start="smooth", steps=4, spread=0.35)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(6, 3, 3, padding=1)
    run = lambda x, t, cond: net(torch.cat([cond, x], 1))  # noqa: E731
    target = photo_like(0, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 16:] = 1
    start = torch.where(mask.bool(), target.mean(dim=(2, 3), keepdim=True), target)
    batch = {"cond": start, "target": target, "mask": mask, "start": start}
    seen = {}

    def fn(estimate, photo, m):
        seen["estimate"] = estimate.detach()
        return ((estimate - photo) * m).square().mean()

    plain = p.loss(run, batch, torch.Generator().manual_seed(3))
    both = p.loss(run, batch, torch.Generator().manual_seed(3), feature=(0.5, fn))
    # the same t and noise: rebuild the state and the estimate the sampler would make from the network
    t, x_t = p.training_state(batch, torch.Generator().manual_seed(3))
    with torch.no_grad():
        estimate = p._estimate(run(x_t, t, start), x_t, start, t)
    assert torch.allclose(seen["estimate"], estimate, atol=1e-5)
    expected = float(plain.detach()) + 0.5 * float(((estimate - target) * mask).square().mean())
    assert float(both.detach()) == pytest.approx(expected, rel=1e-5)
    g, c = p._scales(t, x_t)
    residual = (target - start - g * (x_t - start)) / c
    with torch.no_grad():
        assert float(plain.detach()) == pytest.approx(float(masked_loss(run(x_t, t, start), residual, mask)), rel=1e-5)


def test_the_residual_bridge_adds_the_weighted_feature_loss_of_its_clean_estimate():
    """The restorer's bridge (a residual on x_t): loss(feature=(w, fn)) = its L1 / L2 loss + w × fn(x_t + net,
    photo, mask), the estimate its one-step restoration."""
    from palette_cli.diffusion.bridge import BridgeProcess

    p = BridgeProcess(sigma=0.1, p_start=0.25)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(6, 3, 3, padding=1)
    run = lambda x, t, cond: net(torch.cat([cond, x], 1))  # noqa: E731
    target, jpeg = photo_like(0, 32), photo_like(5, 32)
    batch = {"cond": jpeg, "target": target, "mask": torch.ones(2, 1, 32, 32)}
    seen = {}

    def fn(estimate, photo, m):
        seen["estimate"] = estimate.detach()
        return (estimate - photo).abs().mean()

    plain = p.loss(run, batch, torch.Generator().manual_seed(3), loss="l1")
    both = p.loss(run, batch, torch.Generator().manual_seed(3), loss="l1", feature=(0.25, fn))
    t, x_t = p.training_state(batch, torch.Generator().manual_seed(3))
    with torch.no_grad():
        estimate = x_t + run(x_t, t, jpeg)
    assert torch.allclose(seen["estimate"], estimate, atol=1e-6)
    assert float(plain.detach()) == pytest.approx(float((estimate - target).abs().mean()), rel=1e-5)
    assert float(both.detach()) == pytest.approx(float(plain.detach()) * 1.25, rel=1e-5)


def test_training_with_the_feature_loss_adds_it_to_the_same_first_step(tmp_path):
    """Two runs from the same seed see the same first batch: with the feature loss the first step's loss is
    the L2 loss plus a positive term, and the logged validation loss stays the plain L2 one."""
    from palette_cli.training import Trainer, load_config
    from tests.conftest import make_photo

    for i in range(2):
        make_photo(64, 64, i).save(tmp_path / f"p{i}.png")
    common = ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
              "process={sigma = 0.5, p_start = 0.1, start = \"smooth\", steps = 2, spread = 0.35}",
              'net={preset = "tiny", gamma_embedding = "time"}', f"data.source={tmp_path}", "data.size=32", "batch_size=2", "precision=fp32",
              "channels_last=false", "val_every=1000", "log_every=1", "steps=1", "feature_net=lite0"]
    plain = Trainer(load_config(None, common), tmp_path / "plain").run()["loss"]
    with_features = Trainer(load_config(None, common + ["feature_loss=2.0"]), tmp_path / "feat").run()["loss"]
    assert with_features > plain + 1e-3


def test_a_training_config_takes_a_feature_loss_only_where_the_process_does(tmp_path):
    from palette_cli.training import load_config
    from palette_cli.training.config import ConfigError

    fill = ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
            "process={sigma = 0.5, start = \"smooth\", spread = 0.35}", f"data.source={tmp_path}"]
    assert load_config(None, fill + ["feature_loss=0.5"]).feature_loss == 0.5
    restore = ["task=jpeg", "objective=bridge", "loss=l1", "process={sigma = 0.1, p_start = 0.25}",
               f"data.source={tmp_path}"]
    assert load_config(None, restore + ["feature_loss=0.5", "adversarial_loss=0.1"]).feature_loss == 0.5
    with pytest.raises(ConfigError, match="feature_loss"):
        load_config(None, fill + ["feature_loss=-1"])
    with pytest.raises(ConfigError, match="feature_net"):
        load_config(None, fill + ["feature_loss=0.5", "feature_net=resnet"])
    with pytest.raises(ConfigError, match="takes no feature loss"):
        load_config(None, ["task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
                           "feature_loss=0.5", f"data.source={tmp_path}"])
