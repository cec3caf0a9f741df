"""Key initiatives by rule: what the committee set up or ran, as a verb and a named thing.

A candidate is a clause with an action verb (建立/出台/制定/构建/打造/搭建/推行/实施/举办/开展 ...)
whose object carries a name (《…》, “…”) or ends in a mechanism word (制度, 机制, 平台, 工作室 ...);
a named programme or document with no verb before it (“某某”品牌, 《关于…的提案》); or an event
reported as the subject (某某座谈会在某地召开). Candidates are scored (documents and new mechanisms
first), deduplicated and capped; a part with fewer than three gets its plain actions up to three.
Actions of the Party committee or the government are not the committee's own.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple

from ...article import Ranges
from ...places import canonical_body
from ...summary import NO_RANGES
from ...text import CJK, HEDGE_SUFFIX, QUOTE_MARKS

_STRONG = (
    "建立",
    "出台",
    "制定",
    "构建",
    "打造",
    "搭建",
    "推行",
    "创建",
    "设立",
    "开办",
    "开设",
    "启动",
    "发起",
    "成立",
    "组建",
    "印发",
    "编制",
    "修订",
    "实行",
    "推出",
    "创新",
    "首创",
    "建成",
    "上线",
    "编印",
    "制发",
    "探索",
    "揭牌",
    "建强",
    "开通",
    "推广",
    "创办",
    "签订",
    "聘请",
    "遴选",
    "出版",
    "编著",
    "推开",
)
_WEAK = (
    "实施",
    "举办",
    "举行",
    "开展",
    "召开",
    "组织",
    "落实",
    "完善",
    "健全",
    "推进",
    "深化",
    "加强",
    "确定",
    "列入",
    "纳入",
    "形成",
    "增开",
    "坚持",
    "开好",
    "做好",
    "发挥",
    "依托",
    "用好",
    "强化",
    "突出",
    "抓实",
    "督办",
    "领衔",
    "发布",
    "报送",
    "转办",
    "参与",
    "选派",
    "走访",
    "推动",
    "帮助",
    "宣讲",
    "指导",
    "通报",
)
_ADOPTING = ("落实", "贯彻", "学习", "坚持", "发挥")  # acting on someone else's document or slogan


def _alternation(words: tuple[str, ...]) -> str:
    """`a|b|...`, longest first, with the words that share a first character grouped (建(?:立|成|强)):
    the regex engine tries an alternation's words one by one at every position, so grouped it tries
    only the few that can start there. Same matches as the plain longest-first alternation."""
    by_first: dict[str, list[str]] = {}
    for word in sorted(words, key=len, reverse=True):
        by_first.setdefault(word[0], []).append(re.escape(word[1:]))
    return "|".join(f"{re.escape(first)}(?:{'|'.join(rests)})" for first, rests in by_first.items())


_VERB = re.compile(_alternation(_STRONG + _WEAK))
_MECHANISM = re.compile(
    r"(?:制度|机制|体系|平台|模式|品牌|工作室|工作站|联络站|活动站|议事厅|议事堂|栏目|智库|台账|清单|方案|办法|意见|规则|"
    r"计划|行动|活动|工程|调研法|工作法|格局|大纲|协商会|推进会|座谈会|研讨会|论坛|讲堂|专题协商|专题调研|课题|"
    r"读书活动|党支部|小组|群组|基地|中心|示范点|联动|督办|调研|协商|视察|监督|评价|考评|述职|备案|"
    r"议事室|专班|监督员|讲坛|书院|刊物|期刊|协议|接待日|重点提案|联络组|社情民意|微建议|会议|讲座)"
)
_MECHANISM_END = re.compile(_MECHANISM.pattern + r"(?:建设|工作)?$")
# The most characters a _MECHANISM_END match spans: only a text's tail needs searching.
_MECHANISM_END_REACH = max(len(word) for word in _MECHANISM.pattern[3:-1].split("|")) + len("建设")
_ABSTRACT_END = re.compile(r"(?:实践|走访)$")
_ABSTRACT = re.compile(r"(?:方式|方法|作用|水平|能力|意识|精神|思想|部署|要求|成效|质效|效能|氛围|优势|基础|导向|原则)")
_SERVING = re.compile(r"(?:聚焦|围绕|助力|助推|服务|紧扣)(?:加快|持续|全面)?$")
_GENERIC_OBJECT = re.compile(
    r"^(?:工作|履职|协商|监督|调研|学习|实践|建设)?(?:机制|制度|体系|平台|工作|活动|模式|方式|方法)$"
)
# A span of time (…的关键之年) or a rank (十个重点之一) is no initiative.
_NOT_A_THING = re.compile(r"之年|之一")
_COUNT_END = re.compile(rf"\d+(?:\.\d+)?[{HEDGE_SUFFIX}]?[{CJK}%]{{1,2}}$")
_VEHICLE = re.compile(r"以([^,。;以为]{3,24}?)为(?:抓手|载体|平台|依托|牵引|突破口)")
_NAMED = re.compile(r"《[^》\n]{2,40}》|“[^”\n]{2,30}”")
_ACTOR = re.compile(r"党委|市委|区委|县委|省委|旗委|州委|盟委|党中央|中共中央|国务院|中办|政府|人大")
# 政协 as the actor, not as the topic (政协工作会议, 政协工作汇报: someone else's meeting about it).
_SELF = re.compile(r"政协(?!工作会议|工作的|工作汇报|工作(?=[,;。\s]|$))")
_MAX_NAME = 20
_FEWEST = 3


class FoundInitiative(NamedTuple):  # a tuple: thousands are made and most are dropped
    name: str
    start: int
    end: int
    score: float


def _ends_in_mechanism(text: str) -> bool:
    """Does a mechanism word (制度, 平台, 工作室 ..., then perhaps 建设/工作) end the text?"""
    return _MECHANISM_END.search(text, max(0, len(text) - _MECHANISM_END_REACH)) is not None


def _has_name(text: str) -> bool:
    """Does the text hold a 《title》 or “name”? (the marks are checked first: most clauses have none)"""
    return ("《" in text or "“" in text) and _NAMED.search(text) is not None


def _may_end_in_count(text: str) -> bool:
    """Can `_COUNT_END` match? Its number ends one to three characters before the end (a measure
    word of one or two, perhaps a hedge before it; a clause holds no line end for `$` to stop
    before); most objects have no digit there."""
    return any(ch.isdecimal() for ch in text[-4:-1])


def _name_for(evidence: str, verb: str) -> str:
    named = _NAMED.findall(evidence) if "《" in evidence or "“" in evidence else []
    rest = evidence[len(verb) :] if evidence.startswith(verb) else evidence
    if named:
        first = named[0]
        tail = rest[rest.find(first) + len(first) :]
        mechanism = _CJK_HEAD.match(tail)
        name = first + (mechanism.group(0) if mechanism and _MECHANISM.search(mechanism.group(0) or "") else "")
    else:
        name = rest
    return _shorten_name(str(name).strip(" ,、").removeprefix("了"))


def _shorten_name(name: str) -> str:
    """At most about 20 characters, never cut inside “…” or 《…》: a whole quoted title is kept,
    anything else is cut at its last 、 or 的 before the limit."""
    if len(name) <= _MAX_NAME:
        return name
    if name[0] in "“《" and (close := name.find("”" if name[0] == "“" else "》")) > 0:
        # a quoted title and the short mechanism word after it (“…”主题实践活动) stay together
        return name if len(name) <= close + 7 else name[: close + 1]
    depth, cut = 0, 0
    for index, ch in enumerate(name[: _MAX_NAME + 1]):
        depth += ch in "“《"
        depth -= ch in "”》"
        if depth == 0 and ch in "、的和及" and index >= 6:
            cut = index
    return name[:cut] if cut else name[:_MAX_NAME]


def _acted_by_other(head: str) -> bool:
    """Is the nearest actor before the verb a Party committee or government, not the 政协?

    Names inside quotes are topics, not actors: 围绕“贯彻自治区党委全会精神”增开一次常委会会议.
    """
    if "“" in head or "《" in head:
        head = _QUOTED.sub("", head)
    if _ACTOR.search(head) is None:
        return False  # most clauses name no actor: no need to look for the 政协
    actor = [m.end() for m in _ACTOR.finditer(head)]
    own = [m.end() for m in _SELF.finditer(head)]
    return not own or actor[-1] > own[-1]


def _balanced(evidence: str) -> bool:
    return evidence.count("“") == evidence.count("”") and evidence.count("《") == evidence.count("》")


def _balanced_prefix(evidence: str) -> str:
    """Cut before a quote or title the scrape broke off: 修订《甲办法》《乙办 -> 修订《甲办法》"""
    if "“" not in evidence and "《" not in evidence:
        return evidence  # most clauses quote nothing
    depth, cut = 0, len(evidence)
    for index, ch in enumerate(evidence):
        if ch in "“《":
            if depth == 0:
                cut = index
            depth += 1
        elif ch in "”》":
            depth -= 1
            if depth == 0:
                cut = len(evidence)
    return evidence[:cut] if depth else evidence


# The last characters _SERVING's words can end with: a head ending otherwise needs no search.
_SERVING_LAST = frozenset("焦绕力推务扣快续面")


def _serving(head: str) -> bool:
    """Does the clause, before its verb, serve someone else's programme (聚焦, 围绕 … right before it)?"""
    head = head.strip()
    return head[-1:] in _SERVING_LAST and _SERVING.search(head) is not None


