"""Article preparation (cleaning, folding, sections, mentions, chunks) gives the same answers by its
shortcuts as by the plain reading they replace."""

from __future__ import annotations

import random
import re
from collections import Counter

from summarizer import places
from summarizer.article import parse_article
from summarizer.chunk import chunk_article
from summarizer.places import find_mentions, first_mention
from summarizer.sections import Section
from summarizer.text import fold_text

BODY = "某县政协召开常委会议，听取并审议了县政协2024年度提案工作情况的报告，会议强调要进一步提高提案质量。"


def _kept_lines(page: str) -> list[str]:
    article = parse_article(page, "page")
    return [article.text[s:e] for s, e in article.kept]


def test_furniture_words_anywhere_on_a_short_line_drop_it() -> None:
    page = f"某县政协召开常委会议\n{BODY}\n本网 版权所有 2024\n网站首页 > 新闻中心\n联系我们 | 网站地图\n{BODY}\n"
    assert _kept_lines(page) == ["某县政协召开常委会议", BODY, BODY]


def test_a_long_paragraph_naming_furniture_words_is_kept() -> None:
    long = BODY * 2 + "本文版权所有，转载请注明出处。"
    assert len(long) > 100
    assert long in _kept_lines(f"某县政协召开常委会议\n{long}\n")


def test_the_footer_cuts_only_past_the_first_part_of_the_page() -> None:
    early = f"某县政协召开常委会议\n相关新闻\n{BODY}\n{BODY}\n{BODY}\n"
    assert _kept_lines(early).count(BODY) == 3  # a 相关新闻 line near the top is a heading, not the foot
    late = f"某县政协召开常委会议\n{BODY}\n{BODY}\n \n  上一篇：某区政协调研\n{BODY}\n"
    assert _kept_lines(late) == ["某县政协召开常委会议", BODY, BODY]


def test_folding_maps_each_wide_character_to_its_ascii() -> None:
    wide = "，；：！？（）％～．－\u3000\xa0﹐﹔﹕０１２３４５６７８９"
    assert fold_text("政协" + wide + "会议") == "政协" + ",;:!?()%~.-  ,;:0123456789" + "会议"
    assert fold_text("縣政協召開會議，委員１２０人") == "县政协召开会议,委员120人"


def test_first_mention_is_the_first_of_all_mentions_in_every_window() -> None:
    page = (
        "某县政协召开会议，市政协主席出席。\n一、淮南市政协：围绕中心建言\n"
        "人民政协报报道，政协某某市委员会和全国政协调研组到县政协调研。\n"
    )
    folded = parse_article(page, "page").folded
    for start in range(len(folded)):
        for end in range(start, min(len(folded), start + 45) + 1):
            listed = find_mentions(folded, start, end)
            assert first_mention(folded, start, end) == (listed[0] if listed else None)


def test_chunks_hold_exactly_the_kept_lines_inside_their_section() -> None:
    page = "某县政协召开会议\n" + "\n".join(f"{BODY}第{i}段。" for i in range(30)) + "\n"
    article = parse_article(page, "page")
    middle = Section(0, article.kept[3][0] + 2, article.kept[20][1], None, None)  # starts inside a line
    pieces = [piece for chunk in chunk_article(article, [middle], max_tokens=300, overlap=0) for piece in chunk.pieces]
    inside = [(s, e) for s, e in article.kept if s >= middle.start and e <= middle.end]
    assert pieces == inside


def test_mentions_with_and_without_a_place_before_them() -> None:
    text = "政协召开会议。(政协委员)参加淮南市政协、县政协、政协某某市委员会的活动,人民政协报报道。"
    found = [(text[m.start : m.end], m.name, m.bare) for m in find_mentions(text)]
    assert found == [
        ("淮南市政协", "淮南市政协", None),
        ("县政协", None, "县"),
        ("政协某某市委员会", "某某市政协", None),
    ]


def _plain_short_places(suffix: str, text: str) -> tuple[str, ...]:
    """Every 2-4 character run of ideographs looked up, position by position (the walk the
    search by first characters replaced)."""
    shorts = places.short_names()
    counts: Counter[str] = Counter()
    for run in re.findall(r"[\u4e00-\u9fff]{2,}", text):
        for i in range(len(run) - 1):
            for length in (4, 3, 2):
                stem = run[i : i + length]
                if (full := shorts.get(stem)) and full.endswith(suffix) and places.written_as_place(stem, full, text):
                    counts[full] += 1
                    break
    return tuple(place for place, _ in counts.most_common())


def test_short_places_are_counted_as_by_the_position_by_position_walk() -> None:
    rng = random.Random(4)
    shorts = sorted(places.short_names().items())
    picked = rng.sample(shorts, 60) + [(s, f) for s, f in shorts if len(s) >= 3][:20]
    pieces = [*"的在,。 1１县市区政协", "今日", "日报", "政协"]
    pieces += [stem for stem, _ in picked] + [full for _, full in picked[:15]]
    pieces += [stem[:1] for stem, _ in picked[:20]] + [stem[1:] for stem, _ in picked[:20]]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        for suffix in ("市", "县", "区", "旗", "州", "盟"):
            assert places._short_places_by_frequency(suffix, text) == _plain_short_places(suffix, text), (suffix, text)


def test_recent_mentions_are_kept_within_their_budget() -> None:
    texts = [f"{i}某县政协召开会议，市政协主席出席。淮南市政协调研。" for i in range(6)]
    size = places._size(texts[0], places._all_mentions(texts[0]))
    assert size == len(texts[0]) + 3 * places._MENTION_SIZE
    memo = places._RecentTexts(budget=size * 2)
    for text in texts + texts[::-1]:
        assert memo(text) == places._all_mentions(text)
        assert memo(text) is memo(text)  # the second ask is served from the memo
        assert memo._size == size * len(memo._results) <= size * 2
    assert list(memo._results) == [texts[1], texts[0]]  # the two most recent texts, oldest first


def test_a_bare_provincial_committee_resolves_as_by_counting_every_name() -> None:
    rng = random.Random(5)
    pieces = [*"的在,。省政协", *places.PROVINCES, *places.PROVINCES.values(), "江西部", "黑龙江西"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        counts = Counter(
            {s: text.count(f) + text.count(s) for s, f in places.PROVINCES.items() if f.endswith("省")}
        ).most_common(1)[0]
        expected = places.PROVINCES[counts[0]] + "政协" if counts[1] else None
        assert places.resolve_bare("省", [], text) == expected, text
