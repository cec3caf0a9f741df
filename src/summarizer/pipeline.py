"""One article in, one grounded ArticleSummary out: sections -> chunks -> backend -> merge, with cache.

`summarise_article_async` is the real entry point; `summarise_article` wraps it for a single file.
The batch runner uses its two halves apart: `plan_article` (sections, chunks, cache lookups: CPU
work it does in a thread) and `summarise_plan` (the requests, on the event loop). A whole article
whose chunks were all answered has an article-level cache entry too (`lookup_article`), so a
forced re-run of it is one lookup, not one per chunk.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .article import Article, load_article
from .backends import JSON_MODE_ORDER, Backend, ChunkRequest, ChunkResult, create_backend
from .cache import Cache, open_run_cache
from .chunk import Chunk, chunk_article, split_chunk
from .errors import OutputValidationError, SummarizerError, TruncatedOutputError
from .identity import chunk_key, result_key
from .merge import merge_bodies
from .schema import ArticleSummary, BodySummary, Meta, Usage
from .sections import Section, article_sections
from .settings import Settings, load_settings, model_endpoint_configured

RULES_NOTICE = (
    "no model endpoint configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline rules backend; "
    "set OPENAI_API_KEY (and --model) or OPENAI_BASE_URL to use a model"
)


def resolve_backend_name(settings: Settings, env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """The backend to use and, when `auto` fell back to rules, the one-line notice to show."""
    if settings.backend != "auto":
        return settings.backend, None
    if model_endpoint_configured(os.environ if env is None else env):
        return "openai", None
    return "rules", RULES_NOTICE


def _where(article: Article, chunk: Chunk, count: int, exc: Exception) -> str:
    """An error's message, prefixed with the article and the chunk (backends leave that to us)."""
    return f"{article.article_id} chunk {chunk.index + 1}/{count}: {exc}"


_IDENTITIES: dict[tuple[object, ...], tuple[Settings, str]] = {}


def identity_of(backend: Backend, settings: Settings, json_mode: str | None = None) -> str:
    """`identity.result_key`, remembered for the settings object and what it reads of the backend:
    a run asks for it for every chunk (in every JSON mode the cache may hold) and every article,
    and each answer costs a JSON dump and a hash."""
    prompt = backend.prompt
    key = (
        id(settings),
        json_mode,
        backend.name,
        backend.version,
        backend.model,
        backend.base_url,
        prompt.sha256 if prompt else None,
        backend.needs_network,
        backend.wants_chunks,
    )
    known = _IDENTITIES.get(key)
    if known is not None and known[0] is settings:  # held here, so its id names no other object
        return known[1]
    if len(_IDENTITIES) >= 64:
        _IDENTITIES.clear()
    value = result_key(backend, settings, json_mode)
    _IDENTITIES[key] = (settings, value)
    return value


def _cache_key(
    backend: Backend, settings: Settings, article: Article, section: Section, chunk: Chunk, json_mode: str | None
) -> str:
    context = f"{section.body_hint}\n{article.title}\n{article.published}\n{chunk.text}"  # what the backend sees
    return chunk_key(identity_of(backend, settings, json_mode), context)


def lookup_chunk(
    backend: Backend, settings: Settings, article: Article, section: Section, chunk: Chunk, cache: Cache | None
) -> ChunkResult | None:
    """The cached result for one chunk, its spans set for this article; None when not cached."""
    if cache is None or not backend.cacheable:
        return None
    keys = [_cache_key(backend, settings, article, section, chunk, mode) for mode in backend.cache_modes()]
    hit = next((found for k in keys if (found := cache.get(k)) is not None), None)
    if hit is None:
        return None
    stored = [BodySummary.model_validate(b) for b in hit["bodies"]]
    if hit.get("input_sha256") != article.sha256 or hit.get("chunk_start") != chunk.start:
        # The same chunk text in another article: spans are re-derived against this one's text.
        # (Imported here: grounding is not needed before a batch's first request.)
        from .ground import ground_bodies

        stored = ground_bodies(stored, article, (chunk.start, chunk.end), section.body_hint).bodies
    return ChunkResult(bodies=stored, warnings=list(hit.get("warnings", [])), cached=True)


def _worth_keeping(result: ChunkResult) -> bool:
    # An empty answer (no committee found) is not kept: a later run (a better model, a fixed server)
    # asks again. An answer naming a committee is kept even when it lists no initiative or metric:
    # a chunk that only reports a meeting has none to find, and asking again finds none either.
    return bool(result.bodies)