_QUOTED = re.compile(r"“[^”]*”|《[^》]*》")
_NEWLINE = re.compile("\n")
_CJK_HEAD = re.compile(r"[\u4e00-\u9fff]{0,10}")


def _clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Clauses split at , ; 。 ! ?, line ends and column gaps, never inside “…” or 《…》."""
    # One regex pass per stretch outside quotes rather than a step per mark: the breaks are most of
    # a page's marks, the quote marks few. One loop, no intermediate lists: a roundup splits
    # thousands of two-line parts, where building them cost more than the regex.
    clauses: list[tuple[int, int]] = []
    begin = start
    for stretch_start, stretch_end in _unquoted(text, start, end):
        for mark in _CLAUSE_BREAK.finditer(text, stretch_start, stretch_end):
            at, after = mark.span()
            if at > begin:
                clauses.append((begin, at))
            begin = after
    if end > begin:
        clauses.append((begin, end))
    return clauses


# What ends a clause outside quotes: , ; 。 ! ?, a line end, a tab, two or more spaces (a scraped
# page's columns: 标题  2025-02-10). One character class first, then a lone space dropped by the
# lookbehind and a run taken whole: so the regex engine skips ahead to the next such character, where
# `[…]|  +` would be tried at every position.
_CLAUSE_BREAK = re.compile(r"[\n,。;!?;!?,\t ](?:(?<=[^ ])| +)")
_QUOTE_MARK = re.compile(r"[“《”》]")


def _unquoted(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The [start, end) stretches of text[start:end] outside “…” and 《…》. Quotes nest; a closing
    mark with nothing open counts for nothing, and a line end closes whatever is still open (it
    starts the next stretch, so it still ends a clause)."""
    out, depth, stretch, last = [], 0, start, start
    for mark in _QUOTE_MARK.finditer(text, start, end):
        at = mark.start()
        if depth and (line_end := text.find("\n", last, at)) >= 0:
            depth, stretch = 0, line_end
        if text[at] in "“《":
            if depth == 0:
                out.append((stretch, at))
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                stretch = at + 1
        last = at + 1
    if depth and (line_end := text.find("\n", last, end)) >= 0:
        depth, stretch = 0, line_end
    if depth == 0:
        out.append((stretch, end))
    return out


