"""The results file as a resume log: locked for the run, repaired after a kill, one whole line per
finished article (single write, fsync), superseded lines compacted away when the run ends.

In the async pool the writing happens in a thread of its own fed by a bounded queue, so the event
loop never waits on the disk; that thread fsyncs whenever it has caught up with the queue (a quiet
run syncs every line, a busy one one fsync per group of lines) and at the end. Lines that cost no
request (served from the cache) are synced at most once a second, as an offline backend's are."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EvalDataError, WriteError
from ..progress import ProgressSink, Tally
from ..results import JsonLine, as_json_lines, json_lines, looks_like_results, write_atomically
from .inputs import glob_regex
from .report import BatchReport, Outcome, error_record

log = logging.getLogger(__name__)
# At most this long between fsyncs for lines that cost no request (served from the cache): a re-run
# redoes them in milliseconds, so a forced re-run need not wait on the disk once per article.
UNPAID_SYNC_SECONDS = 1.0


def errors_path_for(output: Path) -> Path:
    """results.jsonl -> results.errors.jsonl"""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + ".errors.jsonl")


@dataclass
class ResultsIndex:
    """What the results file already holds: per article id, the input hash and settings key of its line."""

    entries: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    needs_compaction: bool = False
    # Per article id, the number of its last line, and how many lines the file holds: with the ids
    # of the lines a run appends, the compaction at its end need not read the file back as JSON.
    last_line: dict[str, int] = field(default_factory=dict)
    lines: int = 0

    def renumber_compacted(self) -> None:
        """Number the lines as they are once `compact_results` has kept each article's last one."""
        kept = sorted(self.last_line.values())
        position = {old: new for new, old in enumerate(kept, start=1)}
        self.last_line = {article_id: position[old] for article_id, old in self.last_line.items()}
        self.lines = len(kept)


def _line_fields(line: JsonLine) -> tuple[str, str | None, str | None] | None:
    article_id = line.field("article_id")
    if article_id is None:
        return None
    meta = line.record.get("meta") if line.record is not None else None
    if not isinstance(meta, dict):
        return article_id, None, None
    return article_id, meta.get("input_sha256"), meta.get("settings_key")


def repair_and_index(output: Path) -> ResultsIndex:
    """Cut a partial last line left by a killed run, and index the complete lines."""
    index = ResultsIndex()
    if not output.exists():
        return index
    good_end = 0
    with output.open("rb+") as handle:
        for line in json_lines(handle):
            if not line.complete:
                break
            good_end += len(line.raw)
            index.lines = line.number
            fields = _line_fields(line)
            if fields is None:
                index.needs_compaction = True
                continue
            article_id, sha, key = fields
            if article_id in index.entries:
                index.needs_compaction = True
            index.entries[article_id] = (sha, key)
            index.last_line[article_id] = line.number
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


def compact_results(output: Path, drop: set[str], last: dict[str, int] | None = None) -> None:
    """Rewrite `output` keeping the last line of each article and none of `drop`; atomic and synced.

    `last`: the number of each article's last line, when the caller knows it (the writer does);
    otherwise the file is read to find out.
    """
    if last is None:
        last = {}
        with output.open("rb") as handle:
            for line in json_lines(handle):
                if (article_id := line.field("article_id")) is not None:
                    last[article_id] = line.number
    keep = {number for article_id, number in last.items() if article_id not in drop}

    def copy(temp: Path) -> None:
        # Numbered as json_lines numbers them; the lines are copied, not parsed.
        with output.open("rb") as source, temp.open("wb") as target:
            target.writelines(raw for number, raw in enumerate(source, start=1) if number in keep)

    write_atomically(output, copy, durable=True, temp=_temp_path(output))


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


def refuse_foreign_output(root: Path, pattern: str, output: Path, force: bool) -> None:
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


def check_folder(output: Path) -> None:
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


def open_results(output: Path) -> tuple[int, ResultsIndex]:
    """Lock the results file, repair what a killed run left, and return the descriptor to append to."""
    # One pretty-printed summary (`summarise > file`) becomes the line it stands for, before the lock
    # is taken: the rewrite puts a new file at the path, and the lock must be on that one.
    with contextlib.suppress(EvalDataError, OSError):  # not a summary after all: --force replaces it
        as_json_lines(output)
    fd = _lock_output(output)
    try:
        for stale in remove_stale_temps(output):
            log.warning("%s: removed %s, left by a run killed while rewriting it", output, stale.name)
        check_folder(output)
        index = repair_and_index(output)
        if index.needs_compaction:  # duplicates or garbage from a killed run: clean up first
            compact_results(output, set(), index.last_line)
            index.renumber_compacted()
    except BaseException:
        os.close(fd)
        raise
    if not index.needs_compaction:
        return fd, index
    # os.replace put a new file at this path: append to (and lock) that one, not the old inode.
    os.close(fd)
    index.needs_compaction = False
    return _lock_output(output), index


def append_line(fd: int, text: str, sync: bool = True) -> None:
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


