"""One eval article through a real OpenAI-compatible endpoint. Off by default; run with

OPENAI_API_KEY=... [OPENAI_BASE_URL=...] [SUMMARIZER_MODEL=...] .venv/bin/pytest -m live
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import ARTICLES, assert_grounded, gold_for
from summarizer.pipeline import summarise_article
from summarizer.settings import load_settings

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")),
        reason="needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local server)",
    ),
]


def test_eval_article_through_a_real_endpoint(tmp_path: Path) -> None:
    path = ARTICLES[0]
    settings = load_settings(
        {
            "backend": "openai",
            "model": os.environ.get("SUMMARIZER_MODEL") or "gpt-4o-mini",
            "cache_dir": tmp_path / "cache",
        }
    )
    summary = summarise_article(path, settings)
    gold = gold_for(path)
    assert [b.body for b in summary.bodies][:1] == [gold.bodies[0].body]
    assert summary.bodies[0].key_initiatives or summary.bodies[0].metrics
    assert_grounded(summary, path)
    assert summary.meta is not None and summary.meta.usage.requests >= 1
    again = summarise_article(path, settings)
    assert again.meta is not None and again.meta.usage.requests == 0
