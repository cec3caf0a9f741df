"""Summarising articles concurrently in one event loop: one article at a time per task, model
traffic bounded by a shared Limiter, each result handed to the writer as it finishes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import stat
from pathlib import Path

from ..article import load_article
from ..backends import Backend, ChunkRequest, ChunkResult
from ..cache import Cache
from ..errors import AuthError, InputError, SummarizerError
from ..limits import Limiter
from ..pipeline import open_cache, summarise_article_async
from ..schema import ArticleSummary, Usage
from ..settings import Settings
from .inputs import Candidate
from .report import Outcome, error_record
from .writer import ResultsWriter

log = logging.getLogger(__name__)


def file_sha256(path: Path, max_bytes: int) -> str | None:
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
        sha = file_sha256(candidate.path, settings.max_file_bytes)
        if not force and known[1] == settings_key and sha is not None and sha == known[0]:
            return Outcome(article_id, "skipped", input_sha256=sha)
    try:
        article = load_article(candidate.path, article_id=article_id, max_bytes=settings.max_file_bytes)
    except InputError as exc:
        return Outcome(article_id, "failed", error=error_record(article_id, source, exc, 0), input_sha256=sha)
    try:
        summary: ArticleSummary = await summarise_article_async(article, backend, settings, cache)
    except SummarizerError as exc:
        return Outcome(
            article_id,
            "failed",
            error=error_record(article_id, source, exc),
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
            error=error_record(article_id, source, reason, None, "InternalError"),
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


async def run_async(
    candidates: list[Candidate], backend: Backend, settings: Settings, writer: ResultsWriter, force: bool
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
