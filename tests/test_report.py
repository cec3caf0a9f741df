"""The report files, the terminal tables and run comparison (no browser needed here)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from eval_samples import sample_run
from summarizer.errors import EvalDataError
from summarizer.report import (
    compare_reports,
    load_report,
    render_comparison,
    render_html,
    render_markdown,
    render_table,
    write_report,
)


def printed(renderable: object) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_write_report_writes_three_files_and_json_round_trips(tmp_path: Path) -> None:
    result, articles = sample_run()
    paths = write_report(result, articles, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    loaded = load_report(paths["json"])
    assert loaded["metrics"] == result["metrics"]
    assert loaded["per_article"][0]["article_id"] == "a1"


def test_html_escapes_article_and_item_text() -> None:
    result, articles = sample_run()
    page = render_html(result, articles)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the article text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # a predicted initiative's name
    assert "立案&lt;b&gt;" in page
    # The only script element is the report's own.
    assert page.count("<script") == 1


def test_html_is_self_contained() -> None:
    page = render_html(*sample_run())
    assert not re.search(r"<link|<img|@import|url\(|\bsrc=", page)
    assert not re.search(r"(href|src)=\"https?:", page)


def test_every_linked_item_lands_on_a_highlight() -> None:
    page = render_html(*sample_run())
    targets = re.findall(r'<a class="item" href="#([^"]+)"', page)
    assert targets, "the item lists link nowhere"
    for target in targets:
        assert f'id="{target}"' in page
        assert re.search(rf'<mark [^>]*data-k="[^"]*\b{re.escape(target)}\b', page)


def test_highlights_use_one_colour_per_outcome() -> None:
    page = render_html(*sample_run())
    for outcome in ("hit", "miss", "fp", "opt"):
        assert re.search(rf'<mark class="[^"]*o-{outcome}', page), outcome
    # The matched pair is highlighted on both evidences; the miss on the gold one.
    assert re.search(r'<mark class="o-hit"[^>]*>协商会12场</mark>', page)
    assert re.search(r'<mark class="o-miss"[^>]*>收到提案300件</mark>', page)
    assert re.search(r'<mark class="o-fp"[^>]*>立案280件</mark>', page)


def test_ungrounded_prediction_is_listed_without_a_link() -> None:
    page = render_html(*sample_run())
    assert '群众: 2000人 <span class="tag">evidence not in the article</span>' in page


def test_markdown_tables() -> None:
    result, _ = sample_run()
    text = render_markdown(result)
    assert "| metrics | 33.3 | 50.0 | 40.0 | 1 | 2 | 1 |" in text
    assert "| a1 |" in text
    assert "missed metric: 提案: 300件 — “收到提案300件”" in text
    assert "(evidence not in the article)" in text


def test_terminal_table_shows_fields_and_articles() -> None:
    result, _ = sample_run()
    text = printed(render_table(result))
    assert re.search(r"metrics P\s+│\s+33\.3\s", text)
    assert re.search(r"metrics R\s+│\s+50\.0\s", text)
    assert re.search(r"metrics F1\s+│\s+40\.0 \(1/2/1\)", text)
    assert "a1" in text
    assert re.search(r"tokens / article.*1,000\.0", text)


def test_terminal_table_puts_splits_side_by_side() -> None:
    result, _ = sample_run({"dev": [], "test": ["a1"]})
    text = printed(render_table(result))
    header = next(line for line in text.splitlines() if "Figure" in line)
    assert header.index("dev (0)") < header.index("test (1)") < header.index("all (1)")
    assert "## By split" in render_markdown(result) and "| test | 1 |" in render_markdown(result)


def test_compare_reports_gives_signed_deltas() -> None:
    before, _ = sample_run()
    after = copy.deepcopy(before)
    after["metrics"]["f1"] = 0.5
    after["cost"]["tokens_per_article"] = 1500.0
    after["per_article"][0]["metrics"]["f1"] = 0.5
    comparison = compare_reports(before, after)
    rows = {row["field"]: row for row in comparison["fields"]}
    assert rows["metrics f1"]["delta"] == pytest.approx(0.1)
    assert rows["metrics f1"]["better"] is True
    assert rows["tokens per article"]["better"] is False  # more tokens is worse
    assert rows["bodies f1"]["better"] is None
    assert comparison["per_article"][0]["metrics f1"]["delta"] == pytest.approx(0.1)
    text = printed(render_comparison(comparison))
    assert re.search(r"metrics f1\s+│\s+40\.0\s+│\s+50\.0\s+│\s+\+10\.0", text)
    assert "+500.0" in text


def test_load_report_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"metrics": {}}))
    with pytest.raises(EvalDataError, match=r"r\.json: bodies: missing"):
        load_report(path)
    with pytest.raises(EvalDataError, match="no such report file"):
        load_report(tmp_path / "nope.json")


def test_figures_from_the_cache_say_so() -> None:
    result, _ = sample_run()
    result["cost"]["cache_hits"] = 2
    assert re.search(r"tokens / article.*\(2 chunks from cache\)", printed(render_table(result)))


def test_html_report_shows_each_split_and_each_articles_split() -> None:
    result, articles = sample_run({"dev": [], "test": ["a1"]})
    page = render_html(result, articles)
    assert "<h2>By split</h2>" in page and "<td>test</td><td>1</td>" in page
    assert '<a href="#art-0">a1</a></td><td>test</td>' in page


def test_markdown_never_passes_article_html_through() -> None:
    """A Markdown viewer renders inline HTML: text from articles and labels must arrive as text."""
    result, _ = sample_run()
    result["run"]["model"] = "<img src=x onerror=alert(1)>"
    text = render_markdown(result)
    assert "立案&lt;b&gt;" in text and "&lt;img src=x" in text
    assert "<b>" not in text and "<img" not in text and "<script" not in text
