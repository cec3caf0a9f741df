"""Summarise every article in a folder into one JSONL file: bounded concurrency, resumable, crash-safe.

Each finished article is appended as one whole line (a single write, by a writer thread; fsync as
soon as that thread has caught up, and at the end), so a killed run leaves complete lines plus at
most one partial tail, which the next run cuts off. Articles are read and chunked by a producer
thread a bounded number ahead of the requests. A write that fails
(disk full, I/O error) stops the run at once with the complete lines kept. Re-running the
same command skips articles whose line already matches the input's hash and the output-affecting
settings. A line superseded in this run (changed input, changed settings, --force) stays in the
file until the run ends, then the file is rewritten without it (temp file + os.replace), so the
file never keeps two lines for one article after a run that finished; a run killed before that
point is repaired the same way by the next run.
"""

from __future__ import annotations

from .inputs import Candidate, discover, glob_regex
from .pool import LimitedBackend, limited, summarise_candidate
from .report import BatchReport, Outcome
from .run import POOL_THRESHOLD, run_batch
from .writer import check_paths, compact_results, errors_path_for, repair_and_index

__all__ = [
    "POOL_THRESHOLD",
    "BatchReport",
    "Candidate",
    "LimitedBackend",
    "Outcome",
    "check_paths",
    "compact_results",
    "discover",
    "errors_path_for",
    "glob_regex",
    "limited",
    "repair_and_index",
    "run_batch",
    "summarise_candidate",
]
