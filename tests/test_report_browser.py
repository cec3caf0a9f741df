"""Render report.html in headless Chromium and check what a reader would see.

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
from summarizer.report import write_report

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
