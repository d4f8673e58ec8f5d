"""The data stream: the training set as endless epochs in a seeded order, read from a position.

A position counts the samples all ranks have consumed together; it alone resumes the data (the order
of each epoch is derived from ``(seed, epoch)`` only).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

import torch
from torch import Tensor

from .config import ConfigError, TrainConfig


def rank_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from the run's seed and any integers (rank, step, micro-batch, epoch...)."""
    h = hashlib.sha256(repr((seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def build_dataset(config: TrainConfig, source: Any, mode: str, seed: int):
    """The config's task over the images of ``source`` (an :class:`~palette_cli.data.ImageDataset`)."""
    from ..data import ImageDataset, UnreadableDataError
    from ..tasks import parse_task_spec

    try:
        task = parse_task_spec(config.task, config.task_options)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"task: {e}") from None
    try:
        dataset = ImageDataset(source, task, config.data.size, mode=mode, seed=seed, **config.data.options)
        dataset.check_readable()
    except (FileNotFoundError, UnreadableDataError) as e:
        raise ConfigError(f"data: {e}") from None
    except TypeError as e:
        raise ConfigError(f"data.options: {e}") from None
    return dataset


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch, derived from (seed, epoch) only."""
    g = torch.Generator().manual_seed(rank_seed(seed, 0x0DA7A, epoch))
    return torch.randperm(n, generator=g).tolist()


class SampleStream(torch.utils.data.Dataset):
    """A flat view of endless epochs: global position p → (epoch p // n, its p % n-th sample).

    Every rank reads the positions of its share of each global batch, so all ranks together see each
    epoch's permutation exactly once, like a DistributedSampler, and a position alone resumes the data.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.n = dataset, seed, len(dataset)
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return 1 << 62

    def locate(self, position: int) -> tuple[int, int]:
        return divmod(position, self.n)

    def __getitem__(self, position: int) -> dict[str, Tensor]:
        epoch, j = self.locate(position)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(self.n, self.seed, epoch)}
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[self._orders[epoch][j]]


class _Positions(torch.utils.data.Sampler):
    """Stream positions of this rank's micro-batches: global batch m holds the ``world × batch``
    samples after ``start + m·world·batch``, rank r taking the r-th ``batch`` of them."""

    def __init__(self, start: int, batch: int, rank: int, world: int):
        self.start, self.batch, self.rank, self.world = start, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        m = 0
        while True:
            base = self.start + (m * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
            m += 1


def make_loader(stream: SampleStream, start: int, batch: int, rank: int, world: int,
                num_workers: int) -> Iterator[dict[str, Tensor]]:
    sampler = _Positions(start, batch, rank, world)
    if num_workers <= 0:
        def gen() -> Iterator[dict[str, Tensor]]:
            it = iter(sampler)
            while True:
                items = [stream[next(it)] for _ in range(batch)]
                yield {k: torch.stack([x[k] for x in items]) for k in items[0]}
        return gen()
    loader = torch.utils.data.DataLoader(stream, batch_size=batch, sampler=sampler, num_workers=num_workers,
                                         persistent_workers=True, prefetch_factor=2)
    return iter(loader)
