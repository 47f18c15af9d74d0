"""Start-up cost of the CLI: `openbench --help` and `openbench validate` on the quickstart (medians).

    python tests/benchmarks/startup.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("openbench")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "openbench"]
    python = median_seconds([sys.executable, "-c", "pass"], args.runs)
    print(f"python -c pass                         {python:.3f} s (interpreter floor)")
    print(f"openbench --help                       {median_seconds([*base, '--help'], args.runs):.3f} s")
    print(f"openbench validate suites/quickstart   {median_seconds([*base, 'validate', 'suites/quickstart.yaml'], args.runs):.3f} s")


if __name__ == "__main__":
    main()
