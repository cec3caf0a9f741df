"""A one-slot server at full scale: `summarizer batch` with default flags against a loopback server
that answers one request at a time, each after `--latency` seconds (15 s: a real model on CPU behind
`llama-server -np 1`), the others queueing. The test suite checks the same at a 30th of the scale
(`tests/test_local_servers.py`); this runs it as a user would, in minutes.

.venv/bin/python bench/one_slot.py [--latency 15] [--articles 2]

Prints the wall time, how many requests the server got, how many request bodies it got more than
once (a request paid twice), and the batch's own tally and exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import FakeOpenAI, GoldResponder  # noqa: E402
from helpers import ARTICLES, GOLD_DIR  # noqa: E402

EXE = Path(sys.executable).with_name("summarizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=15.0, help="seconds the one slot takes per request")
    parser.add_argument("--articles", type=int, default=2, help="how many seed articles")
    args = parser.parse_args()

    server = FakeOpenAI(GoldResponder(GOLD_DIR)).start()
    server.serial_delay = args.latency
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "articles"
            folder.mkdir()
            for path in ARTICLES[: args.articles]:
                (folder / path.name).write_bytes(path.read_bytes())
            out = Path(tmp) / "results.jsonl"
            env = {
                **os.environ,
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "sk-local-none",
                "SUMMARIZER_CACHE_DIR": str(Path(tmp) / "cache"),
            }
            command = [str(EXE), "batch", str(folder), "-o", str(out), "--backend", "openai", "--model", "local"]
            began = time.perf_counter()
            run = subprocess.run(command, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - began
            bodies = Counter(json.dumps(seen.body, sort_keys=True) for seen in server.requests)
            results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]
            usage = [r["meta"]["usage"] for r in results if r.get("meta")]
            errors = out.with_name(out.stem + ".errors.jsonl")
            failures = errors.read_text(encoding="utf-8").count("\n") if errors.exists() else 0
    finally:
        server.close()

    print(f"one slot, {args.latency:g} s a request, {args.articles} articles, default flags")
    print(f"batch exit {run.returncode} in {wall:.1f} s")
    print(next((line for line in run.stderr.splitlines() if line.startswith("batch: finished")), "(no batch tally)"))
    twice = sum(n > 1 for n in bodies.values())
    print(f"requests received: {len(server.requests)}; bodies received more than once: {twice}")
    print(
        f"results: {len(results)}; failures: {failures}; transport retries: "
        f"{sum(u.get('transport_retries', 0) for u in usage)}; re-asks: {sum(u.get('reasks', 0) for u in usage)}"
    )


if __name__ == "__main__":
    main()
