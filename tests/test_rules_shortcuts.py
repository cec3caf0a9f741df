"""The rules' speed shortcuts give the answers of the plain code they replace.

Each shortcut (a windowed regex search, a clause split by regex, a grouped alternation, a pattern
rewritten to open with a literal) is compared with the straightforward version, written out here, on
random strings built from the characters the shortcut cares about.
"""

from __future__ import annotations

import random
import re

import pytest

from summarizer import numbers
from summarizer.backends.rules import initiatives, metrics, year


def _random_texts(pieces: list[str], count: int, seed: int, longest: int = 30) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, longest))) for _ in range(count)]


def _bounds(text: str, rng: random.Random) -> tuple[int, int]:
    start = rng.randint(0, len(text))
    return start, rng.randint(start, len(text))


_MARK = re.compile(r"[“《”》\n,。;!?;!?,\t]|  +")


def _plain_clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The clause split as a walk over every mark, depth counted (the code `_clauses` replaced)."""
    out, depth, begin = [], 0, start
    for mark in _MARK.finditer(text, start, end):
        ch, index = mark.group(0)[0], mark.start()
        if ch in "“《":
            depth += 1
        elif ch in "”》":
            depth = max(0, depth - 1)
        elif ch == "\n" or depth == 0:
            if index > begin:
                out.append((begin, index))
            begin = mark.end()
            if ch == "\n":
                depth = 0
    if end > begin:
        out.append((begin, end))
    return out


def test_clauses_split_as_the_mark_by_mark_walk() -> None:
    rng = random.Random(1)
    pieces = [*"“《”》\n,。;!?,\t ab", "  ", "政协", "召开会议"]
    for text in _random_texts(pieces, 20_000, seed=1):
        start, end = _bounds(text, rng)
        assert initiatives._clauses(text, start, end) == _plain_clauses(text, start, end), (text, start, end)


@pytest.mark.parametrize(
    ("pattern", "ends", "reach", "pieces"),
    [
        (
            initiatives._HELD,
            initiatives._HELD_END,
            initiatives._HELD_REACH,
            [
                *("会议", "座谈会", "论坛", "召开", "举行", "揭牌", "在", "于", "第二讲", "政协", "某地", "委员"),
                *("一二三四五六七八九十", "甲乙丙丁戊己庚辛壬癸甲乙丙丁戊己", " ", "  ", "\n", ",", "。", ":", "!"),
            ],
        ),
        (
            initiatives._LED,
            initiatives._LED_END,
            initiatives._LED_REACH,
            [
                "领衔督办",
                "领衔",
                "督办",
                "由",
                "市委、市政府",
                "领导",
                "甲乙丙丁戊己庚辛壬癸",
                " ",
                "  ",
                "\n",
                ",",
                ":",
            ],
        ),
    ],
)
def test_windowed_clause_patterns_find_what_a_full_scan_finds(
    pattern: re.Pattern[str], ends: re.Pattern[str], reach: int, pieces: list[str]
) -> None:
    rng = random.Random(2)
    found = 0
    for text in _random_texts(pieces, 20_000, seed=2, longest=40):
        start, end = _bounds(text, rng)
        plain = [(m.start(), m.span(1), m.end()) for m in pattern.finditer(text, start, end)]
        windowed = [
            (m.start(), m.span(1), m.end()) for m in initiatives._clause_matches(pattern, ends, reach, text, start, end)
        ]
        assert windowed == plain, (text, start, end)
        found += bool(plain)
    assert found > 50  # the strings do hold matches


def test_grouped_verb_alternation_matches_the_plain_one() -> None:
    words = initiatives._STRONG + initiatives._WEAK
    plain = re.compile("|".join(sorted(words, key=len, reverse=True)))
    rng = random.Random(3)
    for text in _random_texts([*words, *"建出开发推创组实", "政协"], 5_000, seed=3):
        start, end = _bounds(text, rng)
        assert [m.span() for m in initiatives._VERB.finditer(text, start, end)] == [
            m.span() for m in plain.finditer(text, start, end)
        ]


def test_mechanism_ending_is_read_from_the_tail() -> None:
    words = initiatives._MECHANISM.pattern[3:-1].split("|")
    for text in _random_texts([*words, "建设", "工作", "的", "甲", "“"], 5_000, seed=4, longest=8):
        assert initiatives._ends_in_mechanism(text) == bool(initiatives._MECHANISM_END.search(text)), text


def test_a_lone_numeral_never_starts_a_figure() -> None:
    for numeral in "一二两三四五六七八九十百千":
        for following in [*"十百千万余多个次人件年的", "", "0"]:
            text = f"共{numeral}{following}项工作"
            if metrics._NUMBER_START.match(text, 1) is None:
                match = metrics._METRIC.match(text, 1)
                assert match is None or match.start("num") != 1, text


def _plain_metric_matches(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Every figure `_METRIC` finds scanning from each character in turn (what `_metric_matches`
    skips ahead through)."""
    found, position = [], start
    while position < end:
        match = next(
            (
                m
                for back in (2, 1, 0)
                if position - back >= start
                and (m := metrics._METRIC.match(text, position - back, end))
                and m.start("num") == position
            ),
            None,
        )
        if match is not None and match.start() >= max(start, found[-1][1] if found else start):
            found.append(match.span())
            position = match.end()
        else:
            position += 1
    return found


