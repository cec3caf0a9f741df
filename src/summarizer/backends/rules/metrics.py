"""Metrics by rule: a number, its measure word and the thing counted, in either order.

`86件重点督办提案` (number first) and `形成调研报告14篇` / `委员满意率为99.5%` (thing first).
Left out: dates and times, ordinals (第N, 届), anniversaries (周年), numbers inside quotes or book
titles (slogans and document names), frequencies of a norm (每月至少1次), phone and ICP numbers,
and small Chinese numerals, which in this genre are almost always part of a slogan (两个确立).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from ...article import Ranges
from ...numbers import as_number, is_approx_at, parse_chinese
from ...summary import NO_RANGES
from ...text import UNITS

_UNIT_RE = "|".join(re.escape(u) for u in UNITS)
_CN_NUM = (
    r"(?:[一二两三四五六七八九]?十[一二三四五六七八九]?"  # 十, 二十, 十二
    r"|[一二两三四五六七八九][百千万][零一二两三四五六七八九十百千万]*"  # 一百二十, 三千
    r"|[百千](?=[余多]))"  # 百余名: a bare 百 counts only when hedged (百项工程 is a figure of speech)
)
_METRIC = re.compile(
    rf"(?P<pre>(?<![附接最邻临就])近|约|超过|超|逾|将近|共计|累计)?"
    rf"(?<![\d.])(?P<num>\d{{1,3}}(?:,\d{{3}})+(?![\d.])|\d+(?:\.\d+)?|{_CN_NUM})(?:\s*(?P<range>[—\-~～至到])\s*(?P<upper>\d+(?:\.\d+)?))?"
    rf"(?P<approx>余|多)?(?P<unit>{_UNIT_RE})(?P<post>以上|左右|多)?"
)
# What may not follow a unit when it is really part of a date, ordinal or fixed phrase.
_BAD_AFTER = re.compile(r"(?:年|月|日|周年|届|岁|号|版|时|分|秒|字|大|方面|层面|维度|环节|阶段|步骤|百分点)")
_BAD_BEFORE = re.compile(r"(?:第|每|编号|电话|ICP备|传真|邮编|周年|\d|[a-zA-Z.])$")
_DELIM = set(",。;:!?、()()“”《》【】[]…—\n\t ,.;:!?\"'")
_STOPS = re.escape("".join(sorted(_DELIM - {"、"})))
# The last delimiter or digit before a position (search with endpos = that position).
_LAST_STOP = re.compile(rf"[{_STOPS}\d](?=[^{_STOPS}\d]*$)")
_TWO_CJK = re.compile(r"[\u4e00-\u9fff][^\u4e00-\u9fff]*[\u4e00-\u9fff]")
# Where the counted thing ends: a verb or a joining word after at least two characters of noun.
_VERB_AFTER = re.compile(
    r"通过|参与|参加|得到|获得|列入|开展|进行|实现|涉及|分别|全部|先后|累计|惠及|覆盖|达到|深入|作为|建立|组织|"
    r"提交|形成|一并|承办|联动|相关|(?<![工合协创写操运])作|被|的|和|与|及|等|在|将|向|从|于|把|让|给|到|由|是|"
    r"已|均|都|也|还|为|每"
)
_VERB_BEFORE = re.compile(
    r"参与|作为|通过|开展|召开|组织|举办|举行|形成|提交|完成|培训|推动|办理|承办|解决|收到|建立|设立|打造|组建|"
    r"精选|确定|撰写|反映|报送|征集|化解|协调|帮助|走访|接待|受理|共有|共"
)
_LEAD_WORDS = re.compile(
    r"^(?:全年|年内|今年以来|今年|目前|截至目前|迄今|累计|共计|共|先后|已经|已|还|并|同时|其中|此外|另外|全市|全区|全县|全省|"
    r"形成|召开|开展|组织|举办|举行|提交|完成|收到|立案|办理|承办|推动|建立|设立|打造|组建|成立|选派|邀请|发放|撰写|报送|"
    r"编发|征集|处理|化解|解决|协调|帮助|走访|慰问|参与|参加|接待|受理|确定|精选|围绕|聚焦|推荐|采纳|"
    r"达|为|是|在|对|将|把|与|和|及|了|的|、)+"
)
_FILLER = re.compile(
    r"^(?:其中|此外|另外|同时|共计|共|累计|全年|年内|今年以来|今年|目前|截至目前|迄今|先后|已经|已|还|并|、)+$"
)
_TRAIL = (
    "为",
    "达",
    "达到",
    "共",
    "计",
    "总计",
    "累计",
    "约",
    "近",
    "超过",
    "不少于",
    "不低于",
    "至少",
    "有",
    "了",
    "分别",
    "已",
    "的",
    "是",
)
_TRAIL_WORDS = re.compile(rf"(?:{'|'.join(_TRAIL)})+$")
# A phrase ends in a trailing word only if its last character ends one (or a line end follows it):
# most do not, and the search tries the pattern at every character.
_TRAIL_LAST = frozenset(word[-1] for word in _TRAIL) | {"\n"}
_LAST_BREAK = re.compile(r"[,。;!?\n][^,。;!?\n]*$")  # the last clause break before a position
_UNIT_LIST_HEAD = re.compile(rf"^(?:{_UNIT_RE})?、")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,6}")
_FREQUENCY = re.compile(r"每(?:年|月|季度?|周|半年|天|日|次)[^,。;!?]{0,12}$")


class FoundMetric(NamedTuple):  # a tuple: cheaper to make than a frozen dataclass, one per figure
    name: str
    value: int | float
    unit: str
    approx: bool
    start: int
    end: int


_QUOTED = re.compile(r"“[^”\n]*”|《[^》\n]*》|「[^」\n]*」|『[^』\n]*』|〈[^〉\n]*〉|\"[^\"\n]*\"")


def quoted_ranges(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """[start, end) of every “…”, 《…》 and similar span in text[start:end] (never past a line end)."""
    return [m.span() for m in _QUOTED.finditer(text, start, len(text) if end is None else end)]


def _noun_after(text: str, start: int, end: int) -> str:
    """The counted thing written right after the unit: 86件[重点督办提案]、…"""
    index = start
    while index < end and index - start < 14:
        ch = text[index]
        if ch in "“(" and index - start < 12:  # 3次“政协+法院”季度工作分析会; 委员工作站(室)
            close = text.find("”" if ch == "“" else ")", index, end)
            if close > 0:
                index = close + 1
                continue
        if ch in _DELIM or ch.isdigit():
            break
        if index - start >= 2 and _VERB_AFTER.match(text, index):
            break
        index += 1
    noun = text[start:index]
    return "" if _VERB_AFTER.match(noun) else noun


def _noun_before(text: str, end: int, floor: int) -> tuple[str, int]:
    """The counted thing written before the number: 形成[调研报告]14篇, [委员满意率]为99.5%.

    Returns the name and where the quoted evidence should start.
    """
    start = end
    while start > floor and end - start < 16:
        stop = _LAST_STOP.search(text, max(floor, end - 16), start)
        if stop is None:
            start = max(floor, end - 16)
            break
        if text[stop.start()] == "”":  # 开展[“请你来协商”活动]16场: a quoted name is part of the thing counted
            opening = text.rfind("“", floor, stop.start())
            if opening >= 0 and end - opening <= 24:
                start = opening
                continue
        if text[stop.start()] == ")" and stop.start() == end - 1:
            # 建成[委员工作站(室)]28个: a short aside right before the number belongs to the thing
            opening = text.rfind("(", max(floor, stop.start() - 4), stop.start())
            if opening >= 0:
                start = opening
                continue
        start = stop.start() + 1
        break
    phrase = text[start:end]
    trail = _TRAIL_WORDS.search(phrase) if phrase[-1:] in _TRAIL_LAST else None
    core = phrase[: trail.start()] if trail else phrase
    parts = _VERB_BEFORE.split(core)
    if len(parts) > 1 and len(parts[-1]) >= 2:
        core = parts[-1]
    if _FILLER.match(core):  # 其中12条: only filler before the number, nothing counted
        return "", end
    lead = _LEAD_WORDS.match(core)  # anchored at the start: the one match a substitution would make
    stripped = core[lead.end() :] if lead else core
    name = stripped if len(stripped) >= 2 else core
    if "、" in name and len(name) > 12:
        name = name.split("、")[-1]
    if "、" in name:  # 8次、[对口协商]22次
        name = _UNIT_LIST_HEAD.sub("", name).strip("、")
    if not _TWO_CJK.search(name):
        return "", end
    # The quote starts where the name does: 形成[调研报告14篇]
    return name, text.rfind(name, start, end)


def _value(raw: str, hedged: bool = False) -> float | None:
    if raw[0].isdigit():
        return float(raw.replace(",", ""))  # 1,200: a thousands separator
    value = parse_chinese(raw)
    if value is None or value < 10:
        return None  # 两个确立, 三个清单: small Chinese numerals name slogans, not counts
    if raw[0] in "百千万" and not hedged:
        return None  # 百项重点工作: a bare 百 is a figure of speech; 百余人 is a count
    return value


_UNIT_AS = {"％": "%", "个小时": "小时"}  # measure words reported in another form
# Names a figure may get that count no thing (13个具体…, 十个重点之一, 多个…).
_NOT_COUNTED = frozenset(("具体", "主要", "重要", "重点", "不同", "相关", "有关", "各类", "多个"))
# Where a figure can start. In `_CN_NUM` a digit (一…九) starts a number only before 十/百/千/万, and
# 百/千 only before 余/多: most such characters in a report are words (统一, 一些, 千方百计), and each
# would otherwise cost a failed try of the whole pattern, so the scan passes over them.
_NUMBER_START = re.compile(r"\d|十|[一二两三四五六七八九](?=[十百千万])|[百千](?=[余多])")
_DIGIT_RUN = re.compile(r"[\d.]+")
_PRE_LONGEST = 2  # 超过, 将近, 共计, 累计: the hedge and total words before a number
_PRE_ENDS = frozenset("近约过超逾计")  # the last characters of those words


def _metric_matches(text: str, start: int, end: int) -> Iterator[re.Match[str]]:
    """`_METRIC.finditer`, but tried only where a number starts (the pattern has no literal prefix
    for the regex engine to skip to, so a plain scan tries it at every character)."""
    position = start
    while (hit := _NUMBER_START.search(text, position, end)) is not None:
        at = hit.start()
        longest = min(_PRE_LONGEST, at - max(start, position)) if text[at - 1 : at] in _PRE_ENDS else 0
        for back in range(longest, -1, -1):
            match = _METRIC.match(text, at - back, end)
            if match is not None and match.start("num") == at:
                yield match
                position = match.end()
                break
        else:
            # No figure starts here; a number never starts inside a run of digits either.
            run = _DIGIT_RUN.match(text, at, end)
            position = run.end() if run else at + 1
        if position <= at:
            position = at + 1


def find_metrics(
    text: str,
    start: int,
    end: int,
    skip: list[tuple[int, int]] | None = None,
    quoted: list[tuple[int, int]] | None = None,
    original: str | None = None,
) -> list[FoundMetric]:
    """Every metric in text[start:end]; `skip` are ranges not to read (captions, headings).

    `text` is the folded page; `original`, the page as written, tells a thousands separator (1,200)
    from a full-width comma between clauses (参与委员35，120名群众受益), which fold alike.
    """
    if quoted is None:
        quoted = quoted_ranges(text, start, end)
    excluded = Ranges(quoted + (skip or [])) if quoted or skip else NO_RANGES
    found: list[FoundMetric] = []
    seen: dict[tuple[float, str], list[str]] = {}  # names already reported per (value, unit)
    # Each match's groups and offsets are read once into locals: a roundup runs this for thousands
    # of short parts, where looking them up again per rule costs as much as the rules.
    for found_match in _metric_matches(text, start, end):
        match = found_match
        num = found_match.group("num")
        if "," in num and original is not None and "，" in original[found_match.start("num") : found_match.end("num")]:
            # a clause break, not a thousands separator: the figure is the number after it
            after_break = _METRIC.match(text, found_match.start("num") + num.rindex(",") + 1, end)
            if after_break is None:
                continue
            match, num = after_break, after_break.group("num")
        number_start, number_end = match.span("num")
        if number_start in excluded:
            continue
        match_start, match_end = match.span()
        if (
            _BAD_BEFORE.search(text, max(0, number_start - 6), match_start)
            or text[match_start - 1 : match_start].isdigit()
            or (text[number_start - 1 : number_start] == "数" and not num[0].isdigit())
        ):
            continue
        unit, unit_end = match.group("unit"), match.end("unit")
        if unit not in ("%", "％") and _BAD_AFTER.match(text, unit_end):
            continue
        if unit == "米" and text[unit_end : unit_end + 1] in ("长", "宽", "高", "深"):
            continue  # 300多米长的小巷: a size, not a quantity of work
        lower = max(start, match_start - 40)
        if text.find("每", lower, match_start) >= 0:  # every frequency names 每: most clauses have none
            clause_break = _LAST_BREAK.search(text, lower, match_start)
            clause = text[clause_break.start() + 1 if clause_break else lower : match_start]
            if _FREQUENCY.search(clause):
                continue  # 每月至少召开1次: a standing rule, not a result
        value = _value(num, bool(match.group("approx")))
        if value is None:
            continue
        unit = _UNIT_AS.get(unit, unit)
        # A range (3至5次) is reported by its lower bound, marked approximate.
        approx = is_approx_at(text, number_start, number_end)  # the one rule grounding applies too
        noun = "" if unit == "%" else _noun_after(text, match_end, min(end, match_end + 20))
        skip_de = 0
        if not noun and text[match_end : match_end + 1] == "的":  # 3个小时的[宣讲], 2000平方米的[荒地]
            noun, skip_de = _noun_after(text, match_end + 1, min(end, match_end + 21)), 1
        pre_start = match.start("pre")
        evidence_start = pre_start if pre_start >= 0 else number_start  # a hedge word before the number
        evidence_end = match_end
        if len(noun) >= 2:
            name = noun
            evidence_end = match_end + skip_de + len(noun)
        else:
            name, name_start = _noun_before(text, evidence_start, max(start, evidence_start - 20))
            if len(name) < 2:  # 110人次参与: name it by what follows
                verb = _CJK_RUN.match(text, match_end, match_end + 6)
                if not verb or text[match_end - 1] in "%％" or text[match_end] in "的和与及等":
                    continue  # nothing counted: 13个具体… cut off, or a bare figure
                name = verb.group(0)
                evidence_end = match_end + len(name)
            else:
                evidence_start = min(evidence_start, name_start)
        if name in _NOT_COUNTED or "之一" in name:
            continue  # 十个重点之一: a rank among things, not a count of work
        same_figure = seen.setdefault((value, unit), [])
        if same_figure and any(n[:3] == name[:3] or n in name or name in n for n in same_figure):
            continue  # the same figure repeated later in the text
        same_figure.append(name)
        found.append(FoundMetric(name, as_number(value), unit, approx, evidence_start, evidence_end))
    return found