def _clauses_with_verbs(
    clauses: list[tuple[int, int]], text: str, start: int, end: int
) -> Iterator[tuple[int, int, re.Match[str]]]:
    """The clauses that hold an action verb, each with its first verb: one pass for the verbs and a
    look-up for each, since most clauses have none. (A verb is written in CJK characters only, so
    the match is the one the clause alone would give: it cannot run past the break ending it.)"""
    starts = [clause_start for clause_start, _ in clauses]
    last = -1
    for verb in _VERB.finditer(text, start, end):
        index = bisect_right(starts, verb.start()) - 1
        if index > last and verb.start() < clauses[index][1]:  # the clause's first verb
            last = index
            yield clauses[index][0], clauses[index][1], verb


def find_initiatives(
    text: str,
    start: int,
    end: int,
    skip: list[tuple[int, int]] | None = None,
    limit: int = 10,
    quoted: list[tuple[int, int]] | None = None,
    own: str | None = None,
) -> list[FoundInitiative]:
    """The section's most telling initiatives, best first, at most `limit`; `own` is the committee
    the section reports on (another committee's meeting named in it is not its initiative)."""
    skip_ranges = Ranges(skip) if skip else NO_RANGES
    quoted_ranges = Ranges(quoted) if quoted else NO_RANGES
    candidates: list[FoundInitiative] = []
    plain: list[tuple[int, str, str]] = []  # (start, evidence, verb): named only if used
    clauses = _clauses(text, start, end)
    # Where each clause's sentence starts (after 。 ! ? or a line end): a 政协 named there counts.
    sentence_starts = [start] + [at for at, _ in clauses if text[at - 1 : at] in "。!?\n"]
    for clause_start, clause_end, first_verb in _clauses_with_verbs(clauses, text, start, end):
        if clause_start in skip_ranges:
            continue
        # Offsets into the page from here on; the clause is sliced only where a rule reads it.
        verb_start, verb_word = first_verb.start(), first_verb.group(0)
        if verb_start in quoted_ranges:  # a verb inside “…” names nothing
            body = text[clause_start:clause_end]
            verb = next((v for v in _VERB.finditer(body) if clause_start + v.start() not in quoted_ranges), None)
            if verb is None:
                continue
            verb_start, verb_word = clause_start + verb.start(), verb.group(0)
        # The evidence starts at the verb (never a space), so only its end needs stripping.
        evidence = _balanced_prefix(text[verb_start:clause_end].strip())
        if len(evidence) > 45 and "、" in evidence[30:] and not _has_name(evidence[30:]):
            evidence = evidence[: 30 + evidence[30:].index("、")]  # a long list: keep its head
        limit_chars = 80 if _has_name(evidence) else 60
        if len(evidence) < 5 or len(evidence) > limit_chars or not _balanced(evidence):
            continue
        obj = evidence[len(verb_word) :].lstrip("了")
        # 召开提案办理协商会9次: a tallied activity is still a thing the committee ran; its name is
        # what comes before the count.
        tally = _COUNT_END.search(obj) if _may_end_in_count(obj) else None
        thing = obj[: tally.start()] if tally else obj
        if not thing or thing[:1] in "和与及的" or _GENERIC_OBJECT.match(thing) or _NOT_A_THING.search(obj):
            continue  # 加强和改进… (a fragment), 创新工作机制 (too generic), …的关键之年
        clause_head = text[clause_start:verb_start]
        if _serving(clause_head):
            continue  # 聚焦加快实施“强首府”工程: the committee serves someone else's programme
        named = _has_name(thing)
        mechanism = bool(_MECHANISM.search(thing))
        # 组织委员捐资助学: an action with no named thing, kept in reserve for a part with few named ones
        reserve = not (named or mechanism)
        if reserve and (len(evidence) > 30 or verb_word in _ADOPTING or _ABSTRACT.search(obj)):
            continue
        if _acted_by_other(clause_head) and verb_word != "领衔":
            # 自治区党委印发《…》: the Party committee's act, not the committee's. Party and
            # government leaders 领衔督办 the committee's key proposals: that is the committee's process.
            continue
        if reserve:
            plain.append((verb_start, evidence, verb_word))
            continue
        sentence_start = sentence_starts[bisect_right(sentence_starts, clause_start) - 1]
        score = 2.0 if verb_word in _STRONG else 1.0
        score += 1.5 if "《" in obj else 1.0 if named else 0.0
        score += 1.5 if _ends_in_mechanism(obj) else 0.5 if mechanism else 0.0
        score -= 1.5 if _ABSTRACT.search(obj) or _ABSTRACT_END.search(obj) else 0.0
        score -= 0.5 if len(evidence) > 30 else 0.0
        score += 0.5 if text.find("政协", max(sentence_start, clause_start - 200), clause_end) >= 0 else 0.0
        if verb_word in _ADOPTING and not mechanism:
            score -= 2.0  # 坚持“两个确立”: a slogan followed, not a thing set up
        if verb_word in ("落实", "贯彻", "学习") and "《" in obj:
            score -= 2.0  # carrying out a higher body's document
        score -= 0.005 * len(candidates)  # earlier in the section reads as slightly more central
        candidates.append(
            FoundInitiative(_name_for(evidence, verb_word), verb_start, verb_start + len(evidence), score)
        )
    candidates += _named_mentions(text, start, end, skip_ranges, len(candidates))
    for match in _clause_matches(_HELD, _HELD_END, _HELD_REACH, text, start, end):  # 全市政协主席座谈会在某地召开
        subject = match.group(1)
        if match.start() not in skip_ranges and not _acted_by_other(subject) and not _held_by_other(subject, own):
            candidates.append(FoundInitiative(_shorten_name(subject), match.start(1), match.end(), 2.5))
    for match in _clause_matches(_LED, _LED_END, _LED_REACH, text, start, end):  # 由市委、市政府领导领衔督办
        if match.start() not in skip_ranges:
            name = _shorten_name(match.group(1).removeprefix("由"))
            candidates.append(FoundInitiative(name, match.start(1), match.end(1), 3.0))
    for match in _VEHICLE.finditer(text, start, end):  # 以委员工作室为载体
        if match.start() in skip_ranges or _ABSTRACT.search(match.group(1)):
            continue
        candidates.append(FoundInitiative(_shorten_name(match.group(1)), match.start(), match.end(), 3.0))
    chosen = _select(candidates, text, limit)
    # Every committee a report covers did a few things (labelled 3 to 10 a body): a part with fewer
    # than three named ones gets its plain actions up to three, in the order it reports them.
    for at, said, verb_word in plain:
        if len(chosen) >= min(limit, _FEWEST):
            break
        if not any(at < c.end and c.start < at + len(said) for c in chosen):
            chosen.append(FoundInitiative(_name_for(said, verb_word), at, at + len(said), 0.0))
    return chosen


