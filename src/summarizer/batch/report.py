"""What a batch run reports: one outcome per article, the run's totals and cost table, and the
error records written to `<results>.errors.jsonl`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..schema import Usage


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


LAST_REPLY_BYTES = 4096  # of a failed model reply kept in the errors file (a reply may be megabytes)


def _capped(reply: object) -> tuple[str | None, int | None]:
    """A failed reply's first LAST_REPLY_BYTES (UTF-8, cut on a character boundary) and its full length."""
    if not isinstance(reply, str):
        return None, None
    head = reply.encode("utf-8", "surrogatepass")[:LAST_REPLY_BYTES].decode("utf-8", "ignore")
    return head, len(reply)


def error_record(
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
