"""Cache and resume: a warm re-run of 1,000 articles, and peak memory at 1,000 vs 10,000 articles.

Each run is a real `summarizer batch` subprocess with a model stand-in that answers at once
(`InstantBackend`, cacheable like the OpenAI backend), timed from outside, so the figures are the
batch's and the cache's own cost, start-up and exit included. Per size: cold (fills the cache), warm
(`--force`: every article served by its article-level cache entry, every line rewritten; median of
--runs) and resume (nothing to do: every article skipped; median of --runs).

    .venv/bin/python bench/bench_cache.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_model import compile_package, generate_articles, machine

BENCH = Path(__file__).resolve().parent
EXE = Path(sys.executable).with_name("summarizer")


def run(folder: Path, out: Path, cache: Path, glob: str, *extra: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one CLI run."""
    env = {
        **os.environ,
        "PYTHONPATH": str(BENCH),
        "SUMMARIZER_CACHE_DIR": str(cache),
        "SUMMARIZER_BACKEND_PLUGIN": "bench-instant=fake_model:InstantBackend",
    }
    began = time.perf_counter()
    process = subprocess.Popen(
        [
            str(EXE),
            "batch",
            str(folder),
            "-o",
            str(out),
            "--backend",
            "bench-instant",
            "--glob",
            glob,
            "--quiet",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"batch failed: {process.stderr.read().decode() if process.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=10_000, help="the larger folder (1,000 is always run)")
    parser.add_argument("--runs", type=int, default=3, help="warm and resume runs (the median is shown)")
    args = parser.parse_args()
    compile_package()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        generate_articles(work / "articles", args.max)
        print(f"{'articles':>8} {'run':>7} {'wall s':>7} {'peak RSS MiB':>12}  runs (wall s)")
        for count in sorted({1000, args.max}):
            glob = "00/*.txt" if count == 1000 else "**/*.txt"
            cache, out = work / f"cache-{count}", work / f"results-{count}.jsonl"
            for label, extra, times in (("cold", (), 1), ("warm", ("--force",), args.runs), ("resume", (), args.runs)):
                runs = [run(work / "articles", out, cache, glob, *extra) for _ in range(times)]
                wall = statistics.median(r[0] for r in runs)
                rss = max(r[1] for r in runs)
                shown = " ".join(f"{r[0]:.2f}" for r in runs)
                print(f"{count:>8,} {label:>7} {wall:>7.2f} {rss:>12.0f}  {shown}")
            db = cache / "summaries.sqlite3"
            print(f"{'':>8} cache {db.stat().st_size / 2**20:.0f} MiB, results {out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
