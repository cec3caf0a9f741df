"""A deliberately naive baseline: regexes, no model. It gives the eval report something imperfect to show.

Every "number + measure word" becomes a metric, every quoted phrase an initiative, the most named
"<place>政协" the body and the commonest 20xx the year. Its scores are a floor, not a target; once a
real backend exists, `summarizer eval --backend rules` replaces it.

    python eval/naive_baseline.py eval/articles > reports/naive.jsonl
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from summarizer.article import load_article
from summarizer.schema import ArticleSummary, BodySummary, Initiative, Meta, Metric

_BODY = re.compile(r"([\u4e00-\u9fa5]{2,6}?(?:自治区|省|市|区|县|旗))政协")
_YEAR = re.compile(r"(20[12]\d)年")
_UNITS = "人次|件次|个|件|篇|次|名|场|条|份|家|项|%"
_METRIC = re.compile(rf"(\d+(?:\.\d+)?)(余|多)?({_UNITS})([\u4e00-\u9fa5]{{0,8}})")
_QUOTED = re.compile(r"[“《]([^”》\n]{2,20})[”》]")
_LEVELS = {"自治区": "provincial", "省": "provincial", "市": "municipal"}


def summarise_naively(path: Path) -> ArticleSummary:
    """One body per article: the place most often named before 政协."""
    article = load_article(path)
    text = article.text
    places = Counter(match.group(1) for match in _BODY.finditer(text))
    years = Counter(int(match.group(1)) for match in _YEAR.finditer(text))
    place = places.most_common(1)[0][0] if places else "本市"
    level = next((lvl for suffix, lvl in _LEVELS.items() if place.endswith(suffix)), "county")
    metrics = [
        Metric(
            name=match.group(4) or match.group(3),
            value=float(match.group(1)),
            unit=match.group(3),
            approx=bool(match.group(2)),
            evidence=match.group(0),
            span=match.span(),
        )
        for match in _METRIC.finditer(text)
    ]
    initiatives = [
        Initiative(name=match.group(1), evidence=match.group(0), span=match.span()) for match in _QUOTED.finditer(text)
    ][:8]
    first_line = next((text[s:e] for s, e in article.kept if e - s > 40), "")
    body = BodySummary(
        body=f"{place}政协",
        level=level,  # type: ignore[arg-type]  # one of the Level literals by construction
        year=years.most_common(1)[0][0] if years else None,
        summary=first_line[:80],
        key_initiatives=initiatives,
        metrics=metrics,
    )
    return ArticleSummary(
        article_id=article.article_id, title=article.title, bodies=[body], meta=Meta(backend="naive-baseline")
    )


def main(directory: str) -> None:
    for path in sorted(Path(directory).glob("*.txt")):
        print(summarise_naively(path).model_dump_json())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "eval/articles")
