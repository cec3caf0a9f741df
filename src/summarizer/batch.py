"""Summarise every article in a folder into one JSONL file: bounded concurrency, resumable, crash-safe.

Each finished article is appended as one whole line (single write, flush, fsync), so a killed run
leaves complete lines plus at most one partial tail, which the next run cuts off. A write that fails
(disk full, I/O error) stops the run at once with the complete lines kept. Re-running the
same command skips articles whose line already matches the input's hash and the output-affecting
settings. A line superseded in this run (changed input, changed settings, --force) stays in the
file until the run ends, then the file is rewritten without it (temp file + os.replace), so the
file never keeps two lines for one article after a run that finished; a run killed before that
point is repaired the same way by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from .article import load_article
from .backends import Backend, ChunkRequest, ChunkResult, create_backend
from .cache import Cache
from .errors import AuthError, ConfigError, InputError, SummarizerError, WriteError
from .identity import result_key
from .limits import Limiter
from .pipeline import open_cache, resolve_backend_name, summarise_article_async
from .prices import estimate_cost, load_prices
from .progress import ProgressSink, Tally, choose_progress
from .results import looks_like_results
from .schema import ArticleSummary, Usage
from .settings import Settings

log = logging.getLogger(__name__)

POOL_THRESHOLD = 200  # a CPU-bound backend uses a process pool above this many files
_POOL_BATCH = 16  # files per task sent to a worker process


@dataclass(frozen=True, slots=True)
class Candidate:
    """One input file: the folder, its path relative to it (POSIX) and its article id.

    Kept small (a huge folder holds one of these per file while it runs): the folder object is
    shared and the path to read is derived on demand.
    """

    root: Path
    rel: str
    article_id: str

    @property
    def path(self) -> Path:
        return self.root / self.rel


@dataclass
class Outcome:
    """What became of one article; picklable, so worker processes can hand it back to the writer."""

    article_id: str
    kind: Literal["done", "skipped", "failed"]
    line: str | None = None
    error: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    chunks: int = 0
    cache_hits: int = 0
    cached: bool = False
    fatal: bool = False
    input_sha256: str | None = None  # of the file as read now, when known


@dataclass
class BatchReport:
    """The outcome of `run_batch`: counts, model traffic, cost and where the results went."""

    input_dir: Path
    output: Path
    errors_path: Path
    backend: str
    model: str | None
    metered: bool = True  # the backend's requests cost tokens (its `has_cost` trait)
    total: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    wall_seconds: float = 0.0
    notice: str | None = None
    stopped: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.stopped is None

    def rows(self) -> list[tuple[str, str]]:
        """The summary table, as label/value pairs."""
        cost = f"unknown (no price for {self.model})" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        wall = f"{self.wall_seconds * 1000:.0f} ms" if self.wall_seconds < 1 else f"{self.wall_seconds:.1f} s"
        rows = [
            ("articles done", str(self.done)),
            ("  of which from cache", str(self.cached)),
            ("articles failed", str(self.failed)),
            ("articles skipped (already done)", str(self.skipped)),
        ]
        if self.metered:  # an offline extractor makes no requests and costs nothing
            rows += [
                ("requests", f"{self.usage.requests:,}"),
                ("prompt tokens", f"{self.usage.prompt_tokens:,}"),
                ("completion tokens", f"{self.usage.completion_tokens:,}"),
                ("estimated cost", cost),
            ]
        return [
            *rows,
            ("wall time", wall),
            ("results", str(self.output)),
            ("errors", str(self.errors_path) if self.failed else "none"),
        ]


def errors_path_for(output: Path) -> Path:
    """results.jsonl -> results.errors.jsonl"""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + ".errors.jsonl")


# --- Finding the input files -------------------------------------------------------------------


def _glob_part(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "^") else i + 1)) > 0:
            body = part[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over relative POSIX paths: `*` and `?` stay inside one folder, `**/` spans any number.

    Raises:
        ConfigError: the pattern is empty, absolute, or climbs out with `..`.
    """
    parts = pattern.split("/")
    if not pattern or pattern.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", pattern):
        raise ConfigError(f"--glob {pattern!r}: must be relative to the folder (no leading /, no ..)")
    regex = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex.append(".*" if last else "(?:[^/]+/)*")
        else:
            regex.append(_glob_part(part) + ("" if last else "/"))
    return re.compile("".join(regex) + r"\Z")


