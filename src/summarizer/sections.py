"""Split an article into sections, one per committee it reports on, and name each section's committee.

Roundups come in two shapes: headings such as `和平区政协:突出“三个紧扣”…` that open each part, and
author pieces that close with `(作者系XX县政协党组书记、主席)`. Anything else is one section.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .article import Article, per_article
from .places import Mention, find_mentions, first_mention, is_place, level_of, place_body, resolve_bare
from .text import SENTENCE_END, fold_text

# What may stand before a committee that opens a roundup part: "一、", "(二)", "3.", "■", "【".
_HEADING_LEAD = re.compile(
    r"\s*(?P<number>[一二三四五六七八九十]{1,3}[、.]|\(?[一二三四五六七八九十\d]{1,3}\)|\d{1,2}[.、])?"
    r"\s*(?P<bullet>[■●◆▲★◇◎□·▶►])?\s*(?P<bracket>[【\[])?\s*"
)
# A bracketed place alone on its line heads a roundup part too: "【浙江】", "【静安】".
_BRACKETED_PLACE = re.compile(r"\s*[【\[]\s*([\u4e00-\u9fff]{2,12})\s*[】\]]\s*$")
_INNER_PUNCTUATION = re.compile(r"[,。;!?]")
_DATED_TITLE = re.compile(r"\s(?:19|20)\d{2}[-./年]\d{1,2}[-./月]\d{1,2}日?$")
# A place that opens a paragraph before the committee it speaks of: "在X，", "走进X，", "X：".
_PLACE_LEAD = re.compile(r"(?:在|走进|来到)?([\u4e00-\u9fff]{2,12}?)\s*[,:]\s*")
# A place alone after a heading mark, closed by a colon, a space or the line end.
_PLACE_HEADING = re.compile(r"([\u4e00-\u9fff]{2,12}?)\s*(?::|\s|$)")
# What opens a news paragraph before its subject: "近日，", "3月14日上午，", "本报讯（记者 某某）".
_PARAGRAPH_LEAD = re.compile(
    r"\s*(?:本报讯|本网讯)?\s*(?:\([^)]{0,30}\))?\s*"
    r"(?:(?:近日|日前|近期|连日来|(?:\d{1,2}月)?\d{1,2}日(?:至\d{1,2}日)?(?:上午|下午|晚)?)\s*,?\s*)?"
)
_T = TypeVar("_T")
_AUTHOR = re.compile(r"^\s*[(（]\s*(?:作者|文章作者|本文作者)\s*(?:系|为|是|单位\s*[:：]?)?\s*(.+?)\s*[)）]\s*$")
# A part's credit at its end: "(某县政协供稿)", "(来源：某县政协办公室)", a line "——某县政协".
_CREDIT = re.compile(
    r"(?:[(（]\s*(?:来源|供稿|稿件来源)?\s*[:：]?\s*([^()（）\n]{2,30}?)\s*(?:供稿|供|提供|报送)?\s*[)）]"
    r"|^\s*[—-]{1,2}\s*([^\n]{2,30}))\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Section:
    """A contiguous part of the article about one committee (`body_hint`), or about none (intro)."""

    index: int
    start: int
    end: int
    heading: str | None
    body_hint: str | None
    # Split where paragraphs or sentences open with a committee, not at a heading or a credit: a
    # guess good enough for the rules, too weak to overrule whom a model gives an item to.
    inferred: bool = False


def _lines_in(article: Article, start: int, end: int) -> list[tuple[int, int]]:
    return [(s, e) for s, e in article.kept if s >= start and e <= end]


def _heading_body(article: Article, start: int, end: int, lead: re.Match[str]) -> str | None:
    """The committee a roundup heading opens with, in any of the genre's heading styles.

    `【X政协】…`, `■ X政协…`, `一、X县政协…`, `X政协：…` and `X政协 标题` (a short line) each open a
    part about X; so does a bracketed place alone (`【浙江】`). A line that merely starts with a
    committee's name (`X政协召开…。`) is a sentence, not a heading.
    """
    folded = article.folded
    at = lead.end()
    line = folded[start:end].strip()
    marked = bool(lead.group("number") or lead.group("bullet") or lead.group("bracket"))
    short = len(line) <= 60 and line[-1] not in SENTENCE_END
    mention = first_mention(folded, at, min(end, at + 40))
    if mention is not None and mention.start > at and not is_place(folded[at : mention.start]):
        mention = None  # only a parent division may stand before it: 一、苏州市吴中区政协
    if mention is not None and mention.name:
        after = folded[mention.end : mention.end + 1]
        if (lead.group("bracket") and after in "】]") or after in (":", "："):
            return mention.name
        if (marked and short) or (short and after in (" ", "\u3000", "")):
            return mention.name
        # A list page's item title ("X县政协召开十届四次会议  2025-02-06") when a date closes it or the
        # paragraph under it reports the same committee; a photo caption is followed by other text.
        titled = short and len(line) <= 40 and not _INNER_PUNCTUATION.search(line)
        if titled and (_DATED_TITLE.search(line) or _next_line_names(article, end, mention.name)):
            return mention.name
        return None
    if bracketed := _BRACKETED_PLACE.match(folded, start, end):
        return place_body(bracketed.group(1))
    if marked and (place := _PLACE_HEADING.match(folded, at, end)):
        return place_body(place.group(1))  # "■ 济宁：…", "一、某某县"
    return None


def _credited(article: Article, start: int, end: int) -> str | None:
    """The committee a line's closing credit names ("…。(某县政协供稿)", "——某县政协"), if any."""
    credit = _CREDIT.search(article.folded, max(start, end - 40), end)
    if credit is None:
        return None
    at = credit.start(1) if credit.group(1) is not None else credit.start(2)
    return _first_named(article, at, end)


