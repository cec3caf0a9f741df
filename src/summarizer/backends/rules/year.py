"""The reported year, from the strongest signal the article gives.

Order: a year in the headline; a `XXXX年…工作` phrase leading the section; the published date
(with 今年 / 去年 / 过去一年 resolved against it); anniversaries of the Party congress and the
five-year plan (`二十大…开局之年`); the year the text cites most.
"""

from __future__ import annotations

import re
from collections import Counter

from ...numbers import parse_chinese

_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年")
_LEAD_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年(?:度)?[^,。;:!?,;:\n\d]{0,6}?(?:工作|回顾|总结|计划|要点|履职)")
# 党的二十大 (2022) -> congress N is held in 2022 - 5 * (20 - N) from the 12th (1982) on.
_CONGRESS_START = re.compile(r"([一二三四五六七八九十]{2,3})大[^。!?\n]{0,20}?开局之年")
_PLAN = re.compile(r"“?([一二三四五六七八九十]{2,3})五”?[^。!?\n]{0,12}?(开局之年|收官之年)")


def _congress_year(numeral: str) -> int | None:
    number = parse_chinese(numeral)
    if number is None or not 12 <= number <= 30:
        return None
    return int(2022 - 5 * (20 - number))


def _plan_year(numeral: str, which: str) -> int | None:
    number = parse_chinese(numeral)  # 十四五: the 14th plan, 2021-2025
    if number is None or not 6 <= number <= 20:
        return None
    first = int(2021 + 5 * (number - 14))
    return first if which == "开局之年" else first + 4


def anchor_year(text: str) -> int | None:
    """A year named by a dated milestone rather than digits (二十大开局之年 -> 2023)."""
    if match := _CONGRESS_START.search(text):
        year = _congress_year(match.group(1))
        if year:
            return year + 1
    if match := _PLAN.search(text):
        return _plan_year(match.group(1), match.group(2))
    return None


def cited_year(text: str, latest: int | None = None) -> int | None:
    """The year the text names most (the latest on a tie), ignoring years after `latest`."""
    counts = Counter(int(y) for y in _YEAR.findall(text) if latest is None or int(y) <= latest)
    if not counts:
        return None
    return max(counts, key=lambda y: (counts[y], y))


_FULL_DATE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")


def infer_year(headline: str, section_text: str, article_text: str, published: str | None) -> int | None:
    """Best guess at the year whose work a section reports."""
    dated = _FULL_DATE.search(headline)
    if dated and not published:  # "——2024年1月15日在…会议上": when the report was given
        published = f"{int(dated.group(1)):04d}-{int(dated.group(2)):02d}-{int(dated.group(3)):02d}"
    if match := _YEAR.search(_FULL_DATE.sub("", headline)):
        return int(match.group(1))
    if match := _LEAD_YEAR.search(section_text.lstrip()[:80]):
        return int(match.group(1))
    if published:
        year, month = int(published[:4]), int(published[5:7])
        if "今年" not in article_text and re.search(r"去年|过去一年|上一年", article_text) and month <= 3:
            return year - 1
        return year
    for text in (section_text, article_text):
        if (anchored := anchor_year(text)) is not None:
            return anchored
    return cited_year(section_text) or cited_year(article_text)