LAST_REPLY_BYTES = 4096  # of a failed model reply kept in the errors file (a reply may be megabytes)


def _capped(reply: object) -> tuple[str | None, int | None]:
    """A failed reply's first LAST_REPLY_BYTES (UTF-8, cut on a character boundary) and its full length."""
    if not isinstance(reply, str):
        return None, None
    head = reply.encode("utf-8", "surrogatepass")[:LAST_REPLY_BYTES].decode("utf-8", "ignore")
    return head, len(reply)


def _error(
    article_id: str, source: str | None, exc: BaseException | str, attempts: int | None = None, kind: str | None = None
) -> dict[str, Any]:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reply, length = _capped(getattr(exc, "last_reply", None))
    return {
        "article_id": article_id,
        "source_path": source,
        "error": kind or type(exc).__name__,
        "message": message,
        "attempts": attempts if attempts is not None else getattr(exc, "attempts", None),
        "last_reply": reply,
        "last_reply_chars": length,  # the whole reply's length, when only its start is kept
        "detail": getattr(exc, "detail", None),
        "usage": usage.model_dump() if isinstance(usage := getattr(exc, "usage", None), Usage) else None,
    }


def _undecodable(name: str) -> bool:
    """Python keeps undecodable bytes of a file name as lone surrogates; they cannot be written out."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def discover(root: Path, pattern: str, exclude: Iterable[Path] = ()) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Files under `root` matching `pattern`, in sorted order, and a refusal record for each bad one.

    Hidden files and folders (leading dot) are left out. Symlinked folders are not descended into;
    a symlinked file is read only if it resolves to a file inside `root`.
    """
    matcher = glob_regex(pattern)
    real_root = root.resolve()
    excluded = {p.resolve() for p in exclude}
    candidates: list[Candidate] = []
    refused: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    walk_errors: list[OSError] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False, onerror=walk_errors.append):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = PurePosixPath(Path(directory).relative_to(root).as_posix())
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if _undecodable(name):  # a name that is not valid UTF-8 costs that one file, not the batch
                shown = os.fsencode(name).decode("utf-8", "backslashreplace")
                where = os.path.join(directory, shown)
                refused.append(
                    _error(shown, where, f"{where}: file name is not valid UTF-8; rename it", 0, "InputError")
                )
                continue
            rel = (base / name).as_posix()
            rel = rel[2:] if rel.startswith("./") else rel
            if not matcher.match(rel):
                continue
            path = root / rel
            article_id = PurePosixPath(rel).with_suffix("").as_posix() if PurePosixPath(rel).suffix else rel
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError) as problem:
                    loop = isinstance(problem, RuntimeError) or getattr(problem, "errno", None) == errno.ELOOP
                    refused.append(
                        _error(
                            article_id,
                            str(path),
                            f"{path}: {'symlink loop' if loop else 'broken symlink'}, not read",
                            0,
                            "InputError",
                        )
                    )
                    continue
                if not target.is_relative_to(real_root):
                    refused.append(
                        _error(
                            article_id,
                            str(path),
                            f"{path}: symlink points outside the input folder ({target}); not followed",
                            0,
                            "InputError",
                        )
                    )
                    continue
            else:
                target = path.resolve()
            if target in excluded:
                continue
            if article_id in seen:
                refused.append(
                    _error(
                        article_id,
                        str(path),
                        f"{path}: article id {article_id!r} is already taken by {seen[article_id]}",
                        0,
                        "InputError",
                    )
                )
                continue
            seen[article_id] = rel
            candidates.append(Candidate(root, rel, article_id))
    for exc in walk_errors:
        refused.append(
            _error(
                str(exc.filename or root),
                str(exc.filename or root),
                f"{exc.filename}: cannot list folder ({exc.strerror or exc})",
                0,
                "InputError",
            )
        )
    return candidates, refused


# --- The results file ------------------------------------------------------------------------


@dataclass
class ResultsIndex:
    """What the results file already holds: per article id, the input hash and settings key of its line."""

    entries: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    needs_compaction: bool = False