class ResultsWriter:
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
        *,
        keep_errors: bool = False,
    ) -> None:
        """`keep_errors`: add to the errors file instead of starting it anew (a later round of
        the same job, whose earlier failures are recorded nowhere else)."""
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
        self._queue: queue.Queue[Outcome | None] | None = None  # set when a writer thread runs
        self._thread: threading.Thread | None = None
        self._unsynced = False  # lines written since the last fsync
        self._last_line = dict(index.last_line)  # per article id, its last line in the results file
        self._lines = index.lines
        self._paid_unsynced = False  # one of them cost a request
        try:
            if not keep_errors:
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

    def start(self, total: int, threaded: bool = False) -> None:
        """Begin the run; with `threaded`, outcomes given to `submit` are written by a thread of its own."""
        self.tally.total = total
        self.sink.start(total)
        self.sink.update(self.tally)
        if threaded:
            self._queue = queue.Queue(maxsize=256)
            self._thread = threading.Thread(target=self._drain, name="summarizer-writer", daemon=True)
            self._thread.start()

    def submit(self, outcome: Outcome) -> None:
        """Hand an outcome to the writer thread (from any thread; waits while its queue is full), or
        handle it now when no writer thread runs."""
        if self._queue is None:
            self.handle(outcome)
        else:
            self._queue.put(outcome)

    async def submit_async(self, outcome: Outcome) -> None:
        """`submit` for the event loop: a full queue is waited for in another thread, not on the loop."""
        if self._queue is None:
            self.handle(outcome)
            return
        try:
            self._queue.put_nowait(outcome)
        except queue.Full:
            await asyncio.to_thread(self._queue.put, outcome)

    def _drain(self) -> None:
        assert self._queue is not None
        while (outcome := self._queue.get()) is not None:
            try:
                self.handle(outcome, sync=False)
            except Exception as exc:  # a bug must stop the run, not kill this thread and hang the queue
                log.debug("writing %s failed", outcome.article_id, exc_info=True)
                self.broken = self.broken or (self.output, OSError(f"{type(exc).__name__}: {exc}"))
            # Caught up: what was handed over so far goes to disk now (a group commit).
            if self._unsynced and self._queue.empty() and self.broken is None:
                now = time.monotonic()
                if self._sync_due(now, self._paid_unsynced):
                    self._sync(now)

    def _sync_due(self, now: float, paid: bool) -> bool:
        """Must the lines written so far reach the disk now? A paid answer does before the next one
        is asked for (`sync_every` 0); lines that cost no request, at most UNPAID_SYNC_SECONDS later."""
        interval = self.sync_every if paid else max(self.sync_every, UNPAID_SYNC_SECONDS)
        return interval <= 0 or now - self._synced >= interval

    def _sync(self, now: float) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.broken = (self.output, exc)
            return
        self._mark_synced(now)

    def _mark_synced(self, now: float) -> None:
        """Everything written so far is on the disk as of `now`."""
        self._synced, self._unsynced, self._paid_unsynced = now, False, False

    def join(self) -> None:
        """Wait until the writer thread has written everything handed to it (a no-op without one)."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = self._queue = None

    def _write(self, path: Path, fd: int, text: str, sync: bool = True) -> bool:
        """Append one line; on failure remember why and write nothing more (the run stops)."""
        if self.broken is not None:
            return False
        try:
            append_line(fd, text, sync)
        except OSError as exc:
            self.broken = (path, exc)
            return False
        return True

    def handle(self, outcome: Outcome, sync: bool = True) -> None:
        """Write one outcome and count it. `sync=False` leaves the fsync to the caller (the writer thread)."""
        tally, report = self.tally, self.report
        if self.broken is not None:
            return  # the run is stopping; a re-run redoes this article
        if outcome.kind == "done" and outcome.line is not None:
            # A paid answer reaches the disk before the next one is asked for; an offline one or one
            # from the cache, whose loss a re-run would redo in milliseconds, at most a second later
            # (and at the end).
            now = time.monotonic()
            paid = outcome.usage.requests > 0
            sync = sync and self._sync_due(now, paid or self._paid_unsynced)
            if not self._write(self.output, self._fd, outcome.line, sync):
                return
            if sync:
                self._mark_synced(now)
            else:
                self._unsynced = True
                self._paid_unsynced = self._paid_unsynced or paid
            self._lines += 1
            self._last_line[outcome.article_id] = self._lines
            if outcome.article_id in self.index.entries:
                self.superseded.add(outcome.article_id)
            tally.done += 1
            tally.cached += outcome.cached
            report.usage = report.usage.add(outcome.usage)
        elif outcome.kind == "skipped":
            tally.skipped += 1
        else:
            self.fail(outcome.error or error_record(outcome.article_id, None, "failed", None, "SummarizerError"))
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
        """Write what the writer thread still holds, sync, drop superseded lines (unless a write
        failed: then the file stays as it is), close."""
        try:
            self.join()
            if self.broken is None:
                os.fsync(self._fd)
                if self.index.needs_compaction or self.superseded or self.dropped:
                    # Left whole if the rewrite fails.
                    compact_results(self.output, self.dropped, self._last_line)
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
