"""Rules backend throughput, end to end (read, summarise, write + fsync each line).

1. The eval corpus (every article in eval/articles, copied --copies times) through a fresh
   `summarizer batch --backend rules --workers 1` process, timed from outside, median of --runs:
   articles per second on one core.
2. The worst of bench/bench_shapes.py's 720 KB pages (fresh process each).
3. With --generated: 1,000 and 10,000 generated seed-sized articles through `run_batch`, in one
   process and with a worker process per core.

    .venv/bin/python bench/bench_rules.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_shapes import time_shapes
from fake_model import compile_package, generate_articles, machine

from summarizer.batch import run_batch
from summarizer.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def corpus_throughput(copies: int, runs: int) -> float:
    """Articles per second on one core over the eval corpus, median of `runs` fresh processes."""
    exe = Path(sys.executable).with_name("summarizer")
    articles = sorted((ROOT / "eval" / "articles").glob("*.txt"))
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "corpus"
        for copy in range(copies):
            target = folder / f"{copy:03d}"
            target.mkdir(parents=True)
            for article in articles:
                shutil.copy(article, target / article.name)
        count = copies * len(articles)
        walls = []
        for run in range(runs):
            out = Path(temp) / f"out{run}.jsonl"
            command = [str(exe), "batch", str(folder), "-o", str(out), "--backend", "rules", "--workers", "1", "-q"]
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            walls.append(time.perf_counter() - began)
            if done.returncode != 0:
                sys.exit(f"batch failed ({done.returncode}): {done.stderr.strip()[:300]}")
        wall = statistics.median(walls)
        print(
            f"eval corpus: {count:,} articles ({len(articles)} x {copies}), one core: median {wall:.2f} s "
            f"({' '.join(f'{w:.2f}' for w in walls)}) -> {count / wall:.0f} articles/s (target 150)"
        )
        return count / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=10_000, help="largest generated folder (1,000 is always run)")
    parser.add_argument("--copies", type=int, default=20, help="copies of the eval corpus to time")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--generated", action="store_true", help="also time generated 1k/10k folders")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    compile_package()
    print(f"machine: {machine()}")
    corpus_throughput(args.copies, args.runs)
    worst = max(time_shapes(runs=args.runs).values())
    print(f"worst 720 KB shape: {worst:.2f} s (target 5 s)")
    if not args.generated:
        return
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        began = time.perf_counter()
        generate_articles(work / "articles", args.max)
        print(f"generated {args.max:,} articles in {time.perf_counter() - began:.1f} s")
        print(f"{'articles':>8} {'processes':>9} {'wall s':>7} {'articles/s':>10}")
        sizes = [1000] + ([args.max] if args.max > 1000 else [])
        for count in sizes:
            glob = "00/*.txt" if count == 1000 else "**/*.txt"
            for workers in (1, cores):
                settings = Settings(backend="rules", workers=workers, use_cache=False, cache_dir=work / "cache")
                out = work / f"rules-{count}-{workers}.jsonl"
                began = time.perf_counter()
                report = run_batch(work / "articles", out, settings, glob=glob, force=True, quiet=True)
                wall = time.perf_counter() - began
                assert report.done == count, (report.done, report.failed, report.failures[:3])
                print(f"{count:>8,} {workers:>9} {wall:>7.1f} {count / wall:>10.0f}")


if __name__ == "__main__":
    main()
