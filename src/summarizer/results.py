"""Results files: one ArticleSummary per line (JSONL), the one format every command writes and reads.

`batch` and `summarise -o` write lines; `export`, `view` and `eval --predictions` read them. A file
holding a single JSON object (say, `summarise` output saved from the terminal, pretty-printed) is
read too. A results file is a log that re-runs append to, so when an article has several lines the
last one wins.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, BinaryIO, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from .errors import EvalDataError, InputError
from .schema import ArticleSummary


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `list[BodySummary]` or `Meta | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, tuple, Union, UnionType):
        for arg in get_args(annotation):
            if (model := _inner_model(arg)) is not None:
                return model
    return None


def _field_path(loc: Sequence[int | str]) -> str:
    """`("bodies", 0, "metrics", 2, "value", "float")` -> `bodies[0].metrics[2].value`.

    Pydantic appends the tried union member ("int", "float") to the location; it is not a field.
    """
    model: type[BaseModel] | None = ArticleSummary
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif model is not None and part in model.model_fields:
            path += f".{part}" if path else part
            model = _inner_model(model.model_fields[part].annotation)
        else:
            break
    return path or "(top level)"


def _validation_message(source: str, error: ValidationError) -> str:
    # One line per distinct field; for a union the last member's message is the general one.
    by_field: dict[str, str] = {}
    for detail in error.errors():
        by_field[_field_path(detail["loc"])] = detail["msg"]
    (field, message), *rest = by_field.items()
    more = f" (and {len(rest)} more field{'s' if len(rest) > 1 else ''})" if rest else ""
    return f"{source}: {field}: {message}{more}"


def parse_summary(raw: str | bytes, source: str) -> ArticleSummary:
    """Parse one ArticleSummary from JSON text.

    Raises:
        EvalDataError: invalid JSON or a field that breaks the schema; the message starts with `source`.
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise EvalDataError(f"{source}: not valid JSON ({exc.msg} at {where})") from exc
    except UnicodeDecodeError as exc:
        raise EvalDataError(f"{source}: not UTF-8 ({exc.reason})") from exc
    try:
        return ArticleSummary.model_validate(data)
    except ValidationError as exc:
        raise EvalDataError(_validation_message(source, exc)) from exc


@dataclass(slots=True)
class JsonLine:
    """One line of a JSON-lines file, as every reader of one sees it."""

    number: int  # 1-based, for messages (`file:line`)
    offset: int  # of the line's first byte
    raw: bytes
    record: dict[str, Any] | None  # None: blank, not JSON, or JSON but not an object

    @property
    def complete(self) -> bool:
        """Ends with a newline (a killed writer may leave a last line without one)."""
        return self.raw.endswith(b"\n")

    def field(self, name: str) -> str | None:
        """A string field of the record, or None."""
        value = self.record.get(name) if self.record is not None else None
        return value if isinstance(value, str) else None


