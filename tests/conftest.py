"""Shared fixtures: no test touches the network, the user's home or the real cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL_ARTICLES = sorted((ROOT / "eval" / "articles").glob("*.txt"))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMARIZER_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "SUMMARIZER_MODEL", "SUMMARIZER_BACKEND", "SUMMARIZER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