def _line_fields(raw: bytes) -> tuple[str, str | None, str | None] | None:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("article_id"), str):
        return None
    meta = data.get("meta")
    if not isinstance(meta, dict):
        return data["article_id"], None, None
    return data["article_id"], meta.get("input_sha256"), meta.get("settings_key")


def repair_and_index(output: Path) -> ResultsIndex:
    """Cut a partial last line left by a killed run, and index the complete lines."""
    index = ResultsIndex()
    if not output.exists():
        return index
    good_end = 0
    with output.open("rb+") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            good_end += len(raw)
            fields = _line_fields(raw)
            if fields is None:
                index.needs_compaction = True
                continue
            article_id, sha, key = fields
            if article_id in index.entries:
                index.needs_compaction = True
            index.entries[article_id] = (sha, key)
        handle.seek(0, os.SEEK_END)
        if handle.tell() != good_end:
            log.warning("%s: cut %d bytes of an unfinished last line", output, handle.tell() - good_end)
            handle.truncate(good_end)
            handle.flush()
            os.fsync(handle.fileno())
    return index


def _temp_path(output: Path) -> Path:
    """Where `output` is rewritten before os.replace: next to it, named for this tool and process."""
    return output.with_name(f".{output.name}.summarizer-{os.getpid()}.tmp")


