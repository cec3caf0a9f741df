"""Show a results file as one self-contained HTML page, no gold labels needed: every committee with
filters by body, level and year, and each article's text with every evidence quote highlighted.

Like the eval report, the page needs no network (CSS and a few lines of JavaScript are inline) and
every piece of article or model text goes through `html.escape`.
"""

from __future__ import annotations

import heapq
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .article import Article, load_article
from .errors import ConfigError, InputError
from .export import format_number, same_file
from .ground import given_span, locate
from .results import ReadCounts, read_results, write_atomically
from .schema import LEVELS, ArticleSummary, Initiative, Metric

# The article was read once already to make the results, so a size limit here would only hide it.
_MAX_ARTICLE_BYTES = 1 << 31


@dataclass
class ViewCounts:
    """What the page shows, and what it could not show as the results recorded it."""

    articles: int = 0
    bodies: int = 0
    items: int = 0  # metrics and initiatives
    marks: int = 0  # distinct evidence spans highlighted in the article texts
    missing: int = 0  # articles listed without their text (no file found, or none readable)
    unverified: int = 0  # items whose recorded span is absent or does not quote their evidence
    bad_lines: int = 0  # lines of the results file that are no summary

    @property
    def complete(self) -> bool:
        """Every article's text found, every item's quote at its recorded span."""
        return not self.missing and not self.unverified


@dataclass(frozen=True)
class _Item:
    kind: str  # "metric" or "initiative"
    item: Metric | Initiative
    item_id: str
    span: tuple[int, int] | None  # where the quote is highlighted; None when it is not
    mark_id: str | None  # the id of the mark at `span`, which the item links to
    problem: str | None  # shown next to the item when its recorded span could not be trusted


@dataclass
class _Mark:
    """One distinct evidence span and the items quoting it."""

    key: str
    kinds: set[str] = field(default_factory=set)
    labels: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _label(item: Metric | Initiative) -> str:
    if isinstance(item, Metric):
        return f"{item.name}: {'≈' if item.approx else ''}{format_number(item.value)}{item.unit}"
    return item.name


# --- finding the article text -------------------------------------------------------------------


def _candidates(summary: ArticleSummary, articles_dir: Path | None, results_dir: Path) -> list[Path]:
    """Where the article may be: its recorded path (as given, then beside the results file), then by id."""
    paths: list[Path] = []
    recorded = Path(summary.source_path) if summary.source_path else None
    if recorded is not None:
        paths.append(recorded)
        if not recorded.is_absolute():
            paths.append(results_dir / recorded)
    if articles_dir is not None:
        suffix = recorded.suffix if recorded is not None and recorded.suffix else ".txt"
        paths += [articles_dir / (summary.article_id + suffix), articles_dir / summary.article_id]
        if recorded is not None:
            paths.append(articles_dir / recorded.name)
    return list(dict.fromkeys(paths))


def _find_article(
    summary: ArticleSummary, articles_dir: Path | None, results_dir: Path
) -> tuple[Article | None, str | None]:
    """The article whose text the spans point into, and a note for the page when it is missing or changed.

    A file whose hash is the one the results recorded wins; a changed file is shown with a note (its
    spans are still checked one by one); with neither, the article is listed without its text.
    """
    expected = summary.meta.input_sha256 if summary.meta else None
    candidates = _candidates(summary, articles_dir, results_dir)
    changed: Article | None = None
    unreadable: str | None = None
    for path in candidates:
        if not path.is_file():
            continue
        try:
            article = load_article(path, article_id=summary.article_id, max_bytes=_MAX_ARTICLE_BYTES)
        except InputError as exc:
            unreadable = unreadable or str(exc)
            continue
        if expected is None or article.sha256 == expected:
            return article, None
        changed = changed or article
    if changed is not None:
        return changed, f"{changed.path} has changed since the run (its hash differs); each quote is checked anew"
    if unreadable is not None:
        return None, f"article text not shown: {unreadable}"
    tried = ", ".join(str(path) for path in candidates) or "the results record no path"
    hint = "" if articles_dir is not None else "; pass --articles DIR if the files moved"
    return None, f"article text not shown: no article file found (tried {tried}){hint}"


