"""A SQLite (WAL) cache of validated chunk results, shared safely between concurrent runs.

Keys hash everything that can change a result: backend, model, prompt template hash, schema
version, output-affecting settings and the chunk text. Only validated, grounded results are stored.

The cache never costs a result. A file that is not a database is moved aside at open and rebuilt.
Damage inside it is found where SQLite finds it, on the first read or write that touches a bad
page (a full `PRAGMA quick_check` reads every page, seconds per run on a large cache, and every
run would pay it to catch what the first lookup catches anyway); the file is then moved aside for
the next run. That, or a cache that cannot be written (read-only, disk full), switches the cache
off for the rest of the run with one warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .errors import CacheError

log = logging.getLogger(__name__)
DB_NAME = "summaries.sqlite3"
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
# Databases this process found unusable, by path and inode: a run's later opens (eval opens one
# per article) skip them without another warning; a rebuilt file is a new inode and is used again.
_off: set[tuple[str, int | None]] = set()


def _damaged(exc: BaseException) -> bool:
    """Is this SQLite's word for a damaged file (not a locked, read-only or full one)?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _DAMAGED


def _identity(path: Path) -> tuple[str, int | None]:
    try:
        return str(path), os.stat(path).st_ino
    except OSError:
        return str(path), None


def _set_wal(db: sqlite3.Connection, wait: float = 30.0) -> None:
    """Switch to WAL, waiting for other processes doing the same.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is locked" at
    once instead of using the busy timeout, so two runs opening a fresh cache together would fail.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)


def open_run_cache(directory: Path) -> Cache | None:
    """The cache for a run, or None (with one warning) when it cannot be used: the run goes on without."""
    path = Path(directory) / DB_NAME
    if _identity(path) in _off:
        return None
    try:
        return Cache(directory)
    except CacheError as exc:
        _switch_off(path, f"{exc}; carrying on without the cache")
        return None


def _switch_off(path: Path, message: str, identity: tuple[str, int | None] | None = None) -> None:
    """Remember that this database is unusable in this process and say so, once."""
    identity = identity or _identity(path)
    if identity not in _off:
        _off.add(identity)
        log.warning("%s", message)


class Cache:
    """Key -> JSON value store in `<directory>/summaries.sqlite3`.

    Raises (on creation):
        CacheError: the cache cannot be created or opened (an unwritable folder, a read-only file
            that needs WAL files written, a lock held past the busy timeout), or a damaged file
            cannot be moved aside.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / DB_NAME
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.off: str | None = None  # why get/put stopped using the database, once they have
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise CacheError(f"{self.path}: database is locked by another process ({exc})") from exc
            if not _damaged(exc):
                raise CacheError(f"{self.path}: cannot open the cache ({exc})") from exc
            self._db = self._rebuild(exc)
        except OSError as exc:
            raise CacheError(f"{self.path}: cannot create the cache ({exc.strerror or exc})") from exc
        self._identity = _identity(self.path)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            _set_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            # Reads the schema, so a file that is not a database (or a broken first page) fails here.
            db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> Path:
        """Rename the database and its WAL files to `summaries.sqlite3.corrupt-<time>`.

        Raises:
            OSError: a rename failed (the folder is read-only): the file stays where it is.
        """
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.rename(Path(str(aside) + suffix))
        return aside

    def _rebuild(self, reason: Exception) -> sqlite3.Connection:
        try:
            aside = self._set_aside()
        except OSError as exc:
            raise CacheError(
                f"{self.path}: damaged ({reason}) and cannot be moved aside ({exc.strerror or exc})"
            ) from exc
        log.warning("cache %s is damaged (%s); moved aside to %s and rebuilt", self.path, reason, aside.name)
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.path}: cannot rebuild the cache ({exc})") from exc

    def _give_up(self, doing: str, exc: sqlite3.Error) -> None:
        """After a failed read or write: no more use of the database this run, one warning, and a
        damaged file moved aside (only if the path still names the file this cache opened)."""
        with self._lock:
            if self.off is not None:
                return
            self.off = str(exc)
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            note = "carrying on without the cache for this run"
            if _damaged(exc):
                try:
                    if _identity(self.path) != self._identity:
                        raise FileNotFoundError("replaced by another run")
                    aside = self._set_aside()
                    note = f"moved aside to {aside.name} (the next run starts a new cache); {note}"
                except OSError as problem:
                    note = f"it stays in place ({getattr(problem, 'strerror', None) or problem}); {note}"
        _switch_off(self.path, f"cache {self.path}: cannot {doing} ({exc}); {note}", self._identity)

    def get(self, key: str) -> dict[str, Any] | None:
        if self.off is not None:
            return None
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            self._give_up("read from it", exc)
            return None
        if row is None:
            self.misses += 1
            return None
        try:
            value: dict[str, Any] = json.loads(row[0])
        except json.JSONDecodeError:
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store a result; a failed write switches the cache off (the result itself is not lost)."""
        if self.off is not None:
            return
        blob = json.dumps(value, ensure_ascii=False)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)", (key, blob, time.time())
                )
        except sqlite3.Error as exc:
            self._give_up("write to it", exc)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            count, size = self._db.execute("SELECT count(*), coalesce(sum(length(value)), 0) FROM entries").fetchone()
        return {
            "path": str(self.path),
            "entries": count,
            "bytes": size,
            "file_bytes": self.path.stat().st_size if self.path.exists() else 0,
        }

    def clear(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
            self._db.execute("DELETE FROM entries")
            self._db.execute("VACUUM")
        return int(count)

    def close(self) -> None:
        with self._lock:
            if self.off is None:
                self._db.close()