def _place_line_body(article: Article, start: int, end: int) -> str | None:
    line = article.folded[start:end].strip()
    if not 2 <= len(line) <= 12 or not is_place(line) or (body := place_body(line)) is None:
        return None
    below = _next_line(article, end)
    return body if below is not None and _opens_with_bare(article, *below, body) else None


def _next_line(article: Article, after: int) -> tuple[int, int] | None:
    """The first kept line after `after`, if any."""
    index = bisect_right(article.kept, (after, len(article.folded) + 1))
    return article.kept[index] if index < len(article.kept) else None


def _next_line_names(article: Article, after: int, body: str) -> bool:
    """Does the first kept line after `after` name `body` near its start?"""
    if (below := _next_line(article, after)) is None:
        return False
    start, end = below
    return any(m.name == body for m in find_mentions(article.folded, start, min(end, start + 80)))


def _is_marked_title(line: str, lead: re.Match[str]) -> bool:
    """A bulleted or bracketed short title line ("■ 区县政协陆续进入“两会时间”"), whoever it names."""
    line = line.strip()
    return bool(lead.group("bullet") or lead.group("bracket")) and 0 < len(line) <= 60 and line[-1] not in SENTENCE_END


def _intro(article: Article, first: int, until: int) -> Section:
    """A roundup's lead-in: a part of its own when it reports a committee's own work (the meeting it
    held), not just a line or two."""
    length = sum(e - s for s, e in _lines_in(article, first, until))
    return Section(0, first, until, None, infer_body(article, first, until) if length >= 150 else None)


def _first_of_runs(items: list[_T], body: Callable[[_T], str]) -> list[_T]:
    """Items whose committee differs from the one before: a repeat continues the running part."""
    return [item for i, item in enumerate(items) if i == 0 or body(item) != body(items[i - 1])]


def _lead_body(article: Article, start: int, end: int) -> str | None:
    """The committee a paragraph opens with as its subject: "近日，X县政协召开…", "X区政协…", or a
    place that opens it before its bare committee: "在X，县政协…", "X：市政协…"."""
    lead = _PARAGRAPH_LEAD.match(article.folded, start, end)
    at = lead.end() if lead else start
    mention = first_mention(article.folded, at, min(end, at + 30))
    if mention is not None and mention.name and mention.start == at:
        return mention.name
    place = _PLACE_LEAD.match(article.folded, at, end)
    if place is None or (body := place_body(place.group(1))) is None:
        return None
    # "X：…" heads its paragraph whatever follows; "在X，" only before X's bare committee.
    headed = place.group(0).rstrip().endswith(":") and not place.group(0).startswith(("在", "走进", "来到"))
    return body if headed or _opens_with_bare(article, place.end(), end, body) else None