def remove_stale_temps(output: Path) -> list[Path]:
    """Delete rewrites of `output` that a killed run left behind (`.results.jsonl.summarizer-<pid>.tmp`).

    Call only while holding the results file's lock: a run rewriting the file holds that lock until
    its temp file has been moved into place, so any such file found then is stale. The data is not in
    it alone: a temp file is a copy of the results file, which stays whole until the rename.
    """
    stale = re.compile(rf"\.{re.escape(output.name)}\.summarizer-\d+\.tmp\Z")
    removed = []
    with os.scandir(output.parent) as entries:
        for entry in entries:
            if stale.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def compact_results(output: Path, drop: set[str]) -> None:
    """Rewrite `output` keeping the last line of each article and none of `drop`; atomic via os.replace."""
    last: dict[str, int] = {}
    with output.open("rb") as handle:
        for number, raw in enumerate(handle):
            fields = _line_fields(raw)
            if fields is not None:
                last[fields[0]] = number
    keep = {number for article_id, number in last.items() if article_id not in drop}
    temp = _temp_path(output)
    try:
        with output.open("rb") as source, temp.open("wb") as target:
            for number, raw in enumerate(source):
                if number in keep:
                    target.write(raw)
            target.flush()
            os.fsync(target.fileno())
        os.replace(temp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    directory = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _lock_output(output: Path) -> int:
    """Open the results file for appending, holding an exclusive lock for the whole run."""
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise ConfigError(f"{output}: cannot open for writing ({exc.strerror or exc})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise ConfigError(f"{output}: another batch is writing this file; wait for it or use another -o") from exc
    return fd


def check_paths(input_dir: str | Path, output: str | Path) -> tuple[Path, Path]:
    """The input folder and the results file of a run, checked; the results file's folder is made.

    Raises:
        ConfigError: the input is not a folder, or the output is one.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder (batch reads a folder of article files)")
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"{output}: is a folder; -o needs a file name such as results.jsonl")
    if output.exists() and not output.is_file():  # /dev/full, a FIFO: nothing to lock, resume or rewrite
        raise ConfigError(f"{output}: not a regular file; -o needs a file name such as results.jsonl")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file of that name is in the way" if isinstance(exc, FileExistsError) else exc.strerror or exc
        raise ConfigError(f"{output.parent}: cannot create the folder for -o ({reason})") from exc
    return root, output


def _refuse_foreign_output(root: Path, pattern: str, output: Path, force: bool) -> None:
    """Never write onto an input article, and never onto a file this tool did not write unless --force.

    Raises:
        ConfigError: naming the file and why.
    """
    if not output.exists():
        return
    resolved = output.resolve()
    if resolved.is_relative_to(root.resolve()):
        rel = resolved.relative_to(root.resolve()).as_posix()
        if glob_regex(pattern).match(rel):
            raise ConfigError(f"{output}: is one of the input articles; write the results somewhere else")
    if not force and not looks_like_results(output):
        raise ConfigError(
            f"{output}: exists and is not a results file of this tool; choose another -o or pass --force to replace it"
        )


def _check_folder(output: Path) -> None:
    """Can this run create files next to `output` (its errors file, the rewrite's temp file)?

    Raises:
        ConfigError: naming the folder and the reason, before any work is done.
    """
    probe = _temp_path(output)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"{output.parent}: cannot create files in this folder ({exc.strerror or exc}); "
            f"batch writes {errors_path_for(output).name} and a temporary file next to {output.name}"
        ) from exc


def _open_results(output: Path) -> tuple[int, ResultsIndex]:
    """Lock the results file, repair what a killed run left, and return the descriptor to append to."""
    fd = _lock_output(output)
    try:
        for stale in remove_stale_temps(output):
            log.warning("%s: removed %s, left by a run killed while rewriting it", output, stale.name)
        _check_folder(output)
        index = repair_and_index(output)
        if index.needs_compaction:
            compact_results(output, set())  # duplicates or garbage from a killed run: clean up first
    except BaseException:
        os.close(fd)
        raise
    if not index.needs_compaction:
        return fd, index
    # os.replace put a new file at this path: append to (and lock) that one, not the old inode.
    os.close(fd)
    index.needs_compaction = False
    return _lock_output(output), index


def _append(fd: int, text: str, sync: bool = True) -> None:
    """One whole line with a single write (looping only if the kernel writes short), then fsync.

    Raises:
        OSError: the write failed (a full disk writes short, then fails); the part of the line that
            did reach the file is cut off again, so the file keeps whole lines only.
    """
    data = (text.rstrip("\n") + "\n").encode()
    written = os.write(fd, data)
    try:
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.fstat(fd).st_size - written)  # the file is opened for appending, and locked
        raise
    if sync:
        os.fsync(fd)


class _Writer:
    """Owns the output files and the tallies; every outcome passes through `handle` in the parent."""

    def __init__(
        self,
        fd: int,
        output: Path,
        errors_path: Path,
        index: ResultsIndex,
        settings_key: str,
        sink: ProgressSink,
        report: BatchReport,
    ) -> None:
        self._fd = fd
        self.sync_every = 0.0  # seconds between fsyncs of the results file; 0: after every line
        self._synced = time.monotonic()
        self.output = output
        self.errors_path = errors_path
        self.index = index
        self.settings_key = settings_key
        self.sink = sink
        self.report = report
        self.tally = Tally()
        self.superseded: set[str] = set()  # ids with a new line this run (their older lines go)
        self.dropped: set[str] = set()  # ids whose stale line goes although the redo failed
        self._errors_fd: int | None = None
        self.broken: tuple[Path, OSError] | None = None  # the file a write failed on, and why
        try:
            errors_path.unlink()  # the errors file describes the latest run only
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigError(f"{errors_path}: cannot remove the last run's errors file ({exc.strerror})") from exc

    @property
    def results_fd(self) -> int:
        return self._fd

    @property
    def errors_fd(self) -> int | None:
        return self._errors_fd

    def start(self, total: int) -> None:
        self.tally.total = total
        self.sink.start(total)
        self.sink.update(self.tally)

    def _write(self, path: Path, fd: int, text: str, sync: bool = True) -> bool:
        """Append one line; on failure remember why and write nothing more (the run stops)."""
        if self.broken is not None:
            return False
        try:
            _append(fd, text, sync)
        except OSError as exc:
            self.broken = (path, exc)
            return False
        return True

    def handle(self, outcome: Outcome) -> None:
        tally, report = self.tally, self.report
        if self.broken is not None:
            return  # the run is stopping; a re-run redoes this article
        if outcome.kind == "done" and outcome.line is not None:
            # A paid answer reaches the disk before the next one is asked for; an offline one, whose
            # loss a re-run would redo in milliseconds, at most a second later (and at the end).
            now = time.monotonic()
            sync = self.sync_every <= 0 or now - self._synced >= self.sync_every
            if not self._write(self.output, self._fd, outcome.line, sync):
                return
            if sync:
                self._synced = now
            if outcome.article_id in self.index.entries:
                self.superseded.add(outcome.article_id)
            tally.done += 1
            tally.cached += outcome.cached
            report.usage = report.usage.add(outcome.usage)
        elif outcome.kind == "skipped":
            tally.skipped += 1
        else:
            self.fail(outcome.error or _error(outcome.article_id, None, "failed", None, "SummarizerError"))
            report.usage = report.usage.add(outcome.usage)  # a failed article's requests were paid for
            old = self.index.entries.get(outcome.article_id)
            # An old line for other settings or another version of the file is wrong now; one that
            # matches (a --force redo that failed) is still the right answer and stays.
            if old is not None and (old[1] != self.settings_key or outcome.input_sha256 not in (None, old[0])):
                self.dropped.add(outcome.article_id)
        tally.chunks += outcome.chunks
        tally.tokens += outcome.usage.prompt_tokens + outcome.usage.completion_tokens
        tally.cache_hits += outcome.cache_hits
        self.sink.update(tally)

    def fail(self, record: dict[str, Any]) -> None:
        if self.broken is not None:
            return
        if self._errors_fd is None:
            try:
                self._errors_fd = os.open(self.errors_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                self.broken = (self.errors_path, exc)
                return
        if self._write(self.errors_path, self._errors_fd, json.dumps(record, ensure_ascii=False)):
            self.tally.failed += 1
            self.report.failures.append(record)

    def close(self) -> None:
        """Sync, drop superseded lines (unless a write failed: then the file stays as it is), close."""
        try:
            if self.broken is None:
                os.fsync(self._fd)
                if self.index.needs_compaction or self.superseded or self.dropped:
                    compact_results(self.output, self.dropped)  # left whole if the rewrite fails
        except OSError as exc:
            self.broken = (self.output, exc)
        finally:
            os.close(self._fd)
            if self._errors_fd is not None:
                os.close(self._errors_fd)
            self.sink.finish(self.tally)

    def error(self) -> WriteError | None:
        """Why the run stopped writing, as the one-line error a user sees; None if every write went through."""
        if self.broken is None:
            return None
        path, exc = self.broken
        tally = self.tally
        return WriteError(
            f"{path}: cannot write ({exc.strerror or exc}); the batch stopped after {tally.done + tally.failed} "
            f"of {tally.total} articles; the lines written are kept, and once the cause is fixed the same command "
            f"resumes"
        )


# --- Summarising one article -----------------------------------------------------------------


def _file_sha256(path: Path, max_bytes: int) -> str | None:
    """The input hash for the resume check, or None when load_article should explain the problem."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def summarise_candidate(
    candidate: Candidate,
    backend: Backend,
    settings: Settings,
    cache: Cache | None,
    known: tuple[str | None, str | None] | None,
    settings_key: str,
    force: bool,
) -> Outcome:
    """Skip, summarise, or record the failure of one input file. Never raises a SummarizerError."""
    article_id, source = candidate.article_id, str(candidate.path)
    sha = None
    if known is not None:
        sha = _file_sha256(candidate.path, settings.max_file_bytes)
        if not force and known[1] == settings_key and sha is not None and sha == known[0]:
            return Outcome(article_id, "skipped", input_sha256=sha)
    try:
        article = load_article(candidate.path, article_id=article_id, max_bytes=settings.max_file_bytes)
    except InputError as exc:
        return Outcome(article_id, "failed", error=_error(article_id, source, exc, 0), input_sha256=sha)
    try:
        summary: ArticleSummary = await summarise_article_async(article, backend, settings, cache)
    except SummarizerError as exc:
        return Outcome(
            article_id,
            "failed",
            error=_error(article_id, source, exc),
            fatal=isinstance(exc, AuthError),
            input_sha256=article.sha256,
            usage=exc.usage if isinstance(exc.usage, Usage) else Usage(),  # paid for even so
        )
    except Exception as exc:  # a bug in one backend call must not sink a batch of thousands
        log.debug("unexpected error on %s", source, exc_info=True)
        reason = f"{type(exc).__name__}: {exc}"
        return Outcome(
            article_id,
            "failed",
            input_sha256=article.sha256,
            error=_error(article_id, source, reason, None, "InternalError"),
        )
    meta = summary.meta
    usage = meta.usage if meta else Usage()
    hits = meta.cache_hits if meta else 0
    return Outcome(
        article_id,
        "done",
        line=summary.model_dump_json(),
        usage=usage,
        cache_hits=hits,
        chunks=meta.chunks if meta else 0,
        cached=hits > 0 and usage.requests == 0,
    )


class LimitedBackend:
    """Puts a shared Limiter around a network backend that does not apply one itself."""

    limits_itself = True

    def __init__(self, inner: Backend, limiter: Limiter, max_output_tokens: int) -> None:
        self.inner = inner
        self.limiter = limiter
        self.name, self.model, self.prompt = inner.name, inner.model, inner.prompt
        self.needs_network, self.has_cost, self.wants_chunks = inner.needs_network, inner.has_cost, inner.wants_chunks
        self.deterministic, self.cacheable = inner.deterministic, inner.cacheable
        self.version, self.base_url = inner.version, inner.base_url
        self._max_output = max_output_tokens

    def cache_modes(self) -> list[str | None]:
        return self.inner.cache_modes()

    async def extract(self, request: ChunkRequest) -> ChunkResult:
        async with self.limiter.request(tokens=request.chunk.tokens + self._max_output) as permit:
            result = await self.inner.extract(request)
            permit.settle(result.usage.prompt_tokens + result.usage.completion_tokens)
            return result

    async def aclose(self) -> None:
        await self.inner.aclose()


def limited(backend: Backend, settings: Settings) -> Backend:
    """The backend itself when it applies its own Limiter per HTTP attempt or makes no requests
    (a CPU-bound extractor), else the backend behind the shared Limiter."""
    if backend.limits_itself or not backend.needs_network:
        return backend
    return LimitedBackend(backend, Limiter.from_settings(settings), settings.max_output_tokens)


# --- Running many: an async worker pool, or worker processes for a CPU-bound backend ------------


async def _run_async(
    candidates: list[Candidate], backend: Backend, settings: Settings, writer: _Writer, force: bool
) -> str | None:
    backend = limited(backend, settings)
    cache = open_cache(settings, backend)
    workers = max(2, settings.concurrency * 2)  # more articles than slots keeps every slot busy
    queue: asyncio.Queue[Candidate | None] = asyncio.Queue(maxsize=workers * 2)
    stopped: list[str] = []

    async def produce() -> None:
        for candidate in candidates:
            if stopped:
                break
            await queue.put(candidate)
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (candidate := await queue.get()) is not None:
            if stopped:
                continue
            outcome = await summarise_candidate(
                candidate,
                backend,
                settings,
                cache,
                writer.index.entries.get(candidate.article_id),
                writer.settings_key,
                force,
            )
            writer.handle(outcome)
            if outcome.fatal and not stopped:
                stopped.append(outcome.error["message"] if outcome.error else "stopped")
            if writer.broken is not None and not stopped:
                stopped.append("a write failed")  # run_batch raises the writer's error

    try:
        await asyncio.gather(produce(), *(work() for _ in range(workers)))
    finally:
        await backend.aclose()
        if cache is not None:
            cache.close()
    return stopped[0] if stopped else None


_WORKER: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    """Exit when the parent batch dies (kill -9 included): an orphaned worker would hold its files."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(
    settings: Settings, backend_name: str, inherited: Backend | None, parent: int, parent_fds: tuple[int, ...]
) -> None:
    # A forked worker shares the parent's descriptors, the locked results file among them: it must not
    # keep that lock alive if the parent is killed, and it only ever returns results to the parent.
    for fd in parent_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()
    # With the fork start method the parent's backend object comes along for free; otherwise build one.
    backend = inherited if inherited is not None else create_backend(backend_name, settings)
    _WORKER.update(
        settings=settings, backend=backend, cache=open_cache(settings, backend), loop=asyncio.new_event_loop()
    )


def _work(
    items: list[tuple[Candidate, tuple[str | None, str | None] | None]], settings_key: str, force: bool
) -> list[Outcome]:
    loop: asyncio.AbstractEventLoop = _WORKER["loop"]
    return [
        loop.run_until_complete(
            summarise_candidate(
                candidate, _WORKER["backend"], _WORKER["settings"], _WORKER["cache"], known, settings_key, force
            )
        )
        for candidate, known in items
    ]


def _batches(items: list[Candidate], size: int) -> Iterator[list[Candidate]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _run_pool(
    candidates: list[Candidate],
    backend: Backend,
    backend_name: str,
    settings: Settings,
    writer: _Writer,
    force: bool,
    workers: int,
    total: int,
) -> str | None:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    inherited = backend if context.get_start_method() == "fork" else None
    stopped: str | None = None
    parent_fds = tuple(fd for fd in (writer.results_fd, writer.errors_fd) if fd is not None)
    with ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(settings, backend_name, inherited, os.getpid(), parent_fds),
    ) as pool:
        # Fork the workers before the progress display starts a thread: forking a threaded process is risky.
        pool.submit(os.getpid).result()
        writer.start(total)
        pending: set[Future[list[Outcome]]] = set()

        def collect(done: set[Future[list[Outcome]]]) -> None:
            nonlocal stopped
            for future in done:
                if future.cancelled():
                    continue
                for outcome in future.result():
                    writer.handle(outcome)
                    if outcome.fatal and stopped is None:
                        stopped = outcome.error["message"] if outcome.error else "stopped"
                    if writer.broken is not None and stopped is None:
                        stopped = "a write failed"  # run_batch raises the writer's error

        try:
            for group in _batches(candidates, _POOL_BATCH):
                if stopped:
                    break
                while len(pending) >= workers * 4:  # a bounded window, not one future per file
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    collect(done)
                items = [(c, writer.index.entries.get(c.article_id)) for c in group]
                pending.add(pool.submit(_work, items, writer.settings_key, force))
            if writer.broken is not None:
                for future in pending:
                    future.cancel()  # what has not started yet could not be written anyway
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                collect(done)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: do not wait for queued work
            raise
    return stopped


def run_batch(
    input_dir: str | Path,
    output: str | Path,
    settings: Settings,
    *,
    glob: str = "**/*.txt",
    force: bool = False,
    quiet: bool = False,
    progress: ProgressSink | None = None,
    pool_threshold: int = POOL_THRESHOLD,
) -> BatchReport:
    """Summarise every file under `input_dir` matching `glob` into `output` (JSONL, one article per line).

    Failures go to `<output stem>.errors.jsonl` and the batch goes on; an authentication failure
    stops it (`report.stopped`). Re-running skips articles already done with the same input and
    settings; `force` re-does them all.

    Raises:
        ConfigError: the folder, glob, output path, backend or price table is unusable.
        WriteError: writing the results or errors file failed mid-run (disk full, I/O error); the run
            stopped at once and the complete lines written so far are kept.
    """
    started = time.monotonic()
    root, output = check_paths(input_dir, output)
    errors_path = errors_path_for(output)
    prices = load_prices(settings.prices)
    backend_name, notice = resolve_backend_name(settings)
    _refuse_foreign_output(root, glob, output, force)
    candidates, refused = discover(root, glob, exclude=(output, errors_path))
    if not candidates and not refused:
        raise ConfigError(f"{root}: no files match --glob {glob!r}; nothing to do")
    backend = create_backend(backend_name, settings)
    settings_key = result_key(backend, settings)
    report = BatchReport(
        root,
        output,
        errors_path,
        backend.name,
        backend.model,
        metered=backend.has_cost,
        notice=notice,
        total=len(candidates) + len(refused),
    )
    fd, index = _open_results(output)
    try:
        writer = _Writer(fd, output, errors_path, index, settings_key, progress or choose_progress(quiet), report)
    except BaseException:
        os.close(fd)
        raise
    writer.sync_every = 1.0 if not backend.needs_network else 0.0
    for record in refused:
        writer.fail(record)
    workers = settings.workers or os.cpu_count() or 1
    try:
        if writer.broken is not None:
            pass  # recording the refused files failed already: start nothing
        elif not backend.needs_network and workers > 1 and len(candidates) > pool_threshold:
            report.stopped = _run_pool(
                candidates, backend, backend_name, settings, writer, force, workers, report.total
            )
            asyncio.run(backend.aclose())
        else:
            writer.start(report.total)
            report.stopped = asyncio.run(_run_async(candidates, backend, settings, writer, force))
    finally:
        writer.close()
    if (failure := writer.error()) is not None:
        raise failure
    tally = writer.tally
    report.done, report.cached, report.failed = tally.done, tally.cached, tally.failed
    report.skipped = tally.skipped
    report.cost_usd = estimate_cost(report.model, report.usage, prices)
    report.wall_seconds = time.monotonic() - started
    return report
