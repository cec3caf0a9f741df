"""Grounding: every reported item must be found in the article, and every metric read from its quote.

Evidence is located exactly first, then with full-/half-width punctuation and whitespace folded.
The evidence written out is always the article's own text at the span, so `text[s:e] == evidence`.
Items that cannot be grounded are dropped, each with a warning.

What a backend writes in its own words is checked against the article too, so text a page smuggled
into a model's answer cannot reach the output: a metric's unit must be the measure word next to its
number in the quote (else the quote's own measure word is used, or the metric dropped); a year must
be written in the article or follow from its date (else it is dropped); a summary may name only
numbers and committees the article names (else it is rebuilt from the article's own sentences).

A body must be a committee the article names (天津路 and 北京银行 name no committee), and in a
roundup an item belongs to the committee whose part of the article its quote stands in.
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from .article import Article, per_article
from .numbers import anchor_year, as_number, find_value, find_values, is_approx_at, unit_at
from .places import bare_suffix, canonical_body, find_mentions, level_of, place_body, resolve_bare, short_autonomous
from .schema import BodySummary, Initiative, Metric, ReplyBody, ReplyInitiative, ReplyMetric
from .sections import Section, article_sections
from .summary import compose_summary, summarise_section
from .text import CN_NUMERAL, COMMITTEE_WRAPPERS, PLACE_SUFFIX, QUOTE_SKIP, SESSION, fold_quote_char, fold_text


@lru_cache(maxsize=64)
def _folded(text: str) -> tuple[str, tuple[int, ...]]:
    """Text with whitespace removed and punctuation folded, and the original index of each char."""
    chars, index = [], []
    for i, ch in enumerate(text):
        if ch in QUOTE_SKIP:
            continue
        chars.append(fold_quote_char(ch))
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


def occurrences(evidence: str, text: str) -> list[tuple[int, int]]:
    """Every [start, end) where `evidence` stands verbatim in `text`, overlapping ones included."""
    spans: list[tuple[int, int]] = []
    if not evidence:
        return spans
    index = text.find(evidence)
    while index >= 0:
        spans.append((index, index + len(evidence)))
        index = text.find(evidence, index + 1)
    return spans


def locate(evidence: str, text: str, near: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """[start, end) of `evidence` in `text`, preferring an occurrence inside `near`; None if absent."""
    evidence = evidence.strip()
    if not evidence:
        return None
    starts = [start for start, _ in occurrences(evidence, text)]
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


@dataclass(slots=True)
class RawInitiative:
    """An initiative a backend found, before grounding (an extractor that knows its span gives it)."""

    name: str
    evidence: str
    span: tuple[int, int] | None = None


@dataclass(slots=True)
class RawMetric:
    """A metric a backend found, before grounding."""

    name: str
    value: int | float
    unit: str
    approx: bool
    evidence: str
    span: tuple[int, int] | None = None


@dataclass(slots=True)
class RawBody:
    """A committee and what a backend found for it, before grounding names it, levels it and checks
    every item (a model's reply is the same shape: `schema.ReplyBody`)."""

    body: str
    year: int | None
    summary: str
    key_initiatives: list[RawInitiative]
    metrics: list[RawMetric]


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


def _unit(metric: ReplyMetric | RawMetric | Metric, article: Article, span: tuple[int, int]) -> str | None:
    """The metric's unit as the quote writes it next to the number: its own, or the quote's (a
    correction), or None when no measure word stands there."""
    unit = metric.unit.strip()
    folded, quote = article.folded[span[0] : span[1]], article.text[span[0] : span[1]]  # same offsets
    corrections = []
    for _, unit_start in find_values(metric.value, folded):
        # As the article writes it (個, ％) or as the rules read it (个, %).
        if unit_at(quote, unit_start, unit) == unit or unit_at(folded, unit_start, fold_text(unit)) == fold_text(unit):
            return unit
        corrections.append(unit_at(folded, unit_start, ""))
    return next((word for word in corrections if word), None)


# --- years ---

_FULL_DATE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*\d{1,2}\s*日")
_CN_DIGITS = str.maketrans("0123456789", "〇一二三四五六七八九")


def _publication(article: Article) -> tuple[int, int] | None:
    """(year, month) the page was published: its date line, else a full date in its headline (a report
    "——2024年1月15日在…会议上")."""
    if article.published:
        return int(article.published[:4]), int(article.published[5:7])
    if dated := _FULL_DATE.search(fold_text(article.headline)):
        return int(dated.group(1)), int(dated.group(2))
    return None


@per_article
def _years_checked(article: Article) -> dict[int, bool]:
    return {}


def year_supported(year: int, article: Article) -> bool:
    """Is `year` written in the article (2023, 二〇二三), or does it follow from the page? The year it
    was published; the year before for an annual review published January to April; the year a
    milestone names (二十大开局之年); the year a yearbook records (the one before its title's).

    Asked once per year and article: a roundup asks about the same year for each of its parts,
    and each answer may scan the whole page."""
    checked = _years_checked(article)
    if year not in checked:
        checked[year] = _year_supported(year, article)
    return checked[year]


def _year_supported(year: int, article: Article) -> bool:
    text = article.folded
    digits = str(year)
    if re.search(rf"(?<!\d){digits}(?!\d)", text) or digits.translate(_CN_DIGITS) in text.replace("零", "〇"):
        return True
    published = _publication(article)
    if published is not None and (year == published[0] or (year == published[0] - 1 and published[1] <= 4)):
        return True
    headline = fold_text(article.headline)
    return anchor_year(text) == year or ("年鉴" in headline and str(year + 1) in headline)


# --- summaries ---

_DIGIT_RUN = re.compile(r"\d+(?:\.\d+)?")
_NUMERAL_RUN = re.compile(f"[{CN_NUMERAL}]{{2,}}")


@lru_cache(maxsize=4096)  # asked for every item of a roundup, about the same few committees
def _body_key(name: str) -> str:
    """One spelling per committee: 黔东南苗族侗族自治州政协 and 黔东南州政协 are the same."""
    return short_autonomous(name.removesuffix("政协")) + "政协"


def committees_named(article: Article) -> frozenset[str]:
    """Every committee the article names (see `_committees_named`), as `adopt_facts` handed them
    over when the article was prepared in another process."""
    facts = _ADOPTED.get(article)
    return facts.committees if facts is not None else _committees_named(article)


@per_article
def _committees_named(article: Article) -> frozenset[str]:
    """Every committee the article names: in full (天津市政协, 政协天津市委员会), bare and resolved as
    the rules resolve them (市政协 in a page about 淮南), or as a roundup part's heading (【浙江】)."""
    mentions = find_mentions(article.folded)
    names = [m.name for m in mentions if m.name]
    for bare in dict.fromkeys(m.bare for m in mentions if m.bare and not m.name):
        if resolved := resolve_bare(bare, names, article.folded):
            names.append(resolved)
    names += [s.body_hint for s in article_sections(article) if s.body_hint]
    return frozenset(_body_key(name) for name in names)


@per_article
def _numbers_checked(article: Article) -> dict[tuple[str, bool], bool]:
    return {}


def _writes_number(article: Article, number: str, cut: bool) -> bool:
    """Does the article write `number` (as a prefix of a longer one when `cut`)? Asked once per number:
    a roundup's summaries repeat the same figures, and each answer may scan the whole page."""
    checked = _numbers_checked(article)
    key = (number, cut)
    if key not in checked:
        after = "" if cut else r"(?!\d)"
        checked[key] = re.search(r"(?<![\d.])" + re.escape(number) + after, article.folded) is not None
    return checked[key]


@per_article
def _summaries_checked(article: Article) -> dict[tuple[str, str, int | None], str | None]:
    return {}


def _summary_problem(summary: str, body: str, year: int | None, article: Article) -> str | None:
    """What a summary says that the article does not: a number, or a committee other than its own.

    Asked once per summary, committee and year: a long page cut from one template (a roundup
    whose thousands of parts repeat the same few reports) asks about the same summaries again
    and again, and looking for committees in each costs more than the rest of its grounding."""
    checked = _summaries_checked(article)
    key = (summary, body, year)
    if key not in checked:
        checked[key] = _check_summary(summary, body, year, article)
    return checked[key]


def _check_summary(summary: str, body: str, year: int | None, article: Article) -> str | None:
    folded, text = fold_text(summary), article.folded
    for match in _DIGIT_RUN.finditer(folded):
        number = match.group()
        if number == str(year):
            continue  # the body's year, checked on its own
        cut = folded[match.end() :].strip("。…") == ""  # a long sentence shortened inside a number
        if not _writes_number(article, number, cut):
            return f"the number {number}"
    for match in _NUMERAL_RUN.finditer(folded):
        if match.group() not in text:
            return f"the number {match.group()}"
    for mention in find_mentions(folded):
        key = _body_key(mention.name) if mention.name else None
        if key is not None and key != _body_key(body) and key not in committees_named(article):
            return f"the committee {mention.name}"
    return None


def _section_at(article: Article, position: int | None, body: str) -> tuple[int, int]:
    """The stretch of text a body's summary is drawn from: the section at `position`, else the
    body's own section, else the whole article."""
    sections = article_sections(article)
    if position is not None:
        for section in sections:
            if section.start <= position < section.end:
                return section.start, section.end
    for section in sections:
        if section.body_hint == body:
            return section.start, section.end
    return (article.kept[0][0], article.kept[-1][1]) if article.kept else (0, len(article.text))


def extractive_summary(
    article: Article, body: str, year: int | None, initiatives: list[Initiative], near: tuple[int, int] | None
) -> str:
    """A summary in the article's own words, made as the rules make theirs."""
    start, end = _section_at(article, near[0] if near else None, body)
    lead = summarise_section(article, start, end, body, [])
    return compose_summary(body, year, lead, [i.evidence for i in initiatives])


# --- bodies and attribution ---

_PLACE_UNIT = re.compile(rf"{SESSION}?(?:{PLACE_SUFFIX})$")


@per_article
def _bodies_resolved(article: Article) -> dict[tuple[str, str | None], tuple[str | None, str]]:
    return {}


def _resolve_body(raw: str, article: Article, hint: str | None) -> tuple[str | None, str]:
    """The canonical committee a body name stands for, or None and why.

    A name with a place must be a committee the article names (`committees_named`): a place that
    only appears in a street or a bank (天津路, 北京银行) or nowhere (火星政协) names none. A bare
    name (政协, 市政协) is resolved from the article and the section's committee.

    Resolved once per name and section committee: a roundup grounds each of its parts apart, and
    most parts name the same committees.
    """
    resolved = _bodies_resolved(article)
    key = (raw, hint)
    if key not in resolved:
        resolved[key] = _resolve_name(raw, article, hint)
    return resolved[key]


def _resolve_name(raw: str, article: Article, hint: str | None) -> tuple[str | None, str]:
    folded = fold_text(raw.strip())
    inner = COMMITTEE_WRAPPERS.sub("", COMMITTEE_WRAPPERS.sub("", folded))
    if not _PLACE_UNIT.sub("", inner):
        name = name_body(raw, article, hint)
        return name, "" if name else "no committee name could be resolved"
    name = canonical_body(folded if folded.endswith(("政协", "委员会")) else folded + "政协") or place_body(inner)
    if name is None or _body_key(name) not in committees_named(article):
        return None, "not named in the article"
    return name, ""


@dataclass(frozen=True)
class _Parts:
    """A roundup's committee parts in order (with their starts, for bisection); none when the page
    reports on one committee only."""

    starts: tuple[int, ...]
    parts: tuple[Section, ...]
    keys: tuple[str, ...]  # each part's committee, spelt as `_body_key` spells it


def _roundup_parts(article: Article) -> _Parts:
    """A roundup's parts (see `_split_parts`), as `adopt_facts` handed them over when the article
    was prepared in another process."""
    facts = _ADOPTED.get(article)
    return facts.parts if facts is not None else _split_parts(article)


@per_article
def _split_parts(article: Article) -> _Parts:
    parts = tuple(s for s in article_sections(article) if s.body_hint)
    if len({_body_key(s.body_hint or "") for s in parts}) < 2 or any(s.inferred for s in parts):
        # One committee's report (a visiting committee's figures are its own), or parts guessed
        # from how paragraphs open: whom the backend gave an item to stands.
        return _Parts((), (), ())
    return _Parts(tuple(s.start for s in parts), parts, tuple(_body_key(s.body_hint or "") for s in parts))


@dataclass(frozen=True)
class ArticleFacts:
    """What grounding reads about an article as a whole, worked out where the article is prepared.

    Both are read from the article's committee mentions and sections, which preparing it has
    just found: the caches behind them are warm then, and cold again by the time the replies come
    back (a batch prepares hundreds of articles ahead). Worked out in another process, they travel
    with the article (`adopt_facts`) instead of being found again.
    """

    committees: frozenset[str]
    parts: _Parts


def article_facts(article: Article) -> ArticleFacts:
    """The grounding facts of an article (and, in this process, they stay cached with it)."""
    return ArticleFacts(committees_named(article), _roundup_parts(article))


_ADOPTED: weakref.WeakKeyDictionary[Article, ArticleFacts] = weakref.WeakKeyDictionary()


def adopt_facts(article: Article, facts: ArticleFacts) -> None:
    """Use `facts`, worked out in the process that prepared `article`, when grounding replies about it."""
    _ADOPTED[article] = facts


def _owner(article: Article, index: _Parts, position: int, body: str, key: str) -> str | None:
    """The committee an item quoted at `position` belongs to when that is not `body` (whose
    `_body_key` is `key`): the one whose part of the roundup (`index`) holds the quote. None outside
    the parts, and None when the part itself names `body` before the quote (a sub-heading the split
    missed, or the part reporting on it)."""
    at = bisect_right(index.starts, position) - 1
    if at < 0 or index.keys[at] == key:
        return None
    part = index.parts[at]
    if position >= part.end or part.body_hint is None:
        return None
    if body in article.folded[part.start : position] or any(
        m.name and _body_key(m.name) == key for m in find_mentions(article.folded, part.start, position)
    ):
        return None
    return part.body_hint


def _attribute(bodies: list[BodySummary], article: Article, warnings: list[str]) -> list[BodySummary]:
    """Move each item whose quote stands in another committee's part of a roundup to that committee.

    The quote is the article's own text and the part's heading says whose work it reports (the rules
    attribute every item so), so the item is kept under the right name rather than dropped.
    """
    parts = _roundup_parts(article)
    if not parts.parts:
        return bodies  # one committee's report: whom the backend gave each item to stands
    moved: dict[str, list[Initiative | Metric]] = {}
    out: list[BodySummary] = []
    for body in bodies:
        key = _body_key(body.body)
        keep: list[Initiative | Metric] = []
        items: list[Initiative | Metric] = [*body.key_initiatives, *body.metrics]
        for item in items:
            owner = _owner(article, parts, item.span[0], body.body, key) if item.span else None
            if owner is None:
                keep.append(item)
                continue
            kind = "metric" if isinstance(item, Metric) else "initiative"
            warnings.append(f"{kind} {item.name!r} moved from {body.body} to {owner}: its quote is in {owner}'s part")
            moved.setdefault(owner, []).append(item)
        if len(keep) < len(items):
            body = _with_items(body, keep)
        out.append(body)
    for owner, items in moved.items():
        index = next((i for i, b in enumerate(out) if _body_key(b.body) == _body_key(owner)), None)
        if index is not None:
            target = out[index]
            out[index] = _with_items(target, [*target.key_initiatives, *target.metrics, *items])
        else:
            initiatives = [i for i in items if isinstance(i, Initiative)]
            summary = extractive_summary(article, owner, None, initiatives, None)
            out.append(_with_items(BodySummary(body=owner, level=level_of(owner), summary=summary), items))
    return out


def _with_items(body: BodySummary, items: Sequence[Initiative | Metric]) -> BodySummary:
    """`body` holding `items` (one of each span and value), in article order."""
    seen: set[tuple[object, ...]] = set()
    initiatives: list[Initiative] = []
    metrics: list[Metric] = []
    for item in sorted(items, key=lambda i: i.span or (0, 0)):
        key = (type(item), item.span, getattr(item, "value", None))
        if key in seen:
            continue
        seen.add(key)
        (metrics if isinstance(item, Metric) else initiatives).append(item)  # type: ignore[arg-type]
    return body.model_copy(update={"key_initiatives": initiatives, "metrics": metrics})


def ground_bodies(
    bodies: Sequence[ReplyBody | BodySummary | RawBody],
    article: Article,
    near: tuple[int, int] | None = None,
    hint: str | None = None,
) -> Grounded:
    """Locate every item's evidence in the article and check every metric's value against it."""
    text = article.text
    out: list[BodySummary] = []
    warnings: list[str] = []
    failures: list[str] = []

    def place(
        kind: str, item: ReplyInitiative | ReplyMetric | RawInitiative | RawMetric | Initiative | Metric
    ) -> tuple[int, int] | None:
        """The item's span, or None with a warning (for the user) and a failure (for a re-ask)."""
        span = given_span(item, text) or locate(item.evidence, text, near)
        if span is None:
            warnings.append(f"dropped {kind} {item.name!r}: evidence not found in the article")
            failures.append(f"{kind} {item.name!r}: evidence {item.evidence!r} is not a verbatim quote")
        return span

    for body in bodies:
        name, why = _resolve_body(body.body, article, hint)
        if name is None:
            warnings.append(f"dropped body {body.body!r}: {why}")
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
            # Approximate if the article hedges the number, even just past the quote (协商会20次|以上);
            # read on the folded text, so a traditional page's hedges (30餘件, 約300人) count too.
            approx = number is not None and is_approx_at(article.folded, span[0] + number.start, span[0] + number.end)
            if number is None or not metric.unit.strip():
                warnings.append(f"dropped metric {metric.name!r}: value {metric.value} not in its evidence")
                failures.append(f"metric {metric.name!r}: value {metric.value} cannot be read from {quote!r}")
                continue
            unit = _unit(metric, article, span)
            if unit is None:
                warnings.append(f"dropped metric {metric.name!r}: unit {metric.unit!r} is not next to its number")
                failures.append(f"metric {metric.name!r}: unit {metric.unit!r} is not written after the number")
                continue
            if unit != metric.unit.strip():
                warnings.append(f"metric {metric.name!r}: unit {metric.unit!r} corrected to {unit!r} from its evidence")
            if (span, metric.value) in placed:
                continue
            placed.add((span, metric.value))
            metrics.append(
                Metric(
                    name=metric.name.strip(),
                    value=as_number(metric.value),
                    unit=unit,
                    approx=approx,
                    evidence=quote,
                    span=span,
                )
            )
        year = body.year
        if year is not None and not year_supported(year, article):
            warnings.append(f"{name}: year {year} dropped: the article neither writes it nor implies it by its date")
            year = None
        summary = body.summary.strip()
        if summary and (problem := _summary_problem(summary, name, year, article)):
            warnings.append(f"{name}: summary rebuilt from the article's sentences: {problem} is not in the article")
            summary = extractive_summary(article, name, year, initiatives, near)
        out.append(
            BodySummary(
                body=name,
                level=level_of(name),
                year=year,
                summary=summary,
                key_initiatives=initiatives,
                metrics=metrics,
            )
        )
    return Grounded(_attribute(out, article, warnings), warnings, failures)
