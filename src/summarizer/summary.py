"""An extractive summary: the section's opening statement about its committee, cut to 120 characters.

The rules backend writes its summaries so; grounding writes one so for any backend whose summary
says what the article does not.
"""

from __future__ import annotations

import re

from .article import Article, Ranges
from .text import SENTENCE

MAX_CHARS = 120
# Shared by every part that has no ranges to skip (most parts of a roundup): never changed once made.
NO_RANGES = Ranges([])
_DATELINE = re.compile(
    r"(?:本报讯|本网讯|讯|[\u4e00-\u9fff]{2,12}(?:网|报|社|台)\s*\d{1,2}月\d{1,2}日电)?\s*(?:\([^)]{0,30}\))?\s*"
    r"(?:\d{1,2}月\d{1,2}日\s*[,,]?)?\s*"
)


def _shorten(sentence: str, folded: str) -> str:
    """Cut a long sentence at its last clause break before the limit (`folded` is it, punctuation folded)."""
    if len(sentence) <= MAX_CHARS:
        return sentence
    cut = max(folded.rfind(ch, 0, MAX_CHARS - 1) for ch in ",;、")
    return (sentence[:cut] if cut > 40 else sentence[: MAX_CHARS - 1]) + "。"


def summarise_section(article: Article, start: int, end: int, body: str, skip: list[tuple[int, int]]) -> str:
    """The first reporting sentence that names the committee (or says 政协), else the first one."""
    place = body.removesuffix("政协")
    first = first_folded = ""
    skipped = Ranges(skip) if skip else NO_RANGES
    for match in SENTENCE.finditer(article.folded, start, end):
        if match.start() in skipped:
            continue
        folded = match.group(0).strip()
        if len(folded) < 20 or folded.startswith(("“", "——")) or folded[-1] not in "。!?":
            continue
        at = article.folded.index(folded, match.start())
        if lead := _DATELINE.match(folded):  # 本报讯 3月15日, / 人民政协网7月12日电 (通讯员 某某)
            at, folded = at + lead.end(), folded[lead.end() :]
        sentence = article.text[at : at + len(folded)]
        if not first:
            first, first_folded = sentence, folded
        if place in sentence or "政协" in sentence:
            return _shorten(sentence, folded)
    return _shorten(first, first_folded)


def compose_summary(body: str, year: int | None, lead: str, initiatives: list[str]) -> str:
    """Body and year, then what it set up and ran: the top initiatives in the article's own words.

    Joined, these say more than a lead sentence usually does; with no initiatives, the lead it is.
    """
    head = f"{body}{year}年" if year else body
    parts = [p for p in initiatives[:4] if p]
    if not parts:
        return lead
    text = head + ":" + ",".join(parts)
    if len(text) > MAX_CHARS - 1:
        cut = text.rfind(",", 0, MAX_CHARS - 1)
        text = text[:cut] if cut > len(head) + 10 else text[: MAX_CHARS - 1]
    return text + "。"
