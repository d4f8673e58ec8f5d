"""Scoring outputs against their original photos with the paper's metrics (``palette eval --outputs``).

**Pairing.** A reference ``REFS/sub/photo.jpg`` (relative path ``sub/photo.jpg``) pairs with the
outputs in ``OUTPUTS/sub/`` named ``photo[SUFFIX][_sK].EXT``: ``SUFFIX`` is what the restoring
tool appended (``_colorized``, ``_inpainted`` …; any ``_word`` is accepted unless ``suffix`` is
given) and ``_s0``, ``_s1`` … number several samples of one input (the names ``palette`` commands
write with ``--num-samples``); an output without ``_sK`` is the single sample. Extensions may
differ. Outputs matching no reference are counted and ignored.

**What is scored.** Quality metrics (FID, KID, Inception-Score-style score, classification
accuracy, perceptual distance, PSNR, SSIM, MS-SSIM) compare the first sample of every input with
its reference, as the paper scores one output per input. Diversity metrics use all samples of
inputs that have at least two. A reference whose size differs from its outputs is centre-cropped
to their aspect ratio and resized to their size (bicubic) first, and that is noted.

**Feature networks.** ``feature_net="effnet-lite0"`` (default) uses the offline EfficientNet-Lite0;
its metrics are named ``*_effnet_lite0`` and marked not comparable with published numbers.
The standard networks (``StandardWeights``) add ``fid_inception_v3``, ``kid_inception_v3``,
``is_inception_v3``, ``ca_resnet50``, ``pd_inception_v1`` and ``diversity_lpips_alex``/``_vgg``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .defaults import EVAL_MASK_MODES as _EVAL_MASK_MODES
from .defaults import TASK_NAMES
from .imageio import expand_inputs, load_image, pil_to_tensor, write_text_atomic
from .metrics.classification import softmax, top1_accuracy, top1_agreement
from .metrics.distribution import frechet_distance_from_features, inception_score, kernel_distance
from .metrics.diversity import consecutive_distances, ms_ssim_to_first
from .metrics.features import extract_features, load_feature_net, load_lpips
from .metrics.networks.base import FeatureNet
from .metrics.networks.effnet_lite import EfficientNetLite0
from .metrics.networks.lpips import LPIPS
from .metrics.perceptual import lpips_from_features, perceptual_distance
from .metrics.pixel import colourfulness, mean_colour_error, ms_ssim, ms_ssim_scales, psnr, ssim

FEATURE_NET_CHOICES = ("effnet-lite0", "standard", "all")
METRICS_JSON = "metrics.json"
METRICS_MD = "metrics.md"
NOT_COMPARABLE = "not comparable to published FID/IS/CA numbers (EfficientNet-Lite0 features)"
_SAMPLE_RE = re.compile(r"^(?P<base>.+)_s(?P<k>\d+)$")

Log = Callable[[str], None]
PathSpec = str | os.PathLike[str]
References = PathSpec | Sequence[PathSpec]


class EvaluationError(ValueError):
    """Outputs and references that cannot be scored; the message is one line."""


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


@dataclass
class Pair:
    """One reference photo and its output samples, in sample order."""

    reference: Path
    rel: Path
    samples: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- pairing


def _as_specs(paths: References) -> list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return [str(paths)]
    return [str(p) for p in paths]


def _match_reference(stem: str, stems: set[str], suffix: str | None) -> str | None:
    """The reference stem an output stem (without ``_sK``) belongs to, or None."""
    if suffix is not None:
        if not stem.endswith(suffix):
            return None
        base = stem[: len(stem) - len(suffix)] if suffix else stem
        return base if base in stems else None
    if stem in stems:
        return stem
    prefixes = [s for s in stems if stem.startswith(s + "_")]
    return max(prefixes, key=len) if prefixes else None


def pair_outputs(outputs: PathSpec, references: References, *, suffix: str | None = None,
                 samples_per_image: int | None = None) -> tuple[list[Pair], int]:
    """Pair output files with reference photos (see the module docstring); returns (pairs, unmatched outputs)."""
    refs = expand_inputs(_as_specs(references), recursive=True)
    by_parent: dict[Path, dict[str, tuple[Path, Path]]] = {}
    for file, rel in refs:
        stems = by_parent.setdefault(rel.parent, {})
        if rel.stem in stems:
            raise EvaluationError(
                f"two references share the name {rel.parent / rel.stem}: {stems[rel.stem][0]} and {file}")
        stems[rel.stem] = (file, rel)
    found: dict[Path, list[tuple[int, Path]]] = {}
    unmatched = 0
    for file, rel in expand_inputs([str(outputs)], recursive=True):
        stems = set(by_parent.get(rel.parent, {}))
        candidates: list[tuple[str, int]] = []
        if suffix is None and rel.stem in stems:
            candidates.append((rel.stem, -1))
        m = _SAMPLE_RE.match(rel.stem)
        if m:
            candidates.append((m.group("base"), int(m.group("k"))))
        candidates.append((rel.stem, -1))
        for base, k in candidates:
            ref_stem = _match_reference(base, stems, suffix)
            if ref_stem is not None:
                found.setdefault(by_parent[rel.parent][ref_stem][1], []).append((k, file))
                break
        else:
            unmatched += 1
    ref_files = {rel: file for file, rel in refs}
    pairs = []
    for rel in sorted(found):
        samples = sorted(found[rel], key=lambda item: item[0])
        ks = [k for k, _ in samples]
        if len(set(ks)) != len(ks):
            names = ", ".join(str(f) for _, f in samples)
            raise EvaluationError(f"{rel}: several outputs claim the same sample number ({names})")
        files = [f for _, f in samples]
        if samples_per_image is not None:
            if len(files) < samples_per_image:
                raise EvaluationError(f"{rel}: {len(files)} output samples found, {samples_per_image} asked for")
            files = files[:samples_per_image]
        pairs.append(Pair(ref_files[rel], rel, files))
    if not pairs:
        raise EvaluationError(f"no output in {outputs} matches a reference (expected names like NAME.png, "
                              "NAME_colorized.png or NAME_s0.png for a reference NAME.*)")
    return pairs, unmatched


def read_labels(labels: Mapping[str, int] | PathSpec, pairs: list[Pair]) -> np.ndarray:
    """Class indices for the pairs from a mapping (or JSON file) keyed by relative path or stem."""
    if not isinstance(labels, Mapping):
        try:
            labels = json.loads(Path(labels).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise EvaluationError(f"{labels}: unreadable labels file ({e})") from None
        if not isinstance(labels, dict):
            raise EvaluationError("labels file must hold a JSON object {relative path or name: class index}")
    values, missing = [], []
    for pair in pairs:
        for key in (pair.rel.as_posix(), pair.rel.stem):
            if key in labels:
                values.append(int(labels[key]))
                break
        else:
            missing.append(pair.rel.as_posix())
    if missing:
        raise EvaluationError(f"{len(missing)} references have no label (e.g. {', '.join(missing[:3])})")
    return np.array(values)


# --------------------------------------------------------------------------- images


def fit_reference(reference: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop ``reference`` to the aspect ratio of ``size`` (width, height) and resize it to ``size``."""
    if reference.size == size:
        return reference
    rw, rh = reference.size
    w, h = size
    if rw * h > rh * w:  # reference wider than the output
        cw = rh * w / h
        box = ((rw - cw) / 2, 0.0, (rw + cw) / 2, float(rh))
    else:
        ch = rw * h / w
        box = (0.0, (rh - ch) / 2, float(rw), (rh + ch) / 2)
    return reference.resize(size, Image.Resampling.BICUBIC, box=box)