def json_lines(handle: BinaryIO) -> Iterator[JsonLine]:
    """Every line of an open binary file, parsed where it is a JSON object: the one JSON-lines reader
    (results, a provider's batch output, the resume index); callers decide what a bad line means."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        record: dict[str, Any] | None = None
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                parsed = None
            record = parsed if isinstance(parsed, dict) else None
        yield JsonLine(number, offset, raw, record)
        offset += len(raw)


def _article_id(raw: bytes) -> str | None:
    return next(json_lines(io.BytesIO(raw)), JsonLine(0, 0, b"", None)).field("article_id")


def _one_object(head: bytes) -> bool:
    """Does the file start like one pretty-printed JSON object (a first line that is just `{`)?"""
    first = next((line for line in head.splitlines() if line.strip()), b"")
    return first.strip() == b"{"


@dataclass
class ReadCounts:
    """Lines of a results file that were not a valid summary (a killed run's cut-off tail, say)."""

    bad_lines: int = 0


def read_results(path: Path, *, strict: bool = False, counts: ReadCounts | None = None) -> Iterator[ArticleSummary]:
    """The summaries in a results file, one per article (its last line wins), in file order.

    Streams the file (two passes over its lines), so a results file larger than memory is fine.

    Args:
        strict: raise on a line that is not a valid summary (scoring must not skip one silently);
            otherwise skip it and count it in `counts.bad_lines`.

    Raises:
        InputError: the file cannot be read.
        EvalDataError: with `strict`, a malformed line, named as `file:line` with the field.
    """
    counts = counts if counts is not None else ReadCounts()
    try:
        with path.open("rb") as handle:
            if _one_object(handle.read(65536)):
                handle.seek(0)
                yield parse_summary(handle.read(), str(path))
                return
            handle.seek(0)
            last: dict[str, int] = {}
            for line in json_lines(handle):
                if (article_id := line.field("article_id")) is not None:
                    last[article_id] = line.number
            handle.seek(0)
            keep = set(last.values())
            for line in json_lines(handle):
                if not line.raw.strip():
                    continue
                if line.number in keep or strict:
                    try:
                        summary = parse_summary(line.raw, f"{path}:{line.number}")
                    except EvalDataError:
                        if strict:
                            raise
                        counts.bad_lines += 1
                        continue
                    if line.number in keep:
                        yield summary
                elif line.field("article_id") is None:
                    counts.bad_lines += 1
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _first_line(path: Path) -> bytes:
    """The file's first line that is not blank, whole however long (b"" for an empty file)."""
    with path.open("rb") as handle:
        return next((raw for raw in handle if raw.strip()), b"")


def looks_like_results(path: Path) -> bool:
    """Is an existing file one this tool wrote (empty, or JSON lines / one JSON object that are article summaries)?"""
    try:
        first = _first_line(path)
        if _one_object(first):  # one pretty-printed summary
            with path.open("rb") as handle:
                head = handle.read(65536)
            return b'"article_id"' in head and b'"bodies"' in head
    except OSError:
        return False
    if not first:
        return True
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "article_id" in record and "bodies" in record


def as_json_lines(path: Path) -> None:
    """Turn a file holding one pretty-printed summary into the one line it stands for (atomically),
    so what appends to a results file, or indexes it by line, reads it as every reader does.

    Raises:
        EvalDataError: the file starts like a summary but is not a valid one.
        OSError: it cannot be rewritten.
    """
    if not path.exists() or not _one_object(_first_line(path)):
        return
    summary = parse_summary(path.read_bytes(), str(path))
    write_atomically(path, lambda temp: temp.write_bytes((summary.model_dump_json() + "\n").encode("utf-8")))


def write_atomically(
    path: Path, write: Callable[[Path], object], *, durable: bool = False, temp: Path | None = None
) -> None:
    """Write `path` through a temporary file next to it (`write` fills it), then move it into place:
    a failure leaves neither half a file nor the temporary one.

    `durable` also syncs the file before the move and the folder after it, for files whose loss
    after a crash costs work (results, a batch's state). `temp` names the temporary file when
    leftovers of a killed run must be recognisable.

    Raises:
        OSError: the folder cannot be made, or the file cannot be written, synced or moved.
    """
    temp = temp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temp)
        if durable:
            _fsync(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_result(path: Path, summary: ArticleSummary, *, force: bool = False) -> None:
    """Add one summary as a line to a results file (created if missing); readers take its last line.

    Raises:
        InputError: the file exists and is not a results file (unless `force`, which starts it
            anew), or it cannot be written.
    """
    line = (summary.model_dump_json() + "\n").encode("utf-8")
    try:
        if path.exists() and not looks_like_results(path):
            if not force:
                raise InputError(
                    f"{path}: exists and is not a results file of this tool; choose another -o or pass --force"
                )
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        as_json_lines(path)  # an older pretty-printed result becomes the first line
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if path.exists() and path.stat().st_size:
            with path.open("rb") as handle:  # a line cut off by a kill must not swallow this one
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line
        descriptor = os.open(path, flags, 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from exc
