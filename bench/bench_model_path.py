"""Model path throughput: a folder through `run_batch` against a local fake OpenAI-compatible server.

The server answers every request after a fixed latency. Ideal wall time is calls x latency /
concurrency; the script prints how close the batch gets and the most requests the server ever saw
open at once (which must never exceed the concurrency).

Uses the real OpenAI backend when this checkout has it (src/summarizer/backends/openai_backend.py),
else the bench-only `BenchOpenAIBackend` (the openai SDK against the same server, via the Backend
protocol), and says which.

    .venv/bin/python bench/bench_model_path.py                 # 200 articles, concurrency 1, 8, 32
    .venv/bin/python bench/bench_model_path.py --concurrency 8,32 --articles 100
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

from fake_model import BenchOpenAIBackend, FakeServer, generate_articles, machine

from summarizer.backends import register_backend
from summarizer.batch import run_batch
from summarizer.settings import Settings


def backend_name() -> str:
    if importlib.util.find_spec("summarizer.backends.openai_backend") is not None:
        return "openai"
    register_backend("bench-openai", BenchOpenAIBackend)
    return "bench-openai"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    name = backend_name()
    print(f"machine: {machine()}")
    print(
        f"backend: {name}" + ("" if name == "openai" else " (stand-in: the OpenAI backend is not on this branch yet)")
    )
    with tempfile.TemporaryDirectory() as temp, FakeServer(args.latency) as server:
        work = Path(temp)
        folder = work / "articles"
        generate_articles(folder, args.articles)
        size = sum(p.stat().st_size for p in folder.rglob("*.txt"))
        print(
            f"{args.articles} generated articles, {size / args.articles / 1024:.1f} KiB each on average; "
            f"server latency {args.latency:g} s"
        )
        os.environ.setdefault("OPENAI_API_KEY", "bench-no-key")
        print(
            "ideal = requests x latency / concurrency; 'busy' is first request to last reply at the server, "
            "i.e. the wall time without start-up (imports, token encoding, first article read)"
        )
        print(
            f"{'concurrency':>11} {'requests':>8} {'wall s':>8} {'busy s':>7} {'ideal s':>8} {'ideal/wall':>10} "
            f"{'ideal/busy':>10} {'server max in flight':>21}"
        )
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            server.reset()
            settings = Settings(
                backend=name,
                model="bench-model",
                base_url=server.base_url,
                concurrency=concurrency,
                use_cache=False,
                cache_dir=work / "cache",
            )
            began = time.perf_counter()
            report = run_batch(folder, work / f"results-{concurrency}.jsonl", settings, force=True, quiet=True)
            wall = time.perf_counter() - began
            ideal = server.requests * args.latency / concurrency
            stats = server.stats()
            peak = int(stats["max_in_flight"])
            verdict = "ok" if peak <= concurrency else "EXCEEDED"
            busy = stats["last_reply"] - stats["first_request"]
            print(
                f"{concurrency:>11} {server.requests:>8} {wall:>8.1f} {busy:>7.1f} {ideal:>8.1f} "
                f"{ideal / wall:>10.2f} {ideal / busy:>10.2f} {peak:>16} ({verdict})"
                + (f"  [{report.failed} articles failed]" if report.failed else "")
            )


if __name__ == "__main__":
    main()