def _load_pair(pair: Pair) -> tuple[Tensor, Tensor, bool]:
    """(reference (3, H, W), samples (K, 3, H, W), whether the reference was resized), all in [-1, 1]."""
    images = [load_image(f) for f in pair.samples]
    size = images[0].size
    for f, img in zip(pair.samples, images):
        if img.size != size:
            raise EvaluationError(
                f"{f}: {img.size[0]}x{img.size[1]}, but sample 0 of {pair.rel} is {size[0]}x{size[1]}")
    reference = load_image(pair.reference)
    resized = reference.size != size
    ref = pil_to_tensor(fit_reference(reference, size))
    return ref, torch.stack([pil_to_tensor(img) for img in images]), resized


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
    effnet: EfficientNetLite0 | None = None
    runs: dict[str, _NetRun] = field(default_factory=dict)
    lpips: LPIPS | None = None


def _load_networks(feature_net: str, standard: StandardWeights, device: str) -> _Networks:
    nets = _Networks()
    if feature_net in ("effnet-lite0", "all"):
        nets.effnet = cast(EfficientNetLite0, load_feature_net("effnet-lite0", device=device))
        nets.runs["effnet_lite0"] = _NetRun(nets.effnet)
    if feature_net in ("standard", "all"):
        for kind, weights in (("inception-v3", standard.inception_v3), ("inception-v1", standard.inception_v1),
                              ("resnet50", standard.resnet50)):
            if weights:
                net = load_feature_net(kind, weights, device=device)
                nets.runs[net.name] = _NetRun(net)
        if standard.lpips:
            nets.lpips = load_lpips(standard.lpips, standard.lpips_backbone, standard.lpips_net, device=device)
    return nets


