"""Present a scored run: report.json, a Markdown summary, a self-contained HTML page, terminal tables.

The HTML page needs no network: CSS, the SVG chart and a few lines of JavaScript are inline, and
every piece of article or label text goes through `html.escape`.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .errors import EvalDataError

PRF_FIELDS = ("bodies", "metrics", "initiatives")
STATS = ("precision", "recall", "f1")
# How each outcome is shown in the article text; also the legend, in this order.
OUTCOMES = {
    "hit": "matched (gold and prediction agree)",
    "miss": "missed (in gold, not predicted)",
    "fp": "false positive (predicted, not in gold)",
    "opt": "optional gold item the prediction found (not scored)",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _year(year: Mapping[str, Any]) -> str:
    # With no matched body there is no year to judge; 0.0 would read as "all wrong".
    return _pct(year["accuracy"]) if year["total"] else "–"


# --- report.json / report.md --------------------------------------------------------------------


def write_report(result: Mapping[str, Any], articles: Mapping[str, str], out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into `out_dir` (created if needed).

    Returns:
        {"json": ..., "markdown": ..., "html": ...} paths of the written files.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "report.md",
        "html": out_dir / "report.html",
    }
    paths["json"].write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(result), encoding="utf-8")
    paths["html"].write_text(render_html(result, articles), encoding="utf-8")
    return paths


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json written by `write_report` (for --compare).

    Raises:
        EvalDataError: the file is missing, not JSON, or not a report.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise EvalDataError(f"{path}: no such report file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise EvalDataError(f"{path}: not an eval report (expected a JSON object)")
    for key in (*PRF_FIELDS, "year", "per_article"):
        if key not in data:
            raise EvalDataError(f"{path}: {key}: missing; not an eval report written by `summarizer eval`")
    return data


def _md(text: object) -> str:
    """A table cell or list item: article text may hold HTML, which a Markdown viewer would render."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def _item_label(item: Mapping[str, Any]) -> str:
    if "value" in item:
        approx = "≈" if item.get("approx") else ""
        value = item["value"]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{item['name']}: {approx}{shown}{item['unit']}"
    return str(item["name"])


