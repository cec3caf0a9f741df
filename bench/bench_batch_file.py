"""The Batch API path's own cost: writing the requests file for the 49 eval articles, and collecting
an output file that answers every request, each step a fresh `summarizer` process timed from outside.

.venv/bin/python bench/bench_batch_file.py [--runs 3]

The output file is made between the two steps (not timed) by a perfect model (tests/fake_openai.py's
GoldResponder) answering each request line in the Batch API's output format. Every run starts with an
empty results file and cache, so nothing is skipped or served from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fake_model import ROOT, compile_package, machine

sys.path.insert(0, str(ROOT / "tests"))
from fake_openai import GoldResponder, Seen

EXE = Path(sys.executable).with_name("summarizer")
ARTICLES = ROOT / "eval" / "articles"


def answer_all(requests: Path, output: Path, model: GoldResponder) -> int:
    lines = []
    for number, raw in enumerate(requests.read_text(encoding="utf-8").splitlines()):
        request = json.loads(raw)
        response = model(Seen(request["url"], request["body"], {}))
        lines.append(
            {
                "id": f"batch_req_{number}",
                "custom_id": request["custom_id"],
                "response": {"status_code": response.status, "request_id": f"req_{number}", "body": response.body},
                "error": None,
            }
        )
    output.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    return time.perf_counter() - began, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SUMMARIZER_"))}
    model = GoldResponder(ROOT / "eval" / "gold")
    count = len(list(ARTICLES.glob("*.txt")))
    writes, collects = [], []
    facts: dict[str, object] = {}
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            results, cache = folder / "results.jsonl", folder / "cache"
            write = [str(EXE), "batch", str(ARTICLES), "--via", "batch-file", "-o", str(results)]
            seconds, done = timed([*write, "-m", "gpt-4o-mini", "--cache-dir", str(cache)], env)
            if done.returncode != 0:
                raise SystemExit(f"batch --via batch-file failed: {done.stderr}")
            writes.append(seconds)
            requests = folder / "results.requests.jsonl"
            facts["requests"] = answer_all(requests, folder / "output.jsonl", model)
            facts["requests MB"] = round(requests.stat().st_size / 1e6, 2)
            facts["output MB"] = round((folder / "output.jsonl").stat().st_size / 1e6, 2)
            collect = [str(EXE), "collect", str(folder / "output.jsonl"), "-o", str(results)]
            seconds, done = timed([*collect, "--cache-dir", str(cache)], env)
            if done.returncode != 0:
                raise SystemExit(f"collect failed ({done.returncode}): {done.stderr}")
            collects.append(seconds)
            facts["articles done"] = len(results.read_text(encoding="utf-8").splitlines())
    compile_package()
    print(f"machine: {machine()}")
    print(f"{count} eval articles; " + ", ".join(f"{k}: {v}" for k, v in facts.items()))
    for name, times in (("write requests (batch --via batch-file)", writes), ("collect", collects)):
        print(
            f"{name:<42} median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
            f"max {max(times):.2f} s ({runs} runs, fresh process each)"
        )


if __name__ == "__main__":
    main()