def store_chunk(
    backend: Backend,
    settings: Settings,
    article: Article,
    section: Section,
    chunk: Chunk,
    cache: Cache | None,
    result: ChunkResult,
) -> None:
    """File a new chunk result in the cache under the JSON mode it was asked in."""
    if cache is None or not backend.cacheable:
        return
    if not _worth_keeping(result):
        return
    # Filed under the mode the reply was asked in (the run may have fallen back meanwhile).
    mode = result.json_mode if result.json_mode is not None else backend.cache_modes()[0]
    cache.put(
        _cache_key(backend, settings, article, section, chunk, mode),
        {
            "bodies": [b.model_dump(mode="json") for b in result.bodies],
            "warnings": result.warnings,
            "input_sha256": article.sha256,
            "chunk_start": chunk.start,
        },
    )


async def _extract_chunk(
    backend: Backend,
    article: Article,
    section: Section,
    chunk: Chunk,
    count: int,
    settings: Settings,
    cache: Cache | None,
    ledger: list[Usage],
    started: float,
    looked_up: bool = False,
) -> list[ChunkResult]:
    if not looked_up:
        hit = lookup_chunk(backend, settings, article, section, chunk, cache)
        if hit is not None:
            return [hit]
    try:
        result = await backend.extract(ChunkRequest(article, section, chunk, count, ledger, started))
    except TruncatedOutputError as exc:
        halves = split_chunk(article, chunk, section, backend.model)
        if not halves:
            raise unsplittable_error(article, chunk, count, exc) from exc
        # The truncated attempts were paid for: keep their usage in the article's totals.
        results = [ChunkResult(bodies=[], usage=exc.usage)] if isinstance(exc.usage, Usage) else []
        for half in halves:
            results.extend(
                await _extract_chunk(backend, article, section, half, count, settings, cache, ledger, started)
            )
        return results
    except SummarizerError as exc:
        raise placed_error(article, chunk, count, exc) from exc
    store_chunk(backend, settings, article, section, chunk, cache, result)
    return [result]


def unsplittable_error(article: Article, chunk: Chunk, count: int, exc: TruncatedOutputError) -> TruncatedOutputError:
    return TruncatedOutputError(
        f"{article.article_id} chunk {chunk.index + 1}/{count}: reply truncated at the output limit and "
        f"the chunk cannot be split further",
        last_reply=exc.last_reply,
    )


def placed_error(article: Article, chunk: Chunk, count: int, exc: SummarizerError) -> SummarizerError:
    """The same error, its message prefixed with the article and the chunk (backends leave that to us)."""
    message = _where(article, chunk, count, exc)
    if isinstance(exc, OutputValidationError):
        raised: SummarizerError = type(exc)(message, last_reply=exc.last_reply)
    else:
        raised = type(exc)(message)
    raised.attempts, raised.usage, raised.detail = exc.attempts, exc.usage, exc.detail
    return raised


def plan_chunks(article: Article, backend: Backend, settings: Settings) -> tuple[dict[int, Section], list[Chunk]]:
    """An article's sections (by index) and the chunks a backend is asked about, in order."""
    sections = list(article_sections(article))
    if len(sections) > 1:  # a roundup's intro (no committee) is not a body of its own
        sections = [s for s in sections if s.body_hint] or sections
    if backend.wants_chunks:
        chunks = chunk_article(article, sections, settings.chunk_tokens, settings.chunk_overlap, backend.model)
    else:  # the backend reads whole sections (the rules extractor ranks across a committee's part)
        chunks = [Chunk(i, s.index, s.start, s.end, article.text[s.start : s.end], 0) for i, s in enumerate(sections)]
    return {s.index: s for s in sections}, chunks


@dataclass
class Plan:
    """An article ready to be asked about: its sections, its chunks and the chunks the cache answered."""

    article: Article
    sections: dict[int, Section]
    chunks: list[Chunk]
    hits: dict[int, ChunkResult] = field(default_factory=dict)  # by position in `chunks`
    looked_up: bool = False  # the cache was asked about every chunk (the misses need asking)
    started: float = field(default_factory=time.monotonic)

    @property
    def complete(self) -> bool:
        """Every chunk came from the cache: no request is needed."""
        return self.looked_up and len(self.hits) == len(self.chunks)


def plan_article(article: Article, backend: Backend, settings: Settings, cache: Cache | None = None) -> Plan:
    """Section and chunk an article and look every chunk up in the cache (no requests; plain CPU work)."""
    by_index, chunks = plan_chunks(article, backend, settings)
    plan = Plan(article, by_index, chunks)
    if cache is not None and backend.cacheable:
        for position, chunk in enumerate(chunks):
            hit = lookup_chunk(backend, settings, article, by_index[chunk.section_index], chunk, cache)
            if hit is not None:
                plan.hits[position] = hit
        plan.looked_up = True
    return plan


def article_key(backend: Backend, settings: Settings, input_sha256: str) -> str:
    """The cache key of a whole article's summary: the result's identity and the input file's hash."""
    return chunk_key(identity_of(backend, settings), f"article\n{input_sha256}")


