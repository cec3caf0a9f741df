"""Grounding: every reported item must be found in the article, and every metric read from its quote.

Evidence is located exactly first, then with full-/half-width punctuation and whitespace folded.
The evidence written out is always the article's own text at the span, so `text[s:e] == evidence`.
Items that cannot be grounded are dropped, each with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .article import Article
from .numbers import as_number, find_value, is_approx_at
from .places import bare_suffix, canonical_body, level_of, resolve_bare
from .schema import BodySummary, Initiative, Metric, ReplyBody, ReplyInitiative, ReplyMetric

_FOLD = {ord(c): c2 for c, c2 in zip("，；：（）！？“”‘’「」『』【】　", ',;:()!?""\'\'""""[] ', strict=True)}
_SKIP = set(" \t\n\r\xa0\u3000\u2002\u2003\u2009\u200b")


def _fold_char(ch: str) -> str:
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII
        return chr(code - 0xFEE0)
    return ch.translate(_FOLD)


@lru_cache(maxsize=64)
def _folded(text: str) -> tuple[str, tuple[int, ...]]:
    """Text with whitespace removed and punctuation folded, and the original index of each char."""
    chars, index = [], []
    for i, ch in enumerate(text):
        if ch in _SKIP:
            continue
        chars.append(_fold_char(ch))
        index.append(i)
    return "".join(chars), tuple(index)


def _closest(starts: list[int], near: tuple[int, int] | None) -> int:
    if near is None:
        return starts[0]
    lo, hi = near
    inside = [s for s in starts if lo <= s < hi]
    if inside:
        return inside[0]
    return min(starts, key=lambda s: min(abs(s - lo), abs(s - hi)))


def locate(evidence: str, text: str, near: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """[start, end) of `evidence` in `text`, preferring an occurrence inside `near`; None if absent."""
    evidence = evidence.strip()
    if not evidence:
        return None
    starts, index = [], text.find(evidence)
    while index >= 0:
        starts.append(index)
        index = text.find(evidence, index + 1)
    if starts:
        start = _closest(starts, near)
        return start, start + len(evidence)
    folded, positions = _folded(text)
    needle, _ = _folded(evidence)
    if not needle:
        return None
    hits, index = [], folded.find(needle)
    while index >= 0:
        hits.append(index)
        index = folded.find(needle, index + 1)
    if not hits:
        return None
    chosen = _closest([positions[h] for h in hits], near)
    hit = next(h for h in hits if positions[h] == chosen)
    return positions[hit], positions[hit + len(needle) - 1] + 1


@dataclass
class Grounded:
    bodies: list[BodySummary]
    warnings: list[str]
    failures: list[str]  # what a model should be told when it is re-asked


def given_span(item: object, text: str) -> tuple[int, int] | None:
    """An item's own span, when it has one and it quotes the evidence exactly (the rules backend's)."""
    span = getattr(item, "span", None)
    evidence = getattr(item, "evidence", "")
    if span is not None and 0 <= span[0] < span[1] <= len(text) and text[span[0] : span[1]] == evidence:
        return (span[0], span[1])
    return None


def name_body(raw: str, article: Article, hint: str | None) -> str | None:
    """Canonical `<place>政协` for a body name a model or rule produced, resolving bare names."""
    name = canonical_body(raw if raw.endswith(("政协", "委员会")) else raw + "政协")
    if name:
        return name
    suffix = bare_suffix(raw if raw.endswith("政协") else raw + "政协")
    if suffix:
        return resolve_bare(suffix, [hint] if hint else [], article.text)
    return hint


def ground_bodies(
    bodies: Sequence[ReplyBody | BodySummary],
    article: Article,
    near: tuple[int, int] | None = None,
    hint: str | None = None,
) -> Grounded:
    """Locate every item's evidence in the article and check every metric's value against it."""
    text = article.text
    out: list[BodySummary] = []
    warnings: list[str] = []
    failures: list[str] = []

    def place(kind: str, item: ReplyInitiative | ReplyMetric | Initiative | Metric) -> tuple[int, int] | None:
        """The item's span, or None with a warning (for the user) and a failure (for a re-ask)."""
        span = given_span(item, text) or locate(item.evidence, text, near)
        if span is None:
            warnings.append(f"dropped {kind} {item.name!r}: evidence not found in the article")
            failures.append(f"{kind} {item.name!r}: evidence {item.evidence!r} is not a verbatim quote")
        return span

    for body in bodies:
        name = name_body(body.body, article, hint)
        if name is None:
            warnings.append(f"dropped body {body.body!r}: no committee name could be resolved")
            failures.append(f"body {body.body!r} is not a committee named in the article")
            continue
        initiatives: list[Initiative] = []
        for item in body.key_initiatives:
            span = place("initiative", item)
            if span is None:
                continue
            if any(i.span == span for i in initiatives):
                continue
            initiatives.append(Initiative(name=item.name.strip(), evidence=text[span[0] : span[1]], span=span))
        metrics: list[Metric] = []
        placed: set[tuple[tuple[int, int], float]] = set()
        for metric in body.metrics:
            span = place("metric", metric)
            if span is None:
                continue
            quote = text[span[0] : span[1]]
            number = find_value(metric.value, quote)
            # Approximate if the article hedges the number, even just past the quote (协商会20次|以上).
            approx = number is not None and is_approx_at(text, span[0] + number.start, span[0] + number.end)
            if number is None or not metric.unit.strip():
                warnings.append(f"dropped metric {metric.name!r}: value {metric.value} not in its evidence")
                failures.append(f"metric {metric.name!r}: value {metric.value} cannot be read from {quote!r}")
                continue
            if (span, metric.value) in placed:
                continue
            placed.add((span, metric.value))
            metrics.append(
                Metric(
                    name=metric.name.strip(),
                    value=as_number(metric.value),
                    unit=metric.unit.strip(),
                    approx=approx,
                    evidence=quote,
                    span=span,
                )
            )
        out.append(
            BodySummary(
                body=name,
                level=level_of(name),
                year=body.year,
                summary=body.summary.strip(),
                key_initiatives=initiatives,
                metrics=metrics,
            )
        )
    return Grounded(out, warnings, failures)