# A named programme or document written without a verb before it: “书香政协”建设, “某某讲坛”,
# 《关于…的提案》. A quoted name counts with a mechanism word right after it (or ending it); a title
# counts when it names a document (办法, 意见, 提案 ...) or a publication.
_MENTION = re.compile(
    r"“([^”\n]{2,30})”([\u4e00-\u9fff]{0,6}?(?:" + _MECHANISM.pattern[3:-1] + r")(?:建设|工作)?|建设)?"
    r"|《([^》\n]{2,40})》(期刊|杂志|丛书|画册)?"
)
# An event reported with the event as subject: 某某座谈会在某地召开, “某某讲坛”第二讲开讲.
_HELD = re.compile(
    r"(?<=[\n,。;:!?])\s*([^\n,。;:!?]{4,40}?(?:会议|座谈会|协商会|推进会|联席会|论坛|讲坛|讲座|培训班|观摩会|恳谈会)"
    r"(?:第[一二三四五六七八九十\d]{1,3}[讲期次])?)(?:[在于][^\n,。;:!?]{1,12})?(?:召开|举行|开讲|举办|开班|揭牌)(?=[\n,。;!?])"
)
# Key proposals supervised by Party and government leaders, a standing process of the committee,
# written with the leaders as subject: 由市委、市政府领导领衔督办.
_LED = re.compile(r"(?<=[\n,。;:!?])\s*([^\n,。;:!?]{0,24}?领衔督办)")

