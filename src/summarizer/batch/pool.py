"""Summarising articles concurrently in one event loop: one article at a time per task, model
traffic bounded by a shared Limiter, each result handed to the writer as it finishes. Articles are
prepared ahead by a thread, which for a large run takes them from a forked preparing process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import pickle
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..article import load_article
from ..backends import Backend, ChunkRequest, ChunkResult
from ..cache import Cache
from ..errors import AuthError, InputError, SummarizerError
from ..limits import Limiter
from ..pipeline import Plan, lookup_article, open_cache, plan_article, summarise_plan
from ..schema import ArticleSummary, Usage
from ..settings import Settings
from .inputs import Candidate
from .report import Outcome, error_record
from .writer import ResultsWriter

if TYPE_CHECKING:  # grounding is imported where a reply or its facts need it, after the first request
    from ..ground import ArticleFacts

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


def prepare_candidate(
    candidate: Candidate,
    backend: Backend,
    settings: Settings,
    cache: Cache | None,
    known: tuple[str | None, str | None] | None,
    settings_key: str,
    force: bool,
) -> Outcome | Plan:
    """Everything about one input file that needs no request: the resume check, the article-level
    cache, reading, sectioning, chunking and the chunk cache. Returns the outcome when that settles
    the article (skipped, failed, served from the cache), else the plan of what to ask.
    Never raises a SummarizerError."""
    article_id, source = candidate.article_id, str(candidate.path)
    sha = None
    if known is not None or (cache is not None and backend.cacheable):
        sha = file_sha256(candidate.path, settings.max_file_bytes)
        if known is not None and not force and known[1] == settings_key and sha is not None and sha == known[0]:
            return Outcome(article_id, "skipped", input_sha256=sha)
    if sha is not None and (whole := lookup_article(backend, settings, cache, sha, article_id, source)) is not None:
        return done_outcome(whole)
    try:
        article = load_article(candidate.path, article_id=article_id, max_bytes=settings.max_file_bytes)
    except InputError as exc:
        return Outcome(article_id, "failed", error=error_record(article_id, source, exc, 0), input_sha256=sha)
    try:
        return plan_article(article, backend, settings, cache)
    except Exception as exc:
        return failed_outcome(candidate, article.sha256, exc)


def failed_outcome(candidate: Candidate, input_sha256: str, exc: Exception) -> Outcome:
    """The outcome of an article whose summary raised `exc`."""
    article_id, source = candidate.article_id, str(candidate.path)
    if isinstance(exc, SummarizerError):
        return Outcome(
            article_id,
            "failed",
            error=error_record(article_id, source, exc),
            fatal=isinstance(exc, AuthError),
            input_sha256=input_sha256,
            usage=exc.usage if isinstance(exc.usage, Usage) else Usage(),  # paid for even so
        )
    # A bug in one backend call must not sink a batch of thousands.
    log.debug("unexpected error on %s", source, exc_info=exc)
    reason = f"{type(exc).__name__}: {exc}"
    return Outcome(
        article_id,
        "failed",
        input_sha256=input_sha256,
        error=error_record(article_id, source, reason, None, "InternalError"),
    )


def done_outcome(summary: ArticleSummary, input_sha256: str | None = None) -> Outcome:
    meta = summary.meta
    usage = meta.usage if meta else Usage()
    hits = meta.cache_hits if meta else 0
    return Outcome(
        summary.article_id,
        "done",
        line=summary.model_dump_json(),
        usage=usage,
        cache_hits=hits,
        chunks=meta.chunks if meta else 0,
        cached=hits > 0 and usage.requests == 0,
        input_sha256=input_sha256,
    )


async def finish_plan(
    candidate: Candidate, plan: Plan, backend: Backend, settings: Settings, cache: Cache | None
) -> Outcome:
    """Ask about the chunks of a plan the cache did not answer. Never raises a SummarizerError."""
    try:
        summary = await summarise_plan(plan, backend, settings, cache)
    except Exception as exc:
        return failed_outcome(candidate, plan.article.sha256, exc)
    return done_outcome(summary)


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
    prepared = prepare_candidate(candidate, backend, settings, cache, known, settings_key, force)
    if isinstance(prepared, Outcome):
        return prepared
    return await finish_plan(candidate, prepared, backend, settings, cache)


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


class _Producer(threading.Thread):
    """Prepares articles (resume check, reading, cleaning, chunking, cache lookups) in a thread of its
    own and hands the plans to the event loop through a bounded queue: the first request goes out as
    soon as the first article is ready, and the loop never stops to read or chunk a file. Articles
    the preparation settles (skipped, cached, unreadable) go straight to the writer. In a large run
    `prepare` only takes each article from the process that prepared it (`_ForkedPreparer`)."""

    def __init__(
        self,
        candidates: list[Candidate],
        prepare: Callable[[Candidate], Outcome | Plan],
        writer: ResultsWriter,
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Queue[tuple[Candidate, Plan] | None],
        ahead: int,
        consumers: int,
    ) -> None:
        super().__init__(name="summarizer-prepare", daemon=True)
        self.candidates, self.prepare, self.writer = candidates, prepare, writer
        self.loop, self.ready, self.consumers = loop, ready, consumers
        self.room = threading.Semaphore(ahead)  # plans prepared but not yet taken up
        self.stop = threading.Event()
        self.prepared = 0  # articles prepared so far (plans handed over or outcomes written)
        self.error: BaseException | None = None

    def _hand_over(self, item: tuple[Candidate, Plan] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
            self.loop.call_soon_threadsafe(self.ready.put_nowait, item)

    def run(self) -> None:
        try:
            for candidate in self.candidates:
                while not self.room.acquire(timeout=0.1):
                    if self.stop.is_set():
                        return
                if self.stop.is_set() or self.writer.broken is not None:
                    return
                prepared = self.prepare(candidate)
                self.prepared += 1
                if isinstance(prepared, Outcome):
                    self.room.release()
                    self.writer.submit(prepared)
                else:
                    self._hand_over((candidate, prepared))
        except BaseException as exc:  # re-raised on the loop: a bug here must not lose articles silently
            self.error = exc
        finally:
            for _ in range(self.consumers):
                self._hand_over(None)


def _facts(prepared: Outcome | Plan) -> ArticleFacts | None:
    """The grounding facts of a plan that needs requests, worked out while the caches that preparing
    it filled are warm (see `ground.ArticleFacts`); None when no reply will be grounded."""
    if isinstance(prepared, Plan) and not prepared.complete:
        from ..ground import article_facts

        try:
            return article_facts(prepared.article)
        except Exception:  # worked out again when its replies are grounded, where a failure is its article's alone
            log.debug("grounding facts of %s", prepared.article.article_id, exc_info=True)
    return None


# From this many articles on, a model run prepares them in a forked process rather than a thread:
# preparing costs about as much CPU as the requests themselves, and in a thread it takes turns with
# the event loop for the interpreter. Fewer articles do not repay the fork and the second process
# warming its own caches.
PREPARE_PROCESS_MIN = 64


class _ForkedPreparer:
    """Prepares the articles, in order, in a child process forked from this one (which shares the
    backend, the settings and the loaded tables) and hands each over through a pipe: the plan and
    its grounding facts, pickled. Calling it returns the next article's outcome or plan.

    The first article is prepared here, before the fork: the tables preparing loads on first use
    (the tokenizer, the gazetteer) are then the child's too instead of loaded again on each side,
    and the first request waits for no fork.
    """

    def __init__(
        self,
        candidates: list[Candidate],
        prepare_here: Callable[[Candidate], Outcome | Plan],
        prepare_there: Callable[[Candidate], Outcome | Plan],
        inherited_fds: tuple[int, ...],
    ) -> None:
        self._first: Outcome | Plan | BaseException
        try:
            self._first = prepare_here(candidates[0])
        except BaseException as exc:  # raised where the producer would have met it
            self._first = exc
        self._waiting_first = True
        self.pid: int | None = None
        self._stream: BinaryIO | None = None
        self._prepare_here = prepare_here
        if isinstance(self._first, BaseException):
            return  # the run ends at the first article: nothing more to prepare
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to be had (memory, a process limit): the thread prepares them
            log.debug("cannot fork a preparing process", exc_info=True)
            os.close(read)
            os.close(write)
            return
        if pid == 0:  # the child: never returns
            os.close(read)
            _prepare_all(write, candidates[1:], prepare_there, inherited_fds)
        os.close(write)
        self.pid = pid
        self._stream = os.fdopen(read, "rb")

    def __call__(self, candidate: Candidate) -> Outcome | Plan:
        if self._waiting_first:
            self._waiting_first = False
            if isinstance(self._first, BaseException):
                raise self._first
            return self._first
        if self._stream is None:  # no child could be forked: prepared here, in the producer's thread
            return self._prepare_here(candidate)
        try:
            kind, item = pickle.load(self._stream)
        except EOFError:
            raise RuntimeError("the process preparing the articles ended early") from None
        except Exception as exc:  # cut off mid-message (the child was killed), or not to be rebuilt here
            raise RuntimeError(
                f"the process preparing the articles sent what cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        if kind == "error":
            raise item
        prepared: Outcome | Plan
        facts: ArticleFacts | None
        prepared, facts = item
        article_id = prepared.article_id if isinstance(prepared, Outcome) else prepared.article.article_id
        if isinstance(prepared, Plan) and facts is not None:
            from ..ground import adopt_facts

            adopt_facts(prepared.article, facts)
        if article_id != candidate.article_id:
            raise RuntimeError(f"the process preparing the articles sent {article_id}, not {candidate.article_id}")
        return prepared

    def stop(self) -> None:
        """Stop the child (it may be preparing an article no one will ask about) and reap it. A
        producer waiting for the next article then finds the pipe closed."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = None

    def close(self) -> None:
        """Close the pipe, once no producer reads from it any more."""
        self.stop()
        if self._stream is not None:
            self._stream.close()


