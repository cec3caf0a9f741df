"""The genre's text knowledge in one place: how Chinese government pages are folded for matching,
where sentences end, the words that hedge a number, the measure words counts are written with, the
suffixes of place names and the wrappers of a committee's name. Every other module imports these;
none keeps its own copy.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# --- characters ---------------------------------------------------------------------------------

CJK = "\u4e00-\u9fff"  # the common CJK ideographs, for character classes: f"[{CJK}]"
CN_NUMERAL = "零〇一二两三四五六七八九十百千万亿"  # every character a Chinese numeral is written with
CN_ORDINAL = "一二三四五六七八九十"  # session and plan numbers: 十四届, “十四五”
QUOTE_MARKS = re.compile(r"[“”「」『』\"《》]")

# --- folding ------------------------------------------------------------------------------------

# Full-width punctuation, digits and spaces folded 1:1 to ASCII. The folded text has exactly the length
# of the original, so rules match ASCII patterns on it and quote the original at the same offsets.
_FOLD = {
    0xFF0C: ",",
    0xFF1B: ";",
    0xFF1A: ":",
    0xFF01: "!",
    0xFF1F: "?",
    0xFF08: "(",
    0xFF09: ")",
    0xFF05: "%",
    0xFF5E: "~",
    0xFF0E: ".",
    0xFF0D: "-",
    0x3000: " ",
    0x00A0: " ",
    0xFE50: ",",
    0xFE54: ";",
    0xFE55: ":",
}
_FOLD.update({0xFF10 + i: str(i) for i in range(10)})
# Folded with one str.replace per character the text holds: each is a single pass in C. str.translate
# looks every character up in the table (about 0.4 µs a character on Chinese text), and a regex
# substitution calls back into Python for every comma. No folded character is itself folded, so
# the order of the replacements does not matter.
_FOLD_PAIRS = tuple((chr(code), folded) for code, folded in _FOLD.items())


def _fold_width(text: str) -> str:
    for wide, narrow in _FOLD_PAIRS:
        if wide in text:
            text = text.replace(wide, narrow)
    return text


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # a maintained Traditional -> Simplified table; 10 ms to load, so only when needed

    return opencc.OpenCC("t2s")


def _to_simplified(text: str) -> str:
    """Traditional characters as simplified, keeping the length (政協 -> 政协, 區 -> 区, 縣 -> 县).

    OpenCC converts phrase by phrase; on the rare line where a phrase changes length, that line is
    converted character by character so every offset still points at the same character.
    """
    converted: str = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    lines = []
    for line in text.split("\n"):
        out = _t2s().convert(line)
        if len(out) != len(line):
            out = "".join(ch if len(c := _t2s().convert(ch)) != 1 else c for ch in line)
        lines.append(out)
    return "\n".join(lines)


# Characters that occur only in traditional writing and are common in this genre: a text with none
# of them is not sent through OpenCC (most articles are simplified; this keeps them fast).
_TRADITIONAL = re.compile("[協會區縣國黨員參與議為關於發這經濟們時來對開個過實現將說並從應當體產業務]")


def _has_traditional(text: str) -> bool:
    return _TRADITIONAL.search(text) is not None


def fold_text(text: str) -> str:
    """What rules match on: full-width punctuation, digits and spaces as ASCII and traditional
    characters as simplified, one character for one character (the same offsets as `text`)."""
    folded = _fold_width(text)
    return _to_simplified(folded) if _has_traditional(folded) else folded


# Evidence is located with whitespace removed and all punctuation folded to ASCII (quotes to one
# mark), so a model that writes ， for , or drops a space still quotes the article.
_QUOTE_FOLD = {ord(c): c2 for c, c2 in zip("，；：（）！？“”‘’「」『』【】　", ',;:()!?""\'\'""""[] ', strict=True)}
QUOTE_SKIP = frozenset(" \t\n\r\xa0\u3000\u2002\u2003\u2009\u200b")


def fold_quote_char(ch: str) -> str:
    """One character as evidence matching compares it (full-width ASCII and CJK punctuation folded)."""
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII
        return chr(code - 0xFEE0)
    return ch.translate(_QUOTE_FOLD)


# --- sentences (on folded text: full-width punctuation is ASCII) ---------------------------------

SENTENCE_END = "。!?;"  # a line ending so is a sentence, not a headline or a caption
LINE_CLOSERS = SENTENCE_END + "…”"  # a reporting line closes with one of these; a caption with none
# Pieces a chunk may end after: a sentence or clause with its closing quote (either width).
SENTENCE_PIECE = re.compile(r"[^。!?;!?;]*(?:[。!?;!?;]+[”’」』)]?|$)")
# Whole sentences within a line, for summaries.
SENTENCE = re.compile(r"[^。!?!?\n]+[。!?!?]?")

# --- numbers ------------------------------------------------------------------------------------

HEDGE_SUFFIX = "余多来许"  # 30余件, 100多人: right after the number
# After a number: a hedge word, a range (20-30), or 以上/左右/上下/有余 within a few characters.
HEDGE_AFTER = re.compile(rf"[{HEDGE_SUFFIX}]|\s*[—\-~～至到]\s*\d|[^\d\s,，。;；、]{{0,3}}?(?:以上|左右|上下|有余|多)")
# Before a number: 近/约/超过 ... (but not 附近, 最近, 将 ... as words of their own).
HEDGE_BEFORE = re.compile(r"(?:(?<![附接最邻临就将])近|将近|接近|约|大约|大概|超过|超|逾)$")
# The measure words a count of this genre's work is written with.
# Longest first so 人次 wins over 人 and 件次 over 件.
UNITS = (
    "万人次",
    "人次",
    "件次",
    "场次",
    "个百分点",
    "个小时",
    "平方公里",
    "平方米",
    "万元",
    "亿元",
    "万人",
    "公里",
    "千米",
    "小时",
    "个",
    "件",
    "篇",
    "份",
    "次",
    "场",
    "名",
    "人",
    "位",
    "家",
    "项",
    "条",
    "期",
    "批",
    "户",
    "所",
    "处",
    "座",
    "间",
    "支",
    "组",
    "类",
    "天",
    "本",
    "册",
    "部",
    "套",
    "台",
    "辆",
    "张",
    "幅",
    "首",
    "轮",
    "门",
    "元",
    "亩",
    "米",
    "吨",
    "%",
    "％",
)

# --- places and committees ----------------------------------------------------------------------

# Suffixes of administrative divisions, longest first, so 自治区 wins over 区 and 新区 over 区.
PLACE_SUFFIXES = (
    "自治区",
    "自治州",
    "自治县",
    "自治旗",
    "特别行政区",
    "地区",
    "新区",
    "省",
    "市",
    "州",
    "盟",
    "区",
    "县",
    "旗",
)
PLACE_SUFFIX = "|".join(PLACE_SUFFIXES)
SESSION = rf"(?:第?[{CN_ORDINAL}0-9]+届)"  # 第十四届, 14届: a committee's term, not a place
# What wraps a place into a committee's name: 中国人民政治协商会议X委员会, 政协X委员会, X政协.
COMMITTEE_WRAPPERS = re.compile(r"^(?:中国人民政治协商会议|政协)|(?:委员会|政协)$")
