"""The README's FinOps worked example, measured: SmolLM2-135M on this machine's CPU, swept two ways, in
interleaved rounds, with the median of each figure per level and the machine's load.

    python tests/benchmarks/finops_sweep.py [--rounds 3] [--slo-p95 5] [--out /tmp/finops]

Each round runs `openbench sweep suites/finops.yaml` on `smollm2-served` (transformers serve, by concurrency)
and on `smollm2-local` (the hf provider, by batch size), one after the other; the rounds alternate which
goes first. Every sweep is a real `openbench sweep` process, so its start-up and engine launch are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites/finops.yaml"
SWEEPS = {"smollm2-served": "1,2,4", "smollm2-local": "1,4,16"}
FIGURES = ("requests_per_s", "output_tokens_per_s", "ttft_p50_s", "e2e_p50_s", "e2e_p95_s", "quality")


def sweep(model: str, levels: str, n: int, slo: float, out: Path) -> tuple[dict, float, float]:
    before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "openbench", "sweep", str(SUITE), "-m", model, "-c", levels, "-n", str(n),
         "--slo-p95", str(slo), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"sweep of {model} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    folder = Path(next(line for line in reversed(proc.stderr.splitlines()) if line.startswith("sweep: ")).removeprefix("sweep: "))
    return json.loads((folder / "sweep.json").read_text()), time.perf_counter() - started, max(before, os.getloadavg()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-per-level", type=int, default=24)
    parser.add_argument("--slo-p95", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/openbench-finops"))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {model: [] for model in SWEEPS}
    loads: list[float] = []
    for r in range(args.rounds):
        order = list(SWEEPS) if r % 2 == 0 else list(reversed(SWEEPS))
        for model in order:
            doc, wall, load = sweep(model, SWEEPS[model], args.requests_per_level, args.slo_p95, args.out)
            results[model].append(doc)
            loads.append(load)
            point = doc["operating_point"] or {}
            print(f"round {r + 1} {model}: {wall:.0f} s, load {load:.2f}, operating point "
                  f"{point.get('concurrency', '-')} at {point.get('requests_per_s', 0):.2f} req/s", flush=True)
    print(f"\nmedians of {args.rounds} interleaved rounds, {args.requests_per_level} requests per level, "
          f"--slo-p95 {args.slo_p95:g}; 1-min load average {min(loads):.2f}-{max(loads):.2f}\n")
    print(f"{'model':16} {'level':>6} " + " ".join(f"{f:>20}" for f in FIGURES) + "  meets")
    for model, docs in results.items():
        for i, level in enumerate(docs[0]["levels"]):
            rows = [d["levels"][i] for d in docs if len(d["levels"]) > i]
            cells = []
            for f in FIGURES:
                values = [row[f] for row in rows if row[f] is not None]
                cells.append(f"{statistics.median(values):>20.3f}" if values else f"{'-':>20}")
            meets = sum(row["meets_target"] for row in rows)
            print(f"{model:16} {level['concurrency']:>6} " + " ".join(cells) + f"  {meets}/{len(rows)}")
        points = [d["operating_point"] for d in docs if d["operating_point"]]
        if points:
            per_task = statistics.median(p["usd_per_task"] for p in points if p["usd_per_task"] is not None)
            per_mtok = statistics.median(p["usd_per_mtok_output"] for p in points if p["usd_per_mtok_output"] is not None)
            mix = (statistics.median(p["input_tokens_mean"] for p in points), statistics.median(p["output_tokens_mean"] for p in points))
            print(f"  operating point (median): ${per_task:.7f}/task, ${per_mtok:.3f}/1M output tokens, "
                  f"token mix {mix[0]:.0f} in + {mix[1]:.0f} out; levels chosen: {[p['concurrency'] for p in points]}")
            for api in docs[-1]["against"]:
                evens = [a["break_even_tasks_per_month"] for d in docs for a in d["against"] if a["model"] == api["model"]]
                evens = [e for e in evens if e is not None]
                even = f"{statistics.median(evens):,.0f} tasks/month" if evens else "never"
                print(f"  vs {api['model']}: ${api['usd_per_task']:.7f}/task on that mix; break-even (median) {even}")


if __name__ == "__main__":
    main()
