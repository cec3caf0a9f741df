"""Model path throughput, as a user runs it: a fresh `summarizer batch --backend openai` process,
timed from outside, against a fake OpenAI-compatible server on 127.0.0.1 (a process of its own)
that answers every request after a fixed latency.

For each concurrency it prints the median of --runs runs (each with a fresh results file and
cache, as a first run is) of:

- wall: process start to process exit, beside ideal = requests x latency / concurrency;
- first request: process start to the server's first request (imports, settings, first article);
- CPU per call: the process's user + system CPU (rusage) divided by the requests it made, and the
  same without start-up (CPU of `summarizer batch --help`-level imports measured apart);
- tail: the server's last reply to process exit (replies still being read and grounded, the last
  writes, shutdown);
- exit: the last write to the results file to process exit (sync, close, shutdown);
- the most requests the server ever held open at once (never above the concurrency).

    .venv/bin/python bench/bench_model_path.py                        # 100 articles at -j 32
    .venv/bin/python bench/bench_model_path.py --articles 1000 --concurrency 64,128
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

from fake_model import FakeServer, compile_package, generate_articles, machine

BENCH = Path(__file__).resolve().parent
EXE = Path(sys.executable).with_name("summarizer")


def run_once(server: FakeServer, folder: Path, work: Path, concurrency: int, tag: str) -> dict[str, float]:
    """One fresh `summarizer batch` process; its figures."""
    server.reset()
    env = {
        **os.environ,
        "OPENAI_API_KEY": "bench-no-key",
        "OPENAI_BASE_URL": server.base_url,
        "SUMMARIZER_CACHE_DIR": str(work / f"cache-{tag}"),
    }
    out = work / f"results-{tag}.jsonl"
    command = [str(EXE), "batch", str(folder), "-o", str(out), "--backend", "openai", "--model", "bench-model"]
    command += ["-j", str(concurrency), "--quiet"]
    began = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    ended, ended_wall = time.monotonic(), time.time()
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"batch failed ({os.waitstatus_to_exitcode(status)}): {stderr[-2000:]}")
    stats = server.stats()
    return {
        "requests": stats["requests"],
        "wall": ended - began,
        "first": stats["first_request"] - began,  # both sides read CLOCK_MONOTONIC
        "tail": ended - stats["last_reply"],
        "exit": ended_wall - out.stat().st_mtime,  # the last line written (or the file rewritten)
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak": stats["max_in_flight"],
    }


def startup_cpu() -> float:
    """CPU seconds of the imports every batch pays before its first request (median of 5). Not the
    openai package: to a local endpoint a batch imports it only for an answer that is not a plain 200."""
    code = (
        "import summarizer.cli, summarizer.batch, summarizer.pipeline, summarizer.backends.openai_backend, "
        "summarizer.chunk as c; c.get_encoding('bench-model')"
    )
    samples = []
    for _ in range(5):
        process = subprocess.Popen([sys.executable, "-c", code])
        _, _, usage = os.wait4(process.pid, 0)
        samples.append(usage.ru_utime + usage.ru_stime)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", default="32")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chars", type=int, default=4500, help="least body characters per article")
    args = parser.parse_args()
    compile_package()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    base_cpu = startup_cpu()
    with tempfile.TemporaryDirectory() as temp, FakeServer(args.latency) as server:
        work = Path(temp)
        folder = work / "articles"
        generate_articles(folder, args.articles, min_chars=args.chars)
        print(
            f"{args.articles} generated articles; server latency {args.latency:g} s; median of {args.runs} fresh "
            f"`summarizer batch` processes; start-up imports cost {base_cpu * 1000:.0f} ms of CPU"
        )
        print(
            f"{'-j':>4} {'requests':>8} {'wall s':>7} {'ideal s':>7} {'ideal/wall':>10} {'first req s':>11} "
            f"{'CPU ms/call':>11} {'w/o start-up':>12} {'tail s':>6} {'exit s':>6} {'peak':>5}  runs (wall s)"
        )
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            runs = [run_once(server, folder, work, concurrency, f"{concurrency}-{n}") for n in range(args.runs)]

            def median(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            requests = median("requests")
            ideal = requests * args.latency / concurrency
            wall = median("wall")
            per_call = statistics.median(r["cpu"] / r["requests"] for r in runs)
            net = statistics.median((r["cpu"] - base_cpu) / r["requests"] for r in runs)
            peak = max(r["peak"] for r in runs)
            print(
                f"{concurrency:>4} {requests:>8.0f} {wall:>7.2f} {ideal:>7.2f} {ideal / wall:>10.2f} "
                f"{median('first'):>11.2f} {per_call * 1000:>11.1f} {net * 1000:>12.1f} {median('tail'):>6.2f} "
                f"{median('exit'):>6.2f} "
                f"{peak:>5.0f}{'' if peak <= concurrency else ' EXCEEDED'}  "
                + " ".join(f"{r['wall']:.2f}" for r in runs)
            )
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
