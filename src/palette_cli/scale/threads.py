"""CPU threads on a shared machine: use fewer while other processes keep cores busy.

Used by the training loop (``adaptive_threads``) and by evaluation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def others_running() -> float:
    """How many threads of other processes are runnable right now (Linux: /proc; else the load average)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        ours = 0
        for stat in Path("/proc/self/task").glob("*/stat"):
            try:
                ours += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
        return max(0.0, float(running - ours))
    except (OSError, IndexError, ValueError):
        return max(0.0, os.getloadavg()[0] - torch.get_num_threads())


class ThreadGovernor:
    """Threads for the next CPU step: all of them, unless other processes keep a core busy.

    A team of intra-op threads waits for its slowest member, so while another process holds a core,
    two threads run several times slower than one. The others' demand is sampled before every step
    and smoothed over a few steps. (Results then depend on the thread count: a run using this is
    not bit-reproducible.)
    """

    def __init__(self, max_threads: int, smoothing: float = 0.3):
        self.max_threads, self.smoothing, self.demand = max_threads, smoothing, 0.0

    def __call__(self) -> int:
        self.demand += self.smoothing * (others_running() - self.demand)
        cores = os.cpu_count() or self.max_threads
        return max(1, min(self.max_threads, cores - math.ceil(self.demand - 0.25)))
