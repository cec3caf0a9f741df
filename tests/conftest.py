"""Shared fixtures: no test touches the network, the user's home or the real cache folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL_ARTICLES = sorted((ROOT / "eval" / "articles").glob("*.txt"))

# The test-only fake backend, importable by tests and by CLI subprocesses (PYTHONPATH=tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_backend import CpuFakeBackend, FakeBackend  # noqa: E402
from summarizer.backends import register_backend  # noqa: E402

register_backend("fake", FakeBackend)
register_backend("cpufake", CpuFakeBackend)
FAKE_PLUGINS = "fake=fake_backend:FakeBackend,cpufake=fake_backend:CpuFakeBackend"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SUMMARIZER_MODEL", "SUMMARIZER_BACKEND", "SUMMARIZER_CONFIG",
                 "SUMMARIZER_PRICES", "FAKE_DELAY", "FAKE_FAIL_MARK", "FAKE_AUTH_MARK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUMMARIZER_BACKEND_PLUGIN", FAKE_PLUGINS)
    FakeBackend.in_flight = FakeBackend.peak = FakeBackend.calls = 0
