"""Rules backend throughput, end to end through `run_batch` (read, summarise, write + fsync each line).

1,000 and 10,000 generated seed-sized articles, in one process and with a worker process per core.

    .venv/bin/python bench/bench_rules.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from fake_model import generate_articles, machine

from summarizer.batch import run_batch
from summarizer.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=10_000, help="largest folder (1,000 is always run)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {machine()}")
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
