"""Flatten a results JSONL file into CSV tables, one row per metric or initiative, for pandas and Excel."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from .errors import InputError
from .schema import ArticleSummary, BodySummary

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


def _span(span: tuple[int, int] | None) -> tuple[str, str]:
    return ("", "") if span is None else (str(span[0]), str(span[1]))


def read_results(path: Path, counts: ExportCounts | None = None) -> Iterator[ArticleSummary]:
    """The summaries in a results file, one per article (its last line wins), in file order.

    Lines that are not a valid ArticleSummary (say, the cut-off tail of a killed run) are skipped
    and counted in `counts.bad_lines`.

    Raises:
        InputError: the file cannot be read.
    """
    counts = counts if counts is not None else ExportCounts()
    last: dict[str, int] = {}
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle):
                try:
                    article_id = json.loads(raw).get("article_id")
                except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                    continue
                if isinstance(article_id, str):
                    last[article_id] = number
            handle.seek(0)
            keep = set(last.values())
            for number, raw in enumerate(handle):
                if not raw.strip():
                    continue
                if number not in keep:
                    if not _parses(raw):
                        counts.bad_lines += 1
                    continue
                try:
                    yield ArticleSummary.model_validate_json(raw)
                except ValidationError:
                    counts.bad_lines += 1
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _parses(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw).get("article_id"), str)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def _body_cells(summary: ArticleSummary, body: BodySummary) -> list[Any]:
    return [summary.article_id, body.body, body.level, "" if body.year is None else body.year]


class _SafeWriter:
    """A csv writer whose text cells cannot start a spreadsheet formula."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: list[Any] | tuple[Any, ...]) -> None:
        self._writer.writerow([_safe(cell) for cell in row])


def _open_csv(path: Path, bom: bool) -> IO[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def export_csv(
    results: Path,
    metrics_csv: Path | None,
    initiatives_csv: Path | None = None,
    *,
    bodies_csv: Path | None = None,
    bom: bool = False,
) -> ExportCounts:
    """Write the metrics and/or initiatives of every article in `results` as CSV.

    UTF-8, comma-separated, quoted where needed, CRLF line ends; `bom` adds the byte-order mark
    Excel needs to recognise UTF-8 when a file is double-clicked. Each file is written to a
    temporary name and moved into place, so a failed export never leaves half a table.

    Raises:
        InputError: the results file cannot be read or a CSV file cannot be written.
    """
    tables = ((metrics_csv, METRIC_COLUMNS), (initiatives_csv, INITIATIVE_COLUMNS), (bodies_csv, BODY_COLUMNS))
    targets = [(p, cols) for p, cols in tables if p is not None]
    for path, _ in targets:
        if same_file(path, Path(results)):
            raise InputError(f"{path}: is the results file being exported; write the CSV somewhere else")
    if len({p.resolve() for p, _ in targets}) < len(targets):
        raise InputError("the same file is given for two tables; name one file per table")
    counts = ExportCounts()
    temps = [p.with_name(f".{p.name}.{os.getpid()}.tmp") for p, _ in targets]
    handles = [_open_csv(temp, bom) for temp in temps]
    try:
        writers = [_SafeWriter(csv.writer(handle)) for handle in handles]
        for writer, (_, columns) in zip(writers, targets, strict=True):
            writer.writerow(columns)
        for summary in read_results(results, counts):
            counts.articles += 1
            for body in summary.bodies:
                for (_, columns), writer in zip(targets, writers, strict=True):
                    if columns is METRIC_COLUMNS:
                        for metric in body.metrics:
                            approx = "TRUE" if metric.approx else "FALSE"
                            writer.writerow(
                                [
                                    *_body_cells(summary, body),
                                    metric.name,
                                    format_number(metric.value),
                                    metric.unit,
                                    approx,
                                    metric.evidence,
                                    *_span(metric.span),
                                ]
                            )
                            counts.metrics += 1
                    elif columns is BODY_COLUMNS:
                        writer.writerow(
                            [
                                summary.article_id,
                                summary.title or "",
                                summary.source or "",
                                summary.url or "",
                                summary.published or "",
                                body.body,
                                body.level,
                                "" if body.year is None else body.year,
                                body.summary,
                                len(body.metrics),
                                len(body.key_initiatives),
                            ]
                        )
                        counts.bodies += 1
                    else:
                        for item in body.key_initiatives:
                            writer.writerow([*_body_cells(summary, body), item.name, item.evidence, *_span(item.span)])
                            counts.initiatives += 1
        for handle in handles:
            handle.close()
        for temp, (path, _) in zip(temps, targets, strict=True):
            os.replace(temp, path)
    finally:
        for handle, temp in zip(handles, temps, strict=True):
            handle.close()
            temp.unlink(missing_ok=True)
    return counts