def _effnet_consecutive(net: EfficientNetLite0, groups: list[Tensor], device: str) -> list[float]:
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
        "colourfulness_references": []})
    diversity: dict[str, list[float]] = field(default_factory=dict)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    scales: set[int] = field(default_factory=set)
    sample_counts: list[int] = field(default_factory=list)
    resized: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read_images": 0.0, "pixel_metrics": 0.0,
                                                               "diversity": 0.0})


def _collect(pairs: list[Pair], nets: _Networks, batch_size: int, device: str, say: Log) -> _Collected:
    """Read the images batch by batch; compute paired values and diversity, feed the feature networks."""
    got = _Collected()
    for start in range(0, len(pairs), batch_size):
        t0 = time.perf_counter()
        loaded = [_load_pair(p) for p in pairs[start:start + batch_size]]
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
        got.seconds["pixel_metrics"] += time.perf_counter() - t0

        for run in nets.runs.values():
            run.add(refs, firsts, batch_size)

        t0 = time.perf_counter()
        several = [samples for _, samples, _ in loaded if len(samples) >= 2]
        if several:
            div = got.diversity
            for samples in several:
                div.setdefault("diversity_ms_ssim", []).extend(ms_ssim_to_first((samples + 1) / 2).tolist())
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
    tag = "" if net.comparable else f"; {NOT_COMPARABLE}"
    put = scores.put
    if name in ("inception_v3", "effnet_lite0"):
        if n >= 2:
            put(f"fid_{name}", frechet_distance_from_features(out_pooled, ref_pooled),
                f"Fréchet distance of {net.title} pooled features, outputs vs originals (lower is better){tag}",
                net.comparable)
            kid, kid_std = kernel_distance(out_pooled, ref_pooled, subsets=kid_subsets, subset_size=kid_subset_size)
            put(f"kid_{name}", kid, f"kernel distance (unbiased MMD², cubic polynomial kernel) of {net.title} "
                f"features, outputs vs originals (lower is better){tag}", net.comparable, kid_std)
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
    if name in ("resnet50", "effnet_lite0"):
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
    if name in ("inception_v1", "effnet_lite0"):
        put(f"pd_{name}", perceptual_distance(out_pooled, ref_pooled),
            f"perceptual distance: mean Euclidean distance between {net.title} pooled features of output and "
            f"original (lower is better){tag}", net.comparable)


