"""`summarizer view`: the HTML page that shows a results file with every quote highlighted in its article."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import ROOT
from summarizer.article import load_article
from summarizer.cli import app
from summarizer.pipeline import summarise_article
from summarizer.schema import ArticleSummary, BodySummary, Initiative, Metric
from summarizer.settings import Settings
from summarizer.view import write_view

runner = CliRunner()
# A plan with a quote crossing another, a roundup of five committees sharing quotes, a short roundup.
SAMPLES = ("114_changping_plan", "215_yili_gongzuozhan", "103_hebei_county_roundup")
RULES = Settings(backend="rules", use_cache=False)


class Page(HTMLParser):
    """What the assertions need from the page: its elements, each mark's text (nested marks
    included) in document order, each article's shown text, and which list item a link sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.marks: list[tuple[dict[str, str], list[str]]] = []
        self.texts: dict[str, list[str]] = {}  # article section id -> the text panel's characters
        self.links: list[tuple[str, str]] = []  # (href of an item link, id of the <li> it is in)
        self.data: list[str] = []
        self._open_marks: list[list[str]] = []
        self._divs: list[str | None] = []  # per open <div>: the section whose text it shows, if it does
        self._section = ""
        self._li = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.elements.append((tag, values))
        if tag == "section":
            self._section = values.get("id", "")
        elif tag == "li":
            self._li = values.get("id", "")
        elif tag == "a" and "item" in values.get("class", "").split():
            self.links.append((values["href"], self._li))
        elif tag == "div":
            shows_text = values.get("class") == "text"
            self._divs.append(self._section if shows_text else None)
            if shows_text:
                self.texts[self._section] = []
        elif tag == "mark":
            pieces: list[str] = []
            self.marks.append((values, pieces))
            self._open_marks.append(pieces)

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            assert self._open_marks, "a </mark> with no open mark"
            self._open_marks.pop()
        elif tag == "div":
            self._divs.pop()

    def handle_data(self, data: str) -> None:
        self.data.append(data)
        for pieces in self._open_marks:
            pieces.append(data)
        shown = next((section for section in reversed(self._divs) if section is not None), None)
        if shown is not None:
            self.texts[shown].append(data)

    def ids(self) -> dict[str, str]:
        return {attrs["id"]: tag for tag, attrs in self.elements if "id" in attrs}

    def quotes(self) -> dict[str, str]:
        """Each highlighted span's key -> its text, joining the pieces of a span cut by a crossing one."""
        out: dict[str, str] = {}
        for attrs, pieces in self.marks:
            if "data-span" in attrs:
                out[attrs["data-span"]] = out.get(attrs["data-span"], "") + "".join(pieces)
        return out

    def having(self, tag: str, cls: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.elements if t == tag and cls in attrs.get("class", "").split()]


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def write_results(path: Path, summaries: list[ArticleSummary]) -> Path:
    path.write_text("".join(s.model_dump_json() + "\n" for s in summaries), encoding="utf-8")
    return path


def copy_articles(folder: Path, names: tuple[str, ...] = SAMPLES) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(ROOT / "eval" / "articles" / f"{name}.txt", folder)) for name in names]


def items(summary: ArticleSummary) -> list[Metric | Initiative]:
    return [item for body in summary.bodies for item in [*body.metrics, *body.key_initiatives]]


def spans(summary: ArticleSummary) -> set[tuple[int, int]]:
    return {item.span for item in items(summary) if item.span is not None}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ArticleSummary], Path, Page]:
    """The rules' results on three eval articles, and their page."""
    folder = tmp_path_factory.mktemp("view")
    summaries = [summarise_article(path, RULES) for path in copy_articles(folder / "articles")]
    results = write_results(folder / "results.jsonl", summaries)
    counts = write_view(results, folder / "view.html")
    assert counts.complete and counts.articles == len(SAMPLES)
    return summaries, folder / "view.html", parse(folder / "view.html")


def test_one_mark_per_distinct_span_showing_its_quote(run: tuple[list[ArticleSummary], Path, Page]) -> None:
    summaries, _, page = run
    marks_with_id = [attrs for attrs, _ in page.marks if "id" in attrs]
    assert len(marks_with_id) == sum(len(spans(s)) for s in summaries)
    quotes = page.quotes()
    ids = page.ids()
    for index, summary in enumerate(summaries):
        text = load_article(summary.source_path or "").text
        for item in items(summary):
            assert item.span is not None
            key = f"a{index}-{item.span[0]}-{item.span[1]}"
            assert ids.get(key) == "mark", key
            assert quotes[key] == item.evidence == text[item.span[0] : item.span[1]]


