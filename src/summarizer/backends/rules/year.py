"""The reported year, from the strongest signal the article gives.

Order: a year in the headline; a `XXXX年…工作` phrase leading the section; the published date
(with 今年 / 去年 / 过去一年 resolved against it); anniversaries of the Party congress and the
five-year plan (`二十大…开局之年`); the year the text cites most.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple

from ...numbers import anchor_year

# A year not preceded by a digit. In _YEAR, run over whole pages, the check looks back from after the
# century (`(?<!\d..)`) instead of sitting at the start, so the pattern opens with 19|20 and the regex
# engine skips straight to a page's 1s and 2s rather than trying it at every character (4x faster).
_YEAR = re.compile(r"((?:19|20)(?<!\d..)\d{2})\s*年")
_LEAD_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年(?:度)?[^,。;:!?,;:\n\d]{0,6}?(?:工作|回顾|总结|计划|要点|履职)")


def cited_year(text: str, latest: int | None = None) -> int | None:
    """The year the text names most (the latest on a tie), ignoring years after `latest`."""
    counts = Counter(int(y) for y in _YEAR.findall(text) if latest is None or int(y) <= latest)
    if not counts:
        return None
    return max(counts, key=lambda y: (counts[y], y))


_FULL_DATE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
# The century first, outside the alternation, for the same reason as _YEAR.
_DATES = re.compile(r"(?:19|20)\d{2}(?:\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|[-./]\d{1,2}[-./]\d{1,2})")
# What an annual review says of the year behind it (a work report given at the next year's session).
_REVIEW = re.compile(
    r"过去一年|过去的一年|过去的(?:19|20)\d{2}年|一年来|去年|上一年|回顾|工作报告|工作情况的报告|"
    r"届[一二三四五六七八九十]+次会议以来"
)
# What a plan says of the year ahead.
_PLAN_WORDS = re.compile(r"工作要点|工作计划|协商计划|今年将|今年要|新的一年|重点抓好|计划(?:组织|开展|召开|安排|举办)")
_YEARBOOK = re.compile(r"年鉴")


# Dates that name a history, not the reported work: 1949年9月21日人民政协成立, 2019年3月1日启动以来.
_HISTORY_AFTER = re.compile(r"[^,。;!?\n]{0,12}?(?:成立|周年|纪念|诞辰|以来|启动|召开的第一)")


# The article-wide look-ups below are asked once per section with the same article text: cached.
@lru_cache(maxsize=16)
def _event_years(text: str) -> tuple[int, ...]:
    """Years of the events a text dates in full, leaving out dates of anniversaries and histories."""
    return tuple(
        int(match.group(1)) for match in _FULL_DATE.finditer(text) if not _HISTORY_AFTER.match(text, match.end())
    )


@lru_cache(maxsize=16)
def _without_dates(text: str) -> str:
    return _DATES.sub("", text)


class _HeadlineReading(NamedTuple):
    published: str | None  # the page's date, or the date a report names in its headline
    year: int | None  # the year the headline names (a yearbook's less one), which decides outright
    plan: bool  # the headline announces a plan (工作要点, 今年将 ...)
    review: bool  # the headline announces a review (工作报告, 过去一年 ...)


@lru_cache(maxsize=16)
def _read_headline(headline: str, published: str | None) -> _HeadlineReading:
    """What the headline says about the year: the same for every section of an article, so read once
    (a roundup has thousands of sections)."""
    dated = _FULL_DATE.search(headline)
    if dated and not published:  # "——2024年1月15日在…会议上": when the report was given
        published = f"{int(dated.group(1)):04d}-{int(dated.group(2)):02d}-{int(dated.group(3)):02d}"
    year = None
    if match := _YEAR.search(_without_dates(headline)):
        year = int(match.group(1)) - (1 if _YEARBOOK.search(headline) else 0)
    return _HeadlineReading(published, year, bool(_PLAN_WORDS.search(headline)), bool(_REVIEW.search(headline)))


def infer_year(headline: str, section_text: str, article_text: str, published: str | None) -> int | None:
    """Best guess at the year whose work a section reports.

    A year the headline names wins (a yearbook's title year is the year after the one it records);
    then a year leading the section (`2023年，…`). With a publication date, an annual review
    published January to April reports the year before, as does a section that cites only that year;
    anything else reports the year it was published. Without a date: milestones, then the year the
    text cites most.
    """
    reading = _read_headline(headline, published)
    published = reading.published
    if reading.year is not None:
        return reading.year
    if match := _LEAD_YEAR.search(section_text.lstrip()[:80]):
        return int(match.group(1))
    if published:
        year, month = int(published[:4]), int(published[5:7])
        for text in (section_text, article_text):
            # Events dated in full (2019年4月10日) in one earlier year: a page reposted later.
            event_years = set(_event_years(text))
            if event_years:
                if len(event_years) == 1 and year - 10 <= (event := event_years.pop()) < year - 1:
                    return event
                break
        # Only the counts of this year and the last matter: read as ints, counted without a Counter.
        cited = [int(y) for y in _YEAR.findall(_without_dates(section_text))]
        last_year, this_year = cited.count(year - 1), cited.count(year)
        if last_year >= 2 and not this_year:
            return year - 1  # the section is about last year's work, whenever it was published
        if month <= 4 and not reading.plan:
            # Weigh the year behind (review words, citations of it) against the year ahead.
            behind = len(_REVIEW.findall(section_text)) + (2 if reading.review else 0) + last_year
            ahead = len(_PLAN_WORDS.findall(section_text)) + this_year
            if behind > ahead:
                return year - 1
        return year
    for text in (section_text, article_text):
        if (anchored := anchor_year(text)) is not None:
            return anchored
        # An undated page (a list page, a reposted item): the year of the events it dates in full,
        # then the year it cites most.
        events = Counter(_event_years(text))
        if events:
            return max(events, key=lambda y: (events[y], y))
        if (most := cited_year(_without_dates(text))) is not None:
            return most
    return None
