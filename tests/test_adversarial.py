"""The adversarial loss for the generating fill: the critic learns to find made pixels, the generator's term
reaches only the made pixels, and the critic trains, checkpoints and resumes with the run."""

import math

import pytest
import torch
import torch.nn.functional as F

from palette_cli.diffusion.preconditioned import PreconditionedBridgeProcess
from palette_cli.training.adversarial import AdversarialLoss, PatchCritic, patch_mask


def photo_like(seed: int, n: int = 4, size: int = 32) -> torch.Tensor:
    """Smooth colour fields (not white noise), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size), mode="bilinear",
                      align_corners=False)
    return (x * 2 - 1).clamp(-1, 1)


def right_half(n: int = 4, size: int = 32) -> torch.Tensor:
    mask = torch.zeros(n, 1, size, size)
    mask[..., size // 2:] = 1
    return mask


def test_the_critic_sees_patches_and_the_patch_targets_follow_the_made_share():
    critic = PatchCritic(8)
    assert critic(torch.zeros(2, 3, 64, 48)).shape == (2, 1, 8, 6)
    share = patch_mask(right_half(1, 32), (4, 4))
    assert torch.equal(share[0, 0], torch.tensor([[0.0, 0, 1, 1]] * 4))


def test_the_critic_learns_to_tell_made_noise_from_photos():
    """Fills whose made half is noise: after 60 critic steps its loss is far below a coin toss's (2 log 2)
    and it scores the made patches lower than the same places in the photos."""
    torch.manual_seed(0)
    adv = AdversarialLoss(lr=2e-3, channels=8)
    mask = right_half()
    losses = []
    for step in range(60):
        photo = photo_like(step)
        noise = torch.rand(photo.shape, generator=torch.Generator().manual_seed(1000 + step)) * 2 - 1
        adv(noise, photo, mask)  # the generator's term keeps this fill for the critic's step
        losses.append(adv.update())
    assert losses[0] > 1.2 and sum(losses[-10:]) / 10 < 0.5 * 2 * math.log(2)
    photo = photo_like(999)
    fill = mask * (torch.rand(photo.shape, generator=torch.Generator().manual_seed(5)) * 2 - 1) + (1 - mask) * photo
    with torch.no_grad():
        real, fake = adv.critic(photo), adv.critic(fill)
    made = patch_mask(mask, fake.shape[-2:]) == 1
    assert float(fake[made].mean()) < float(real[made].mean()) - 1.0


def test_the_generator_term_reaches_only_the_made_pixels_and_never_the_critic():
    torch.manual_seed(0)
    adv = AdversarialLoss(channels=8)
    photo, mask = photo_like(1), right_half()
    estimate = torch.zeros_like(photo, requires_grad=True)
    loss = adv(estimate, photo, mask)
    loss.backward()
    assert float(loss.detach()) > 0
    grad = estimate.grad.abs().sum(dim=1)
    assert float(grad[..., 16:].sum()) > 0 and float(grad[..., :16].sum()) == 0.0
    assert all(p.grad is None for p in adv.critic.parameters())
    assert all(p.requires_grad for p in adv.critic.parameters())
    # and with no pending fill, the critic's step does nothing
    assert adv.update() is not None and adv.update() is None


def test_the_bridge_adds_both_terms_on_its_clean_estimate():
    p = PreconditionedBridgeProcess(sigma=0.5, p_start=0.1, start="smooth", steps=4, spread=0.35)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(6, 3, 3, padding=1)
    run = lambda x, t, cond: net(torch.cat([cond, x], 1))  # noqa: E731
    target, mask = photo_like(0, 2), right_half(2)
    start = torch.where(mask.bool(), target.mean(dim=(2, 3), keepdim=True), target)
    batch = {"cond": start, "target": target, "mask": mask, "start": start}
    seen = []

    def term(value):
        def fn(estimate, photo, m):
            seen.append(estimate.detach())
            return torch.tensor(value)
        return fn

    plain = float(p.loss(run, batch, torch.Generator().manual_seed(3)).detach())
    both = float(p.loss(run, batch, torch.Generator().manual_seed(3), feature=(0.5, term(2.0)),
                        adversarial=(0.25, term(4.0))).detach())
    assert both == pytest.approx(plain + 0.5 * 2.0 + 0.25 * 4.0, rel=1e-6)
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])  # the same estimate for both


def _fill_config(root, steps, extra=()):
    from palette_cli.training import load_config

    return load_config(None, ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
                              "process={sigma = 0.5, p_start = 0.1, start = \"smooth\", steps = 2, spread = 0.35}",
                              'net={preset = "tiny", gamma_embedding = "time"}', f"data.source={root}",
                              "data.size=32", "batch_size=2", "precision=fp32", "channels_last=false",
                              "val_every=1000", "log_every=1", f"steps={steps}", "ckpt_every=2", "keep_ckpts=5",
                              *extra])


def test_training_with_the_critic_resumes_bit_identically(tmp_path):
    """4 steps straight equal 2 + 2 resumed, generator and critic alike; the critic's loss is logged and the
    adversarial term adds to the first step's loss."""
    import json

    from palette_cli.training import Trainer
    from palette_cli.training.checkpoints import list_checkpoints, load_checkpoint
    from tests.conftest import make_photo

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        make_photo(48, 48, i).save(photos / f"p{i}.png")
    adv = ["adversarial_loss=0.5", "adversarial_lr=1e-3"]
    plain = Trainer(_fill_config(photos, 1), tmp_path / "plain").run()["loss"]
    first = Trainer(_fill_config(photos, 1, adv), tmp_path / "first").run()["loss"]
    assert first > plain + 0.1  # 0.5 × softplus(-logit) ≈ 0.5 × log 2 at the start

    straight = Trainer(_fill_config(photos, 4, adv), tmp_path / "a")
    straight.run()
    Trainer(_fill_config(photos, 2, adv), tmp_path / "b").run()
    ck = load_checkpoint(list_checkpoints(tmp_path / "b")[-1])
    assert ck["step"] == 2 and set(ck["critic"]) == {"critic", "optimizer"}
    resumed = Trainer(_fill_config(photos, 4, adv), tmp_path / "b", resume=True)
    resumed.run()
    for a, b in [(straight.model, resumed.model), (straight.critic.critic, resumed.critic.critic)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    logs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    critic = [r["critic_loss"] for r in logs if r["event"] == "log"]
    assert len(critic) == 4 and all(0 < v < 5 for v in critic)


def test_a_training_config_takes_an_adversarial_loss_only_where_the_process_does(tmp_path):
    from palette_cli.training import load_config
    from palette_cli.training.config import ConfigError

    fill = ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
            "process={sigma = 0.5, start = \"smooth\", spread = 0.35}", f"data.source={tmp_path}"]
    assert load_config(None, fill + ["adversarial_loss=0.1"]).adversarial_loss == 0.1
    with pytest.raises(ConfigError, match="adversarial_loss must be"):
        load_config(None, fill + ["adversarial_loss=-1"])
    with pytest.raises(ConfigError, match="adversarial_lr must be > 0"):
        load_config(None, fill + ["adversarial_loss=0.1", "adversarial_lr=0"])
    with pytest.raises(ConfigError, match="takes no loss on its clean estimate"):
        load_config(None, ["task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
                           "adversarial_loss=0.5", f"data.source={tmp_path}"])