def test_overlapping_quotes_are_all_shown_and_the_text_is_intact(run: tuple[list[ArticleSummary], Path, Page]) -> None:
    summaries, _, page = run
    crossing = nested = 0
    for summary in summaries:
        ordered = sorted(spans(summary))
        for a, b in ((a, b) for a in ordered for b in ordered if a < b and b[0] < a[1]):
            nested += b[1] <= a[1]
            crossing += b[1] > a[1]
    assert nested and crossing  # the samples exercise both kinds of overlap
    assert page.having("mark", "cont")  # a crossing quote is continued after the mark it crosses
    for index, summary in enumerate(summaries):
        # Marks only wrap the text: none is lost, doubled or reordered.
        assert "".join(page.texts[f"a{index}"]) == load_article(summary.source_path or "").text


def test_every_item_links_to_the_mark_of_its_quote(run: tuple[list[ArticleSummary], Path, Page]) -> None:
    summaries, _, page = run
    marks = {attrs["id"]: attrs for attrs, _ in page.marks if "id" in attrs}
    assert len(page.links) == sum(len(items(s)) for s in summaries)
    for href, item_id in page.links:
        assert href.startswith("#") and href[1:] in marks, href
        assert item_id in marks[href[1:]]["data-items"].split()


def test_filters_cover_every_committee_and_nothing_is_hidden_without_script(
    run: tuple[list[ArticleSummary], Path, Page],
) -> None:
    summaries, _, page = run
    bodies = [body for s in summaries for body in s.bodies]
    options: dict[str, list[str]] = {}
    current = ""
    for tag, attrs in page.elements:
        if tag == "select":
            current = attrs["name"]
            options[current] = []
        elif tag == "option" and attrs["value"]:
            options[current].append(attrs["value"])
    assert set(options["body"]) == {b.body for b in bodies}
    assert set(options["level"]) == {b.level for b in bodies}
    assert set(options["year"]) == {str(b.year) for b in bodies}
    rows = [attrs for tag, attrs in page.elements if tag == "tr" and "data-body" in attrs]
    blocks = page.having("div", "body")
    for tagged in (rows, blocks):
        assert [(a["data-body"], a["data-level"], a["data-year"]) for a in tagged] == [
            (b.body, b.level, str(b.year)) for b in bodies
        ]
    # Only the filter form waits for the script; with JavaScript off every committee and article shows.
    assert [attrs.get("id") for _, attrs in page.elements if "hidden" in attrs] == ["filters"]


def test_article_and_model_text_is_escaped(tmp_path: Path) -> None:
    source = (ROOT / "eval" / "articles" / f"{SAMPLES[0]}.txt").read_text(encoding="utf-8")
    attack = "<script>alert(1)</script>"
    first_break = source.index("\n", 200)
    article = tmp_path / "attack.txt"
    # Before every quote, inside one highlighted below, and after every quote (the page's last line).
    article.write_text(
        attack + "\n" + source[:first_break] + attack + source[first_break:] + "\n" + attack + "\n", encoding="utf-8"
    )
    summary = summarise_article(article, RULES)
    text = load_article(article).text
    start = text.index(attack, first_break)
    quote = text[start - 3 : start + len(attack)]
    summary.bodies[0].key_initiatives.append(
        Initiative(name='<img src=x onerror="alert(2)">', evidence=quote, span=(start - 3, start + len(attack)))
    )
    summary.bodies[0].summary += "</p><script>alert(3)</script>"
    write_view(write_results(tmp_path / "results.jsonl", [summary]), tmp_path / "view.html")
    page = parse(tmp_path / "view.html")
    assert len([tag for tag, _ in page.elements if tag == "script"]) == 1  # the page's own
    assert not [tag for tag, _ in page.elements if tag == "img"]
    shown = "".join(page.data)
    assert "".join(page.texts["a0"]).count(attack) == 3
    assert '<img src=x onerror="alert(2)">' in shown and "<script>alert(3)</script>" in shown
    assert quote in page.quotes().values()


def test_overlaps_nest_cross_and_share_marks(tmp_path: Path) -> None:
    text = "区政协全年共提出提案86件，立案76件，办结率100%，开展民主监督12次。"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")

    def span_of(quote: str) -> tuple[int, int]:
        return text.index(quote), text.index(quote) + len(quote)

    outer, inner, crossing = "共提出提案86件，立案76件", "提案86件", "立案76件，办结率100%"
    metrics = [Metric(name=q, value=86, unit="件", evidence=q, span=span_of(q)) for q in (outer, inner, crossing)]
    # The same quote twice (a metric and an initiative) shares one mark.
    initiatives = [Initiative(name="提案", evidence=inner, span=span_of(inner))]
    body = BodySummary(body="区政协", level="county", year=2023, metrics=metrics, key_initiatives=initiatives)
    summary = ArticleSummary(article_id="a", source_path=str(tmp_path / "a.txt"), bodies=[body])
    counts = write_view(write_results(tmp_path / "r.jsonl", [summary]), tmp_path / "view.html")
    page = parse(tmp_path / "view.html")
    assert counts.marks == 3 and counts.items == 4
    quotes = page.quotes()
    assert sorted(quotes.values()) == sorted((outer, inner, crossing))
    pieces = [attrs for attrs, _ in page.marks if attrs.get("data-span") == "a0-{}-{}".format(*span_of(crossing))]
    assert len(pieces) == 2 and "id" in pieces[0] and "cont" in pieces[1]["class"].split()
    shared = next(attrs for attrs, _ in page.marks if attrs.get("data-span") == "a0-{}-{}".format(*span_of(inner)))
    assert shared["class"].split() == ["initiative", "metric"] and len(shared["data-items"].split()) == 2
    assert "".join(page.texts["a0"]) == text


