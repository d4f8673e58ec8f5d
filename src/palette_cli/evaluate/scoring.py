"""Scoring outputs against their original photos with the paper's metrics (``palette eval --outputs``).

**What is scored.** Quality metrics (FID, KID, Inception-Score-style score, classification
accuracy, perceptual distance, PSNR, SSIM, MS-SSIM) compare the first sample of every input with
its reference, as the paper scores one output per input. Diversity metrics use all samples of
inputs that have at least two. The outputs are paired with their references by :mod:`.pairs`; a
reference whose size differs from its outputs is centre-cropped to their aspect ratio and resized to
their size (bicubic) first, and that is noted.

**Feature networks.** ``feature_net="effnet-lite0"`` (default) uses the offline EfficientNet-Lite0;
its metrics are named ``*_effnet_lite0`` and marked not comparable with published numbers.
The standard networks (``StandardWeights``) add ``fid_inception_v3``, ``kid_inception_v3``,
``is_inception_v3``, ``ca_resnet50``, ``pd_inception_v1`` and ``diversity_lpips_alex``/``_vgg``.

**Reports.** ``metrics.json`` (the values, their spread, comparability and descriptions, notes,
timing, settings) and ``metrics.md`` (the same as a table).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from ..imageio import write_text_atomic
from ..metrics.classification import softmax, top1_accuracy, top1_agreement
from ..metrics.distribution import frechet_distance_from_features, inception_score, kernel_distance
from ..metrics.diversity import consecutive_distances, ms_ssim_to_first
from ..metrics.fills import fill_spread, hole_copy_score, uncrop_copy_score
from ..metrics.features import extract_features, load_feature_net, load_lpips
from ..metrics.networks.base import FeatureNet
from ..metrics.networks.effnet_lite import EfficientNetLite
from ..metrics.networks.lpips import LPIPS
from ..metrics.perceptual import lpips_from_features, perceptual_distance
from ..metrics.pixel import ab_error, ab_spread, colourfulness, mean_colour_error, ms_ssim, ms_ssim_scales, psnr, ssim
from .pairs import EvaluationError, Pair, PathSpec, References, load_pair, pair_outputs, read_labels, reference_specs

FEATURE_NET_CHOICES = ("effnet-lite0", "effnet-lite2", "effnets", "standard", "all")
#: The offline EfficientNet-Lite judges of each choice: Lite0 is the default; Lite2, wider and deeper, is a
#: second judge that no shipped model contains ("effnets": both).
_EFFNET_KINDS = {"effnet-lite0": ("effnet-lite0",), "effnet-lite2": ("effnet-lite2",),
                 "effnets": ("effnet-lite0", "effnet-lite2"), "all": ("effnet-lite0",)}
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
NOT_COMPARABLE_FOR = "not comparable to published FID/IS/CA numbers ({} features)"
NOT_COMPARABLE = NOT_COMPARABLE_FOR.format("EfficientNet-Lite0")

Log = Callable[[str], None]


@dataclass
class StandardWeights:
    """Weights of the paper's networks (local files or ``hf:USER/REPO/FILE``); each one is optional."""

    inception_v3: str | None = None  # pytorch-fid pt_inception-2015-12-05 → FID, KID, IS
    inception_v1: str | None = None  # torchvision googlenet → perceptual distance
    resnet50: str | None = None  # torchvision resnet50 → classification accuracy
    lpips: str | None = None  # lpips v0.1 linear layers (or a full LPIPS state dict) → diversity
    lpips_backbone: str | None = None  # torchvision alexnet / vgg16, unless ``lpips`` holds it
    lpips_net: str = "alex"

    def any(self) -> bool:
        return any((self.inception_v3, self.inception_v1, self.resnet50, self.lpips))


# --------------------------------------------------------------------------- scoring


@dataclass
class _NetRun:
    """A feature network and the features it collects over the batches."""

    net: FeatureNet
    ref_pooled: list[Tensor] = field(default_factory=list)
    out_pooled: list[Tensor] = field(default_factory=list)
    ref_logits: list[Tensor] = field(default_factory=list)
    out_logits: list[Tensor] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0

    def add(self, refs: list[Tensor], outs: list[Tensor], batch_size: int) -> None:
        start = time.perf_counter()
        features = extract_features(self.net, refs + outs, batch_size)
        n = len(refs)
        self.ref_pooled.append(features.pooled[:n])
        self.out_pooled.append(features.pooled[n:])
        self.ref_logits.append(features.logits[:n])
        self.out_logits.append(features.logits[n:])
        self.seconds += time.perf_counter() - start
        self.images += 2 * n