def _diversity_scores(scores: _Scores, got: _Collected, nets: _Networks) -> None:
    div = got.diversity
    if not div:
        scores.notes.append("diversity metrics need several samples per input (NAME_s0, NAME_s1, …); none found")
        return
    scores.put("diversity_ms_ssim", float(np.mean(div["diversity_ms_ssim"])),
               "MS-SSIM of the first sample against each other sample (lower = more diverse)", got.scales == {5})
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
                  log: Log | None = print) -> dict[str, Any]:
    """Score the outputs in ``outputs`` against ``references``; write ``metrics.json`` and ``metrics.md``.

    Returns the dictionary written to ``metrics.json``: ``metrics`` (name → value), ``std``
    (spread of KID and IS over subsets/splits), ``comparable_to_published``, ``descriptions``,
    ``images``, ``feature_nets``, ``notes``, ``timing_s`` and ``settings``. The files go to
    ``out_dir`` (default: ``outputs``). ``labels`` (a mapping or JSON file: reference relative path
    or name → ImageNet class index) turns classification agreement into accuracy. KID uses
    ``kid_subsets`` subsets of ``kid_subset_size`` (capped at the number of inputs); the Inception
    Score uses up to ``is_splits`` splits of at least 10 images each.
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
    got = _collect(pairs, nets, batch_size, device, say)

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
    if nets.effnet is not None:
        scores.notes.append("metrics named *_effnet_lite0 use EfficientNet-Lite0 (ImageNet) features: real "
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
        "settings": {"outputs": str(outputs), "references": _as_specs(references), "feature_net": feature_net,
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


# --------------------------------------------------------------------------- generation (``palette eval``)
#
# A run folder holds ``references/NAME.png`` (the ground truth at the evaluation size), ``inputs/NAME.png``
# (what the model is given: gray, noise in the hole, JPEG-decoded …), ``masks/NAME.png`` for inpainting and
# uncropping (white = generated), ``outputs/NAME_sK.png``, ``generation.json`` and the scores.

EVAL_TASKS = TASK_NAMES
EVAL_MASK_MODES = _EVAL_MASK_MODES
REFERENCES_DIR, INPUTS_DIR, MASKS_DIR, OUTPUTS_DIR = "references", "inputs", "masks", "outputs"
GENERATION_JSON = "generation.json"
# Settings that may change between runs into one folder without invalidating its outputs (the model
# is identified by its hash, not by how it was named).
_RESUMABLE = ("n_images", "batch_size", "device", "threads", "model")

StepProgress = Callable[[int, int], None]
ImageProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class EvalTask:
    """A task and the paper's evaluation setting of it: mask mode, JPEG quality or uncrop direction."""

    name: str
    mask_mode: str = "free_form_20_30"
    jpeg_quality: int = 10
    direction: str = "right"

    def __post_init__(self) -> None:
        from .tasks.masks import UNCROP_DIRECTIONS

        if self.name not in EVAL_TASKS:
            raise EvaluationError(f"unknown task {self.name!r} (use one of: {', '.join(EVAL_TASKS)})")
        if self.mask_mode not in EVAL_MASK_MODES:
            raise EvaluationError(f"unknown mask mode {self.mask_mode!r} (use one of: {', '.join(EVAL_MASK_MODES)})")
        if not 1 <= self.jpeg_quality <= 100:
            raise EvaluationError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")
        if self.direction not in UNCROP_DIRECTIONS:
            raise EvaluationError(f"unknown uncrop direction {self.direction!r} "
                                  f"(use one of: {', '.join(UNCROP_DIRECTIONS)})")

    def describe(self) -> dict[str, Any]:
        """The task with only the setting that applies to it."""
        extra = {"inpaint": {"mask_mode": self.mask_mode}, "uncrop": {"direction": self.direction},
                 "jpeg": {"jpeg_quality": self.jpeg_quality}}.get(self.name, {})
        return {"task": self.name, **extra}


@dataclass
class EvalInput:
    """One evaluation example: the ground truth, the degraded input and (inpaint/uncrop) the mask."""

    name: str
    source: Path
    reference: Image.Image
    input: Image.Image
    mask: Tensor | None = None  # (1, H, W), 1 = generated


def select_references(references: References, n_images: int | None = None) -> list[Path]:
    """The first ``n_images`` photos of folders (sorted), images or list files, in the order given."""
    from .data import list_images

    try:
        paths = [p for spec in _as_specs(references) for p in list_images(spec)]
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluationError(f"cannot read the references: {e}") from None
    if not paths:
        raise EvaluationError(f"no reference photos in {', '.join(_as_specs(references))}")
    if n_images is not None:
        if n_images < 1:
            raise EvaluationError(f"the number of images must be at least 1, got {n_images}")
        paths = paths[:n_images]
    return paths


def eval_names(paths: Sequence[Path]) -> list[str]:
    """A unique file stem per photo: its own, or ``STEM-INDEX`` where two photos share one."""
    names, seen = [], set()
    for i, path in enumerate(paths):
        name = path.stem if path.stem not in seen else f"{path.stem}-{i}"
        seen.add(name)
        names.append(name)
    return names


def degrade(reference: Image.Image, task: EvalTask, generator: torch.Generator) -> tuple[Image.Image, Tensor | None]:
    """The paper's evaluation input for a ground-truth square: (input image, mask or None), as the task's
    module defines it (``evaluation_input``)."""
    from .imageio import tensor_to_pil
    from .tasks import TASKS

    setting = {k: v for k, v in task.describe().items() if k != "task"}
    degraded, mask = TASKS[task.name].evaluation_input(pil_to_tensor(reference), generator, **setting)
    return tensor_to_pil(degraded), mask