def _place(item: Metric | Initiative, text: str | None) -> tuple[tuple[int, int] | None, str | None]:
    """Where to highlight an item's quote, and what to say when it is not at its recorded span."""
    if text is None:
        return None, None  # the article's own note says why nothing is highlighted
    span = given_span(item, text)
    if span is not None:
        return span, None
    found = locate(item.evidence, text, near=item.span)
    span_text = None if item.span is None else f"{item.span[0]}–{item.span[1]}"
    recorded = "no span recorded" if span_text is None else f"its span {span_text} does not quote it"
    if found is not None:
        return found, f"{recorded}; highlighted where the quote occurs"
    return None, f"{recorded}, and the quote is not in the article"


# --- highlighting -------------------------------------------------------------------------------


def _highlight(text: str, marks: dict[tuple[int, int], _Mark]) -> str:
    """The article as escaped HTML with one <mark id=…> per distinct span.

    Spans that nest become nested marks, so each mark's text is its whole quote. A span that crosses
    the end of an enclosing one is cut there: its first piece carries the id and the rest follow as
    marks with the same `data-span`, so every span is shown in full and the HTML stays well formed.
    """
    # (start, -end) puts the longer of two spans starting together outside; `first` tells a span's
    # own start from a piece continued after a crossing.
    pending = [(start, -end, (start, end), True) for start, end in marks]
    heapq.heapify(pending)
    out: list[str] = []
    open_ends: list[int] = []  # ends of the open marks, innermost last; each within the one before
    pos = 0

    def close_through(limit: int) -> None:
        nonlocal pos
        while open_ends and open_ends[-1] <= limit:
            end = open_ends.pop()
            out.append(_e(text[pos:end]) + "</mark>")
            pos = end

    while pending:
        start, negative_end, span, first = heapq.heappop(pending)
        end = -negative_end
        close_through(start)
        out.append(_e(text[pos:start]))
        pos = start
        if open_ends and end > open_ends[-1]:  # crosses the enclosing mark's end: continue after it
            heapq.heappush(pending, (open_ends[-1], -end, span, False))
            end = open_ends[-1]
        mark = marks[span]
        key = mark.key
        classes = " ".join(sorted(mark.kinds)) + ("" if first else " cont")
        ident = f' id="{_e(key)}"' if first else ""
        out.append(
            f'<mark{ident} class="{classes}" data-span="{_e(key)}" data-items="{_e(" ".join(mark.item_ids))}" '
            f'title="{_e(chr(10).join(mark.labels))}">'
        )
        open_ends.append(end)
    close_through(len(text))
    out.append(_e(text[pos:]))
    return "".join(out)


def _span_key(index: int, span: tuple[int, int]) -> str:
    return f"a{index}-{span[0]}-{span[1]}"


# --- the page -----------------------------------------------------------------------------------


def _year(year: int | None) -> str:
    return "-" if year is None else str(year)


def _render_items(items: Sequence[_Item]) -> str:
    rows = []
    for entry in items:
        label = _e(_label(entry.item))
        quote = f'<span class="ev">“{_e(entry.item.evidence)}”</span>'
        head = f'<a class="item" href="#{_e(entry.mark_id)}">{label}</a>' if entry.mark_id else label
        problem = f'<span class="problem">{_e(entry.problem)}</span>' if entry.problem else ""
        rows.append(f'<li class="{entry.kind}" id="{_e(entry.item_id)}">{head}{quote}{problem}</li>')
    return "<ul>" + "".join(rows) + "</ul>" if rows else '<p class="none">none</p>'


def _attrs(body: str, level: str, year: int | None) -> str:
    return f'data-body="{_e(body)}" data-level="{_e(level)}" data-year="{_year(year)}"'


@dataclass
class _Shown:
    """One article as the page shows it."""

    index: int
    summary: ArticleSummary
    article: Article | None
    note: str | None
    items: list[list[_Item]]  # per body


def _collect(index: int, summary: ArticleSummary, article: Article | None, note: str | None) -> _Shown:
    text = article.text if article is not None else None
    per_body: list[list[_Item]] = []
    for b, body in enumerate(summary.bodies):
        entries: list[_Item] = []
        pairs: list[tuple[str, Metric | Initiative]] = [("metric", m) for m in body.metrics]
        pairs += [("initiative", i) for i in body.key_initiatives]
        for n, (kind, item) in enumerate(pairs):
            span, problem = _place(item, text)
            mark_id = None if span is None else _span_key(index, span)
            entries.append(_Item(kind, item, f"a{index}-b{b}-{kind[0]}{n}", span, mark_id, problem))
        per_body.append(entries)
    return _Shown(index, summary, article, note, per_body)


