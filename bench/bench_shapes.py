"""Worst-case page shapes for the rules backend: each ~720 KB article, summarised by a fresh
`summarizer summarise --backend rules` process timed from outside (median of --runs).

Shapes: many short lines, one 700 KB line, thousands of 政协 mentions, thousands of numbers, a
traditional-character page, a page of roundup headings naming no real place, and one whose
headings name real counties (thousands of sections). The target is 5 s for any of them.

    .venv/bin/python bench/bench_shapes.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = 720 * 1024  # bytes of UTF-8, about the size of the largest scraped pages (forum dumps, yearbooks)
HEAD = (
    "SOURCE: https://example.org/page\n首页 > 新闻 > 正文\n某市政协召开常委会议\n发布时间：2024-01-20 来源：某某日报\n"
)


def _fill(unit: str) -> str:
    return HEAD + unit * (SIZE // len(unit.encode()))


def _counties() -> list[str]:
    """400 current county names: every heading a real committee, so every part is a section."""
    from summarizer.places import gazetteer

    return [name for name, level in gazetteer().items() if level == "county" and name.endswith("县")][:400]


def shapes() -> dict[str, str]:
    return {
        "many short lines": _fill("委员\n"),
        "one 700 KB line": _fill("政协委员围绕乡村振兴开展调研，形成报告"),
        "thousands of 政协": _fill("市政协县政协区政协，"),
        "thousands of numbers": _fill("提交提案12件，开展调研3次，覆盖1200人次，"),
        "traditional page": _fill("縣政協召開協商會議，提出提案56件，委員參與120人次。\n"),
        "roundup headings": _fill("【甲县政协】\n开展专题协商5次，提交提案30件。\n"),
        "roundup of real counties": _fill(
            "".join(f"【{name}政协】\n开展专题协商5次，提交提案30件。\n" for name in _counties())
        ),
        "long numbers, no units": _fill("2024 12345678901234567890 "),
    }


def time_shapes(runs: int = 3) -> dict[str, float]:
    """Median wall seconds of a fresh `summarizer summarise --backend rules` per shape; prints a table."""
    exe = Path(sys.executable).with_name("summarizer")
    print(f"{'shape':<24} {'KB':>5} {'median s':>9} {'runs':>20}")
    medians: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as temp:
        for name, text in shapes().items():
            path = Path(temp) / "page.txt"
            path.write_text(text, encoding="utf-8")
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                done = subprocess.run(
                    [str(exe), "summarise", str(path), "--backend", "rules"],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                times.append(time.perf_counter() - began)
                if done.returncode != 0:
                    sys.exit(f"{name}: exit {done.returncode}: {done.stderr.strip()[:300]}")
            medians[name] = statistics.median(times)
            kb = len(text.encode()) // 1024
            print(f"{name:<24} {kb:>5} {medians[name]:>9.2f} {' '.join(f'{t:.2f}' for t in times):>20}")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fake_model import compile_package

    compile_package()
    worst = max(time_shapes(args.runs).values())
    print(f"worst shape: {worst:.2f} s (target 5 s)")


if __name__ == "__main__":
    main()
