from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from fake_backend import CpuFakeBackend, FakeBackend  # noqa: E402
from summarizer.backends import register_backend  # noqa: E402

register_backend("fake", FakeBackend)
register_backend("cpufake", CpuFakeBackend)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Cache and config live in tmp_path; no model endpoint is configured; fake counters start at zero."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUMMARIZER_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SUMMARIZER_CONFIG", "SUMMARIZER_PRICES",
                 "FAKE_DELAY", "FAKE_FAIL_MARK", "FAKE_AUTH_MARK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUMMARIZER_BACKEND_PLUGIN",
                       "fake=fake_backend:FakeBackend,cpufake=fake_backend:CpuFakeBackend")
    FakeBackend.in_flight = FakeBackend.peak = FakeBackend.calls = 0
    yield
