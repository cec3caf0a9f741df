"""Rule families of the offline extractor, on small sentences written for these tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import EVAL_ARTICLES
from summarizer.article import parse_article
from summarizer.backends.rules import RulesBackend
from summarizer.backends.rules.initiatives import find_initiatives
from summarizer.backends.rules.metrics import find_metrics
from summarizer.backends.rules.year import anchor_year, infer_year
from summarizer.pipeline import summarise_article_async
from summarizer.schema import ArticleSummary
from summarizer.settings import Settings
from summarizer.text import fold_text


def metrics_of(text: str) -> list[tuple[str, float, str, bool]]:
    return [(m.name, m.value, m.unit, m.approx) for m in find_metrics(text, 0, len(text))]


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("全年共立案86件重点督办提案。", ("重点督办提案", 86, "件", False)),
        ("全年形成调研报告14篇。", ("调研报告", 14, "篇", False)),
        ("委员满意率为99.5%。", ("委员满意率", 99.5, "%", False)),
        ("报送1140余篇社情民意信息。", ("社情民意信息", 1140, "篇", True)),
        ("组织委员3600多人次参加视察。", ("委员", 3600, "人次", True)),
        ("共有近300名委员参与。", ("委员", 300, "名", True)),
        ("收集意见二十余条建议。", ("建议", 20, "条", True)),
        ("捐款1.5万元用于助学。", ("助学", 1.5, "万元", False)),
        ("计划开展专题调研3至5次。", ("专题调研", 3, "次", True)),
        ("组织百余名委员参加视察。", ("委员", 100, "名", True)),
        ("提出意见建议1,200余条。", ("意见建议", 1200, "条", True)),  # a thousands separator
        ("建成委员工作站(室)28个。", ("委员工作站(室)", 28, "个", False)),  # an aside before the number
    ],
)
def test_metric_is_read_with_its_thing_counted(sentence: str, expected: tuple[str, float, str, bool]) -> None:
    found = metrics_of(sentence)
    assert len(found) == 1, found
    name, value, unit, approx = found[0]
    assert (value, unit, approx) == expected[1:]
    assert expected[0] in name or name in expected[0]


@pytest.mark.parametrize(
    "sentence",
    [
        "十三届政协第五次会议在市里召开。",
        "庆祝人民政协成立75周年座谈会。",
        "2023年9月21日,委员赴企业调研。",
        "构建“1+6”民主监督制度体系。",
        "围绕两项议政性常委会课题开展调研。",
        "坚决做到两个维护,推进六个工程。",
        "原则上每月至少召开1次主席会议。",
        "咨询电话:0471-6661234。",
        "落实《加快工业经济转型升级十条政策措施》。",
        "委员为公益事业捐款数十万元。",
    ],
)
def test_not_a_metric(sentence: str) -> None:
    assert metrics_of(sentence) == []


def test_same_figure_repeated_is_reported_once() -> None:
    text = "建立20个委员工作站。一年来,20个委员工作站运行良好。"
    assert [m[1] for m in metrics_of(text)] == [20]


def test_initiatives_favour_what_the_committee_set_up() -> None:
    text = (
        "县政协建立“委员议事厅”协商平台,出台《委员履职考核办法》。市委印发《关于加强政协工作的意见》。"
        "县政协坚持“两个确立”,开展“送法进社区”活动。"
    )
    found = find_initiatives(text, 0, len(text))
    names = [f.name for f in found]
    assert any("委员议事厅" in n for n in names)
    assert any("委员履职考核办法" in n for n in names)
    assert not any("关于加强政协工作的意见" in n for n in names), "the Party committee's document is not theirs"
    assert names.index(next(n for n in names if "委员履职考核办法" in n)) < len(names)
    assert all(text[f.start : f.end] for f in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("一年来,“书香政协”建设同步推进。", "“书香政协”建设"),  # a named programme, no verb
        ("本届以来,《关于加快养老服务发展的提案》得到较好办理。", "《关于加快养老服务发展的提案》"),
        ("3月4日,全市政协主席座谈会在某区召开。", "全市政协主席座谈会"),  # the event as subject
        ("区政协围绕“贯彻市委全会精神”增开一次专题议政性常委会会议。", "专题议政性常委会会议"),
        ("遴选重点提案20件,由市委、市政府领导领衔督办。", "市委、市政府领导领衔督办"),
    ],
    ids=["quoted name", "document title", "event as subject", "actor inside quotes", "leaders supervise"],
)
def test_initiatives_not_led_by_a_verb_of_their_own(text: str, expected: str) -> None:
    names = [f.name for f in find_initiatives(text, 0, len(text))]
    assert any(expected in name for name in names), names


def test_a_followed_document_is_still_not_an_initiative() -> None:
    text = "县政协认真贯彻《中共中央关于加强新时代人民政协工作的意见》,组织委员学习。"
    assert not any("意见" in f.name for f in find_initiatives(text, 0, len(text)))


def test_a_short_part_gets_its_plain_actions() -> None:
    """Three is the fewest a committee's part is labelled with: plain actions fill up to it."""
    text = "某县政协选派28名特约监督员参与专项民主监督,组织委员捐资助学,走访村组150多个。"
    found = find_initiatives(text, 0, len(text))
    assert len(found) == 3
    assert any("捐资助学" in f.name for f in found)
    long_part = "".join(f"县政协建立“第{n}号”协商平台。" for n in range(12)) + "组织委员捐资助学。"
    assert not any("捐资助学" in f.name for f in find_initiatives(long_part, 0, len(long_part)))


