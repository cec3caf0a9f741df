"""A SQLite (WAL) cache of validated chunk results, shared safely between concurrent runs.

Keys hash everything that can change a result: backend, model, prompt template hash, schema
version, output-affecting settings and the chunk text. Only validated, grounded results are stored.
A corrupt database is moved aside with a warning and rebuilt.
"""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .errors import CacheError

log = logging.getLogger(__name__)
DB_NAME = "summaries.sqlite3"


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


class Cache:
    """Key -> JSON value store in `<directory>/summaries.sqlite3`."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / DB_NAME
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise CacheError(f"{self.path}: database is locked by another process ({exc})") from exc
            self._db = self._rebuild(exc)
        except OSError as exc:
            raise CacheError(f"{self.path}: cannot create the cache ({exc})") from exc

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 30000")
        _set_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)")
        db.execute("SELECT count(*) FROM entries").fetchone()
        return db

    def _rebuild(self, reason: Exception) -> sqlite3.Connection:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.warning("cache %s is unreadable (%s); moved aside to %s and rebuilt", self.path, reason, aside.name)
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                part.rename(Path(str(aside) + suffix))
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.path}: cannot rebuild the cache ({exc})") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
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
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO entries (key, value, created) VALUES (?, ?, ?)", (key, blob, time.time())
                )
            except sqlite3.DatabaseError as exc:
                raise CacheError(f"{self.path}: cannot write to the cache ({exc})") from exc

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
            self._db.close()