@dataclass
class _Networks:
    effnet: EfficientNetLite | None = None
    runs: dict[str, _NetRun] = field(default_factory=dict)
    lpips: LPIPS | None = None


def _load_networks(feature_net: str, standard: StandardWeights, device: str) -> _Networks:
    nets = _Networks()
    for kind in _EFFNET_KINDS.get(feature_net, ()):
        net = cast(EfficientNetLite, load_feature_net(kind, device=device))
        nets.runs[net.name] = _NetRun(net)
        if nets.effnet is None:
            nets.effnet = net
    if feature_net in ("standard", "all"):
        for kind, weights in (("inception-v3", standard.inception_v3), ("inception-v1", standard.inception_v1),
                              ("resnet50", standard.resnet50)):
            if weights:
                net = load_feature_net(kind, weights, device=device)
                nets.runs[net.name] = _NetRun(net)
        if standard.lpips:
            nets.lpips = load_lpips(standard.lpips, standard.lpips_backbone, standard.lpips_net, device=device)
    return nets


def _effnet_consecutive(net: EfficientNetLite, groups: list[Tensor], device: str) -> list[float]:
    """Uncalibrated LPIPS-style distances between consecutive samples of each group, in one forward pass."""
    taps = net.taps(torch.cat([net.preprocess(g.to(device)) for g in groups]))
    first, second, start = [], [], 0
    for g in groups:
        first.append(torch.arange(start, start + len(g) - 1))
        second.append(torch.arange(start + 1, start + len(g)))
        start += len(g)
    a, b = torch.cat(first).to(taps[0].device), torch.cat(second).to(taps[0].device)
    return lpips_from_features([t[a] for t in taps], [t[b] for t in taps]).cpu().tolist()


@dataclass
class _Collected:
    """Per-image values gathered batch by batch."""

    pixel: dict[str, list[float]] = field(default_factory=lambda: {
        "psnr": [], "ssim": [], "ms_ssim": [], "colour_error": [], "colourfulness": [],
        "colourfulness_references": [], "ab_error": []})
    diversity: dict[str, list[float]] = field(default_factory=dict)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    scales: set[int] = field(default_factory=set)
    sample_counts: list[int] = field(default_factory=list)
    resized: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read_images": 0.0, "pixel_metrics": 0.0,
                                                               "diversity": 0.0})


def _mask_of(masks: Path | None, pair: Pair, size: tuple[int, int]) -> Tensor | None:
    """The generated region (1,H,W) of a pair from ``masks/NAME.png`` (NAME: the reference's), if there is
    one of the outputs' size."""
    if masks is None:
        return None
    path = masks / f"{pair.reference.stem}.png"
    if not path.is_file():
        return None
    from ..imageio import load_mask

    mask = load_mask(path, None)
    return mask.reshape(1, *mask.shape[-2:]) if (mask.shape[-1], mask.shape[-2]) == size else None