def _opens_with_bare(article: Article, start: int, end: int, body: str) -> bool:
    """Does text from `start` name a bare committee of `body`'s kind early on (县政协 for 某县政协)?"""
    mention = first_mention(article.folded, start, min(end, start + 30))
    return mention is not None and mention.bare is not None and body.removesuffix("政协").endswith(mention.bare)


def _first_named(article: Article, start: int, end: int) -> str | None:
    for mention in find_mentions(article.folded, start, end):
        if mention.name:
            return mention.name
    return None


def infer_body(article: Article, start: int, end: int, strong: list[str] | None = None) -> str | None:
    """The committee a stretch of text is about: headline and heading names weigh most, then frequency.

    Bare mentions (`区政协`) count towards the name they resolve to, so a committee the text calls
    `市政协` thirty times outranks a sister committee named once in a caption.
    """
    strong = list(strong or [])
    mentions = find_mentions(article.folded, start, end)
    at_top = start <= (article.kept[0][0] if article.kept else 0)
    headline_mentions = find_mentions(fold_text(article.headline)) if at_top else []
    named_order = list(
        dict.fromkeys(strong + [m.name for m in headline_mentions if m.name] + [m.name for m in mentions if m.name])
    )
    resolved: dict[str, str | None] = {}  # bare suffix -> name, once per section
    scores: dict[str, float] = {}
    for name in strong:
        scores[name] = scores.get(name, 0.0) + 10

    def credit(mention: Mention, weight: int) -> None:
        name = mention.name
        if name is None and mention.bare:
            if mention.bare not in resolved:
                resolved[mention.bare] = resolve_bare(mention.bare, named_order, article.folded)
            name = resolved[mention.bare]
        if name:  # the national committee is usually mentioned in passing
            scores[name] = scores.get(name, 0.0) + (weight if name != "全国政协" else weight / 4)

    for mention in headline_mentions:
        credit(mention, 10)
    lead_end = start + 300
    for index, mention in enumerate(mentions):
        # a news lead names its actor first: "日前，X区政协…活动，Y市政协…出席"
        credit(mention, (3 if mention.start < lead_end else 1) + (3 if index == 0 and mention.start < lead_end else 0))
    if not scores:
        return None
    return max(scores, key=lambda name: scores[name])


