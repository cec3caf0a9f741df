"""Numbers as Chinese reports write them: Arabic and Chinese numerals, 万/亿, decimals, %, the
approximation words (余/多/近/约/以上 ...) that make a figure approximate, the measure words counts
are written with, and years named by a milestone (二十大开局之年)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .text import CJK, CN_NUMERAL, HEDGE_AFTER, HEDGE_BEFORE, HEDGE_SUFFIX, UNITS

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL_UNITS = {"十": 10, "百": 100, "千": 1000}
_BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
_MULTIPLIERS = {"千": 1000, **_BIG_UNITS}  # after Arabic digits: 5千多个, 1.2万人次

NUMBER = re.compile(
    r"(?P<arabic>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<mult>[千万亿])?"
    r"|(?P<cn>[零〇一二两三四五六七八九十百千万亿]+)"
)


@dataclass(frozen=True)
class Number:
    value: float
    start: int
    end: int
    chinese: bool


def parse_chinese(text: str) -> float | None:
    """`一千一百四十` -> 1140, `两` -> 2, `十` -> 10, `三万五千` -> 35000; None if malformed."""
    if not text or any(ch not in CN_NUMERAL for ch in text):
        return None
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _DIGITS:
            # 二〇二三-style digit strings read digit by digit
            digit = _DIGITS[ch] if digit is None else digit * 10 + _DIGITS[ch]
        elif ch in _SMALL_UNITS:
            section += (1 if digit is None else digit) * _SMALL_UNITS[ch]
            digit = None
        else:
            section += digit or 0
            total += (section or 1) * _BIG_UNITS[ch]
            section, digit = 0, None
    return float(total + section + (digit or 0))


def _simplified_numerals(text: str) -> str:
    """Traditional forms of the numerals and multipliers, one character for one (positions are kept).

    Three replaces, not str.translate: a table lookup for every character costs more on Chinese
    text than three scans that find nothing."""
    return text.replace("萬", "万").replace("億", "亿").replace("兩", "两")


def find_numbers(text: str) -> list[Number]:
    """Every number in text with its value (万/亿/千 applied) and position."""
    text = _simplified_numerals(text)
    numbers = []
    for match in NUMBER.finditer(text):
        if match.group("arabic"):
            value = float(match.group("arabic").replace(",", ""))
            if match.group("mult"):
                value *= _MULTIPLIERS[match.group("mult")]
            numbers.append(Number(value, match.start(), match.end(), False))
        else:
            parsed = parse_chinese(match.group("cn"))
            if parsed is not None:
                numbers.append(Number(parsed, match.start(), match.end(), True))
    return numbers


# After the number: 余/多 directly, 以上/左右 after the unit, or a range (3至5次 is reported as 3, approx).


def is_approx_at(text: str, start: int, end: int) -> bool:
    """Is the number at text[start:end] hedged? 近300, 1140余篇, 3600多人次, 20次以上, 100人左右.

    Not 附近447户 (a place word, not a hedge) and not 300个 followed by unrelated text.
    """
    return bool(HEDGE_AFTER.match(text, end, end + 6) or HEDGE_BEFORE.search(text, max(0, start - 2), start))


def as_number(value: float) -> int | float:
    """1140.0 -> 1140; 99.5 stays."""
    return int(value) if float(value).is_integer() else value


@lru_cache(maxsize=1024)  # grounding reads a metric's quote twice (value, then unit); most quotes fold to themselves
def find_values(value: float, evidence: str) -> tuple[tuple[Number, int], ...]:
    """Everywhere `value` is written in the evidence, each with where its measure word may start.

    `1.2万人次` reads as 12000 (then 人次 follows) or as 1.2 (then 万人次 follows).
    """
    # One pass over the numbers, each read where it is matched; a Number is made only for the ones
    # that give the value (grounding asks this of every metric's quote, which holds a few numbers).
    plain = _simplified_numerals(evidence)
    target = float(value)
    found = []
    for match in NUMBER.finditer(plain):
        arabic = match.group("arabic")
        if arabic:
            written = float(arabic.replace(",", ""))
            mult = match.group("mult")
            number_value = written * _MULTIPLIERS[mult] if mult else written
        else:
            parsed = parse_chinese(match.group("cn"))
            if parsed is None:
                continue
            number_value = parsed
        number_start, number_end = match.span()
        candidates = {number_value: number_end}
        if arabic and mult:
            candidates[written] = match.end("arabic")
        if evidence[number_end : number_end + 1] == "成":  # 四成 = 40 (%)
            candidates[number_value * 10] = number_end
        for candidate, unit_start in candidates.items():
            if abs(candidate - target) < 1e-9 * max(1.0, abs(candidate)):
                found.append((Number(number_value, number_start, number_end, not arabic), unit_start))
                break
    return tuple(found)


def find_value(value: float, evidence: str) -> Number | None:
    """Where `value` is first written in the evidence, if it is."""
    found = find_values(value, evidence)
    return found[0][0] if found else None


# Between a number and its measure word: a range's upper end (3至5次), a hedge (120余件), a classifier
# before a unit of time (3个小时).
_CJK = re.compile(f"[{CJK}]")
_BEFORE_UNIT = re.compile(rf"\s*(?:[—\-~～至到]\s*[\d.]+\s*)?[{HEDGE_SUFFIX}]?\s*")


def unit_at(evidence: str, unit_start: int, unit: str) -> str | None:
    """The measure word written at `unit_start` (after a range or hedge): `unit` itself when the text
    has it there, else the longest known measure word there (a correction), else None.

    `evidence` and `unit` are compared as written; fold both first (`article.fold_text`).
    """
    at = _BEFORE_UNIT.match(evidence, unit_start)
    start = at.end() if at else unit_start
    starts = [start, start + 1] if evidence[start : start + 1] == "个" else [start]
    unit = unit.strip()
    for position in starts:
        if unit and evidence.startswith(unit, position):
            return unit
        if unit == "%" and evidence[position : position + 1] == "成":  # 四成 read as 40 (%)
            return unit
    for position in starts:
        for word in UNITS:  # longest first
            if evidence.startswith(word, position):
                return "%" if word == "％" else word
    if unit == "个" and _CJK.match(evidence, start):
        return unit  # 30市州区县: the general classifier, which the page leaves out before a noun
    return None


def value_readable(value: float, unit: str, evidence: str) -> tuple[bool, bool]:
    """Can `value` (in `unit`) be read from the evidence? Returns (readable, approx within the quote)."""
    number = find_value(value, evidence)
    return (True, is_approx_at(evidence, number.start, number.end)) if number else (False, False)


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


@lru_cache(maxsize=16)
def anchor_year(text: str) -> int | None:
    """A year named by a dated milestone rather than digits (二十大开局之年 -> 2023)."""
    if match := _CONGRESS_START.search(text):
        year = _congress_year(match.group(1))
        if year:
            return year + 1
    if match := _PLAN.search(text):
        return _plan_year(match.group(1), match.group(2))
    return None
