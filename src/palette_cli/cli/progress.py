"""The progress display of a batch: one bar for the images, one for the work within the current image.

The image bar's time left comes from how long the images that were sampled took, so outputs skipped or
left to another run (done in no time) do not make it read 0:00:00. The inner bar counts the work of one
image in the units its recipe reports (sampling steps, windows, uncrop passes, restoration tiles), starts
afresh for each image and is hidden when an image fails, so no stale bar stays on screen.
"""

from __future__ import annotations

import time
from datetime import timedelta

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


def clock(seconds: float | None) -> str:
    """``0:01:05`` for 65 s; ``-:--:--`` when not known yet."""
    if seconds is None:
        return "-:--:--"
    return str(timedelta(seconds=max(0, round(seconds))))


class BatchProgress:
    """Two bars on ``console`` (nothing at all when ``quiet``): images of the batch, and the current image."""

    def __init__(self, console: Console, images: int, quiet: bool = False) -> None:
        columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
                   TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}")]
        self.progress = Progress(*columns, console=console, disable=quiet, transient=False)
        self.images = self.progress.add_task("images", total=images, count=f"0/{images}", eta=clock(None))
        self.inner = self.progress.add_task("", total=None, visible=False, count="", eta=clock(None))
        self.total = images
        self.done = 0
        self.sampled: list[float] = []  # seconds each sampled image took
        self._started: float | None = None

    def __enter__(self) -> "BatchProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def start(self, name: str) -> None:
        """A new image: the inner bar starts from nothing (its rate and time left forgotten)."""
        self._started = time.monotonic()
        self.progress.reset(self.inner, total=None, completed=0, visible=True,
                            description=f"  {escape(name)}", count="", eta=clock(None))

    def step(self, done: int, total: int) -> None:
        """``done`` of ``total`` units of the current image's work are finished."""
        total = max(total, done, 1)
        now = time.monotonic()
        elapsed = now - (self._started if self._started is not None else now)
        eta = elapsed * (total - done) / done if done else None
        self.progress.update(self.inner, completed=done, total=total, count=f"{done}/{total}", eta=clock(eta))

    def finish(self, sampled: bool) -> None:
        """The current image is done (``sampled``: its work counts towards the time left) or was passed over."""
        if sampled and self._started is not None:
            self.sampled.append(time.monotonic() - self._started)
        self._started = None
        self.progress.update(self.inner, visible=False)
        self.done += 1
        left = self.total - self.done
        eta = sum(self.sampled) / len(self.sampled) * left if self.sampled else (0.0 if not left else None)
        self.progress.update(self.images, completed=self.done, count=f"{self.done}/{self.total}", eta=clock(eta))

    def failed(self) -> None:
        """The current image failed: its bar goes, and its time does not count."""
        self.progress.reset(self.inner, total=None, completed=0, visible=False, count="", eta=clock(None))
        self._started = None
        self.finish(sampled=False)