def _render_article(shown: _Shown) -> str:
    summary, index = shown.summary, shown.index
    marks: dict[tuple[int, int], _Mark] = {}
    blocks = []
    for b, (body, entries) in enumerate(zip(summary.bodies, shown.items, strict=True)):
        for entry in entries:
            if entry.span is None or entry.mark_id is None:
                continue
            mark = marks.setdefault(entry.span, _Mark(entry.mark_id))
            mark.kinds.add(entry.kind)
            mark.labels.append(f"{body.body} {entry.kind}: {_label(entry.item)}")
            mark.item_ids.append(entry.item_id)
        metrics = [entry for entry in entries if entry.kind == "metric"]
        initiatives = [entry for entry in entries if entry.kind == "initiative"]
        blocks.append(
            f'<div class="body" id="a{index}-b{b}" {_attrs(body.body, body.level, body.year)}>'
            f"<h3>{_e(body.body)} <small>{_e(body.level)} · {_year(body.year)}</small></h3>"
            f'<p class="summary">{_e(body.summary) or "<i>no summary</i>"}</p>'
            f"<h4>metrics ({len(metrics)})</h4>{_render_items(metrics)}"
            f"<h4>initiatives ({len(initiatives)})</h4>{_render_items(initiatives)}</div>"
        )
    if not summary.bodies:
        blocks.append('<p class="none">no committees reported for this article</p>')
    facts = [summary.title, summary.source, summary.published]
    line = " · ".join(_e(fact) for fact in facts if fact)
    if summary.url and summary.url.startswith(("http://", "https://")):
        line += f' · <a href="{_e(summary.url)}" rel="noreferrer">{_e(summary.url)}</a>'
    if summary.meta is not None:
        line += f" · {_e(summary.meta.backend)}" + (f" {_e(summary.meta.model)}" if summary.meta.model else "")
    notes = [shown.note] if shown.note else []
    problems = sum(entry.problem is not None for entries in shown.items for entry in entries)
    if problems:
        notes.append(f"{problems} quotes are not at their recorded span (marked below)")
    note_html = "".join(f'<p class="note">{_e(note)}</p>' for note in notes)
    warnings = summary.meta.warnings if summary.meta else []
    if warnings:
        note_html += (
            f"<details><summary>{len(warnings)} warnings from the run</summary><ul>"
            + "".join(f"<li>{_e(w)}</li>" for w in warnings)
            + "</ul></details>"
        )
    if shown.article is not None:
        text = f'<div class="text" lang="zh">{_highlight(shown.article.text, marks)}</div>'
    else:
        text = '<div class="text missing">(article text not available)</div>'
    return (
        f'<section class="article" id="a{index}"><h2>{_e(summary.article_id)}</h2>'
        f'<p class="facts">{line}</p>{note_html}'
        f'<div class="cols"><div class="bodies">{"".join(blocks)}</div>{text}</div></section>'
    )


def _options(name: str, label: str, values: Sequence[tuple[str, str]]) -> str:
    options = "".join(f'<option value="{_e(value)}">{_e(text)}</option>' for value, text in values)
    return f'<label>{label} <select name="{name}"><option value="">all</option>{options}</select></label>'


def _filters(summaries: Sequence[ArticleSummary]) -> str:
    bodies = sorted({body.body for s in summaries for body in s.bodies})
    levels = [level for level in LEVELS if any(b.level == level for s in summaries for b in s.bodies)]
    years = sorted({body.year for s in summaries for body in s.bodies}, key=lambda y: (y is None, -(y or 0)))
    return (
        # Hidden until the script runs, so without JavaScript there is no control that does nothing.
        '<form id="filters" class="filters" hidden>'
        + _options("body", "Committee", [(b, b) for b in bodies])
        + _options("level", "Level", [(level, level) for level in levels])
        + _options("year", "Year", [(_year(y), _year(y) if y is not None else "no year") for y in years])
        + ' <span id="shown"></span></form>'
    )


