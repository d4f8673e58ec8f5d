"""The colorizer's class-consistency loss: what it measures, where its gradient goes, and how it joins training."""

import pytest
import torch

from palette_cli.diffusion.bridge import ChromaBridgeProcess
from palette_cli.diffusion.chroma import rgb_to_ycc, ycc_to_rgb
from palette_cli.training.class_loss import ClassLoss
from tests.test_feature_loss import photo_like


@pytest.fixture(scope="module")
def classifier():
    return ClassLoss("lite0")  # the package's ImageNet weights and classifier (the tests install Lite0)


def test_the_classifier_is_the_imagenet_one_and_the_photo_itself_costs_nothing(classifier):
    from palette_cli.metrics.features import load_feature_net
    from palette_cli.nets.efficientnet_lite import LiteTrunk

    judge = load_feature_net("effnet-lite0")  # the evaluation's own loading of the same package
    x = photo_like(0)
    with torch.no_grad():
        want = judge._fc(judge._trunk(LiteTrunk.normalise(x)).mean(dim=(2, 3))).log_softmax(1)
        got = classifier.log_probs(x)
    assert torch.allclose(got, want, atol=1e-5)
    # the classifier's weights are the package's: another photo gets another distribution
    assert not torch.allclose(classifier.log_probs(photo_like(9)), got, atol=1e-2)
    mask = torch.ones(2, 1, 64, 64)
    assert float(classifier(x, x, mask)) == pytest.approx(0.0, abs=1e-6)


def test_grey_and_wrong_colour_cost_more_than_the_true_colour_and_only_made_pixels_count(classifier):
    x = photo_like(3)
    mask = torch.ones(2, 1, 64, 64)
    luma, chroma = rgb_to_ycc(x)
    grey = ycc_to_rgb(luma, torch.zeros_like(chroma))
    swapped = ycc_to_rgb(luma, -chroma)  # every hue turned to its opposite
    g, s = float(classifier(grey, x, mask)), float(classifier(swapped, x, mask))
    assert g > 1e-3 and s > 1e-3
    assert float(classifier(ycc_to_rgb(luma, 0.95 * chroma), x, mask)) < min(g, s)
    none_made = torch.zeros_like(mask)  # nothing made: the estimate is pasted under the photo entirely
    assert float(classifier(grey, x, none_made)) == pytest.approx(0.0, abs=1e-6)


def test_the_gradient_reaches_the_estimate_and_not_the_classifier(classifier):
    target = photo_like(0)
    estimate = photo_like(2).requires_grad_(True)
    classifier(estimate, target, torch.ones(2, 1, 64, 64)).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in classifier.parameters())
    classifier.train()
    assert not classifier.trunk.training  # ImageNet batch-norm statistics


def test_the_colorizer_adds_the_weighted_class_loss_of_the_estimate_it_would_sample():
    """loss(classes=(w, fn)) = the chroma cross-entropy + w × fn(ŷ0, photo, mask), with ŷ0 the condition's luma
    under the annealed mean (times chroma_gain) of the same logits."""
    p = ChromaBridgeProcess(sigma=0.25, p_start=1.0, bins=3, temperature=1.0, chroma_gain=1.3, rebalance=0.5)
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 9, 4, stride=4)
    run = lambda x, t, cond: net(cond)  # noqa: E731
    target = photo_like(0, 32)
    luma = rgb_to_ycc(target)[0]
    cond = luma.expand(-1, 3, -1, -1).contiguous()
    batch = {"cond": cond, "target": target, "mask": torch.ones(2, 1, 32, 32)}
    seen = {}

    def fn(estimate, photo, m):
        seen["estimate"] = estimate.detach()
        return (estimate - photo).abs().mean()

    plain = p.loss(run, batch, torch.Generator().manual_seed(3))
    both = p.loss(run, batch, torch.Generator().manual_seed(3), classes=(0.5, fn))
    with torch.no_grad():
        expected_estimate = p.colour(net(cond), cond)
    assert torch.allclose(seen["estimate"], expected_estimate, atol=1e-6)
    assert torch.allclose(rgb_to_ycc(seen["estimate"])[0], luma, atol=1e-5)  # the luma is the input's
    extra = float((expected_estimate - target).abs().mean())
    assert float(both.detach()) == pytest.approx(float(plain.detach()) + 0.5 * extra, rel=1e-5)
    # and the term's gradient reaches the network
    net.zero_grad()
    p.loss(run, batch, torch.Generator().manual_seed(3), classes=(1.0, fn)).backward()
    with_term = net.weight.grad.clone()
    net.zero_grad()
    p.loss(run, batch, torch.Generator().manual_seed(3)).backward()
    assert (with_term - net.weight.grad).abs().sum() > 1e-6


def _colour_config(tmp_path, extra=()):
    from palette_cli.training import load_config

    return load_config(None, [
        "task=colorize", "objective=bridge", "prediction=chroma-bins", "loss=ce",
        "process={p_start = 1.0, chroma_bins = 3, rebalance = 0.5}",
        'net={arch = "effnet-unet", encoder = "lite0", image_size = 32, num_classes = 9, '
        'decoder_channels = [8, 8, 8, 8], global_channels = 8}',
        f"data.source={tmp_path}", "data.size=32", "batch_size=2", "steps=1", "precision=fp32",
        "channels_last=false", "val_every=1000", "log_every=1", "feature_net=lite0", *extra])


def test_training_with_the_class_loss_adds_it_to_the_same_first_step(tmp_path):
    from palette_cli.training import Trainer
    from tests.conftest import make_photo

    for i in range(2):
        make_photo(64, 64, i).save(tmp_path / f"p{i}.png")
    plain = Trainer(_colour_config(tmp_path), tmp_path / "plain").run()["loss"]
    with_classes = Trainer(_colour_config(tmp_path, ["class_loss=2.0"]), tmp_path / "cls").run()["loss"]
    assert with_classes > plain + 1e-4


def test_a_training_config_takes_a_class_loss_only_where_the_process_does(tmp_path):
    from palette_cli.training import load_config
    from palette_cli.training.config import ConfigError

    assert _colour_config(tmp_path, ["class_loss=0.5"]).class_loss == 0.5
    with pytest.raises(ConfigError, match="class_loss must be"):
        _colour_config(tmp_path, ["class_loss=-1"])
    with pytest.raises(ConfigError, match="feature_net"):
        _colour_config(tmp_path, ["class_loss=0.5", "feature_net=resnet"])
    with pytest.raises(ConfigError, match="takes no class-consistency loss"):
        load_config(None, ["task=inpaint+uncrop", "objective=bridge", "prediction=preconditioned",
                           "process={sigma = 0.5, start = \"smooth\", spread = 0.35}", "class_loss=0.5",
                           f"data.source={tmp_path}"])
