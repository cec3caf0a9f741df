"""How a batch shows it is moving: a rich bar on a terminal, plain periodic lines in a log, or nothing."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


@dataclass
class Tally:
    """Running counts of one batch; `finished` is every article dealt with, whatever the outcome."""

    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    chunks: int = 0
    tokens: int = 0
    cache_hits: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped


class ProgressSink(Protocol):
    def start(self, total: int) -> None: ...
    def update(self, tally: Tally) -> None: ...
    def finish(self, tally: Tally) -> None: ...


class NullProgress:
    """--quiet: show nothing."""

    def start(self, total: int) -> None:
        pass

    def update(self, tally: Tally) -> None:
        pass

    def finish(self, tally: Tally) -> None:
        pass


def _eta(tally: Tally, elapsed: float) -> str:
    # Skipped (already done) articles go by instantly; the pace is that of real work.
    worked = tally.done + tally.failed
    remaining = tally.total - tally.finished
    if remaining <= 0:
        return "0s"
    if worked == 0 or elapsed <= 0:
        return "?"
    seconds = int(elapsed / worked * remaining)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def describe(tally: Tally) -> str:
    return (
        f"{tally.finished}/{tally.total} articles ({tally.done} done, {tally.cached} cached, "
        f"{tally.failed} failed, {tally.skipped} skipped), {tally.chunks} chunks, "
        f"{tally.tokens:,} tokens, {tally.cache_hits} cache hits"
    )


class LogProgress:
    """stderr is not a terminal: one plain line every `interval` seconds, and one at the end."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self._started = 0.0
        self._last = 0.0

    def start(self, total: int) -> None:
        self._started = self._last = time.monotonic()
        print(f"batch: {total} articles to consider", file=self.stream, flush=True)

    def update(self, tally: Tally) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(f"batch: {describe(tally)}, eta {_eta(tally, now - self._started)}", file=self.stream, flush=True)

    def finish(self, tally: Tally) -> None:
        elapsed = time.monotonic() - self._started
        print(f"batch: finished {describe(tally)} in {elapsed:.1f}s", file=self.stream, flush=True)


class RichProgress:
    """stderr is a terminal: a live bar with the counts beside it."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("articles"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "chunks {task.fields[chunks]}  tokens {task.fields[tokens]:,}  "
                "cache hits {task.fields[cache_hits]}  failed {task.fields[failed]}"
            ),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("batch", total=total, chunks=0, tokens=0, cache_hits=0, failed=0)

    def update(self, tally: Tally) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=tally.finished,
                chunks=tally.chunks,
                tokens=tally.tokens,
                cache_hits=tally.cache_hits,
                failed=tally.failed,
            )

    def finish(self, tally: Tally) -> None:
        if self._progress is not None:
            self.update(tally)
            self._progress.stop()


def choose_progress(quiet: bool, stream: TextIO | None = None) -> ProgressSink:
    """Nothing when quiet, a bar when stderr is a terminal, periodic log lines otherwise."""
    stream = stream or sys.stderr
    if quiet:
        return NullProgress()
    if stream.isatty():
        return RichProgress()
    return LogProgress(stream)
