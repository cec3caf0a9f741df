"""Side by side with a peer: the same generated folder through `langextract` and through our batch,
both against the same local fake OpenAI-compatible server, at the same concurrency.

Prints requests, prompt characters sent and wall time for each. langextract is not a project
dependency; install it into the venv by hand (`.venv/bin/pip install langextract`).

    .venv/bin/python bench/bench_peer.py                     # 200 articles, concurrency 32
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

from bench_model_path import backend_name
from fake_model import FakeServer, compile_package, generate_articles, machine

from summarizer.batch import run_batch
from summarizer.settings import Settings

PROMPT = "从中文政协新闻中抽取工作量指标:原文中的数字加量词(如“12个”“30人”)。只用原文,不要改写。"


def run_peer(paths: list[Path], server: FakeServer, concurrency: int) -> tuple[float, int, int, str]:
    import langextract as lx

    examples = [
        lx.data.ExampleData(
            text="市政协全年开展调研36次,组织委员参与活动1200人次。",
            extractions=[
                lx.data.Extraction(extraction_class="metric", extraction_text="36次", attributes={"name": "调研"})
            ],
        )
    ]
    documents = [lx.data.Document(text=p.read_text(encoding="utf-8"), document_id=p.stem) for p in paths]
    server.reset()
    began = time.perf_counter()
    results = list(
        lx.extract(
            text_or_documents=documents,
            prompt_description=PROMPT,
            examples=examples,
            model_id="gpt-4o-mini",
            api_key="bench-no-key",
            language_model_params={"base_url": server.base_url},
            fence_output=False,
            use_schema_constraints=False,
            max_workers=concurrency,
            batch_length=max(concurrency, 10),
            show_progress=False,
        )
    )
    wall = time.perf_counter() - began
    found = sum(len(r.extractions or []) for r in results)
    return wall, server.requests, server.prompt_chars, f"{len(results)} documents, {found} extractions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    compile_package()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as temp, FakeServer(args.latency) as server:
        work = Path(temp)
        paths = generate_articles(work / "articles", args.articles)
        chars = sum(len(p.read_text(encoding="utf-8")) for p in paths)
        print(
            f"{args.articles} articles, {chars:,} characters of article text; latency {args.latency:g} s; "
            f"concurrency {args.concurrency}"
        )
        os.environ.setdefault("OPENAI_API_KEY", "bench-no-key")

        name = backend_name()
        settings = Settings(
            backend=name,
            model="bench-model",
            base_url=server.base_url,
            concurrency=args.concurrency,
            use_cache=False,
            cache_dir=work / "cache",
        )
        server.reset()
        began = time.perf_counter()
        report = run_batch(work / "articles", work / "ours.jsonl", settings, quiet=True)
        ours = (
            time.perf_counter() - began,
            server.requests,
            server.prompt_chars,
            f"{report.done} articles ({name} backend)",
        )

        if importlib.util.find_spec("langextract") is None:
            peer: tuple[float, int, int, str] | None = None
            why = "langextract is not installed in this venv (.venv/bin/pip install langextract)"
        else:
            try:
                peer, why = run_peer(paths, server, args.concurrency), ""
            except Exception as exc:  # report exactly why the peer could not run
                peer, why = None, f"langextract failed: {type(exc).__name__}: {exc}"

        print(f"{'':<12} {'requests':>8} {'prompt chars':>13} {'chars/article':>13} {'wall s':>7}  notes")
        rows = [("summarizer", ours)] + ([("langextract", peer)] if peer else [])
        for label, (wall, requests, prompt_chars, note) in rows:
            print(
                f"{label:<12} {requests:>8,} {prompt_chars:>13,} {prompt_chars // args.articles:>13,} "
                f"{wall:>7.1f}  {note}"
            )
        if why:
            print(f"langextract: not run: {why}")


if __name__ == "__main__":
    main()