def lookup_article(
    backend: Backend, settings: Settings, cache: Cache | None, input_sha256: str, article_id: str, source_path: str
) -> ArticleSummary | None:
    """The summary a re-run would assemble from the chunk cache, from one lookup; None when not cached.

    Only the article's id and path are its own (the same file may sit at two paths); the rest is
    decided by the input's bytes and the settings, both in the key.
    """
    if cache is None or not backend.cacheable:
        return None
    hit = cache.get(article_key(backend, settings, input_sha256))
    if hit is None or not isinstance(hit.get("summary"), dict):
        return None
    summary = ArticleSummary.model_validate(hit["summary"])
    return summary.model_copy(update={"article_id": article_id, "source_path": source_path})


def _as_cached(result: ChunkResult) -> ChunkResult:
    """A chunk result as a later run reads it back from the chunk cache (see `lookup_chunk`)."""
    if result.cached:
        return ChunkResult(bodies=result.bodies, warnings=list(result.warnings), cached=True)
    bodies = [BodySummary.model_validate(b.model_dump(mode="json")) for b in result.bodies]
    return ChunkResult(bodies=bodies, warnings=list(result.warnings), cached=True)


def store_article(
    backend: Backend,
    settings: Settings,
    cache: Cache | None,
    plan: Plan,
    nested: list[list[ChunkResult]],
    live: ArticleSummary | None = None,
) -> None:
    """File the summary a re-run would assemble from the chunk cache, when it would assemble one:
    every chunk answered by one reply that the chunk cache keeps (none split, none empty).

    `live`, the summary this run assembled from the same results, gives it without assembling again
    (see `as_rerun`)."""
    if cache is None or not backend.cacheable or cache.off is not None:
        return
    if not all(len(group) == 1 and (group[0].cached or _worth_keeping(group[0])) for group in nested):
        return
    if live is not None:
        summary = as_rerun(live, len(nested))
    else:
        results = [_as_cached(g[0]) for g in nested]
        summary = assemble_summary(plan.article, backend, settings, len(plan.chunks), results)
    cache.put(article_key(backend, settings, plan.article.sha256), {"summary": summary.model_dump(mode="json")})


def as_rerun(live: ArticleSummary, results: int) -> ArticleSummary:
    """The summary a re-run assembles from the chunk cache, from the one assembled from `results`
    fresh replies (one a chunk): the same bodies (a body read back from the cache equals the one
    filed) and warnings, every result a cache hit, no traffic, and no JSON mode (a cached result
    keeps none)."""
    assert live.meta is not None  # assemble_summary always sets it
    meta = live.meta.model_copy(update={"usage": Usage(), "cache_hits": results, "json_mode": None})
    return live.model_copy(update={"meta": meta})


async def summarise_article_async(
    article: Article, backend: Backend, settings: Settings, cache: Cache | None = None
) -> ArticleSummary:
    """Summarise one loaded article with one backend.

    Raises:
        SummarizerError: the backend failed for a chunk after its retries; the message names the
            article and the chunk.
    """
    return await summarise_plan(plan_article(article, backend, settings, cache), backend, settings, cache)


async def summarise_plan(
    plan: Plan, backend: Backend, settings: Settings, cache: Cache | None = None
) -> ArticleSummary:
    """Ask the backend about the chunks of a plan the cache did not answer, and assemble the summary.

    Raises:
        SummarizerError: the backend failed for a chunk after its retries; the message names the
            article and the chunk.
    """
    article, chunks, by_index = plan.article, plan.chunks, plan.sections
    ledger: list[Usage] = []  # what every request of this article cost, whatever becomes of it
    started = plan.started

    def ask(chunk: Chunk) -> Coroutine[None, None, list[ChunkResult]]:
        section = by_index[chunk.section_index]
        return _extract_chunk(
            backend, article, section, chunk, len(chunks), settings, cache, ledger, started, plan.looked_up
        )

    if backend.needs_network:
        nested = await _gather_chunks(plan, ask, ledger)
    else:
        nested = await _chunks_in_turn(plan, ask, ledger)
    summary = assemble_summary(article, backend, settings, len(chunks), [r for group in nested for r in group])
    store_article(backend, settings, cache, plan, nested, summary)
    return summary