def test_a_moved_article_is_reported_then_found_with_articles(tmp_path: Path) -> None:
    paths = copy_articles(tmp_path / "old", SAMPLES[:2])
    summaries = [summarise_article(path, RULES) for path in paths]
    results = write_results(tmp_path / "results.jsonl", summaries)
    shutil.move(paths[0], tmp_path / paths[0].name)  # the first article moves away
    counts = write_view(results, tmp_path / "view.html")
    assert counts.missing == 1 and not counts.complete
    page = parse(tmp_path / "view.html")
    assert "a0" not in page.texts and "no article file found" in "".join(page.data)
    assert not [href for href, _ in page.links if href.startswith("#a0-")]  # nothing to link to
    assert len(page.having("li", "metric")) + len(page.having("li", "initiative")) == sum(
        len(items(s)) for s in summaries
    )  # its items are still listed
    found = write_view(results, tmp_path / "view.html", articles_dir=tmp_path)
    assert found.complete and found.marks == sum(len(spans(s)) for s in summaries)


def test_quotes_not_at_their_span_are_flagged_not_fatal(tmp_path: Path) -> None:
    (path,) = copy_articles(tmp_path, SAMPLES[1:2])
    summary = summarise_article(path, RULES)
    shifted = summary.bodies[0].metrics[0]
    assert shifted.span is not None
    shifted.span = (shifted.span[0] + 1, shifted.span[1] + 1)
    summary.bodies[0].key_initiatives[0].evidence = "这句话不在文章里"
    counts = write_view(write_results(tmp_path / "results.jsonl", [summary]), tmp_path / "view.html")
    assert counts.unverified == 2 and counts.missing == 0
    page = parse(tmp_path / "view.html")
    problems = page.having("span", "problem")
    assert len(problems) == 2
    # The shifted quote is still found and highlighted; the invented one is listed without a link.
    assert shifted.evidence in page.quotes().values()
    assert len(page.links) == len(items(summary)) - 1


def test_a_changed_article_is_noted(tmp_path: Path) -> None:
    (path,) = copy_articles(tmp_path, SAMPLES[2:])
    summary = summarise_article(path, RULES)
    results = write_results(tmp_path / "results.jsonl", [summary])
    path.write_text("插入一行。\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    counts = write_view(results, tmp_path / "view.html")
    assert counts.unverified == len(items(summary)) > 0  # every span now points 6 characters early
    assert "has changed since the run" in (tmp_path / "view.html").read_text(encoding="utf-8")


def test_cli_view_and_its_exit_codes(tmp_path: Path) -> None:
    paths = copy_articles(tmp_path / "articles", SAMPLES[2:])
    results = write_results(tmp_path / "results.jsonl", [summarise_article(paths[0], RULES)])
    before = results.read_bytes(), paths[0].read_bytes()

    done = runner.invoke(app, ["view", str(results), "-o", str(tmp_path / "out" / "view.html")])
    assert done.exit_code == 0, done.stderr
    assert "view.html" in done.stderr and done.stdout == ""  # a tally is a message; the data is the page
    assert (tmp_path / "out" / "view.html").read_text(encoding="utf-8").startswith("<!doctype html>")

    missing = runner.invoke(app, ["view", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "v.html")])
    assert missing.exit_code == 2 and "nope.jsonl" in missing.stderr
    onto_results = runner.invoke(app, ["view", str(results), "-o", str(results)])
    assert onto_results.exit_code == 2 and "results file" in onto_results.stderr
    onto_article = runner.invoke(app, ["view", str(results), "-o", str(paths[0])])
    assert onto_article.exit_code == 2 and "article" in onto_article.stderr
    assert (results.read_bytes(), paths[0].read_bytes()) == before
    no_folder = runner.invoke(app, ["view", str(results), "-o", str(tmp_path / "v.html"), "--articles", str(results)])
    assert no_folder.exit_code == 2 and "not a folder" in no_folder.stderr

    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"cut off by a kill\n', encoding="utf-8")
    nothing = runner.invoke(app, ["view", str(empty), "-o", str(tmp_path / "v.html")])
    assert nothing.exit_code == 2 and "no readable summaries" in nothing.stderr

    paths[0].unlink()
    gone = runner.invoke(app, ["view", str(results), "-o", str(tmp_path / "v.html")])
    assert gone.exit_code == 1 and "without their text" in gone.stderr and "--articles" in gone.stderr
    assert (tmp_path / "v.html").exists()