def _prepare_all(
    fd: int, candidates: list[Candidate], prepare: Callable[[Candidate], Outcome | Plan], inherited: tuple[int, ...]
) -> None:
    """The preparing child's whole life: prepare every candidate in turn and send what came of it
    (an exception too: the parent raises it as the thread would have). Exits without returning.

    Other threads of the parent may have been running at the fork (the results writer, a background
    import), and their locks are copied as they were: the child must only run code already imported,
    besides grounding's modules (`ground`, `numbers`, `summary`), which no other thread imports."""
    code = 0
    try:
        # Ctrl-C is the parent's to handle; the results and errors files (and their lock) are its alone.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for inherited_fd in inherited:
            os.close(inherited_fd)
        with os.fdopen(fd, "wb") as out:
            for candidate in candidates:
                try:
                    prepared = prepare(candidate)
                    message = pickle.dumps(("ok", (prepared, _facts(prepared))), pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # handed to the parent, which raises it
                    out.write(_error_message(exc))
                    break
                out.write(message)
                out.flush()
    except BaseException:  # the parent sees the pipe close early
        code = 1
    finally:
        os._exit(code)


def _error_message(exc: BaseException) -> bytes:
    """An exception, pickled for the parent; one that cannot be pickled, or not rebuilt from its pickle
    (an exception class whose constructor wants other arguments), goes as a RuntimeError."""
    try:
        message = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
        pickle.loads(message)
        return message
    except Exception:
        return pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")), pickle.HIGHEST_PROTOCOL)


async def _run_in_turn(
    candidates: list[Candidate],
    backend: Backend,
    settings: Settings,
    cache: Cache | None,
    writer: ResultsWriter,
    force: bool,
) -> str | None:
    """Prepare and summarise each article in turn, on this thread. For a backend that makes no
    requests: a preparing thread would have no request to overlap with and would only take turns
    with the extraction for the interpreter (about a tenth more CPU on the eval corpus)."""
    for candidate in candidates:
        if writer.broken is not None:
            break
        known = writer.index.entries.get(candidate.article_id)
        prepared = prepare_candidate(candidate, backend, settings, cache, known, writer.settings_key, force)
        if isinstance(prepared, Outcome):
            outcome = prepared
        else:
            prepared.started = time.monotonic()  # the article's time starts with its extraction
            outcome = await finish_plan(candidate, prepared, backend, settings, cache)
        await writer.submit_async(outcome)
        if outcome.fatal:
            return outcome.error["message"] if outcome.error else "stopped"
    return "a write failed" if writer.broken is not None else None  # run_batch raises the writer's error


async def run_async(
    candidates: list[Candidate], backend: Backend, settings: Settings, writer: ResultsWriter, force: bool
) -> str | None:
    backend = limited(backend, settings)
    cache = open_cache(settings, backend)
    if not backend.needs_network:
        try:
            return await _run_in_turn(candidates, backend, settings, cache, writer, force)
        finally:
            await backend.aclose()
            if cache is not None:
                cache.close()
    # More articles than slots keeps every slot busy. (A CPU-bound backend ran above, one article
    # at a time, so an article's time limit counts its own work, not its neighbours'.)
    workers = max(2, settings.concurrency * 2)
    ready: asyncio.Queue[tuple[Candidate, Plan] | None] = asyncio.Queue()
    stopped: list[str] = []

    def preparer(cache: Cache | None) -> Callable[[Candidate], Outcome | Plan]:
        def prepare(candidate: Candidate) -> Outcome | Plan:
            known = writer.index.entries.get(candidate.article_id)
            return prepare_candidate(candidate, backend, settings, cache, known, writer.settings_key, force)

        return prepare

    def prepare_in_child(candidate: Candidate) -> Outcome | Plan:
        # The child's own connection to the cache: a connection must not cross a fork.
        if not in_child:
            in_child.append(preparer(open_cache(settings, backend) if cache is not None else None))
        return in_child[0](candidate)

    def prepare_here(candidate: Candidate) -> Outcome | Plan:
        prepared = prepare_candidate_here(candidate)
        _facts(prepared)  # found now, while its caches are warm; kept with the article
        return prepared

    in_child: list[Callable[[Candidate], Outcome | Plan]] = []  # made in the child, on its first article
    prepare_candidate_here = preparer(cache)
    forked: _ForkedPreparer | None = None
    if hasattr(os, "fork") and len(candidates) >= PREPARE_PROCESS_MIN:
        inherited = tuple(fd for fd in (writer.results_fd, writer.errors_fd) if fd is not None)
        # The first article's grounding facts wait for its replies, as in a small run: the first
        # request goes out a few milliseconds sooner.
        forked = _ForkedPreparer(candidates, prepare_candidate_here, prepare_in_child, inherited)
    prepare = forked if forked is not None else prepare_here
    try:
        producer = _Producer(candidates, prepare, writer, asyncio.get_running_loop(), ready, workers, workers)
        producer.start()
    except BaseException:  # no thread to read from the child: it must not outlive the run
        if forked is not None:
            forked.close()
        raise

    def stop(reason: str) -> None:
        if not stopped:
            stopped.append(reason)
        producer.stop.set()

    async def work() -> None:
        while (item := await ready.get()) is not None:
            producer.room.release()
            if stopped or writer.broken is not None:
                continue
            candidate, plan = item
            plan.started = time.monotonic()  # the article's time starts now, not when it was read
            outcome = await finish_plan(candidate, plan, backend, settings, cache)
            await writer.submit_async(outcome)
            if outcome.fatal:
                stop(outcome.error["message"] if outcome.error else "stopped")
            if writer.broken is not None:
                stop("a write failed")  # run_batch raises the writer's error

    try:
        await asyncio.gather(*(work() for _ in range(workers)))
        if producer.error is not None:
            raise producer.error
        if writer.broken is not None:
            stop("a write failed")
    finally:
        producer.stop.set()
        if forked is not None:
            forked.stop()  # the producer may be waiting for its next article
        try:
            await backend.aclose()
        finally:
            producer.join()  # it may still be reading the cache or handing results to the writer
            if forked is not None:
                forked.close()
            if cache is not None:
                cache.close()
    return stopped[0] if stopped else None
