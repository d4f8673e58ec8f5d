"""Splitting a batch between processes, and each file's own seed.

A batch may be run by several processes at once: torchrun's ranks, ``--shard K/N`` job-array tasks, or
both (shard K of N, each shard run by W ranks, is part ``K·W + rank`` of ``N·W``). Every process computes
the same split on its own, from the input list alone, so they need not talk to agree on it:

* :func:`balanced_parts` gives each file to a part so that the parts' pixel counts are close (largest
  files first, each to the part with the fewest pixels so far; ties go to the lower part), so one huge
  panorama does not leave the other processes idle. The pixel counts come from the files' headers.
* The split covers every input, finished or not, so a process that starts late (a job-array task queued
  for hours) takes the same files as if it had started first; each process then skips its outputs that
  exist, and a re-run finishes only what is missing.
* :func:`file_seed` derives a file's seed from the base seed and the file's path relative to its input
  root, never from its place in a batch, so a file's result does not depend on how the work was split.
"""

from __future__ import annotations

import hashlib
import heapq
from pathlib import PurePath

SEED_BITS = 63  # seeds a torch.Generator takes on every platform


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 0 ≤ K < N; ``ValueError`` with a one-line message otherwise."""
    k, slash, n = text.strip().partition("/")
    if not slash or not k.strip().isdigit() or not n.strip().isdigit():
        raise ValueError(f"--shard {text!r} is not K/N (shard K of N, counted from 0: 0/4 … 3/4)")
    k_, n_ = int(k), int(n)
    if n_ < 1:
        raise ValueError(f"--shard {text}: the number of shards must be at least 1")
    if k_ >= n_:
        raise ValueError(f"--shard {text}: shards are counted from 0, so K must be below N (0/{n_} … {n_ - 1}/{n_})")
    return k_, n_


def file_seed(seed: int, rel: str | PurePath) -> int:
    """The seed of one file: a hash of the base seed and the file's path relative to its input root."""
    key = rel.as_posix() if isinstance(rel, PurePath) else str(rel)
    digest = hashlib.blake2b(f"{seed}\0{key}".encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


def balanced_parts(weights: list[int], parts: int) -> list[int]:
    """The part (0 … ``parts``-1) of each item, balancing the parts' total weight.

    Largest first, each to the lightest part so far (ties: the item listed first, the lower part). The
    result depends only on the weights and their order.
    """
    if parts < 1:
        raise ValueError("parts must be at least 1")
    loads = [(0, p) for p in range(parts)]  # a heap of (load, part)
    owner = [0] * len(weights)
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, part = heapq.heappop(loads)
        owner[i] = part
        heapq.heappush(loads, (load + weights[i], part))
    return owner
