"""Which output belongs to which reference photo, and reading the pair (``palette eval --outputs``).

**Pairing.** A reference ``REFS/sub/photo.jpg`` (relative path ``sub/photo.jpg``) pairs with the
outputs in ``OUTPUTS/sub/`` named ``photo[SUFFIX][_sK].EXT``: ``SUFFIX`` is what the restoring
tool appended (``_colorized``, ``_inpainted`` …; any ``_word`` is accepted unless ``suffix`` is
given) and ``_s0``, ``_s1`` … number several samples of one input (the names ``palette`` commands
write with ``--num-samples``); an output without ``_sK`` is the single sample. Extensions may
differ. Outputs matching no reference are counted and ignored.

A reference whose size differs from its outputs is centre-cropped to their aspect ratio and resized
to their size (bicubic) when the pair is read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..imageio import expand_inputs, load_image, pil_to_tensor

_SAMPLE_RE = re.compile(r"^(?P<base>.+)_s(?P<k>\d+)$")

PathSpec = str | os.PathLike[str]
References = PathSpec | Sequence[PathSpec]


class EvaluationError(ValueError):
    """Evaluation settings, references or outputs that cannot be used; the message is one line."""


@dataclass
class Pair:
    """One reference photo and its output samples, in sample order."""

    reference: Path
    rel: Path
    samples: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- pairing


def reference_specs(paths: References) -> list[str]:
    """One path or several, as a list of strings."""
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
    refs = expand_inputs(reference_specs(references), recursive=True)
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
        from ..imageio import check_regular_file

        check_regular_file(labels, EvaluationError, "labels file")
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


def load_pair(pair: Pair) -> tuple[Tensor, Tensor, bool]:
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
