"""Small helpers shared by the OpenAI backend and reliability tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from summarizer.article import load_article
from summarizer.ground import locate
from summarizer.schema import ArticleSummary
from summarizer.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
GOLD_DIR = ROOT / "eval" / "gold"
ARTICLES = sorted((ROOT / "eval" / "articles").glob("*.txt"))
DUMMY_KEY = "sk-test-DUMMYKEY-4f1c2e9a7b3d"


def fast_settings(**overrides: Any) -> Settings:
    """openai backend against the fake, with timeouts and backoffs small enough for a test suite."""
    values: dict[str, Any] = {
        "backend": "openai",
        "model": "fake-model",
        "timeout": 3.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "retry_after_max": 10.0,
    }
    values.update(overrides)
    return load_settings(values)


def gold_for(path: Path) -> ArticleSummary:
    return ArticleSummary.model_validate(json.loads((GOLD_DIR / (path.stem + ".json")).read_text(encoding="utf-8")))


def assert_grounded(summary: ArticleSummary, path: Path) -> None:
    """Every item the user sees quotes the article exactly at its span."""
    text = load_article(path).text
    for body in summary.bodies:
        for item in [*body.key_initiatives, *body.metrics]:
            assert item.span is not None, item
            assert text[item.span[0] : item.span[1]] == item.evidence, item


def assert_matches_gold(summary: ArticleSummary, path: Path) -> None:
    """Bodies, levels and years as labelled; every required metric (value, unit, place) and every initiative."""
    gold = gold_for(path)
    text = load_article(path).text
    assert [b.body for b in summary.bodies] == [b.body for b in gold.bodies], path.name
    for want, got in zip(gold.bodies, summary.bodies, strict=True):
        assert (got.level, got.year) == (want.level, want.year), (path.name, want.body)
        for metric in want.metrics:
            if metric.optional:
                continue
            span = locate(metric.evidence, text)
            assert span is not None
            assert any(
                m.value == metric.value
                and m.unit == metric.unit
                and m.span is not None
                and m.span[0] < span[1]
                and span[0] < m.span[1]
                for m in got.metrics
            ), (path.name, want.body, metric.name, metric.value)
        for initiative in want.key_initiatives:
            assert any(i.name == initiative.name for i in got.key_initiatives), (path.name, want.body, initiative.name)


class VirtualClock:
    """Time that moves only when a paced start sleeps until its slot, so pacing is checked exactly
    (a busy machine waking a sleeper late cannot make the test pass or fail)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer instead of waiting for it.

    `asyncio.sleep` and every timer run in order, as on a real loop, but at once: a test of timing
    behaviour (queues, deadlines, pacing) neither takes the time it simulates nor depends on how
    promptly a busy machine wakes the process. Not for real sockets.
    """

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        wait = self._selector.select

        def select(timeout: float | None = None) -> Any:
            if timeout is not None and timeout > 0:
                self._now += timeout  # nothing else can happen before the next timer is due
            return wait(0)

        self._selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now


def run_on_virtual_time(coroutine: Any) -> Any:
    """`asyncio.run` on a VirtualTimeLoop; `loop_clock` reads its time."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def loop_clock() -> float:
    """The running loop's time: the clock to hand a Limiter under run_on_virtual_time."""
    return asyncio.get_running_loop().time()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """No writing to `path` (a file) or new files in it (a folder): by its mode, or for root, whom
    modes do not stop, by the immutable flag (skipped where the file system has none)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root on a file system without the immutable flag")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