def make_eval_input(source: Path, name: str, task: EvalTask, size: int, seed: int, index: int) -> EvalInput:
    """The evaluation example of photo ``index``: largest centre square resized to ``size``, degraded with a
    generator seeded from (seed, index) only: evaluating more or fewer photos leaves it unchanged."""
    from .data import center_crop, item_seed
    from .imageio import ImageInputError

    try:
        reference = center_crop(load_image(source), size)
    except ImageInputError as e:
        raise EvaluationError(str(e)) from None
    generator = torch.Generator().manual_seed(item_seed(seed, index, 0))
    degraded, mask = degrade(reference, task, generator)
    return EvalInput(name, source, reference, degraded, mask)


def _mask_image(mask: Tensor) -> Image.Image:
    return Image.fromarray((mask[0].numpy() > 0).astype(np.uint8) * 255, mode="L")


def make_run_folders(run_dir: Path, task: EvalTask) -> None:
    """``references/``, ``inputs/`` and (inpaint, uncrop) ``masks/`` of a run folder."""
    for sub in (REFERENCES_DIR, INPUTS_DIR) + ((MASKS_DIR,) if task.name in ("inpaint", "uncrop") else ()):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)


def save_eval_input(run_dir: Path, example: EvalInput) -> None:
    """Write an example's reference, input and mask as ``references/NAME.png`` … of a run folder."""
    from .imageio import save_image_atomic

    for folder, image in ((REFERENCES_DIR, example.reference), (INPUTS_DIR, example.input)):
        save_image_atomic(image, run_dir / folder / f"{example.name}.png", overwrite=True)
    if example.mask is not None:
        save_image_atomic(_mask_image(example.mask), run_dir / MASKS_DIR / f"{example.name}.png", overwrite=True)


def _run(pipe: Any, example: EvalInput, task: EvalTask, settings: Any, generator: torch.Generator,
         samples: int, on_step: StepProgress | None) -> list[Image.Image]:
    """The task's own inference recipe on one evaluation input (it sees only the degraded input)."""
    from .tasks import TASKS

    return TASKS[task.name].infer(pipe, example.input, example.mask, settings, generator, samples, on_step)


class _Threads:
    """CPU threads while working: a fixed count, or (None) the training loop's governor, which drops to
    fewer threads while other processes keep cores busy. Restores the previous count on exit."""

    def __init__(self, threads: int | None, device: torch.device | str):
        from .threads import ThreadGovernor

        self.before = torch.get_num_threads()
        self.active = torch.device(device).type == "cpu"
        self.governor = ThreadGovernor(self.before) if threads is None and self.active else None
        self.threads = threads

    def __enter__(self) -> "_Threads":
        if self.threads is not None and self.active:
            torch.set_num_threads(max(1, self.threads))
        self.tick()
        return self

    def tick(self) -> None:
        """Re-decide the thread count (call before each piece of work)."""
        if self.governor is not None:
            n = self.governor()
            if n != torch.get_num_threads():
                torch.set_num_threads(n)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            torch.set_num_threads(self.before)


def _load_pipeline(model: Any, size: int, device: str, precision: str, batch_size: int,
                   task: str | None = None) -> Any:
    from .checkpoint import CheckpointError
    from .hub import ModelNotFoundError, resolve_model
    from .pipeline import Pipeline

    if isinstance(model, Pipeline):
        if model.resolution != size:
            raise EvaluationError(f"the pipeline works at {model.resolution} px but the evaluation size is {size}")
        return model
    try:
        path, model_id = resolve_model(None if model is None else str(model), task)
        return Pipeline.from_file(path, device=device, precision=precision, model_id=model_id, resolution=size,
                                  batch_size=batch_size)
    except (ModelNotFoundError, CheckpointError, ValueError) as e:
        raise EvaluationError(str(e)) from None


