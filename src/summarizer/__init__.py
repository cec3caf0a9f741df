"""summarizer: grounded structured summaries of Chinese CPPCC (政协) work reports.

The front door for Python users (the CLI goes through the same functions):

    from summarizer import summarise
    summary = summarise("article.txt")                      # rules backend, no key needed
    summary = summarise("article.txt", backend="openai", model="gpt-4o-mini")
    for body in summary.bodies:
        print(body.body, body.year, [(m.value, m.unit, m.span) for m in body.metrics])

    from summarizer import run_batch, load_settings
    report = run_batch("articles/", "results.jsonl", load_settings({"backend": "rules"}))

Names are imported when first used, so `import summarizer` stays cheap.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ArticleSummary",
    "BodySummary",
    "Initiative",
    "Metric",
    "Settings",
    "SummarizerError",
    "load_settings",
    "run_batch",
    "run_eval",
    "summarise",
    "summarise_article",
]

_LAZY = {
    "ArticleSummary": "schema",
    "BodySummary": "schema",
    "Initiative": "schema",
    "Metric": "schema",
    "Settings": "settings",
    "load_settings": "settings",
    "SummarizerError": "errors",
    "run_batch": "batch",
    "run_eval": "evaluate",
    "summarise_article": "pipeline",
}

if TYPE_CHECKING:
    from .batch import run_batch
    from .errors import SummarizerError
    from .evaluate import run_eval
    from .pipeline import summarise_article
    from .schema import ArticleSummary, BodySummary, Initiative, Metric
    from .settings import Settings, load_settings


def summarise(path: str | Path, **settings: Any) -> ArticleSummary:
    """Summarise one article file.

    Args:
        path: the article (UTF-8, UTF-8 with BOM or GB18030 text).
        **settings: any setting by name (`backend="openai"`, `model=...`, `timeout=30`); the rest come
            from SUMMARIZER_* variables, summarizer.toml and the defaults, as for the CLI.

    Returns:
        The ArticleSummary, every item with its evidence and span.

    Raises:
        SummarizerError: bad settings, an unreadable article, or a model endpoint that failed.
    """
    from .pipeline import summarise_article
    from .settings import load_settings

    return summarise_article(path, load_settings(settings))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'summarizer' has no attribute {name!r}")
