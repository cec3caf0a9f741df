"""Flatten a results JSONL file into CSV tables, one row per metric or initiative, for pandas and Excel."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import InputError
from .results import ReadCounts, read_results, write_atomically
from .schema import ArticleSummary

METRIC_COLUMNS = (
    "article",
    "body",
    "level",
    "year",
    "name",
    "value",
    "unit",
    "approx",
    "evidence",
    "span_start",
    "span_end",
)
INITIATIVE_COLUMNS = ("article", "body", "level", "year", "name", "evidence", "span_start", "span_end")
# One row per (article, committee): the table most analysts open first.
BODY_COLUMNS = (
    "article",
    "title",
    "source",
    "url",
    "published",
    "body",
    "level",
    "year",
    "summary",
    "metrics",
    "initiatives",
)
_NUMERIC = re.compile(r"-?\d+(?:\.\d+)?")


def _safe(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (=, +, -, @ first) is written with a leading '."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMERIC.fullmatch(cell):
        return "'" + cell
    return cell


@dataclass
class ExportCounts:
    """How much went out, and how many lines of the results file could not be read."""

    articles: int = 0
    metrics: int = 0
    initiatives: int = 0
    bodies: int = 0
    bad_lines: int = 0


def format_number(value: int | float) -> str:
    """A metric's value as people write it: 12 rather than 12.0, 99.5 as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def same_file(a: Path, b: Path) -> bool:
    """True when both paths exist and name one file (a relative path, a symlink or a hard link included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def table_rows(summary: ArticleSummary) -> dict[str, list[list[Any]]]:
    """One article's rows for each table (`committees`, `metrics`, `initiatives`), with typed cells:
    numbers as numbers, approx as bool, a missing year or span as None."""
    rows: dict[str, list[list[Any]]] = {"committees": [], "metrics": [], "initiatives": []}
    for body in summary.bodies:
        who = [summary.article_id, body.body, body.level, body.year]
        rows["committees"].append(
            [
                summary.article_id,
                summary.title or "",
                summary.source or "",
                summary.url or "",
                summary.published or "",
                body.body,
                body.level,
                body.year,
                body.summary,
                len(body.metrics),
                len(body.key_initiatives),
            ]
        )
        for metric in body.metrics:
            span = metric.span or (None, None)
            rows["metrics"].append(
                [*who, metric.name, metric.value, metric.unit, metric.approx, metric.evidence, *span]
            )
        for item in body.key_initiatives:
            span = item.span or (None, None)
            rows["initiatives"].append([*who, item.name, item.evidence, *span])
    return rows


TABLES = {"committees": BODY_COLUMNS, "metrics": METRIC_COLUMNS, "initiatives": INITIATIVE_COLUMNS}


def _csv_cell(cell: Any) -> Any:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, int | float):
        return format_number(cell)
    return _safe(cell)


def _open_csv(path: Path, bom: bool) -> IO[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def _check_targets(results: Path, targets: list[Path]) -> None:
    for path in targets:
        if same_file(path, Path(results)):
            raise InputError(f"{path}: is the results file being exported; write the table somewhere else")
    if len({p.resolve() for p in targets}) < len(targets):
        raise InputError("the same file is given for two tables; name one file per table")


def _temp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _count(counts: ExportCounts, table: str, rows: int) -> None:
    if table == "committees":
        counts.bodies += rows
    elif table == "metrics":
        counts.metrics += rows
    else:
        counts.initiatives += rows


def export_csv(
    results: Path,
    metrics_csv: Path | None,
    initiatives_csv: Path | None = None,
    *,
    bodies_csv: Path | None = None,
    bom: bool = False,
) -> ExportCounts:
    """Write the committees, metrics and/or initiatives of every article in `results` as CSV.

    UTF-8, comma-separated, quoted where needed, CRLF line ends; `bom` adds the byte-order mark
    Excel needs to recognise UTF-8 when a file is double-clicked. A text cell that a spreadsheet
    would run as a formula is written with a leading `'`. Each file is written to a temporary name
    and moved into place, so a failed export never leaves half a table.

    Raises:
        InputError: the results file cannot be read or a CSV file cannot be written.
    """
    chosen = {"metrics": metrics_csv, "initiatives": initiatives_csv, "committees": bodies_csv}
    targets = {table: path for table, path in chosen.items() if path is not None}
    _check_targets(results, list(targets.values()))
    counts = ExportCounts()
    temps = {table: _temp_for(path) for table, path in targets.items()}
    handles: dict[str, IO[str]] = {}
    try:
        for table, temp in temps.items():
            handles[table] = _open_csv(temp, bom)
        writers = {table: csv.writer(handle) for table, handle in handles.items()}
        for table, writer in writers.items():
            writer.writerow(TABLES[table])
        read = ReadCounts()
        for summary in read_results(results, counts=read):
            counts.articles += 1
            for table, rows in table_rows(summary).items():
                if table in writers:
                    writers[table].writerows([[_csv_cell(cell) for cell in row] for row in rows])
                    _count(counts, table, len(rows))
        counts.bad_lines = read.bad_lines
        for handle in handles.values():
            handle.close()
        for table, temp in temps.items():
            os.replace(temp, targets[table])
    except OSError as exc:  # a full disk, a failing device: the tables are not written, and say so
        names = ", ".join(str(path) for path in targets.values())
        raise InputError(f"{names}: cannot write ({exc.strerror or exc})") from exc
    finally:
        for handle in handles.values():
            handle.close()
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return counts


def export_xlsx(results: Path, workbook_path: Path) -> ExportCounts:
    """Write one Excel workbook with three sheets: committees, metrics and initiatives.

    Cells keep their types (numbers, TRUE/FALSE, empty for a missing year or span); every text cell
    is stored as text, so a quote such as `=1+1` is never run as a formula. Written to a temporary
    name and moved into place.

    Raises:
        InputError: the results file cannot be read or the workbook cannot be written.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    _check_targets(results, [workbook_path])
    counts = ExportCounts()
    book = Workbook(write_only=False)
    sheets = {}
    for position, (table, columns) in enumerate(TABLES.items()):
        sheet = book.active if position == 0 else book.create_sheet()
        assert sheet is not None
        sheet.title = table
        sheet.append(list(columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        sheets[table] = sheet
    read = ReadCounts()
    for summary in read_results(results, counts=read):
        counts.articles += 1
        for table, rows in table_rows(summary).items():
            sheet = sheets[table]
            for row in rows:
                sheet.append(row)
                for cell in sheet[sheet.max_row]:
                    if isinstance(cell.value, str):
                        cell.data_type = "s"  # text, even when it starts with "="
            _count(counts, table, len(rows))
    counts.bad_lines = read.bad_lines
    try:
        write_atomically(workbook_path, book.save)
    except OSError as exc:
        raise InputError(f"{workbook_path}: cannot write ({exc.strerror or exc})") from exc
    return counts
