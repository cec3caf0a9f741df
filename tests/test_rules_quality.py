"""The rules backend against the held-out test split of the eval set.

Floors sit a few points under the figures eval/BASELINE.md reports, so a change that makes the rules
worse on articles they were not tuned on fails here. The dev split is not asserted: rules are shaped
on it, so its figures say little about articles the rules never saw.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from summarizer.evaluate import run_eval
from summarizer.pipeline import summarise_article
from summarizer.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_split() -> dict:
    settings = load_settings({"backend": "rules"})
    run = run_eval(
        gold_dir=ROOT / "eval/gold",
        articles_dir=ROOT / "eval/articles",
        summarise=lambda path: summarise_article(path, settings),
        backend="rules",
    )
    assert run.result["run"]["failed"] == []
    split = run.result["splits"]["test"]
    assert split["articles"] >= 20
    return {**split, "dev": run.result["splits"]["dev"]}


def test_rules_find_the_committees(test_split: dict) -> None:
    assert test_split["bodies"]["f1"] >= FLOORS["bodies_f1"]


def test_rules_read_the_year(test_split: dict) -> None:
    assert test_split["year"]["accuracy"] >= FLOORS["year"]


def test_rules_find_the_metrics(test_split: dict) -> None:
    assert test_split["metrics"]["f1"] >= FLOORS["metrics_f1"]


def test_rules_find_the_initiatives(test_split: dict) -> None:
    assert test_split["initiatives"]["recall"] >= FLOORS["initiatives_recall"]


def test_every_item_quotes_the_article(test_split: dict) -> None:
    assert test_split["grounding_rate"] == 1.0


def test_the_dev_split_holds_too(test_split: dict) -> None:
    """The rules are shaped on dev, so its floors sit higher; a drop there is a regression too."""
    dev = test_split["dev"]
    assert dev["bodies"]["f1"] >= 0.95 and dev["year"]["accuracy"] >= 0.93
    assert dev["metrics"]["f1"] >= 0.90 and dev["initiatives"]["recall"] >= 0.58


# Measured on the test split (eval/BASELINE.md) less a margin of about 0.05.
FLOORS = {"bodies_f1": 0.90, "year": 0.86, "metrics_f1": 0.87, "initiatives_recall": 0.44}
