"""Worker processes for a CPU-bound backend (the rules): files go out in small batches, results
come back to the parent, which alone writes the results file."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from ..backends import Backend, create_backend
from ..pipeline import open_cache
from ..settings import Settings
from .inputs import Candidate
from .pool import summarise_candidate
from .report import Outcome
from .writer import ResultsWriter

_WORKER: dict[str, Any] = {}


_POOL_BATCH = 16  # files per task sent to a worker process


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


def run_pool(
    candidates: list[Candidate],
    backend: Backend,
    backend_name: str,
    settings: Settings,
    writer: ResultsWriter,
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