def check_previous(run_dir: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mix outputs of other settings into a run folder (unless ``overwrite``)."""
    path = run_dir / GENERATION_JSON
    if overwrite or not path.is_file():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    changed = sorted(k for k in set(before) | set(settings)
                     if k not in _RESUMABLE and before.get(k) != settings.get(k))
    if changed:
        raise EvaluationError(f"{run_dir} holds outputs made with other settings ({', '.join(changed)} differ); "
                              "use another output folder or overwrite them")


def generate_outputs(model: Any, task: str | EvalTask, references: References, out_dir: PathSpec, *,
                     n_images: int | None = None, samples_per_image: int = 1, size: int = 128,
                     mask_mode: str = "free_form_20_30", jpeg_quality: int = 10, direction: str = "right",
                     settings: Any = None, seed: int = 0, device: str = "auto", precision: str = "auto",
                     batch_size: int = 4, threads: int | None = None, overwrite: bool = False,
                     on_step: StepProgress | None = None, on_image: ImageProgress | None = None,
                     method_dir: PathSpec | None = None, log: Log | None = print) -> dict[str, Any]:
    """Build the paper's evaluation inputs, run the pipeline on them and write every file of a run folder.

    ``model``: a model spec (shipped name, file, Hub repo) or a :class:`~palette_cli.pipeline.Pipeline`
    working at ``size``. Inputs depend on (seed, photo index) only; sample ``k`` of photo ``i`` uses a
    generator seeded from (seed, i) too, so outputs do not depend on which other photos are evaluated.
    Outputs that exist already are kept (a re-run finishes an interrupted one) unless ``overwrite``.
    ``method_dir`` (default ``out_dir``) takes ``outputs/`` and ``generation.json`` where several methods
    share the inputs of one run folder (:mod:`palette_cli.comparison`).
    Returns the generation record written to ``generation.json`` (settings, counts, timing).
    """
    from .data import item_seed
    from .imageio import save_image_atomic
    from .pipeline import SamplerSettings

    say = log or (lambda _msg: None)
    spec = task if isinstance(task, EvalTask) else EvalTask(task, mask_mode, jpeg_quality, direction)
    settings = settings or SamplerSettings()
    if size < 8 or samples_per_image < 1:
        raise EvaluationError(f"need size >= 8 and samples per image >= 1, got {size} and {samples_per_image}")
    run_dir = Path(out_dir)
    paths = select_references(references, n_images)
    names = eval_names(paths)
    pipe = _load_pipeline(model, size, device, precision, batch_size, spec.name)
    if size % pipe.divisor:
        raise EvaluationError(f"size {size} must be a multiple of {pipe.divisor} for this model")
    record_settings = {**spec.describe(), "model": pipe.model_id, "model_hash": pipe.model_hash, "size": size,
                       "samples_per_image": samples_per_image, "seed": seed, "precision": pipe.precision,
                       **pipe.describe_sampling(settings), "n_images": len(paths), "batch_size": pipe.batch_size,
                       "device": str(pipe.device), "threads": threads}
    own = Path(method_dir) if method_dir is not None else run_dir
    check_previous(own, record_settings, overwrite)
    make_run_folders(run_dir, spec)
    (own / OUTPUTS_DIR).mkdir(parents=True, exist_ok=True)
    write_text_atomic(own / GENERATION_JSON, json.dumps({"settings": record_settings}, indent=2) + "\n")

    meta = {**pipe.provenance(spec.name, settings, seed), **{k: str(v) for k, v in spec.describe().items()}}
    generated, skipped, gen_seconds, prep_seconds = 0, 0, 0.0, 0.0
    with _Threads(threads, pipe.device) as threads_ctl:
        for i, (path, name) in enumerate(zip(paths, names)):
            t0 = time.perf_counter()
            example = make_eval_input(path, name, spec, size, seed, i)
            save_eval_input(run_dir, example)
            prep_seconds += time.perf_counter() - t0
            outs = [own / OUTPUTS_DIR / f"{name}_s{k}.png" for k in range(samples_per_image)]
            if not overwrite and all(o.is_file() for o in outs):
                skipped += 1
            else:
                t0 = time.perf_counter()
                threads_ctl.tick()

                def step(done: int, total: int) -> None:
                    threads_ctl.tick()
                    if on_step is not None:
                        on_step(done, total)

                generator = torch.Generator().manual_seed(item_seed(seed, i, 1))
                results = _run(pipe, example, spec, settings, generator, samples_per_image, step)
                for out, result in zip(outs, results):
                    save_image_atomic(result, out, metadata={**meta, "source": path.name}, overwrite=True)
                gen_seconds += time.perf_counter() - t0
                generated += 1
            if on_image is not None:
                on_image(i + 1, len(paths), name)
    model_calls = pipe.model_calls(settings)
    record = {
        "settings": record_settings,
        "images": {"total": len(paths), "generated": generated, "kept_from_before": skipped,
                   "names": dict(zip(names, (str(p) for p in paths)))},
        "model_calls_per_sample": model_calls,
        "timing_s": {"inputs": round(prep_seconds, 3), "generation": round(gen_seconds, 3),
                     "generation_per_image": round(gen_seconds / generated, 3) if generated else None,
                     "generation_per_sample": (round(gen_seconds / (generated * samples_per_image), 3)
                                               if generated else None)},
    }
    write_text_atomic(own / GENERATION_JSON, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    if generated:
        say(f"generated {generated} image(s) x {samples_per_image} sample(s) in {gen_seconds:.1f} s "
            f"({gen_seconds / generated:.2f} s/image, {model_calls} model calls per sample)"
            + (f"; {skipped} kept from before" if skipped else ""))
    else:
        say(f"all {skipped} image(s) have outputs already; nothing generated")
    return record


def evaluate(model: Any, task: str | EvalTask, references: References, out_dir: PathSpec, *,
             outputs: PathSpec | None = None, n_images: int | None = None, samples_per_image: int = 1,
             feature_net: str = "effnet-lite0", standard: StandardWeights | None = None,
             labels: Mapping[str, int] | PathSpec | None = None, score_batch_size: int = 16,
             kid_subsets: int = 100, kid_subset_size: int = 1000, is_splits: int = 10, device: str = "auto",
             threads: int | None = None, log: Log | None = print, **generation: Any) -> dict[str, Any]:
    """``palette eval``: generate outputs (:func:`generate_outputs`) and score them (:func:`score_outputs`).

    With ``outputs`` nothing is generated: the images there (made by any tool) are scored against
    ``references`` and the report goes to ``out_dir``. Writes ``metrics.json`` and ``metrics.md`` into
    ``out_dir``; after generation they also carry the generation record (settings and timing).
    ``generation`` holds the other keyword arguments of :func:`generate_outputs`.
    """
    from .pipeline import resolve_device

    say = log or (lambda _msg: None)
    try:
        score_device = str(resolve_device(device))
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    score_kw: dict[str, Any] = dict(feature_net=feature_net, standard=standard, labels=labels,
                                    batch_size=score_batch_size, kid_subsets=kid_subsets,
                                    kid_subset_size=kid_subset_size, is_splits=is_splits, out_dir=out_dir,
                                    log=log, device=score_device)
    if outputs is not None:
        refs = select_references(references, n_images)
        with _Threads(threads, score_device):
            return score_outputs(outputs, [str(p) for p in refs], **score_kw)

    record = generate_outputs(model, task, references, out_dir, n_images=n_images, samples_per_image=samples_per_image,
                              device=device, threads=threads, log=log, **generation)
    run_dir = Path(out_dir)
    own = Path(generation.get("method_dir") or run_dir)
    refs = [str(run_dir / REFERENCES_DIR / f"{name}.png") for name in record["images"]["names"]]
    t0 = time.perf_counter()
    with _Threads(threads, score_device):
        result = score_outputs(own / OUTPUTS_DIR, refs, samples_per_image=samples_per_image,
                               **{**score_kw, "out_dir": own})
    scoring = time.perf_counter() - t0
    result["generation"] = record
    write_text_atomic(own / METRICS_JSON, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(own / METRICS_MD, metrics_markdown(result) + generation_markdown(record))
    per_image = record["timing_s"]["generation_per_image"]
    say(f"timing: generation {record['timing_s']['generation']:.1f} s"
        + (f" ({per_image:.2f} s/image)" if per_image is not None else "") + f", scoring {scoring:.1f} s")
    return result


def generation_markdown(record: dict[str, Any]) -> str:
    s, timing = record["settings"], record["timing_s"]
    settings = ", ".join(f"{k} `{v}`" for k, v in s.items() if k not in ("model_hash", "threads"))
    per_image = timing["generation_per_image"]
    return ("\n## Generation\n\n"
            f"{settings}. {record['images']['generated']} image(s) generated"
            + (f" in {timing['generation']:.1f} s ({per_image:.2f} s/image, "
               f"{record['model_calls_per_sample']} model calls per sample)" if per_image is not None else "")
            + (f"; {record['images']['kept_from_before']} kept from an earlier run"
               if record["images"]["kept_from_before"] else "") + ".\n")