async def _gather_chunks(
    plan: Plan, ask: Callable[[Chunk], Coroutine[None, None, list[ChunkResult]]], ledger: list[Usage]
) -> list[list[ChunkResult]]:
    """Every chunk's results, the requests in flight together (a model answers them in parallel)."""

    async def done(result: ChunkResult) -> list[ChunkResult]:
        return [result]

    tasks = [
        asyncio.ensure_future(done(plan.hits[position]) if position in plan.hits else ask(chunk))
        for position, chunk in enumerate(plan.chunks)
    ]
    try:
        return await asyncio.gather(*tasks)
    except SummarizerError as exc:
        # One chunk failed, so the article fails: stop its other chunks instead of paying for them,
        # and let the error carry what was spent (finished chunks and the failed one).
        for task in tasks:
            task.cancel()
        settled = await asyncio.gather(*tasks, return_exceptions=True)
        exc.usage = _spent(exc, ledger, [outcome for outcome in settled if isinstance(outcome, list)])
        raise
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _chunks_in_turn(
    plan: Plan, ask: Callable[[Chunk], Coroutine[None, None, list[ChunkResult]]], ledger: list[Usage]
) -> list[list[ChunkResult]]:
    """Every chunk's results, one chunk after another: a CPU-bound backend never waits, so tasks
    would run them in turn all the same, and a task per chunk only added scheduling (a roundup
    has thousands of sections). The first failure ends the article."""
    nested: list[list[ChunkResult]] = []
    for position, chunk in enumerate(plan.chunks):
        if position in plan.hits:
            nested.append([plan.hits[position]])
            continue
        try:
            nested.append(await ask(chunk))
        except SummarizerError as exc:
            exc.usage = _spent(exc, ledger, nested)
            raise
    return nested


def _spent(exc: SummarizerError, ledger: list[Usage], finished: list[list[ChunkResult]]) -> Usage:
    """What a failed article's requests cost: the backend's ledger when it keeps one (every
    request, cancelled ones too), else the failed chunk's usage and the finished chunks'."""
    spent = Usage()
    if ledger:
        for entry in ledger:
            spent = spent.add(entry)
        return spent
    spent = exc.usage if isinstance(exc.usage, Usage) else spent
    for results in finished:
        for result in results:
            spent = spent.add(result.usage)
    return spent


_NO_USAGE = Usage()


def assemble_summary(
    article: Article, backend: Backend, settings: Settings, chunk_count: int, results: list[ChunkResult]
) -> ArticleSummary:
    """Merge an article's chunk results, in chunk order, into its summary and meta."""
    usage = Usage()
    for result in results:
        if result.usage != _NO_USAGE:  # most results of an offline backend: no model traffic to add
            usage = usage.add(result.usage)
    warnings = list(dict.fromkeys(w for r in results for w in r.warnings))  # each once, in order
    bodies = merge_bodies([b for r in results for b in r.bodies])
    if not bodies:
        warnings.append("no CPPCC committee found in the article")
    meta = Meta(
        backend=backend.name,
        model=backend.model,
        prompt_version=backend.prompt.version if backend.prompt else None,
        chunks=chunk_count,
        usage=usage,
        cache_hits=sum(1 for r in results if r.cached),
        json_mode=_weakest_mode([r.json_mode for r in results]),
        warnings=warnings,
        input_sha256=article.sha256,
        settings_key=identity_of(backend, settings),
    )
    return ArticleSummary(
        article_id=article.article_id,
        source_path=str(article.path) if article.path else None,
        title=article.title,
        published=article.published,
        source=article.source,
        url=article.url,
        bodies=bodies,
        meta=meta,
    )


def _weakest_mode(modes: list[str | None]) -> str | None:
    """The least structured JSON mode any chunk was asked in (what a reader should know about)."""
    used = [m for m in modes if m in JSON_MODE_ORDER]
    return max(used, key=JSON_MODE_ORDER.index) if used else None


def open_cache(settings: Settings, backend: Backend) -> Cache | None:
    """The run's cache; None when off, or (with one warning) when it cannot be used."""
    if not settings.use_cache or not backend.cacheable:
        return None
    return open_run_cache(settings.cache_dir)


def summarise_article(
    path: str | Path,
    settings: Settings | None = None,
    backend: Backend | None = None,
    cache: Cache | None = None,
) -> ArticleSummary:
    """Read one article file and summarise it (the synchronous entry point).

    Raises:
        InputError: the file cannot be read as an article.
        SummarizerError: configuration or backend failure.
    """
    settings = settings or load_settings()
    article = load_article(path, max_bytes=settings.max_file_bytes)

    done: list[ArticleSummary] = []

    async def run() -> None:
        nonlocal backend, cache
        owned = backend is None
        if backend is None:
            name, _ = resolve_backend_name(settings)
            backend = create_backend(name, settings)
        if cache is None:
            cache = open_cache(settings, backend)
        try:
            done.append(await summarise_article_async(article, backend, settings, cache))
        finally:
            if owned:
                await backend.aclose()

    # The summary is handed out through `done`, not as the task's result: on its way out,
    # asyncio.run (Python 3.11) formats its main task, result and all, which for a long article
    # costs more than summarising it with the rules.
    asyncio.run(run())
    return done[0]