def render_markdown(result: Mapping[str, Any]) -> str:
    """The report as Markdown tables: totals, per article, then each article's misses and false positives."""
    run = result.get("run", {})
    lines = [
        "# Eval report",
        "",
        f"Backend: {_md(run.get('backend') or '–')} · model: {_md(run.get('model') or '–')} · "
        f"articles: {run.get('articles', len(result['per_article']))}",
        "",
        "| Field | Precision | Recall | F1 | TP | FP | FN |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for field in PRF_FIELDS:
        s = result[field]
        lines.append(
            f"| {field} | {_pct(s['precision'])} | {_pct(s['recall'])} | {_pct(s['f1'])} "
            f"| {s['tp']} | {s['fp']} | {s['fn']} |"
        )
    cost = result.get("cost", {})
    lines += [
        "",
        "| Figure | Value |",
        "|---|---:|",
        f"| year accuracy | {_pct(result['year']['accuracy'])} "
        f"({result['year']['correct']}/{result['year']['total']}) |",
        f"| grounding rate | {_pct(result.get('grounding_rate'))} |",
        f"| summary ROUGE-L | {_pct(result.get('summary_rouge_l'))} |",
        f"| tokens per article | {_num(cost.get('tokens_per_article'))} |",
        f"| requests per article | {_num(cost.get('requests_per_article'))} |",
        "",
        "Percentages; metrics, bodies and initiatives are micro-averaged over all items.",
        "",
    ]
    if splits := result.get("splits"):
        lines += [
            "## By split",
            "",
            "| Split | Articles | Bodies F1 | Year | Metrics P | Metrics R | Metrics F1 | Initiatives P "
            "| Initiatives R | Initiatives F1 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, st in splits.items():
            m, i = st["metrics"], st["initiatives"]
            lines.append(
                f"| {_md(name)} | {st['articles']} | {_pct(st['bodies']['f1'])} | {_pct(st['year']['accuracy'])} "
                f"| {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} "
                f"| {_pct(i['precision'])} | {_pct(i['recall'])} | {_pct(i['f1'])} |"
            )
        lines.append("")
    lines += [
        "## Per article",
        "",
        "| Article | Split | Bodies F1 | Metrics P | Metrics R | Metrics F1 | Initiatives F1 | Year | Grounding "
        "| ROUGE-L |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in result["per_article"]:
        m = entry["metrics"]
        lines.append(
            f"| {_md(entry['article_id'])} | {_md(entry.get('split') or '')} | {_pct(entry['bodies']['f1'])} "
            f"| {_pct(m['precision'])} "
            f"| {_pct(m['recall'])} | {_pct(m['f1'])} | {_pct(entry['initiatives']['f1'])} "
            f"| {_year(entry['year'])} | {_pct(entry['grounding_rate'])} "
            f"| {_pct(entry['summary_rouge_l'])} |"
        )
    for entry in result["per_article"]:
        lines += ["", f"### {_md(entry['article_id'])}", ""]
        bodies = entry["details"]["bodies"]
        lines += [f"- missed body: {_md(b['gold'])}" for b in bodies["missed"]]
        lines += [f"- false-positive body: {_md(b['pred'])}" for b in bodies["false_positive"]]
        for field in ("metrics", "initiatives"):
            details = entry["details"][field]
            for kind, title in (("missed", "missed"), ("false_positive", "false positive")):
                for item in details[kind]:
                    where = "" if item["span"] is not None else " (evidence not in the article)"
                    lines.append(f"- {title} {field[:-1]}: {_md(_item_label(item))} — “{_md(item['evidence'])}”{where}")
        if lines[-1] == "":
            lines.append("Nothing missed, nothing extra.")
    return "\n".join(lines) + "\n"


# --- terminal tables ----------------------------------------------------------------------------


def _figure_rows(stats: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) rows for one set of totals: P/R/F1 with counts, year accuracy, grounding."""
    rows = []
    for field in PRF_FIELDS:
        s = stats[field]
        counts = f" ({s['tp']}/{s['fp']}/{s['fn']})"
        rows += [(f"{field} P", _pct(s["precision"])), (f"{field} R", _pct(s["recall"]))]
        rows.append((f"{field} F1", _pct(s["f1"]) + counts))
    year = stats["year"]
    rows.append(("year accuracy", f"{_pct(year['accuracy'])} ({year['correct']}/{year['total']})"))
    rows.append(("grounding", _pct(stats.get("grounding_rate"))))
    rows.append(("summary ROUGE-L", _pct(stats.get("summary_rouge_l"))))
    cost = stats.get("cost", {})
    cached = f" ({cost['cache_hits']} chunks from cache)" if cost.get("cache_hits") else ""
    rows.append(("tokens / article", _num(cost.get("tokens_per_article")) + cached))
    return rows


def render_table(result: Mapping[str, Any]) -> Group:
    """Compact rich tables for the terminal: one row per figure with each split side by side (then
    all articles), then one row per article."""
    columns: list[tuple[str, Mapping[str, Any]]] = [
        (f"{name} ({stats['articles']})", stats) for name, stats in (result.get("splits") or {}).items()
    ]
    columns.append((f"all ({len(result['per_article'])})", result))
    fields = Table(title="Eval scores (%; TP/FP/FN in brackets)", title_justify="left")
    fields.add_column("Figure", justify="left")
    for label, _ in columns:
        fields.add_column(label, justify="right")
    per_column = [_figure_rows(stats) for _, stats in columns]
    for index, (figure, _) in enumerate(per_column[0]):
        fields.add_row(figure, *(rows[index][1] for rows in per_column))

    articles = Table(title="Per article (F1 %)", title_justify="left")
    for column in ("Article", "Split", "Bodies", "Metrics", "Initiatives", "Year", "Grounding"):
        articles.add_column(column, justify="left" if column in ("Article", "Split") else "right")
    for entry in result["per_article"]:
        articles.add_row(
            entry["article_id"] + ("" if entry.get("predicted", True) else " (no prediction)"),
            entry.get("split") or "",
            _pct(entry["bodies"]["f1"]),
            _pct(entry["metrics"]["f1"]),
            _pct(entry["initiatives"]["f1"]),
            _year(entry["year"]),
            _pct(entry["grounding_rate"]),
        )
    return Group(fields, articles)


# --- comparing two runs -------------------------------------------------------------------------

# (label, path into the report, True when a higher number is better)
_COMPARED: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    *((f"{field} {stat}", (field, stat), True) for field in PRF_FIELDS for stat in STATS),
    ("year accuracy", ("year", "accuracy"), True),
    ("grounding rate", ("grounding_rate",), True),
    ("summary ROUGE-L", ("summary_rouge_l",), True),
    ("tokens per article", ("cost", "tokens_per_article"), False),
    ("requests per article", ("cost", "requests_per_article"), False),
)
_COMPARED_PER_ARTICLE = (("bodies", "f1"), ("metrics", "f1"), ("initiatives", "f1"), ("year", "accuracy"))


def _lookup(report: Mapping[str, Any], path: Sequence[str]) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _delta(a: float | None, b: float | None, higher_is_better: bool = True) -> dict[str, Any]:
    delta = None if a is None or b is None else b - a
    better = None if delta is None or abs(delta) < 1e-12 else (delta > 0) == higher_is_better
    return {"a": a, "b": b, "delta": delta, "better": better}


def compare_reports(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Per-field and per-article differences from report `a` (before) to report `b` (after).

    Returns:
        {"fields": [{"field", "a", "b", "delta", "better", "higher_is_better"}...],
         "per_article": [{"article_id", "<field> <stat>": {"a", "b", "delta", "better"}}...]
             (articles in both reports),
         "only_in_a": [...], "only_in_b": [...], "run": {"a": run, "b": run}}
    """
    fields = [
        {"field": label, "higher_is_better": higher} | _delta(_lookup(a, path), _lookup(b, path), higher)
        for label, path, higher in _COMPARED
    ]
    entries_a = {entry["article_id"]: entry for entry in a.get("per_article", [])}
    entries_b = {entry["article_id"]: entry for entry in b.get("per_article", [])}
    per_article = []
    for article_id in sorted(set(entries_a) & set(entries_b)):
        row: dict[str, Any] = {"article_id": article_id}
        for field, stat in _COMPARED_PER_ARTICLE:
            row[f"{field} {stat}"] = _delta(
                _lookup(entries_a[article_id], (field, stat)), _lookup(entries_b[article_id], (field, stat))
            )
        per_article.append(row)
    return {
        "fields": fields,
        "per_article": per_article,
        "only_in_a": sorted(set(entries_a) - set(entries_b)),
        "only_in_b": sorted(set(entries_b) - set(entries_a)),
        "run": {"a": a.get("run"), "b": b.get("run")},
    }


def _delta_text(change: Mapping[str, Any], *, percent: bool) -> Text:
    delta = change["delta"]
    if delta is None:
        return Text("–")
    shown = f"{delta * 100:+.1f}" if percent else f"{delta:+,.1f}"
    style = {True: "green", False: "red", None: "dim"}[change["better"]]
    return Text(shown, style=style)


def render_comparison(comparison: Mapping[str, Any]) -> Group:
    """Rich tables of `compare_reports` output: A, B and the change per field, then per article."""
    fields = Table(title="A → B", title_justify="left")
    for column in ("Field", "A", "B", "Δ"):
        fields.add_column(column, justify="left" if column == "Field" else "right")
    for row in comparison["fields"]:
        percent = row["higher_is_better"]  # the cost figures are counts, the rest are rates
        show = _pct if percent else _num
        fields.add_row(row["field"], show(row["a"]), show(row["b"]), _delta_text(row, percent=percent))
    articles = Table(title="Per article, Δ in points", title_justify="left")
    articles.add_column("Article")
    for field, stat in _COMPARED_PER_ARTICLE:
        articles.add_column(f"{field} {stat}".replace("accuracy", "acc"), justify="right")
    for row in comparison["per_article"]:
        articles.add_row(
            row["article_id"],
            *(_delta_text(row[f"{field} {stat}"], percent=True) for field, stat in _COMPARED_PER_ARTICLE),
        )
    return Group(fields, articles)


# --- report.html --------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class _Mark:
    start: int
    end: int
    outcome: str  # a key of OUTCOMES
    key: str  # the element id the item's list entry links to
    label: str


def _item_spans(item: Mapping[str, Any]) -> list[tuple[int, int]]:
    span = item.get("span")
    return [] if span is None else [(int(span[0]), int(span[1]))]


def _collect_marks(index: int, details: Mapping[str, Any]) -> tuple[list[_Mark], dict[str, list[dict[str, Any]]]]:
    """Highlights for one article, and the item lists (with anchor keys) that link to them."""
    marks: list[_Mark] = []
    lists: dict[str, list[dict[str, Any]]] = {}
    for field in ("metrics", "initiatives"):
        kind = field[:-1]
        groups = (
            ("hit", details[field]["matched"]),
            ("miss", details[field]["missed"]),
            ("fp", details[field]["false_positive"]),
            ("opt", details[field].get("ignored", [])),
        )
        for outcome, items in groups:
            rows = lists.setdefault(f"{field}:{outcome}", [])
            for n, item in enumerate(items):
                key = f"a{index}-{kind}-{outcome}-{n}"
                shown = item.get("gold", item)  # a matched pair is named by its gold side
                label = f"{OUTCOMES[outcome].split(' (')[0]} {kind}: {_item_label(shown)}"
                sides = [item["gold"], item["pred"]] if "gold" in item else [item]
                spans = [span for side in sides for span in _item_spans(side)]
                marks += [_Mark(start, end, outcome, key, label) for start, end in spans]
                rows.append({"key": key if spans else None, "item": item, "shown": shown})
    return marks, lists


def _highlight(text: str, marks: Sequence[_Mark]) -> str:
    """Article text as escaped HTML, with overlapping highlights split into non-overlapping <mark>s."""
    anchors: dict[int, list[str]] = {}
    first_start: dict[str, int] = {}
    for mark in marks:
        first_start[mark.key] = min(mark.start, first_start.get(mark.key, mark.start))
    for key, start in first_start.items():
        anchors.setdefault(start, []).append(key)
    cuts = sorted({0, len(text), *(m.start for m in marks), *(m.end for m in marks)})
    parts: list[str] = []
    for start, end in itertools.pairwise(cuts):
        parts += [f'<span class="anchor" id="{_e(key)}"></span>' for key in anchors.get(start, [])]
        covering = [m for m in marks if m.start <= start and end <= m.end]
        chunk = _e(text[start:end])
        if not covering:
            parts.append(chunk)
            continue
        outcomes = sorted({m.outcome for m in covering}, key=list(OUTCOMES).index)
        keys = " ".join(dict.fromkeys(m.key for m in covering))
        title = "\n".join(dict.fromkeys(m.label for m in covering))
        classes = " ".join(f"o-{o}" for o in outcomes) + (" mixed" if len(outcomes) > 1 else "")
        parts.append(f'<mark class="{classes}" data-k="{_e(keys)}" title="{_e(title)}">{chunk}</mark>')
    return "".join(parts)


_BAR_COLOURS = {"precision": "#6366f1", "recall": "#0ea5e9", "f1": "#10b981", "single": "#f59e0b"}


def render_chart(result: Mapping[str, Any]) -> str:
    """Inline SVG bar chart: P/R/F1 for bodies, metrics and initiatives, then the single-number figures."""
    groups: list[tuple[str, list[tuple[str, float]]]] = [
        (field, [(stat, float(result[field][stat])) for stat in STATS]) for field in PRF_FIELDS
    ]
    groups += [
        ("year", [("single", float(result["year"]["accuracy"]))]),
        ("grounding", [("single", float(result.get("grounding_rate", 0.0)))]),
        ("ROUGE-L", [("single", float(result.get("summary_rouge_l", 0.0)))]),
    ]
    width, height, left, top, plot_h, bar_w, gap = 720, 280, 44, 16, 200, 30, 34
    out = [
        f'<svg class="chart" role="img" aria-label="Scores by field" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        out.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(tick * 100)}</text>')
    x = left + 14
    for field, bars in groups:
        group_x = x
        for stat, value in bars:
            value = min(max(value, 0.0), 1.0)
            bar_h = plot_h * value
            y = top + plot_h - bar_h
            out.append(
                f'<rect class="bar" data-field="{_e(field)}" data-stat="{stat}" x="{x}" y="{y:.1f}" '
                f'width="{bar_w}" height="{bar_h:.1f}" fill="{_BAR_COLOURS[stat]}" rx="2">'
                f"<title>{_e(field)} {'' if stat == 'single' else stat} {value * 100:.1f}%</title></rect>"
            )
            out.append(
                f'<text class="val" x="{x + bar_w / 2}" y="{y - 4:.1f}" text-anchor="middle">{value * 100:.0f}</text>'
            )
            x += bar_w + 2
        centre = (group_x + x - 2) / 2
        out.append(
            f'<text class="lab" x="{centre:.1f}" y="{top + plot_h + 20}" text-anchor="middle">{_e(field)}</text>'
        )
        x += gap
    legend_x = left
    for stat, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("single", "score")):
        out.append(
            f'<rect x="{legend_x}" y="{height - 26}" width="12" height="12" fill="{_BAR_COLOURS[stat]}" rx="2"/>'
        )
        out.append(f'<text class="lab" x="{legend_x + 17}" y="{height - 16}">{name}</text>')
        legend_x += 100
    out.append("</svg>")
    return "".join(out)


_CSS = """
:root { --hit:#bbf7d0; --hit-b:#16a34a; --miss:#fde68a; --miss-b:#d97706; --fp:#fecaca; --fp-b:#dc2626;
  --opt:#e5e7eb; --opt-b:#6b7280; --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 64px; color: var(--ink); background: #f8fafc;
  font: 14px/1.55 system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei",
  sans-serif; }
h1 { margin: 0 0 4px; font-size: 24px; } h2 { font-size: 18px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.run { color: var(--muted); margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px;
  min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: var(--muted); font-size: 12px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.scores { display: flex; flex-wrap: wrap; gap: 24px; align-items: center; }
.figures { color: var(--muted); margin: -4px 0 10px; }
.chart .grid { stroke: var(--line); } .chart text { font-size: 12px; fill: var(--ink); }
.chart .tick, .chart .val { fill: var(--muted); font-size: 11px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { font-weight: 600; background: #f1f5f9; }
a { color: #1d4ed8; text-decoration: none; } a:hover { text-decoration: underline; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0 12px; font-size: 13px; }
.legend mark { padding: 0 6px; }
.cols { display: grid; grid-template-columns: minmax(280px, 38%) 1fr; gap: 16px; align-items: start; }
.items ul { list-style: none; margin: 0; padding: 0; }
.items li { margin: 3px 0; padding: 3px 6px 3px 8px; border-left: 4px solid var(--line); background: #fff; }
.items li.o-hit { border-color: var(--hit-b); } .items li.o-miss { border-color: var(--miss-b); }
.items li.o-fp { border-color: var(--fp-b); } .items li.o-opt { border-color: var(--opt-b); }
.items .ev { display: block; color: var(--muted); font-size: 12px; }
.items .tag { font-size: 11px; color: var(--fp-b); }
.text { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 18px;
  white-space: pre-wrap; line-height: 1.9; max-height: 80vh; overflow: auto; }
mark { border-radius: 2px; padding: 1px 0; color: inherit; }
mark.o-hit { background: var(--hit); box-shadow: inset 0 -2px var(--hit-b); }
mark.o-miss { background: var(--miss); box-shadow: inset 0 -2px var(--miss-b); }
mark.o-fp { background: var(--fp); box-shadow: inset 0 -2px var(--fp-b); }
mark.o-opt { background: var(--opt); box-shadow: inset 0 -2px var(--opt-b); }
mark.mixed { background: repeating-linear-gradient(135deg, var(--miss) 0 6px, var(--fp) 6px 12px); }
mark.mixed.o-hit { background: repeating-linear-gradient(135deg, var(--hit) 0 6px, var(--fp) 6px 12px); }
mark.flash { outline: 2px solid #1d4ed8; outline-offset: 1px; }
.anchor { scroll-margin-top: 40vh; }
.bodies td:nth-child(2) { text-align: left; }
@media (max-width: 900px) { .cols { grid-template-columns: 1fr; } }
"""

# Clicking a listed item outlines every piece of its highlight (a matched pair has two evidences).
_JS = """
function flashItem(key) {
  document.querySelectorAll('mark.flash').forEach(function (m) { m.classList.remove('flash'); });
  document.querySelectorAll('mark[data-k]').forEach(function (m) {
    if (m.dataset.k.split(' ').indexOf(key) >= 0) { m.classList.add('flash'); }
  });
}
document.addEventListener('click', function (event) {
  var link = event.target.closest('a.item');
  if (link) { flashItem(link.getAttribute('href').slice(1)); }
});
if (location.hash) { flashItem(decodeURIComponent(location.hash.slice(1))); }
document.body.setAttribute('data-ready', 'yes');
"""


def _card(label: str, value: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _prf_cells(stats: Mapping[str, Any]) -> str:
    return "".join(f"<td>{_pct(stats[s])}</td>" for s in STATS)


def _render_items(index: int, lists: Mapping[str, list[dict[str, Any]]]) -> str:
    out = []
    for field in ("metrics", "initiatives"):
        out.append(f"<h3>{field}</h3><ul>")
        for outcome in OUTCOMES:
            for row in lists.get(f"{field}:{outcome}", []):
                item, shown = row["item"], row["shown"]
                label = _e(_item_label(shown))
                body = f'<span class="ev">{_e(shown["body"])} · “{_e(shown["evidence"])}”</span>'
                if "pred" in item:
                    pred = item["pred"]
                    evidence = _e(pred["evidence"])
                    body += f'<span class="ev">predicted: {_e(_item_label(pred))} · “{evidence}”</span>'
                head = OUTCOMES[outcome].split(" (")[0]
                if row["key"] is not None:
                    text = f'<a class="item" href="#{_e(row["key"])}">{head}: {label}</a>'
                else:
                    text = f'{head}: {label} <span class="tag">evidence not in the article</span>'
                out.append(f'<li class="o-{outcome}">{text}{body}</li>')
        out.append("</ul>")
    return "".join(out)


def _render_bodies(details: Mapping[str, Any]) -> str:
    rows = []
    for b in details["matched"]:
        year = "✓" if b["year_correct"] else f"✗ ({_e(b['pred_year'])} vs {_e(b['gold_year'])})"
        rouge = "–" if b["summary_rouge_l"] is None else _pct(b["summary_rouge_l"])
        rows.append(
            f"<tr><td>matched</td><td>{_e(b['gold'])} ← {_e(b['pred'])}</td><td>{year}</td><td>{rouge}</td></tr>"
        )
    rows += [f"<tr><td>missed</td><td>{_e(b['gold'])}</td><td></td><td></td></tr>" for b in details["missed"]]
    rows += [
        f"<tr><td>false positive</td><td>{_e(b['pred'])}</td><td></td><td></td></tr>" for b in details["false_positive"]
    ]
    head = "<tr><th>Body</th><th>gold ← predicted</th><th>Year</th><th>ROUGE-L</th></tr>"
    return f'<table class="bodies">{head}{"".join(rows)}</table>'


def _render_article(index: int, entry: Mapping[str, Any], text: str) -> str:
    marks, lists = _collect_marks(index, entry["details"])
    note = "" if entry.get("predicted", True) else " <small>(the run has no prediction for this article)</small>"
    m = entry["metrics"]
    figures = (
        f"bodies F1 {_pct(entry['bodies']['f1'])} · metrics P {_pct(m['precision'])} R {_pct(m['recall'])} "
        f"F1 {_pct(m['f1'])} · initiatives F1 {_pct(entry['initiatives']['f1'])} · "
        f"year {_year(entry['year'])} · grounding {_pct(entry['grounding_rate'])}"
    )
    return (
        f'<section class="article" id="art-{index}"><h2>{_e(entry["article_id"])}{note}</h2>'
        f'<p class="figures">{figures}</p>'
        f'<div class="cols"><div class="items">{_render_bodies(entry["details"]["bodies"])}'
        f"{_render_items(index, lists)}</div>"
        f'<div class="text" lang="zh">{_highlight(text, marks)}</div></div></section>'
    )


def _legend() -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><mark class="o-{o}">&nbsp;&nbsp;&nbsp;</mark> {_e(label)}</span>' for o, label in OUTCOMES.items()
        )
        + '<span><mark class="o-miss o-fp mixed">&nbsp;&nbsp;&nbsp;</mark> overlapping outcomes</span></div>'
    )


def render_html(result: Mapping[str, Any], articles: Mapping[str, str]) -> str:
    """The whole report as one self-contained HTML page (no external assets)."""
    run = result.get("run", {})
    cost = result.get("cost", {})
    cards = "".join(
        (
            _card("metrics F1", _pct(result["metrics"]["f1"])),
            _card("bodies F1", _pct(result["bodies"]["f1"])),
            _card("initiatives F1", _pct(result["initiatives"]["f1"])),
            _card("year accuracy", _pct(result["year"]["accuracy"])),
            _card("grounding rate", _pct(result.get("grounding_rate"))),
            _card("summary ROUGE-L", _pct(result.get("summary_rouge_l"))),
            _card("tokens / article", _num(cost.get("tokens_per_article"))),
        )
    )
    field_rows = "".join(
        f"<tr><td>{field}</td>{_prf_cells(result[field])}<td>{result[field]['tp']}</td>"
        f"<td>{result[field]['fp']}</td><td>{result[field]['fn']}</td></tr>"
        for field in PRF_FIELDS
    )
    split_rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{st['articles']}</td><td>{_pct(st['bodies']['f1'])}</td>"
        f"<td>{_pct(st['year']['accuracy'])}</td><td>{_pct(st['metrics']['f1'])}</td>"
        f"<td>{_pct(st['initiatives']['precision'])}</td><td>{_pct(st['initiatives']['recall'])}</td></tr>"
        for name, st in (result.get("splits") or {}).items()
    )
    splits_table = (
        "<h2>By split</h2><table><tr><th>Split</th><th>Articles</th><th>Bodies F1</th><th>Year</th>"
        f"<th>Metrics F1</th><th>Initiatives P</th><th>Initiatives R</th></tr>{split_rows}</table>"
        if split_rows
        else ""
    )
    article_rows = "".join(
        f'<tr><td><a href="#art-{i}">{_e(entry["article_id"])}</a></td><td>{_e(entry.get("split") or "")}</td>'
        f"<td>{_pct(entry['bodies']['f1'])}</td>"
        f"{_prf_cells(entry['metrics'])}<td>{_pct(entry['initiatives']['f1'])}</td>"
        f"<td>{_year(entry['year'])}</td><td>{_pct(entry['grounding_rate'])}</td>"
        f"<td>{_pct(entry['summary_rouge_l'])}</td></tr>"
        for i, entry in enumerate(result["per_article"])
    )
    sections = "".join(
        _render_article(i, entry, articles.get(entry["article_id"], ""))
        for i, entry in enumerate(result["per_article"])
    )
    run_line = (
        f"backend {_e(run.get('backend') or '–')} · model {_e(run.get('model') or '–')} · "
        f"{_e(run.get('articles', len(result['per_article'])))} articles · figures in %"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Eval report</title><style>{_CSS}</style></head>
<body>
<h1>Eval report</h1><p class="run">{run_line}</p>
<div class="cards">{cards}</div>
<h2>Scores by field</h2>
<div class="panel scores">{render_chart(result)}
<table><tr><th>Field</th><th>P</th><th>R</th><th>F1</th><th>TP</th><th>FP</th><th>FN</th></tr>{field_rows}</table></div>
{splits_table}
<h2>Per article</h2>
<table><tr><th>Article</th><th>Split</th><th>Bodies F1</th><th>Metrics P</th><th>Metrics R</th><th>Metrics F1</th>
<th>Initiatives F1</th><th>Year</th><th>Grounding</th><th>ROUGE-L</th></tr>{article_rows}</table>
<h2>Articles</h2>{_legend()}
{sections}
<script>{_JS}</script>
</body></html>
"""
