"""Render report.html and the `summarizer view` page in headless Chromium and check what a reader would see.

Needs the `chromium` binary (Debian package `chromium`). Without it the tests skip on a developer
machine but fail under CI, whose script installs it: a silently skipped browser test checks nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from eval_samples import sample_run
from helpers import ARTICLES, ROOT
from summarizer.pipeline import summarise_article
from summarizer.report import write_report
from summarizer.schema import ArticleSummary
from summarizer.settings import Settings
from summarizer.view import write_view

pytestmark = pytest.mark.browser

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if under_ci():
        pytest.fail("CI is set but chromium is missing; the CI script must install it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium); the browser tests need it")


def run_chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class DomSummary(HTMLParser):
    """Just what the assertions need from a dumped DOM: elements with their attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(value in a.get(name.rstrip("_"), "").split() for name, value in attrs.items())
        ]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result, articles = sample_run()
    return write_report(result, articles, tmp_path_factory.mktemp("report"))["html"]


@pytest.fixture(scope="module")
def dom(report_html: Path) -> DomSummary:
    summary = DomSummary()
    summary.feed(run_chromium("--dump-dom", report_html.as_uri()))
    return summary


def test_page_scripts_ran(dom: DomSummary) -> None:
    assert dom.having("body")[0].get("data-ready") == "yes"


def test_chart_draws_one_bar_per_figure(dom: DomSummary) -> None:
    bars = dom.having("rect", class_="bar")
    # bodies/metrics/initiatives x P/R/F1, then year, grounding and ROUGE-L.
    assert len(bars) == 12
    metrics_f1 = next(b for b in bars if b["data-field"] == "metrics" and b["data-stat"] == "f1")
    assert float(metrics_f1["height"]) == pytest.approx(200 * 0.4, abs=0.1)


def test_highlights_and_legend_render(dom: DomSummary) -> None:
    for outcome in ("hit", "miss", "fp", "opt"):
        marks = dom.having("mark", class_=f"o-{outcome}")
        assert len(marks) >= 2, outcome  # at least one in the legend and one in the text
    links = dom.having("a", class_="item")
    ids = {attrs.get("id") for _, attrs in dom.elements}
    assert links and all(link["href"].lstrip("#") in ids for link in links)


def test_script_in_an_article_stays_text(dom: DomSummary) -> None:
    assert len(dom.having("script")) == 1  # the report's own
    assert "<script>alert('x')</script>" in "".join(dom.text)


def test_screenshot(report_html: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    run_chromium("--hide-scrollbars", "--window-size=1280,900", f"--screenshot={png}", report_html.as_uri())
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


# --- the `summarizer view` page ------------------------------------------------------------------

# A roundup of five committees sharing quotes, and a plan with a quote crossing another.
VIEW_SAMPLES = ("215_yili_gongzuozhan", "114_changping_plan")


@pytest.fixture(scope="module")
def view_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ArticleSummary], Path]:
    folder = tmp_path_factory.mktemp("view")
    paths = [next(path for path in ARTICLES if path.stem == name) for name in VIEW_SAMPLES]
    summaries = [summarise_article(path, Settings(backend="rules", use_cache=False)) for path in paths]
    results = folder / "results.jsonl"
    results.write_text("".join(s.model_dump_json() + "\n" for s in summaries), encoding="utf-8")
    assert write_view(results, folder / "view.html").complete
    return summaries, folder / "view.html"


def _crossing_key(summaries: list[ArticleSummary]) -> str:
    """The mark id of a quote that crosses the end of another (so it is shown in two pieces)."""
    for index, summary in enumerate(summaries):
        spans = sorted({i.span for b in summary.bodies for i in [*b.metrics, *b.key_initiatives] if i.span})
        for a in spans:
            for b in spans:
                if a[0] < b[0] < a[1] < b[1]:
                    return f"a{index}-{b[0]}-{b[1]}"
    raise AssertionError("the samples have no crossing quotes")


def test_view_page_runs_its_script_and_shows_every_quote(view_run: tuple[list[ArticleSummary], Path]) -> None:
    summaries, page = view_run
    key = _crossing_key(summaries)
    dom = DomSummary()
    # Following an item's link (here: opening the page at it) outlines every piece of its quote.
    dom.feed(run_chromium("--dump-dom", f"{page.as_uri()}#{key}"))
    assert dom.having("body")[0].get("data-ready") == "yes"
    assert "hidden" not in dom.having("form", id="filters")[0]  # the script shows the filters
    committees = sum(len(s.bodies) for s in summaries)
    assert f"{committees} of {committees} committees" in "".join(dom.text)
    spans = sum(len({i.span for b in s.bodies for i in [*b.metrics, *b.key_initiatives] if i.span}) for s in summaries)
    assert len([m for m in dom.having("mark") if m.get("id")]) == spans
    flashed = dom.having("mark", class_="flash")
    assert len(flashed) >= 2 and {m["data-span"] for m in flashed} == {key}
    links = dom.having("a", class_="item")
    ids = {attrs.get("id") for tag, attrs in dom.elements if tag == "mark"}
    assert len(links) == sum(len(b.metrics) + len(b.key_initiatives) for s in summaries for b in s.bodies)
    assert all(link["href"].lstrip("#") in ids for link in links)


def test_view_screenshot(tmp_path: Path) -> None:
    """One roundup's page. With UPDATE_SCREENSHOTS=1 the picture also replaces docs/view.png."""
    path = next(path for path in ARTICLES if path.stem == VIEW_SAMPLES[0])
    results = tmp_path / "results.jsonl"
    summary = summarise_article(path, Settings(backend="rules", use_cache=False))
    results.write_text(summary.model_dump_json() + "\n", encoding="utf-8")
    write_view(results, tmp_path / "view.html")
    png = tmp_path / "view.png"
    run_chromium(
        "--hide-scrollbars", "--window-size=1280,1400", f"--screenshot={png}", (tmp_path / "view.html").as_uri()
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(png, ROOT / "docs" / "view.png")