def test_figures_found_where_a_number_can_start_are_all_figures() -> None:
    rng = random.Random(8)
    pieces = [
        *"一二两三四五六七八九十百千万余多近约超共计累",
        "12",
        "3.5",
        "件",
        "次",
        "人",
        "个",
        "统一",
        "的",
        ",",
        "1,200",
    ]
    for text in _random_texts(pieces, 10_000, seed=8, longest=12):
        start, end = _bounds(text, rng)
        fast = [m.span() for m in metrics._metric_matches(text, start, end)]
        assert fast == _plain_metric_matches(text, start, end), (text, start, end)


def test_year_patterns_match_as_written_with_the_lookbehind_first() -> None:
    plain_year = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年")
    plain_dates = re.compile(
        r"(?:19|20)\d{2}\s*年\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|(?:19|20)\d{2}[-./]\d{1,2}[-./]\d{1,2}"
    )
    rng = random.Random(5)
    pieces = ["1", "2", "9", "0", "19", "20", "2024", "年", "月", "日", " ", "-", ".", "/", "a", "3"]
    for text in _random_texts(pieces, 20_000, seed=5, longest=14):
        start = rng.randint(0, len(text))
        assert [m.span(1) for m in year._YEAR.finditer(text, start)] == [
            m.span(1) for m in plain_year.finditer(text, start)
        ]
        assert year._DATES.sub("", text) == plain_dates.sub("", text)


def test_noun_phrase_shortcuts_read_as_the_plain_patterns() -> None:
    """The trailing-word search skipped unless the last character can end a trailing word; the
    leading words cut by one anchored match instead of a substitution; the word before a number
    read by a windowed search instead of a slice; a frequency looked for only after a 每."""
    rng = random.Random(5)
    pieces = [
        *metrics._TRAIL,
        "达到",
        "共计",
        "其中",
        "全年",
        "开展",
        "调研",
        "提案",
        "每月",
        "第",
        "ICP备",
        "\n",
        "1",
        "a",
        "、",
    ]
    for text in _random_texts(pieces, 20_000, seed=5, longest=8):
        plain = metrics._TRAIL_WORDS.search(text)
        short = metrics._TRAIL_WORDS.search(text) if text[-1:] in metrics._TRAIL_LAST else None
        assert (plain and plain.span()) == (short and short.span()), text
        lead = metrics._LEAD_WORDS.match(text)
        assert (text[lead.end() :] if lead else text) == metrics._LEAD_WORDS.sub("", text), text
        start, end = _bounds(text, rng)
        window = metrics._BAD_BEFORE.search(text, start, end)
        sliced = metrics._BAD_BEFORE.search(text[start:end])
        assert (window is None) == (sliced is None), (text, start, end)
        if metrics._FREQUENCY.search(text):
            assert "每" in text


def test_serving_head_and_section_verbs_read_as_the_plain_patterns() -> None:
    """`_serving` searches only a head whose last character can end a serving word; the first verb
    found in the whole section is the one the clause alone gives."""
    rng = random.Random(6)
    pieces = [
        "聚焦",
        "围绕",
        "助力",
        "助推",
        "服务",
        "紧扣",
        "加快",
        "持续",
        "全面",
        " ",
        "\n",
        "建立",
        "开展",
        "的",
        "“",
        "”",
        ",",
    ]
    for text in _random_texts(pieces, 20_000, seed=6, longest=10):
        assert initiatives._serving(text) == (initiatives._SERVING.search(text.strip()) is not None), text
        start, end = _bounds(text, rng)
        clauses = initiatives._clauses(text, start, end)
        for clause_start, clause_end, verb in initiatives._clauses_with_verbs(clauses, text, start, end):
            alone = initiatives._VERB.match(text[clause_start:clause_end], verb.start() - clause_start)
            assert alone is not None and alone.group(0) == verb.group(0), (text, start, end)


def _plain_find_values(value: float, evidence: str) -> tuple[tuple[numbers.Number, int], ...]:
    """`find_values` as every number found first, then each read again (the code it replaced)."""
    plain = numbers._simplified_numerals(evidence)
    found = []
    for number in numbers.find_numbers(evidence):
        candidates = {number.value: number.end}
        match = numbers.NUMBER.match(plain, number.start)
        if match and match.group("mult"):
            candidates[float(match.group("arabic").replace(",", ""))] = match.end("arabic")
        if evidence[number.end : number.end + 1] == "成":
            candidates[number.value * 10] = number.end
        for candidate, unit_start in candidates.items():
            if abs(candidate - float(value)) < 1e-9 * max(1.0, abs(candidate)):
                found.append((number, unit_start))
                break
    return tuple(found)


def test_values_are_found_as_the_plain_reading_finds_them() -> None:
    rng = random.Random(7)
    pieces = [*"0123456789,.万萬千亿億两兩一二三十百成个次人", "1,200", "3.5", "〇", " "]
    for text in _random_texts(pieces, 20_000, seed=7, longest=10):
        values = [n.value for n in numbers.find_numbers(text)] + [0.0, 40.0, float(rng.randint(0, 30))]
        for value in values:
            assert numbers.find_values.__wrapped__(value, text) == _plain_find_values(value, text), (value, text)


def test_a_count_is_looked_for_only_where_one_can_end_the_text() -> None:
    pieces = [*"0123456789.余多件次个人%的 ", "٣", "１２", "协商会", "调研"]
    for text in _random_texts(pieces, 20_000, seed=9, longest=8):
        if initiatives._COUNT_END.search(text):
            assert initiatives._may_end_in_count(text), text