def _collect(pairs: list[Pair], nets: _Networks, batch_size: int, device: str, say: Log,
             masks: Path | None = None) -> _Collected:
    """Read the images batch by batch; compute paired values and diversity, feed the feature networks."""
    got = _Collected()
    for start in range(0, len(pairs), batch_size):
        t0 = time.perf_counter()
        loaded = [load_pair(p) for p in pairs[start:start + batch_size]]
        got.seconds["read_images"] += time.perf_counter() - t0
        refs = [ref for ref, _, _ in loaded]
        firsts = [samples[0] for _, samples, _ in loaded]
        got.resized += sum(r for _, _, r in loaded)
        got.sample_counts += [len(samples) for _, samples, _ in loaded]

        t0 = time.perf_counter()
        for ref, out in zip(refs, firsts):
            x, y = ((out + 1) / 2).unsqueeze(0), ((ref + 1) / 2).unsqueeze(0)
            got.sizes.add((x.shape[-1], x.shape[-2]))
            got.scales.add(ms_ssim_scales(x.shape[-2], x.shape[-1]))
            for name, metric in (("psnr", psnr), ("ssim", ssim), ("ms_ssim", ms_ssim),
                                 ("colour_error", mean_colour_error)):
                got.pixel[name].append(float(metric(x, y)))
            if x.shape[1] == 3:
                got.pixel["colourfulness"].append(float(colourfulness(x)))
                got.pixel["colourfulness_references"].append(float(colourfulness(y)))
                got.pixel["ab_error"].append(float(ab_error(x, y)))
        got.seconds["pixel_metrics"] += time.perf_counter() - t0

        for run in nets.runs.values():
            run.add(refs, firsts, batch_size)

        t0 = time.perf_counter()
        for pair, (_, samples, _) in zip(pairs[start:start + batch_size], loaded):
            mask = _mask_of(masks, pair, (samples.shape[-1], samples.shape[-2]))
            if mask is None:
                continue
            first = (samples[0] + 1) / 2
            copied = uncrop_copy_score(first, mask)
            if copied is not None:
                got.pixel.setdefault("copy_score", []).append(copied)
            hole_copied = hole_copy_score(first, mask)
            if hole_copied is not None:
                got.pixel.setdefault("hole_copy_score", []).append(hole_copied)
            if len(samples) >= 2 and bool((mask > 0.5).any()):
                got.diversity.setdefault("fill_spread", []).append(fill_spread((samples + 1) / 2, mask))
        several = [samples for _, samples, _ in loaded if len(samples) >= 2]
        if several:
            div = got.diversity
            for samples in several:
                div.setdefault("diversity_ms_ssim", []).extend(ms_ssim_to_first((samples + 1) / 2).tolist())
                if samples.shape[1] == 3:
                    div.setdefault("diversity_ab", []).append(ab_spread((samples + 1) / 2))
            with torch.no_grad():
                if nets.effnet is not None:
                    div.setdefault("diversity_lpips_effnet_lite0", []).extend(
                        _effnet_consecutive(nets.effnet, several, device))
                if nets.lpips is not None:
                    for samples in several:
                        d = consecutive_distances(samples.to(device), nets.lpips)
                        div.setdefault(f"diversity_{nets.lpips.name}", []).extend(d.flatten().cpu().tolist())
        got.seconds["diversity"] += time.perf_counter() - t0
        say(f"scored {min(start + batch_size, len(pairs))}/{len(pairs)} inputs")
    return got


