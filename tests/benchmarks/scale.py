"""How openbench's own cost grows with suite size: 1k, 10k and 100k items on the `fake` provider.

Each size runs in a fresh subprocess (so peak RSS is that run's), with records streamed
to disk. Then `openbench report` (CSV and JSON) runs on the same records. Prints wall time,
items/s and peak resident memory.

    python tests/benchmarks/scale.py [--sizes 1000 10000 100000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from openbench.session import RunSettings, execute
suite, out = Path(sys.argv[1]), Path(sys.argv[2])
start = time.perf_counter()
code = execute(RunSettings(suite=suite, out=out, cache=False))
elapsed = time.perf_counter() - start
print(json.dumps({"code": code, "seconds": elapsed, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_suite(folder: Path, n: int, concurrency: int) -> Path:
    with open(folder / "cases.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"c{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n")
    suite = folder / "suite.yaml"
    suite.write_text(
        "name: scale\n"
        "models:\n"
        f"  - {{id: fake, provider: fake, model: fake-1, concurrency: {concurrency}, params: {{accuracy: 0.8}}}}\n"
        "tasks:\n"
        "  - name: add\n"
        '    prompt: "{{ question }}"\n'
        "    data: {file: cases.jsonl}\n"
        "    scorers: [{type: exact}]\n",
        encoding="utf-8",
    )
    return suite


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child command."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "200"}
    )
    return time.perf_counter() - start, int(proc.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"{'items':>8} {'run s':>8} {'items/s':>9} {'run RSS MB':>11} {'report csv s':>13} {'report json s':>14} {'report RSS MB':>14}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            suite = write_suite(folder, n, args.concurrency)
            env = {**os.environ, "OPENBENCH_CACHE_DIR": str(folder / "cache")}
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(suite), str(folder / "out")], capture_output=True, text=True, env=env, check=True
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            run_dir = next((folder / "out").iterdir())
            openbench = [sys.executable, "-m", "openbench"]
            csv_s, _ = timed([*openbench, "report", str(run_dir), "--format", "csv"])
            json_s, report_rss = timed([*openbench, "report", str(run_dir), "--format", "json"])
            lines = sum(1 for _ in open(run_dir / "records.jsonl", encoding="utf-8"))
            assert lines == n, f"expected {n} records, found {lines}"
            print(
                f"{n:>8} {result['seconds']:>8.2f} {n / result['seconds']:>9.0f} {result['max_rss_mb']:>11.0f} "
                f"{csv_s:>13.2f} {json_s:>14.2f} {report_rss:>14.0f}"
            )


if __name__ == "__main__":
    main()