def split_sections(article: Article) -> list[Section]:
    """Sections of the kept text, in order, each with the committee it reports on when known."""
    if not article.kept:
        return []
    first, last = article.kept[0][0], article.kept[-1][1]
    headings: list[tuple[int, str, str]] = []  # (line start, body, heading text)
    authors: list[tuple[int, str]] = []  # (line end, body)
    # Closing credits: they split a roundup of several committees' pieces, but one credit alone is
    # often the reporter's office (…(某市政协 某某)), not the committee reported on.
    credits: list[tuple[int, str]] = []
    breaks: list[int] = []  # marked title lines that name no committee ("■ 区县政协陆续进入“两会时间”")
    folded = article.folded
    for start, end in article.kept:
        lead = _HEADING_LEAD.match(folded, start, end)
        assert lead is not None  # every group is optional
        marked = bool(lead.group("number") or lead.group("bullet") or lead.group("bracket"))
        if folded.find("政协", max(start, end - 40), end) >= 0 and (body := _credited(article, start, end)):
            credits.append((end, body))
            continue
        line = folded[start:end]
        if not marked and folded.find("政协", start, min(end, start + 60)) < 0:
            # A place alone on its line, over a paragraph that opens with its bare committee
            # ("桐庐县" / "县政协…"), heads a part too; any other such line is text.
            if (body := _place_line_body(article, start, end)) is not None:
                headings.append((start, body, line.strip()))
            continue  # most lines: no heading mark, no committee near the start
        if body := _heading_body(article, start, end, lead):
            headings.append((start, body, line.strip()))
        elif _is_marked_title(line, lead):
            breaks.append(start)
        elif (match := _AUTHOR.match(line)) and (body := _first_named(article, start + match.start(1), end)):
            authors.append((end, body))

    # A second heading line for the committee whose part is running (a photo caption, a subtitle)
    # continues that part.
    headings = _first_of_runs(headings, lambda h: h[1])
    sections: list[Section] = []
    if len({body for _, body, _ in headings}) >= 2:
        if headings[0][0] > first:
            sections.append(_intro(article, first, headings[0][0]))
        heading_starts = {h[0] for h in headings}
        starts = sorted(heading_starts | {b for b in breaks if b > headings[0][0]})

        def next_start(after: int) -> int:
            index = bisect_right(starts, after)
            return starts[index] if index < len(starts) else last

        for start, body, heading in headings:
            end = next_start(start)
            sections.append(Section(len(sections), start, end, heading, body))
            if end < last and end not in heading_starts:  # a part about no committee
                sections.append(Section(len(sections), end, next_start(end), None, None))
        return sections
    signed = authors if len({body for _, body in authors}) >= 2 else credits
    if len({body for _, body in signed}) >= 2:
        begin = first
        for end, body in signed:
            sections.append(Section(len(sections), begin, end, None, body))
            begin = end
        tail = _lines_in(article, begin, last)
        if sum(e - s for s, e in tail) > 200:
            sections.append(Section(len(sections), begin, last, None, infer_body(article, begin, last)))
        return sections
    # A roundup with no headings at all: news paragraphs that each open with another committee as
    # their subject ("近日，甲县政协…" / "乙区政协…"). Three such paragraphs naming three committees make
    # a roundup; a single report that opens one paragraph with a visiting committee does not.
    leads = [
        (start, body)
        for start, end in article.kept
        if (folded.find("政协", start, min(end, start + 50)) >= 0 or folded.find(":", start, min(end, start + 14)) >= 0)
        and (body := _lead_body(article, start, end))
    ]
    if not _is_roundup(leads):
        # Or one paragraph that runs through them: "甲县政协…。乙县政协…；丙县政协…。"
        leads = _sentence_leads(article)
    if _is_roundup(leads):
        leads = [(_titled_from(article, start), body) for start, body in leads]
        if leads[0][0] > first:
            sections.append(_intro(article, first, leads[0][0]))
        merged = _first_of_runs(leads, lambda lead: lead[1])
        for i, (start, body) in enumerate(merged):
            end = merged[i + 1][0] if i + 1 < len(merged) else last
            sections.append(Section(len(sections), start, end, None, body, inferred=True))
        return sections
    strong = [body for _, body, _ in headings] + [body for _, body in authors]
    return [Section(0, first, last, None, infer_body(article, first, last, strong))]


def _titled_from(article: Article, start: int) -> int:
    """Where a part led by its committee begins: at a short title line right above the paragraph
    ("建言与协商双向发力" over "某市政协…"), which names no committee and ends no sentence."""
    index = bisect_right(article.kept, (start, -1)) - 1
    if index < 0 or article.kept[index][1] > start:
        return start  # the lead is not at a line start, or no line comes before it
    line_start, line_end = article.kept[index]
    line = article.folded[line_start:line_end].strip()
    if 0 < len(line) <= 30 and line[-1] not in SENTENCE_END and "政协" not in line and line_start >= article.header_end:
        return line_start
    return start


def _is_roundup(leads: list[tuple[int, str]]) -> bool:
    """Three or more sister committees (of one level) each opening a part. A committee of another
    level (the province over its cities) then opens a part of its own, but one visitor in a
    single report makes no roundup."""
    by_level = Counter(level_of(body) for body in {body for _, body in leads})
    return len(leads) >= 3 and any(count >= 3 for count in by_level.values())


_SENTENCE_START = re.compile(r"[。;:!?]\s*")


def _sentence_leads(article: Article) -> list[tuple[int, str]]:
    """Sentences that open with a committee as their subject, at any point of a paragraph."""
    leads: list[tuple[int, str]] = []
    for start, end in article.kept:
        if article.folded.count("政协", start, end) < 2:
            continue  # a paragraph naming one committee at most opens no second part
        found = [
            (at, body)
            for stop in _SENTENCE_START.finditer(article.folded, start, end)
            if (at := stop.end()) < end
            and article.folded.find("政协", at, min(end, at + 40)) >= 0
            and (body := _lead_body(article, at, end))
        ]
        if found and (body := _lead_body(article, start, end)):
            found.insert(0, (start, body))  # the paragraph's own opening sentence
        leads += found
    return leads


@per_article
def article_sections(article: Article) -> tuple[Section, ...]:
    """`split_sections`, once per article: planning and grounding both need an article's sections,
    and splitting scans every line of the page for headings."""
    return tuple(split_sections(article))