def is_splits_for(n: int, splits: int, min_per_split: int = 10) -> int:
    """Fewer Inception-Score splits for small sets, so each holds at least ``min_per_split`` images."""
    return max(1, min(splits, n // min_per_split))


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass
class _Scores:
    """Metric values with their spread, comparability and description."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    std: dict[str, float | None] = field(default_factory=dict)
    comparable: dict[str, bool] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, value: float, description: str, comparable: bool, spread: float | None = None) -> None:
        self.metrics[name] = _finite(value)
        self.descriptions[name] = description
        self.comparable[name] = comparable
        if spread is not None:
            self.std[name] = _finite(spread)


def _pixel_scores(scores: _Scores, got: _Collected) -> None:
    five_scales = got.scales == {5}
    scores.put("psnr", float(np.mean(got.pixel["psnr"])),
               "PSNR in dB of the output against its original (higher = closer; capped at 100 dB)", True)
    scores.put("ssim", float(np.mean(got.pixel["ssim"])),
               "SSIM of the output against its original (Gaussian window 11, σ 1.5; 1 = identical)", True)
    scores.put("ms_ssim", float(np.mean(got.pixel["ms_ssim"])),
               "multi-scale SSIM of the output against its original (1 = identical)", five_scales)
    scores.put("colour_error", float(np.mean(got.pixel["colour_error"])),
               "mean colour error: largest difference of the per-channel means of output and original, in 8-bit "
               "levels (a colour cast; lower is better)", True)
    if got.pixel["colourfulness"]:
        out_c, ref_c = float(np.mean(got.pixel["colourfulness"])), float(np.mean(got.pixel["colourfulness_references"]))
        scores.put("colourfulness", out_c, "Hasler–Süsstrunk colourfulness of the outputs (8-bit scale)", True)
        scores.put("colourfulness_ratio", out_c / ref_c if ref_c > 0 else float("nan"),
                   "outputs' mean colourfulness over the originals' (1 = as colourful)", True)
        scores.put("ab_error", float(np.mean(got.pixel["ab_error"])),
                   "mean per-pixel CIELAB a*b* distance of output and original colours (lower is better; a grey "
                   "output scores the originals' mean chroma)", True)
    if got.pixel.get("copy_score"):
        scores.put("copy_score", float(np.mean(got.pixel["copy_score"])),
                   "largest correlation of the uncropped band's detail (grey minus a 9-px box blur) with the known "
                   "band's beside it, mirrored or not, shifted up to 8 px (1 = a mirror or copy; real photos ~0.1)",
                   True)
    if got.pixel.get("hole_copy_score"):
        scores.put("hole_copy_score", float(np.mean(got.pixel["hole_copy_score"])),
                   "largest correlation of a rectangular hole's detail along a side (grey minus a 9-px box blur) with "
                   "the known strip just outside it, mirrored or not, shifted up to 8 px (1 = a reflection; unrelated "
                   "texture ~0.1; the originals' own ~0.3)", True)
    if not five_scales:
        scores.notes.append(f"MS-SSIM used {sorted(got.scales)} scale(s) instead of 5: the images are smaller than "
                            "176 px, so the weights of the used scales were renormalised; not comparable to "
                            "5-scale values")


def _network_scores(scores: _Scores, name: str, run: _NetRun, labels: np.ndarray | None, kid_subsets: int,
                    kid_subset_size: int, is_splits: int) -> None:
    """FID, KID and IS (Inception-v3, EfficientNet), accuracy (ResNet-50, EfficientNet), perceptual distance
    (Inception-v1, EfficientNet) from the features one network collected."""
    net = run.net
    ref_pooled, out_pooled = torch.cat(run.ref_pooled), torch.cat(run.out_pooled)
    ref_logits, out_logits = torch.cat(run.ref_logits), torch.cat(run.out_logits)
    n = len(ref_pooled)
    tag = "" if net.comparable else f"; {NOT_COMPARABLE_FOR.format(net.title.split(' (')[0])}"
    put = scores.put
    if name == "inception_v3" or name.startswith("effnet_"):
        if n >= 2:
            put(f"fid_{name}", frechet_distance_from_features(out_pooled, ref_pooled),
                f"Fréchet distance of {net.title} pooled features, outputs vs originals (lower is better){tag}",
                net.comparable)
            kid, kid_std = kernel_distance(out_pooled, ref_pooled, subsets=kid_subsets, subset_size=kid_subset_size)
            whole = n <= kid_subset_size  # every subset would be all n inputs: one value, no spread to give
            put(f"kid_{name}", kid, f"kernel distance (unbiased MMD², cubic polynomial kernel) of {net.title} "
                f"features, outputs vs originals (lower is better){tag}", net.comparable, None if whole else kid_std)
            if whole:
                scores.notes.append(f"kid_{name}: computed once over all {n} inputs (no more than the subset size "
                                    f"{kid_subset_size}), so it has no ± spread")
            if kid < 0:
                scores.notes.append(f"kid_{name} below 0: KID is an unbiased estimate, which goes below 0 when the "
                                    "outputs and the originals cannot be told apart at this number of images; read "
                                    "a value below 0 as 0")
            if n < net.feature_dim:
                scores.notes.append(f"fid_{name}: {n} images for {net.feature_dim}-d features; the covariance is "
                                    "singular and FID is strongly biased upwards at this size (compare only runs "
                                    "with the same number of images)")
        else:
            scores.notes.append(f"fid_{name} and kid_{name} need at least 2 images; skipped")
        splits = is_splits_for(n, is_splits)
        score, spread = inception_score(softmax(out_logits), splits)
        put(f"is_{name}", score, f"Inception-Score-style exp(E KL(p(y|x) ‖ p(y))) of outputs on {net.title}, "
            f"{splits} split(s) of ~{n // splits} images; at most the images per split (higher is better){tag}",
            net.comparable, spread)
        score, spread = inception_score(softmax(ref_logits), splits)
        put(f"is_{name}_references", score, f"the same score for the original photos{tag}", net.comparable, spread)
    if name == "resnet50" or name.startswith("effnet_"):
        if labels is not None:
            put(f"ca_{name}", top1_accuracy(out_logits, labels),
                f"top-1 accuracy of {net.title} on outputs against the labels (higher is better){tag}",
                net.comparable)
            put(f"ca_{name}_references", top1_accuracy(ref_logits, labels),
                f"the same accuracy on the original photos{tag}", net.comparable)
        else:
            put(f"ca_{name}", top1_agreement(out_logits, ref_logits),
                f"top-1 agreement of {net.title}: fraction of outputs given the class predicted for their original "
                f"(higher is better; no labels given){tag}", net.comparable)
    if name == "inception_v1" or name.startswith("effnet_"):
        put(f"pd_{name}", perceptual_distance(out_pooled, ref_pooled),
            f"perceptual distance: mean Euclidean distance between {net.title} pooled features of output and "
            f"original (lower is better){tag}", net.comparable)


def _diversity_scores(scores: _Scores, got: _Collected, nets: _Networks) -> None:
    div = got.diversity
    if not div:
        scores.notes.append("diversity metrics need several samples per input (NAME_s0, NAME_s1, …); none found")
        return
    if div.get("fill_spread"):
        scores.put("fill_spread", float(np.mean(div["fill_spread"])),
                   "mean absolute difference between the samples of one input inside the generated region, in "
                   "levels of 255, over all pairs of samples (0 = identical samples)", True)
    scores.put("diversity_ms_ssim", float(np.mean(div["diversity_ms_ssim"])),
               "MS-SSIM of the first sample against each other sample (lower = more diverse)", got.scales == {5})
    if div.get("diversity_ab"):
        scores.put("diversity_ab", float(np.mean(div["diversity_ab"])),
                   "mean pairwise CIELAB a*b* distance between the samples of one input (higher = more "
                   "diverse colour)", True)
    if nets.effnet is not None:
        scores.put("diversity_lpips_effnet_lite0", float(np.mean(div["diversity_lpips_effnet_lite0"])),
                   "LPIPS-style distance between consecutive samples on EfficientNet-Lite0 layers with equal, "
                   "uncalibrated channel weights (higher = more diverse); not comparable to published LPIPS", False)
    if nets.lpips is not None:
        key = f"diversity_{nets.lpips.name}"
        scores.put(key, float(np.mean(div[key])),
                   f"LPIPS v0.1 ({nets.lpips.backbone_name}) between consecutive samples (higher = more diverse)",
                   True)


def score_outputs(outputs: PathSpec, references: References, *, feature_net: str = "effnet-lite0",
                  standard: StandardWeights | None = None, samples_per_image: int | None = None, batch_size: int = 16,
                  labels: Mapping[str, int] | PathSpec | None = None, suffix: str | None = None,
                  kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10,
                  out_dir: PathSpec | None = None, device: str = "cpu",
                  log: Log | None = print, masks: PathSpec | None = None) -> dict[str, Any]:
    """Score the outputs in ``outputs`` against ``references``; write ``metrics.json`` and ``metrics.md``.

    Returns the dictionary written to ``metrics.json``: ``metrics`` (name → value), ``std``
    (spread of KID and IS over subsets/splits), ``comparable_to_published``, ``descriptions``,
    ``images``, ``feature_nets``, ``notes``, ``timing_s`` and ``settings``. The files go to
    ``out_dir`` (default: ``outputs``). ``labels`` (a mapping or JSON file: reference relative path
    or name → ImageNet class index) turns classification agreement into accuracy. KID uses
    ``kid_subsets`` subsets of ``kid_subset_size`` (capped at the number of inputs); the Inception
    Score uses up to ``is_splits`` splits of at least 10 images each. ``masks``: a folder of the inputs'
    masks (``NAME.png``, 1 = generated, as ``palette eval`` writes them) adds the fill metrics of
    :mod:`palette_cli.metrics.fills` (copy score of uncropped bands; spread of several samples).
    """
    say = log or (lambda _msg: None)
    if feature_net not in FEATURE_NET_CHOICES:
        choices = ", ".join(FEATURE_NET_CHOICES)
        raise EvaluationError(f"unknown feature network {feature_net!r} (use one of: {choices})")
    standard = standard or StandardWeights()
    if feature_net in ("standard", "all") and not standard.any():
        raise EvaluationError(f"feature_net={feature_net!r} needs at least one standard weights file")
    t_start = time.perf_counter()
    pairs, unmatched = pair_outputs(outputs, references, suffix=suffix, samples_per_image=samples_per_image)
    label_array = read_labels(labels, pairs) if labels is not None else None
    nets = _load_networks(feature_net, standard, device)
    t_loaded = time.perf_counter()
    got = _collect(pairs, nets, batch_size, device, say, Path(masks) if masks is not None else None)

    t0 = time.perf_counter()
    scores = _Scores()
    _pixel_scores(scores, got)
    for name, run in nets.runs.items():
        _network_scores(scores, name, run, label_array, kid_subsets, kid_subset_size, is_splits)
    _diversity_scores(scores, got, nets)
    if got.resized:
        scores.notes.append(f"{got.resized} reference(s) differ in size from their outputs and were centre-cropped "
                            "and resized to the output size before scoring")
    if unmatched:
        scores.notes.append(f"{unmatched} output file(s) match no reference and were ignored")
    effnets = sorted(name for name in nets.runs if name.startswith("effnet_"))
    if effnets:
        named = " and ".join(f"*_{name}" for name in effnets)
        scores.notes.append(f"metrics named {named} use EfficientNet-Lite (ImageNet) features: real "
                            "measurements, but not comparable to published FID/IS/CA numbers, which use "
                            "Inception-v3 / ResNet-50")
    timing = {"load_networks": t_loaded - t_start, **got.seconds, "set_metrics": time.perf_counter() - t0}
    timing.update({f"features_{name}": run.seconds for name, run in nets.runs.items()})
    timing["total"] = time.perf_counter() - t_start

    feature_nets: dict[str, Any] = {
        name: {"title": run.net.title, "comparable_to_published": run.net.comparable,
               "images_per_s": round(run.images / run.seconds, 2) if run.seconds else None}
        for name, run in nets.runs.items()}
    if nets.lpips is not None:
        feature_nets[nets.lpips.name] = {"title": f"LPIPS v0.1 ({nets.lpips.backbone_name})",
                                         "comparable_to_published": True}
    result: dict[str, Any] = {
        "metrics": scores.metrics,
        "std": scores.std,
        "comparable_to_published": scores.comparable,
        "descriptions": scores.descriptions,
        "images": {"inputs": len(pairs), "samples_per_input": sorted(set(got.sample_counts)),
                   "sizes": sorted(f"{w}x{h}" for w, h in got.sizes), "unmatched_outputs": unmatched,
                   "labels": label_array is not None},
        "feature_nets": feature_nets,
        "notes": scores.notes,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
        "settings": {"outputs": str(outputs), "references": reference_specs(references), "feature_net": feature_net,
                     "samples_per_image": samples_per_image, "kid_subsets": kid_subsets,
                     "kid_subset_size": kid_subset_size, "is_splits": is_splits, "batch_size": batch_size},
    }
    for name, run in nets.runs.items():
        if run.seconds:
            say(f"features {name}: {run.images} images in {run.seconds:.2f} s ({run.images / run.seconds:.1f} img/s)")
    say(f"scored {len(pairs)} inputs in {timing['total']:.2f} s (networks {timing['load_networks']:.2f} s, images "
        f"{got.seconds['read_images']:.2f} s, pixel metrics {got.seconds['pixel_metrics']:.2f} s, diversity "
        f"{got.seconds['diversity']:.2f} s)")

    target = Path(out_dir) if out_dir is not None else Path(outputs)
    target.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target / METRICS_JSON, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(target / METRICS_MD, metrics_markdown(result))
    return result


# --------------------------------------------------------------------------- reports


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"


def metrics_markdown(result: dict[str, Any]) -> str:
    """The scores as a Markdown table, with the comparability of each number and the notes."""
    images = result["images"]
    lines = [
        "# Scores",
        "",
        f"{images['inputs']} inputs, samples per input {images['samples_per_input']}, sizes "
        f"{', '.join(images['sizes'])}; outputs `{result['settings']['outputs']}`. Quality metrics score the "
        "first sample of each input against its original; diversity metrics use all samples.",
        "",
        "| metric | value | ± std | comparable to published numbers | what it measures |",
        "|---|---|---|---|---|",
    ]
    for name, value in result["metrics"].items():
        spread = result["std"].get(name)
        comparable = "yes" if result["comparable_to_published"][name] else "**no**"
        lines.append(f"| `{name}` | {_fmt(value)} | {_fmt(spread) if spread is not None else ''} | {comparable} | "
                     f"{result['descriptions'][name]} |")
    if result["notes"]:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result["notes"]]
    timing = result["timing_s"]
    lines += ["", f"Scored in {timing['total']:.2f} s."]
    return "\n".join(lines) + "\n"