def _committee_rows(shown: Sequence[_Shown]) -> str:
    rows = []
    for entry in shown:
        for b, body in enumerate(entry.summary.bodies):
            rows.append(
                f"<tr {_attrs(body.body, body.level, body.year)}>"
                f'<td><a href="#a{entry.index}">{_e(entry.summary.article_id)}</a></td>'
                f'<td><a href="#a{entry.index}-b{b}">{_e(body.body)}</a></td><td>{_e(body.level)}</td>'
                f'<td>{_year(body.year)}</td><td class="summary">{_e(body.summary)}</td>'
                f"<td>{len(body.metrics)}</td><td>{len(body.key_initiatives)}</td></tr>"
            )
    return "".join(rows)


_CSS = """
:root { --metric:#dbeafe; --metric-b:#2563eb; --init:#fef3c7; --init-b:#d97706; --ink:#1f2937;
  --muted:#6b7280; --line:#e5e7eb; --bad:#b91c1c; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; padding: 0 32px 64px; color: var(--ink); background: #f8fafc;
  font: 14px/1.55 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei",
  sans-serif; }
h1 { margin: 20px 0 4px; font-size: 24px; } h2 { font-size: 18px; margin: 0 0 4px; }
h3 { font-size: 15px; margin: 0 0 4px; } h3 small { color: var(--muted); font-weight: normal; }
h4 { font-size: 12px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.run, .facts { color: var(--muted); margin: 0 0 10px; }
.filters { position: sticky; top: 0; z-index: 2; background: #f8fafc; padding: 10px 0;
  border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 16px; align-items: center; }
.filters select { max-width: 260px; font: inherit; } #shown { color: var(--muted); }
table { border-collapse: collapse; background: #fff; width: 100%; margin: 10px 0 24px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; background: #f1f5f9; } td:nth-child(n+6) { text-align: right; }
td.summary { max-width: 520px; }
a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
.legend { display: flex; gap: 14px; margin: 6px 0 14px; font-size: 13px; }
.article { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px;
  margin: 0 0 20px; scroll-margin-top: 60px; }
.note { color: var(--bad); margin: 4px 0; }
.cols { display: grid; grid-template-columns: minmax(300px, 40%) 1fr; gap: 18px; align-items: start; }
.body { border-left: 4px solid var(--line); padding: 4px 0 8px 10px; margin: 0 0 12px; scroll-margin-top: 60px; }
.body .summary { margin: 0; }
.bodies ul { list-style: none; margin: 0; padding: 0; }
.bodies li { margin: 2px 0; padding: 2px 6px; border-left: 3px solid var(--line); }
.bodies li.metric { border-color: var(--metric-b); } .bodies li.initiative { border-color: var(--init-b); }
.ev { display: block; color: var(--muted); font-size: 12px; }
.problem { display: block; color: var(--bad); font-size: 12px; } .none { color: var(--muted); margin: 0; }
.text { white-space: pre-wrap; line-height: 1.9; max-height: 85vh; overflow: auto; border: 1px solid var(--line);
  border-radius: 6px; padding: 12px 16px; }
.text.missing { color: var(--muted); }
mark { color: inherit; border-radius: 2px; padding: 1px 0; scroll-margin: 30vh 0; }
mark.metric { background: var(--metric); box-shadow: inset 0 -2px var(--metric-b); }
mark.initiative { background: var(--init); box-shadow: inset 0 -2px var(--init-b); }
mark.initiative.metric { background: linear-gradient(var(--metric) 50%, var(--init) 50%); }
mark mark { box-shadow: inset 0 -4px var(--metric-b); }
mark mark.initiative { box-shadow: inset 0 -4px var(--init-b); }
mark:target, mark.flash { outline: 2px solid #dc2626; outline-offset: 1px; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
"""

# Filters hide committees (table rows and article blocks) that do not match, and articles left with
# none; clicking an item outlines every piece of its quote (a quote cut by a crossing one has two).
_JS = """
(function () {
  var form = document.getElementById('filters');
  var selects = Array.prototype.slice.call(form.querySelectorAll('select'));
  var counter = document.getElementById('shown');
  function apply() {
    var want = {}, active = false;
    selects.forEach(function (s) { want[s.name] = s.value; active = active || s.value !== ''; });
    var rows = document.querySelectorAll('tr[data-body]'), shown = 0;
    document.querySelectorAll('[data-body]').forEach(function (el) {
      el.hidden = !['body', 'level', 'year'].every(function (k) { return !want[k] || el.dataset[k] === want[k]; });
    });
    rows.forEach(function (row) { if (!row.hidden) { shown += 1; } });
    document.querySelectorAll('section.article').forEach(function (section) {
      section.hidden = active && !section.querySelector('.body:not([hidden])');
    });
    counter.textContent = shown + ' of ' + rows.length + ' committees';
  }
  function flash(key) {
    document.querySelectorAll('mark.flash').forEach(function (m) { m.classList.remove('flash'); });
    document.querySelectorAll('mark[data-span]').forEach(function (m) {
      if (m.dataset.span === key) { m.classList.add('flash'); }
    });
  }
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  document.addEventListener('click', function (event) {
    var link = event.target.closest('a.item');
    if (link) { flash(link.getAttribute('href').slice(1)); }
  });
  if (location.hash) { flash(decodeURIComponent(location.hash.slice(1))); }
  form.hidden = false;
  apply();
  document.body.setAttribute('data-ready', 'yes');
})();
"""