def test_a_column_gap_ends_an_initiative() -> None:
    text = "■ 某县政协召开专题协商会  2025-02-06\n"
    found = find_initiatives(text, 0, len(text))
    assert found and all("2025" not in text[f.start : f.end] for f in found)


def test_year_signals_in_order_of_strength() -> None:
    assert infer_year("某市政协2023年工作回顾", "", "", "2024-01-10") == 2023
    assert infer_year("", "今年以来,区政协开展调研。", "今年以来,区政协开展调研。", "2022-07-13") == 2022
    assert infer_year("", "过去一年,县政协……", "过去一年,县政协……", "2024-02-01") == 2023
    assert anchor_year("今年是全面贯彻党的二十大精神开局之年") == 2023
    assert anchor_year("今年是“十四五”规划收官之年") == 2025
    assert infer_year("", "2021年围绕…… 2022年深化……2022年再出发", "", None) == 2022


ROUNDUP = """首页>地方政协

基层政协履职巡礼

东湖区政协:打造“议事厅”品牌

东湖区政协坚持协商于民,建立12个委员工作站,开展专题协商8次。

西山县政协:做实提案工作

西山县政协全年收到提案156件,办复率100%。县政协出台《提案督办办法》。

版权所有:某某网
"""


def test_roundup_gives_one_body_per_section_with_its_own_items() -> None:
    article = parse_article(ROUNDUP, "roundup")
    summary = asyncio.run(summarise_article_async(article, RulesBackend(), Settings(backend="rules")))
    assert [(b.body, b.level) for b in summary.bodies] == [("东湖区政协", "county"), ("西山县政协", "county")]
    east, west = summary.bodies
    assert {(m.value, m.unit) for m in east.metrics} == {(12, "个"), (8, "次")}
    assert {(m.value, m.unit) for m in west.metrics} == {(156, "件"), (100, "%")}
    for body in summary.bodies:
        for item in [*body.metrics, *body.key_initiatives]:
            assert item.span is not None
            assert article.text[item.span[0] : item.span[1]] == item.evidence


def test_committee_in_passing_is_not_a_body() -> None:
    text = (
        "某某市政协2022年工作综述\n\n一年来,某某市政协召开常委会会议4次。省政协副主席出席会议。"
        "市政协组织委员开展视察12次,东湖区政协委员也参加了活动。"
    )
    article = parse_article(text, "passing")
    summary = asyncio.run(summarise_article_async(article, RulesBackend(), Settings(backend="rules")))
    assert [b.body for b in summary.bodies] == ["某某市政协"]
    assert summary.bodies[0].year == 2022


