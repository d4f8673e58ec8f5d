"""The study matrix: every arm is a valid change of the study recipe, in one setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from palette_cli.training import load_config
from studies.matrix import STUDIES, main, overrides, trained_tasks

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "study.toml"


@pytest.mark.parametrize("name", list(STUDIES))
def test_each_arm_changes_the_recipe_in_at_most_one_setting(name):
    reference = load_config(RECIPE).to_dict()
    arm = load_config(RECIPE, overrides(name)).to_dict()
    changed = {k for k in reference if arm[k] != reference[k]}
    assert changed == {a.split("=", 1)[0] for a in overrides(name)}
    assert len(changed) == (0 if name == "reference" else 1)


def test_trained_tasks_and_the_command_line(capsys):
    assert trained_tasks("jpeg-only") == ["jpeg"] and trained_tasks("l1") is None
    assert main(["v-prediction"]) == 0 and capsys.readouterr().out == "prediction=v\n"
    assert main(["reference"]) == 0 and capsys.readouterr().out == ""
    assert main(["nope"]) == 2 and "unknown study run: nope" in capsys.readouterr().err


def test_panorama_check_catches_copied_strips_and_colour_drift():
    """A panorama whose strips are mirrors of the ones they continue scores 1; fresh texture scores low;
    a right end shifted in colour shows its CIELAB drift, the unchanged left end none."""
    import numpy as np
    from PIL import Image

    from studies.panorama_check import check

    rng = np.random.default_rng(0)
    original = rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)

    def mirrored(strips: int) -> np.ndarray:
        out = original
        for _ in range(strips):  # each new 16-px strip is the last one reflected
            out = np.concatenate([out[:, :16][:, ::-1], out, out[:, -16:][:, ::-1]], axis=1)
        return out

    pano = mirrored(2)
    got = check(Image.fromarray(pano), Image.fromarray(original))
    assert got["strips"] == 4 and got["copy_score_mean"] > 0.99
    assert got["drift_delta_e"]["left"] < 5  # reflections of the original's own pixels: its colours
    fresh = np.concatenate([rng.integers(60, 200, (32, 32, 3), dtype=np.uint8), original,
                            rng.integers(60, 200, (32, 32, 3), dtype=np.uint8)], axis=1)
    assert check(Image.fromarray(fresh), Image.fromarray(original))["copy_score_max"] < 0.3
    tinted = fresh.copy()
    tinted[:, -32:, 0] = np.clip(tinted[:, -32:, 0].astype(int) + 60, 0, 255)
    drift = check(Image.fromarray(tinted), Image.fromarray(original))["drift_delta_e"]
    assert drift["right"] > 10 and drift["right"] > 3 * drift["left"]


def test_continuation_probe_cuts_the_evaluation_square_and_real_continuations(tmp_path):
    """The probe's reference is the evaluation's centre square; shiftS holds the photo's own pixels S px
    further right; the mirror reflects the known half; narrow photos are left out."""
    import numpy as np
    from PIL import Image

    from palette_cli.data import center_crop
    from studies.continuation_probe import main as probe, strip_of

    x = np.linspace(0, 255, 600)
    wide = np.stack([np.tile(x, (200, 1)), np.tile(x[::-1], (200, 1)), np.full((200, 600), 90.0)], -1)
    Image.fromarray(wide.astype(np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "tall.png")
    assert strip_of(Image.open(tmp_path / "tall.png"), 64, 8) is None
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'wide.png'}\n{tmp_path / 'tall.png'}\n")
    probe([str(tmp_path / "list.txt"), "--out", str(tmp_path / "p"), "--size", "64", "--shifts", "4,8"])
    ref = np.asarray(Image.open(tmp_path / "p/references/wide.png"), dtype=float)
    assert not (tmp_path / "p/references/tall.png").exists()
    assert np.abs(ref - np.asarray(center_crop(Image.open(tmp_path / "wide.png"), 64), dtype=float)).mean() < 2
    mirror = np.asarray(Image.open(tmp_path / "p/mirror/wide.png"), dtype=float)
    assert np.array_equal(mirror[:, 32:], ref[:, :32][:, ::-1])
    shifted = np.asarray(Image.open(tmp_path / "p/shift8/wide.png"), dtype=float)
    assert np.array_equal(shifted[:, :32], ref[:, :32])
    # a horizontal ramp: 8 px further right is 8 resized px of red further up the ramp
    step = (ref[:, 48, 0].mean() - ref[:, 16, 0].mean()) / 32
    assert shifted[:, 40:56, 0].mean() - ref[:, 40:56, 0].mean() == pytest.approx(8 * step, rel=0.1)


def test_layout_oracle_keeps_the_known_half_and_only_the_layout_of_the_rest():
    import torch

    from studies.layout_oracle import layout

    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:] = 1
    out = layout(image, mask, 4)
    assert torch.equal(out[..., :16], image[..., :16])
    # 4 px across: the fine noise is gone, the mean stays
    assert out[..., 20:28].std() < 0.3 * image[..., 16:].std()
    assert out[..., 16:].mean() == pytest.approx(image[..., 16:].mean().item(), abs=0.05)
    assert torch.allclose(layout(image, mask, 32), image, atol=1e-6)


def test_stats_match_gives_the_generated_part_the_known_parts_contrast_behind_a_ramp():
    """Study 20's post-process: a flat-ish generated half is stretched to the known half's lightness spread
    (capped by the gain), the known half is untouched, and the stretch ramps in from the seam."""
    import torch

    from palette_cli.metrics.pixel import rgb_to_lab
    from studies.stats_match import match, seam_ramp

    torch.manual_seed(0)
    mask = torch.zeros(64, 64)
    mask[:, 32:] = 1
    ramp = seam_ramp(mask, 8)
    assert ramp[:, :32].abs().max() == 0 and torch.allclose(ramp[:, 40:], torch.ones(64, 24))
    assert 0 < ramp[0, 33] < ramp[0, 36] < 1
    grey = 0.5 + 0.2 * torch.rand(1, 64, 64)
    grey[:, :, 32:] = 0.5 + 0.1 * (grey[:, :, 32:] - 0.6)  # the generated half: same mean, a twentieth of the spread
    rgb = grey.expand(3, 64, 64).clone()
    out, (g_l, g_ab) = match(rgb, mask, max_gain=100.0, strength=1.0, channels="L", ramp=0)
    lab_in, lab_out = rgb_to_lab(rgb[None])[0, 0], rgb_to_lab(out[None])[0, 0]
    assert torch.allclose(out[:, :, :32], rgb[:, :, :32], atol=1e-4)
    assert g_l > 5 and g_ab == 1.0
    assert abs(float(lab_out[:, 32:].std() / lab_in[:, :32].std()) - 1) < 0.05
    _, (capped, _) = match(rgb, mask, max_gain=2.0, strength=1.0, channels="L", ramp=0)
    assert capped == 2.0


def test_retrieval_layout_cuts_mirrored_views_and_meets_the_seam():
    import numpy as np
    import torch
    from PIL import Image

    from studies.retrieval_layout import VIEW, photo_views, retrieved_guess, seam_matched

    # a 96×64 photo at short side 64: (96 − 64) / 8 + 1 = 5 positions, each with its mirror image
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8)[None, :, None], (64, 1, 3))
    views = photo_views(Image.fromarray(ramp), (64,), 8)
    assert len(views) == 10 and all(v.shape == (VIEW, VIEW, 3) for v in views)
    assert np.array_equal(views[1], views[0][:, ::-1]) and views[2][0, 0, 0] > views[0][0, 0, 0]

    # the match's right half moves by the known halves' difference: at the seam by the rows' own difference
    query = torch.zeros(3, VIEW, VIEW)
    query[0, : VIEW // 2] = 60.0          # top rows lighter on the query's side
    query[0, VIEW // 2:] = 20.0
    match = torch.full((3, VIEW, VIEW), 40.0)
    right = seam_matched(query, match, decay=12.0)
    assert right.shape == (3, VIEW, VIEW // 2)
    assert torch.allclose(right[0, 0, 0], torch.tensor(60.0), atol=1.0)        # top row at the seam: 40 + 20
    assert torch.allclose(right[0, -1, 0], torch.tensor(20.0), atol=1.0)       # bottom row at the seam: 40 − 20
    assert abs(float(right[0, 0, -1]) - 40.0) < 2.0                            # far from the seam: the overall shift (0)
    assert torch.allclose(right[1:], torch.zeros_like(right[1:]), atol=1e-4)   # a*, b*: 40 shifted to the query's 0

    # retrieval: the known half stays, the unknown half comes from the closest view (a red one, not a blue one)
    red = np.zeros((VIEW, VIEW, 3), np.uint8); red[..., 0] = 200
    blue = np.zeros((VIEW, VIEW, 3), np.uint8); blue[..., 2] = 200
    db_views = np.stack([blue, red])
    from studies.retrieval_layout import known_features, to_lab
    feats = known_features(to_lab(torch.from_numpy(db_views)))
    known = torch.full((1, 3, 256, 256), -1.0); known[:, 0] = 200 / 127.5 - 1
    mask = torch.zeros(1, 1, 256, 256); mask[..., 128:] = 1
    known = known * (1 - mask)
    guess = retrieved_guess(known, mask, feats, db_views, rank=0, decay=12.0)
    assert torch.equal(guess[..., :128], known[..., :128])
    assert float(guess[0, 0, :, 200:].mean()) > 0.3 and float(guess[0, 2, :, 200:].mean()) < -0.8