# Where a _HELD or _LED match can end, and the most characters it spans after its leading spaces:
# subject (40) + event word (3) + 第N讲 (5) + place (13) + verb (2); leaders (24) + 领衔督办 (4).
_HELD_END, _HELD_REACH = re.compile(r"(?:召开|举行|开讲|举办|开班|揭牌)(?=[\n,。;!?])"), 63
_LED_END, _LED_REACH = re.compile("领衔督办"), 28


def _clause_matches(
    pattern: re.Pattern[str], ends: re.Pattern[str], reach: int, text: str, start: int, end: int
) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text, start, end)` for a pattern that starts after a clause break and,
    but for its leading spaces, stays inside one clause, ending where `ends` matches: so it is tried
    only in the `reach` characters (and any spaces) before each end. The plain scan tries it after
    every clause break of the section, which on a long page costs more than the rest of the rule.
    """
    position = start
    for tail in ends.finditer(text, start, end):
        low = max(position, tail.end() - reach)
        while low > position and text[low - 1].isspace():
            low -= 1
        # + 1: the break a pattern may look ahead to
        match = pattern.search(text, low, min(end, tail.end() + 1))
        if match is not None:
            yield match
            position = match.end()


_DOCUMENT_END = re.compile(
    r"(?:办法|意见|方案|要点|规定|细则|条例|计划|报告|提案|决定|规划|制度|规则|纲要|汇编|选编|指引|导引|手册)$"
)
_FOLLOWING = re.compile(r"(?:落实|贯彻|学习|根据|依照|按照|依据|对照|遵照)[^,。;\n]{0,6}$")


_HOLDER = re.compile(r"^\s*((?:中国人民政治协商会议|政协)[^\s,。]{2,16}?委员会|[^\s,。]{0,12}?政协)")


def _held_by_other(subject: str, own: str | None) -> bool:
    """Does an event's subject name another committee as its holder (全国政协十四届二次会议 on a
    county's page: the county's members watched it)?"""
    holder = _HOLDER.match(subject)
    name = canonical_body(holder.group(1)) if holder else None
    return own is not None and name is not None and name != own


def _named_mentions(text: str, start: int, end: int, skip_ranges: Ranges, order: int) -> list[FoundInitiative]:
    found: list[FoundInitiative] = []
    for match in _MENTION.finditer(text, start, end):
        quoted, tail, title, publication = match.groups()
        if match.start() in skip_ranges:
            continue
        if quoted is not None:
            if not (tail or _ends_in_mechanism(quoted)) or _ABSTRACT.search(tail or ""):
                continue
            score = 1.0 + (1.5 if tail and _ends_in_mechanism(tail) else 0.5)
        else:
            if not (publication or _DOCUMENT_END.search(title)):
                continue
            score = 2.0 + (0.5 if publication else 0.0)
        head = text[max(start, match.start() - 12) : match.start()]
        if _FOLLOWING.search(head) or _SERVING.search(head) or _acted_by_other(head):
            continue  # following someone else's document, or serving their programme
        score -= 0.005 * (order + len(found))
        found.append(FoundInitiative(_shorten_name(match.group(0)), match.start(), match.end(), score))
    return found


_SCORE = attrgetter("score")


@lru_cache(maxsize=4096)
def _unquoted_text(text: str) -> str:
    """The text without its quote marks; cached by the string, so a name compared again (with each
    initiative already chosen) is read once, with no memo to build per section (a roundup has
    thousands of sections)."""
    return QUOTE_MARKS.sub("", text)


def _select(candidates: list[FoundInitiative], text: str, limit: int) -> list[FoundInitiative]:
    """Best first, but one per paragraph before a second from any: reports spread their programmes
    over paragraphs, so a long list of mechanisms in one paragraph should not crowd out the rest."""

    if len(candidates) <= 1:
        return candidates[:limit]  # nothing to rank or to tell apart (most parts of a roundup)

    # “四强化” and 「四强化」 are one name. Computed when an item is first compared: most candidates
    # are never compared by name (overlap decides, or the limit is reached first).
    def key(item: FoundInitiative) -> str:
        return _unquoted_text(item.name)

    def said(item: FoundInitiative) -> str:
        return _unquoted_text(text[item.start : item.end])

    def duplicate(item: FoundInitiative, chosen: list[FoundInitiative]) -> bool:
        # an overlapping quote, or the same name in the same words (a repeat); 制定X计划 and 列入X计划 differ
        return any(
            (item.start < c.end and c.start < item.end)
            or (key(item) == key(c) and (said(item) in said(c) or said(c) in said(item)))
            for c in chosen
        )

    ranked = sorted(candidates, key=_SCORE, reverse=True)  # stable: equal scores keep their order
    chosen: list[FoundInitiative] = []
    if ranked[0].score >= 3.0:  # first round: each paragraph's best, if it is good enough
        # Paragraph numbers, counted only across the candidates' own stretch of text (a section of
        # a long page): only whether two are equal matters.
        low = min(c.start for c in candidates)
        high = max(c.start for c in candidates)
        breaks = [m.start() for m in _NEWLINE.finditer(text, low, high)]
        used: set[int] = set()
        for item in ranked:
            if item.score < 3.0 or len(chosen) >= limit:
                break  # ranked by score: none after this one is good enough either
            paragraph = bisect_right(breaks, item.start)
            if paragraph not in used and not duplicate(item, chosen):
                chosen.append(item)
                used.add(paragraph)
    # by identity: equal candidates share a span, so duplicate() tells them apart anyway
    taken = {id(c) for c in chosen}
    for item in ranked:  # then the rest by score
        if len(chosen) >= limit:
            break
        if id(item) not in taken and not duplicate(item, chosen):
            chosen.append(item)
    return sorted(chosen[:limit], key=_SCORE, reverse=True)