def test_bulleted_roundup_and_author_unit_line() -> None:
    roundup = (
        "各地政协扎实推进协商民主\n\n■ 江阴市政协\n江阴市政协开展“请你来协商”活动16场。\n\n"
        "■ 【宜兴市政协】\n宜兴市政协组织视察调研9次。\n"
    )
    summary = asyncio.run(
        summarise_article_async(parse_article(roundup, "r"), RulesBackend(), Settings(backend="rules"))
    )
    assert [(b.body, b.level) for b in summary.bodies] == [("江阴市政协", "county"), ("宜兴市政协", "county")]
    assert [(m.name, m.value) for m in summary.bodies[0].metrics] == [("“请你来协商”活动", 16)]

    piece = "以协商助推发展\n\n□ 王某\n\n2023年,县政协开展专题协商6次。\n\n(作者单位:会宁县政协办公室)\n"
    summary = asyncio.run(summarise_article_async(parse_article(piece, "p"), RulesBackend(), Settings(backend="rules")))
    assert [(b.body, b.year) for b in summary.bodies] == [("会宁县政协", 2023)]


FULL_WIDTH = str.maketrans({",": "，", ";": "；", ":": "：", "!": "！", "?": "？", "(": "（", ")": "）", "%": "％"})


@pytest.mark.parametrize("path", EVAL_ARTICLES, ids=lambda p: p.stem)
def test_full_width_punctuation_gives_the_same_summary(path: Path) -> None:
    """Pages use ，；：（）％ as often as ASCII: the same article either way yields the same items and spans."""
    text = path.read_text(encoding="utf-8")
    settings = Settings(backend="rules")
    ascii_run = asyncio.run(summarise_article_async(parse_article(text, "a"), RulesBackend(), settings))
    wide_text = text.translate(FULL_WIDTH)
    wide_run = asyncio.run(summarise_article_async(parse_article(wide_text, "a"), RulesBackend(), settings))

    def shape(summary: object) -> list[object]:
        return [
            (
                b.body,
                b.level,
                b.year,
                [(m.value, m.unit, m.approx, m.span) for m in b.metrics],
                [i.span for i in b.key_initiatives],
            )
            for b in summary.bodies
        ]  # type: ignore[attr-defined]

    assert shape(wide_run) == shape(ascii_run)
    for body in wide_run.bodies:
        for item in [*body.metrics, *body.key_initiatives]:
            assert item.span is not None and wide_text[item.span[0] : item.span[1]] == item.evidence


def test_numbered_headings_with_a_city_before_the_district() -> None:
    text = (
        "三地政协工作巡礼\n\n一、苏州市吴中区政协：打造“吴中议事”品牌\n2023年，吴中区政协开展专题调研18次。\n\n"
        "二、温州市政协：服务民营经济\n温州市政协召开专题协商会3场。\n"
    )
    summary = asyncio.run(summarise_article_async(parse_article(text, "n"), RulesBackend(), Settings(backend="rules")))
    assert [(b.body, b.level) for b in summary.bodies] == [("吴中区政协", "county"), ("温州市政协", "municipal")]
    assert [m.value for m in summary.bodies[0].metrics] == [18]


def test_a_verb_can_name_what_it_counts_but_filler_cannot() -> None:
    assert [(m[0], m[1]) for m in metrics_of("共收到提案1012件,立案868件。")] == [("提案", 1012), ("立案", 868)]
    assert [m[0] for m in metrics_of("报送信息150条,其中12条获批示。")] == ["信息", "获批示"]


def _summarise(text: str) -> ArticleSummary:
    return asyncio.run(summarise_article_async(parse_article(text, "r"), RulesBackend(), Settings(backend="rules")))


def _bodies(text: str) -> list[str]:
    return [b.body for b in _summarise(text).bodies]


def test_roundup_heading_styles_each_open_a_part() -> None:
    parts = (
        "乙县政协开展专题协商5次，提交调研报告3篇。\n\n",
        "丙区政协组织委员视察12次，收到提案80件。\n\n",
    )
    for first, second in (
        ("【新化县政协】\n", "【隆回县政协】\n"),
        ("■ 新化县政协：搭建协商平台\n", "■ 隆回县政协：办好民生实事\n"),
        ("一、新化县政协\n", "二、隆回县政协\n"),
        ("新化县政协召开十届四次会议  2025-02-06\n", "隆回县政协举行联组讨论  2025-02-10\n"),
    ):
        text = (
            "某市政协工作动态\n\n"
            + first
            + parts[0].replace("乙县", "新化县")
            + second
            + parts[1].replace("丙区", "隆回县")
        )
        assert _bodies(text) == ["新化县政协", "隆回县政协"], first


