"""Combine per-chunk results into one body list: one entry per committee, duplicates from overlapping
chunks merged by span overlap or by value + unit + name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .schema import BodySummary, Initiative, Metric


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


def _same_metric(a: Metric, b: Metric) -> bool:
    if a.value != b.value or a.unit != b.unit:
        return False
    return _overlap(a.span, b.span) or a.name == b.name


def _same_initiative(a: Initiative, b: Initiative) -> bool:
    # One quote seen by two overlapping chunks, or the same item named and quoted alike; two different
    # quotes under one short name (制定X计划 / 列入X计划) are two items.
    return _overlap(a.span, b.span) or (a.name == b.name and a.evidence == b.evidence)


def merge_bodies(parts: Sequence[BodySummary]) -> list[BodySummary]:
    """Merge body summaries (in article order) that name the same committee."""
    grouped: dict[str, list[BodySummary]] = {}
    for part in parts:
        grouped.setdefault(part.body, []).append(part)
    merged: list[BodySummary] = []
    for name, group in grouped.items():
        years = Counter(p.year for p in group if p.year is not None)
        year = max(years, key=lambda y: (years[y], -[p.year for p in group].index(y))) if years else None
        summary = next((p.summary for p in group if p.summary), "")
        initiatives: list[Initiative] = []
        metrics: list[Metric] = []
        if len(group) == 1:  # one part (a whole section read at once): nothing to merge
            initiatives, metrics = list(group[0].key_initiatives), list(group[0].metrics)
        for part in group if len(group) > 1 else ():
            for item in part.key_initiatives:
                if not any(_same_initiative(item, seen) for seen in initiatives):
                    initiatives.append(item)
            for metric in part.metrics:
                if not any(_same_metric(metric, seen) for seen in metrics):
                    metrics.append(metric)
        metrics.sort(key=lambda m: m.span or (0, 0))
        merged.append(
            BodySummary(
                body=name,
                level=group[0].level,  # grounding levelled the name
                year=year,
                summary=summary,
                key_initiatives=initiatives,
                metrics=metrics,
            )
        )
    return merged
