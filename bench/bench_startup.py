"""Start-up cost: wall time of `summarizer --help` (the command most sensitive to import weight).

.venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from fake_model import compile_package, machine

EXE = Path(sys.executable).with_name("summarizer")


def main() -> None:
    compile_package()
    print(f"machine: {machine()}")
    for command in ([str(EXE), "--help"], [str(EXE), "batch", "--help"]):
        subprocess.run(command, capture_output=True, check=True)  # warm the file cache
        times = []
        for _ in range(15):
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - began)
        print(
            f"{' '.join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command)):<24} "
            f"median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
            f"(15 runs)"
        )


if __name__ == "__main__":
    main()
