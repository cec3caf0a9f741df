"""The rules backend against the hand-labelled eval set, at the bar its issue sets."""

from __future__ import annotations

from pathlib import Path

from summarizer.evaluate import run_eval
from summarizer.pipeline import summarise_article
from summarizer.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_rules_backend_meets_the_quality_bar() -> None:
    settings = load_settings({"backend": "rules"})
    run = run_eval(
        gold_dir=ROOT / "eval/gold",
        articles_dir=ROOT / "eval/articles",
        summarise=lambda path: summarise_article(path, settings),
        backend="rules",
    )
    result = run.result
    assert result["run"]["failed"] == []
    assert result["bodies"]["f1"] == 1.0
    assert result["year"]["accuracy"] == 1.0
    assert result["metrics"]["f1"] >= 0.85
    assert result["initiatives"]["recall"] >= 0.6
    assert result["grounding_rate"] == 1.0