def _render_page(shown: Sequence[_Shown], title: str, counts: ViewCounts) -> str:
    """The whole page: header, filters, the committee table, then every article."""
    summaries = [entry.summary for entry in shown]
    problems = []
    if counts.missing:
        problems.append(f"{counts.missing} articles without their text")
    if counts.unverified:
        problems.append(f"{counts.unverified} quotes not at their recorded span")
    if counts.bad_lines:
        problems.append(f"{counts.bad_lines} unreadable lines skipped")
    run_line = (
        f"{counts.articles} articles · {counts.bodies} committees · {counts.items} metrics and initiatives · "
        f"{counts.marks} quotes highlighted" + "".join(f' · <span class="note">{_e(p)}</span>' for p in problems)
    )
    legend = (
        '<div class="legend"><span><mark class="metric">metric</mark></span>'
        '<span><mark class="initiative">initiative</mark></span>'
        '<span><mark class="initiative metric">both</mark></span></div>'
    )
    empty = "" if shown else '<p class="note">The results file holds no readable summaries.</p>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1><p class="run">{run_line}</p>{empty}
{_filters(summaries)}
<h2 style="margin-top:16px">Committees</h2>
<table class="committees"><tr><th>Article</th><th>Committee</th><th>Level</th><th>Year</th><th>Summary</th>
<th>Metrics</th><th>Initiatives</th></tr>{_committee_rows(shown)}</table>
<h2>Articles</h2>{legend}
{"".join(_render_article(entry) for entry in shown)}
<script>{_JS}</script>
</body></html>
"""


def write_view(results_path: Path, output_path: Path, articles_dir: Path | None = None) -> ViewCounts:
    """Write an HTML page showing every summary in a results file, its quotes highlighted in its article.

    Each article is re-read from the path its results line records (or, when that has moved, from
    `articles_dir` by article id) and every item's span is checked against its quote. An article that
    cannot be found, or a quote not at its span, is listed all the same and flagged on the page and in
    the counts; neither stops the page.

    Raises:
        ConfigError: the results file cannot be read, `articles_dir` is no folder, the output would
            replace the results file or an article, or the output cannot be written.
    """
    results_path, output_path = Path(results_path), Path(output_path)
    if articles_dir is not None and not Path(articles_dir).is_dir():
        raise ConfigError(f"{articles_dir}: not a folder; --articles names the folder the articles are in")
    if same_file(output_path, results_path):
        raise ConfigError(f"{output_path}: is the results file being shown; write the page somewhere else")
    read = ReadCounts()
    try:
        summaries = list(read_results(results_path, counts=read))
    except InputError as exc:
        raise ConfigError(str(exc)) from exc
    counts = ViewCounts(articles=len(summaries), bad_lines=read.bad_lines)
    shown: list[_Shown] = []
    for index, summary in enumerate(summaries):
        article, note = _find_article(summary, articles_dir, results_path.parent)
        if article is not None and article.path is not None and same_file(output_path, article.path):
            raise ConfigError(f"{output_path}: is the article {summary.article_id}; write the page somewhere else")
        entry = _collect(index, summary, article, note)
        shown.append(entry)
        items = [item for entries in entry.items for item in entries]
        counts.bodies += len(summary.bodies)
        counts.items += len(items)
        counts.marks += len({item.span for item in items if item.span is not None})
        counts.unverified += sum(item.problem is not None for item in items)
        counts.missing += article is None
    page = _render_page(shown, f"Results: {results_path.name}", counts)
    try:
        write_atomically(output_path, lambda temp: temp.write_text(page, encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{output_path}: cannot write ({exc.strerror or exc})") from exc
    return counts
