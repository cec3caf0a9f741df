"""`run_batch`: check the paths, find the files, choose the async pool or the worker processes,
and write every result once."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from ..backends import create_backend
from ..errors import ConfigError
from ..identity import result_key
from ..pipeline import resolve_backend_name
from ..prices import estimate_cost, load_prices
from ..progress import ProgressSink, choose_progress
from ..settings import Settings
from .inputs import discover
from .pool import run_async
from .report import BatchReport
from .writer import (
    ResultsWriter,
    check_paths,
    errors_path_for,
    open_results,
    refuse_foreign_output,
)

POOL_THRESHOLD = 200  # a CPU-bound backend uses a process pool above this many files


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
    refuse_foreign_output(root, glob, output, force)
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
    fd, index = open_results(output)
    try:
        writer = ResultsWriter(fd, output, errors_path, index, settings_key, progress or choose_progress(quiet), report)
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
            # Imported here: multiprocessing costs a model run about 60 ms before its first request.
            from .processes import run_pool

            report.stopped = run_pool(candidates, backend, backend_name, settings, writer, force, workers, report.total)
            asyncio.run(backend.aclose())
        else:
            writer.start(report.total, threaded=True)
            report.stopped = asyncio.run(run_async(candidates, backend, settings, writer, force))
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
