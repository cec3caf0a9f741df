"""CSV export of a results file: one row per metric or initiative, readable by pandas and Excel."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from summarizer.cli import app
from summarizer.errors import InputError
from summarizer.export import BODY_COLUMNS, INITIATIVE_COLUMNS, METRIC_COLUMNS, export_csv
from summarizer.schema import ArticleSummary, BodySummary, Initiative, Meta, Metric


def summary(article_id: str, value: float = 12, evidence: str = "提出建议12条") -> ArticleSummary:
    return ArticleSummary(
        article_id=article_id,
        bodies=[
            BodySummary(
                body="苏州市政协",
                level="municipal",
                year=2023,
                summary="摘要",
                key_initiatives=[Initiative(name="委员工作室", evidence="建成“委员工作室”, 方便群众", span=(3, 17))],
                metrics=[
                    Metric(name="建议", value=value, unit="条", evidence=evidence, span=(40, 47)),
                    Metric(name="调研", value=1.5, unit="万人次", approx=True, evidence="约1.5万人次"),
                ],
            )
        ],
        meta=Meta(backend="fake"),
    )


def write_results(path: Path, *summaries: ArticleSummary, tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(s.model_dump_json().encode() + b"\n" for s in summaries) + tail)
    return path


def read_csv(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.DictReader(handle))


def test_one_row_per_metric_and_per_initiative_with_the_documented_columns(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results.jsonl", summary("a/one"), summary("two", value=7))
    counts = export_csv(results, tmp_path / "metrics.csv", tmp_path / "initiatives.csv")
    assert (counts.articles, counts.metrics, counts.initiatives, counts.bad_lines) == (2, 4, 2, 0)
    metrics = read_csv(tmp_path / "metrics.csv")
    assert tuple(metrics[0]) == METRIC_COLUMNS
    assert metrics[0] == {
        "article": "a/one",
        "body": "苏州市政协",
        "level": "municipal",
        "year": "2023",
        "name": "建议",
        "value": "12",
        "unit": "条",
        "approx": "FALSE",
        "evidence": "提出建议12条",
        "span_start": "40",
        "span_end": "47",
    }
    assert metrics[1]["value"] == "1.5" and metrics[1]["approx"] == "TRUE" and metrics[1]["span_start"] == ""
    initiatives = read_csv(tmp_path / "initiatives.csv")
    assert tuple(initiatives[0]) == INITIATIVE_COLUMNS
    assert initiatives[0]["evidence"] == "建成“委员工作室”, 方便群众"  # the comma survives quoting


def test_bom_for_excel_and_crlf_rows(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results.jsonl", summary("one"))
    export_csv(results, tmp_path / "plain.csv")
    export_csv(results, tmp_path / "excel.csv", bom=True)
    assert not (tmp_path / "plain.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    raw = (tmp_path / "excel.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfarticle,body,") and b"\r\n" in raw
    assert read_csv(tmp_path / "excel.csv", "utf-8-sig")[0]["body"] == "苏州市政协"


def test_pandas_reads_numbers_and_flags(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    results = write_results(tmp_path / "results.jsonl", summary("one"))
    export_csv(results, tmp_path / "metrics.csv", bom=True)
    frame = pandas.read_csv(tmp_path / "metrics.csv", encoding="utf-8-sig")
    assert list(frame["value"]) == [12, 1.5] and list(frame["approx"]) == [False, True]
    export_csv(results, None, bodies_csv=tmp_path / "committees.csv", bom=True)
    committees = pandas.read_csv(tmp_path / "committees.csv", encoding="utf-8-sig")
    assert list(committees.columns) == list(BODY_COLUMNS) and len(committees) == 1
    row = committees.iloc[0]
    assert (row["article"], row["body"], row["level"], row["year"]) == ("one", "苏州市政协", "municipal", 2023)
    assert (row["metrics"], row["initiatives"], row["summary"]) == (2, 1, "摘要")


def test_last_line_wins_and_unreadable_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    results = write_results(
        tmp_path / "results.jsonl",
        summary("one", value=1, evidence="建议1条"),
        summary("two"),
        summary("one", value=3, evidence="建议3条"),
        tail=b'{"article_id": "thr',
    )
    counts = export_csv(results, tmp_path / "metrics.csv")
    rows = read_csv(tmp_path / "metrics.csv")
    assert [(r["article"], r["value"]) for r in rows if r["name"] == "建议"] == [("two", "12"), ("one", "3")]
    assert counts.articles == 2 and counts.bad_lines == 1


def test_newlines_and_quotes_in_evidence_round_trip(tmp_path: Path) -> None:
    evidence = '他说:"建议12条"\n第二行'
    results = write_results(tmp_path / "results.jsonl", summary("one", evidence=evidence))
    export_csv(results, tmp_path / "metrics.csv")
    assert read_csv(tmp_path / "metrics.csv")[0]["evidence"] == evidence


def test_cli_export_and_its_usage_errors(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results.jsonl", summary("one"))
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "export",
            str(results),
            "--csv",
            str(tmp_path / "m.csv"),
            "--csv-initiatives",
            str(tmp_path / "i.csv"),
            "--bom",
        ],
    )
    assert done.exit_code == 0 and "1 articles: 2 metrics, 1 initiatives" in done.stderr
    assert done.stdout == ""  # a report on what was written is a message, not data
    assert (tmp_path / "i.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    nothing = runner.invoke(app, ["export", str(results)])
    assert nothing.exit_code == 2 and "--csv" in nothing.stderr
    missing = runner.invoke(app, ["export", str(tmp_path / "none.jsonl"), "--csv", str(tmp_path / "m2.csv")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr  # an input error
    assert not (tmp_path / "m2.csv").exists()  # no half-written table left behind


def test_export_of_a_file_with_nothing_readable_fails(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from summarizer.cli import app

    results = tmp_path / "results.jsonl"
    results.write_text('{"article_id": "cut off mid-li\n', encoding="utf-8")
    outcome = CliRunner().invoke(app, ["export", str(results), "--csv", str(tmp_path / "m.csv")])
    assert outcome.exit_code == 2  # not a results file: an input error
    assert "no readable summaries" in outcome.stderr


def test_export_never_writes_onto_its_own_input(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text('{"article_id": "a", "bodies": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match="is the results file being exported"):
        export_csv(results, results)
    assert results.read_text(encoding="utf-8") == '{"article_id": "a", "bodies": []}\n'


def test_committees_table_has_one_row_per_body_and_no_formula_cells(tmp_path: Path) -> None:
    summary = ArticleSummary(
        article_id="a",
        title='=HYPERLINK("http://x")',
        url="https://example.org/page",
        published="2024-01-20",
        bodies=[
            BodySummary(body="甲县政协", level="county", year=2023, summary="@SUM(A1)"),
            BodySummary(body="乙市政协", level="municipal", year=None),
        ],
    )
    results = tmp_path / "results.jsonl"
    results.write_text(summary.model_dump_json() + "\n", encoding="utf-8")
    table = tmp_path / "committees.csv"
    counts = export_csv(results, None, bodies_csv=table)
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert counts.bodies == 2 and [r["body"] for r in rows] == ["甲县政协", "乙市政协"]
    assert rows[0]["title"].startswith("'=") and rows[0]["summary"] == "'@SUM(A1)"
    assert rows[0]["url"] == "https://example.org/page" and rows[1]["year"] == ""
    assert rows[0]["metrics"] == "0"


def test_xlsx_workbook_has_three_typed_sheets_and_no_formulas(tmp_path: Path) -> None:
    import openpyxl
    import pandas as pd

    from summarizer.export import BODY_COLUMNS, export_xlsx

    hostile = summary("one", evidence="=1+1 提出建议12条")
    results = write_results(tmp_path / "results.jsonl", hostile, summary("two", value=3.5), tail=b'{"cut')
    book_path = tmp_path / "out" / "results.xlsx"
    counts = export_xlsx(results, book_path)
    assert (counts.articles, counts.bodies, counts.metrics, counts.initiatives, counts.bad_lines) == (2, 2, 4, 2, 1)
    sheets = pd.read_excel(book_path, sheet_name=None)
    assert list(sheets) == ["committees", "metrics", "initiatives"]
    assert list(sheets["committees"].columns) == list(BODY_COLUMNS)
    assert list(sheets["metrics"].columns) == list(METRIC_COLUMNS)
    assert list(sheets["initiatives"].columns) == list(INITIATIVE_COLUMNS)
    metrics = sheets["metrics"]
    assert metrics["value"].tolist() == [12, 1.5, 3.5, 1.5] and metrics["approx"].tolist() == [False, True] * 2
    assert metrics["span_start"].iloc[0] == 40 and pd.isna(metrics["span_start"].iloc[1])  # no span: empty
    assert sheets["committees"]["metrics"].tolist() == [2, 2]
    cell = openpyxl.load_workbook(book_path)["metrics"]["I2"]  # the hostile evidence
    assert cell.value == "=1+1 提出建议12条" and cell.data_type == "s"  # text, never a formula
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_cli_writes_the_workbook_and_refuses_it_onto_the_input(tmp_path: Path) -> None:
    results = write_results(tmp_path / "results.jsonl", summary("one"))
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(results), "--xlsx", str(tmp_path / "r.xlsx")])
    assert done.exit_code == 0, done.stderr
    assert "1 committees, 2 metrics, 1 initiatives" in done.stderr and (tmp_path / "r.xlsx").stat().st_size > 0
    before = results.read_bytes()
    onto = runner.invoke(app, ["export", str(results), "--xlsx", str(results)])
    assert onto.exit_code == 2 and "is the results file being exported" in onto.stderr
    assert results.read_bytes() == before


def test_a_full_disk_is_one_line_and_leaves_no_table(tmp_path: Path) -> None:
    """A real failing write (the kernel refuses to grow a file past RLIMIT_FSIZE, as a full disk
    would): one error line naming the table, exit 2, and neither a table nor a temp file left."""
    import resource
    import subprocess
    import sys

    results = write_results(tmp_path / "results.jsonl", *(summary(f"a{i}") for i in range(300)))
    table = tmp_path / "metrics.csv"
    command = [sys.executable, "-m", "summarizer.cli", "export", str(results), "--csv", str(table)]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("summarizer: error")]
    assert str(table) in line and "File too large" in line and "unexpected" not in line
    assert not table.exists() and not list(tmp_path.glob(".*.tmp"))