def test_a_bracketed_place_heads_its_committee() -> None:
    text = "政协要闻速览\n\n【浙江】\n浙江省政协召开主席会议，审议协商计划1份。\n\n【静安】\n静安区政协开展视察3次。\n"
    assert _bodies(text) == ["浙江省政协", "静安区政协"]


def test_news_paragraphs_of_sister_committees_make_a_roundup_but_a_visitor_does_not() -> None:
    roundup = (
        "基层政协工作扫描\n\n近日，新化县政协召开常委会议，审议提案12件。\n\n"
        "3月5日，隆回县政协组织委员视察8次。\n\n洞口县政协开展专题协商4次。\n"
    )
    assert _bodies(roundup) == ["新化县政协", "隆回县政协", "洞口县政协"]
    visit = (
        "新化县政协召开常委会议\n\n近日，新化县政协召开常委会议，审议提案12件。\n\n"
        "湖南省政协副主席到会指导。\n\n新化县政协主席作总结讲话，要求办好提案20件。\n"
    )
    assert _bodies(visit) == ["新化县政协"]


def test_a_caption_naming_another_committee_does_not_split_a_report() -> None:
    text = (
        "新化县政协2024年工作回顾\n\n2024年，新化县政协开展专题协商6次，提交提案90件。\n\n"
        "娄底市政协调研组在新化调研\n\n会议强调，要持续抓好提案办理，全年办复率100%。\n\n"
        "新化县政协组织委员视察9次。\n"
    )
    assert _bodies(text) == ["新化县政协"]


def test_a_traditional_copy_gives_the_same_committees_and_spans() -> None:
    import opencc

    text = (
        "某市政协工作动态\n\n【新化县政协】\n新化县政协开展专题协商5次，提交调研报告3篇。\n\n"
        "【隆回县政协】\n隆回县政协组织委员视察12次，收到提案80件。\n"
    )
    traditional = opencc.OpenCC("s2t").convert(text)
    assert len(traditional) == len(text)
    simple, trad = _summarise(text), _summarise(traditional)
    assert [b.body for b in trad.bodies] == [b.body for b in simple.bodies] == ["新化县政协", "隆回县政协"]
    assert [[m.span for m in b.metrics] for b in trad.bodies] == [[m.span for m in b.metrics] for b in simple.bodies]
    assert trad.bodies[0].metrics[0].evidence != simple.bodies[0].metrics[0].evidence  # quoted as written


def test_a_traditional_page_keeps_its_hedges() -> None:
    """The rules read the folded text (餘 as 余); grounding reads hedges there too, so 30餘件 stays
    approximate on a traditional-character page."""
    article = parse_article(
        "桐廬縣政協履職綜述\n2023-12-20\n\n今年以來，桐廬縣政協共收到提案30餘件，組織委員約300人次參加視察。\n", "t"
    )
    summary = asyncio.run(summarise_article_async(article, RulesBackend(), Settings(backend="rules")))
    metrics = {(m.value, m.unit): m.approx for b in summary.bodies for m in b.metrics}
    assert metrics == {(30, "件"): True, (300, "人次"): True}


def test_a_full_width_comma_is_no_thousands_separator() -> None:
    """The rules read the folded page, where ，is ,; the page as written tells 35，120 from 1,200."""
    for written, value in (("参与委员35，120名群众受益。", 120), ("提出意见建议1,200余条。", 1200)):
        folded = fold_text(written)
        assert [m.value for m in find_metrics(folded, 0, len(folded), original=written)][-1] == value


def test_another_committees_meeting_is_not_the_sections_initiative() -> None:
    text = "3月5日,全国政协十四届二次会议在北京召开。县政协组织委员集中收看开幕会直播。"
    assert not any("全国政协" in f.name for f in find_initiatives(text, 0, len(text), own="某县政协"))
    own = "2月5日,政协黄龙县第十届委员会第四次会议召开,各界别委员参加。"
    assert any("第四次会议" in f.name for f in find_initiatives(own, 0, len(own), own="黄龙县政协"))
