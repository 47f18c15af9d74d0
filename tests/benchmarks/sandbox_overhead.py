"""What the code sandbox costs per item: the median wall time of one sandboxed run of a trivial program.

Compared with a bare ``python -I -c pass`` (the interpreter's own start-up, which any sandbox pays),
for each isolation available here. Runs are sequential; quote the machine load (``uptime``) with them.

    python tests/benchmarks/sandbox_overhead.py [--n 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from openbench import sandbox


def timed_ms(run) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def sandboxed(mode: str):
    def run() -> None:
        os.environ[sandbox.SANDBOX_ENV] = mode
        assert sandbox.run_python("pass").ok

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs, n={args.n}")
    variants = {"bare interpreter": lambda: subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)}
    variants[sandbox.ISOLATION_PROCESS_GROUP] = sandboxed(sandbox.ISOLATION_PROCESS_GROUP)
    if sandbox.bubblewrap_works():
        variants[sandbox.ISOLATION_BUBBLEWRAP] = sandboxed(sandbox.ISOLATION_BUBBLEWRAP)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():
        run()  # warm: the isolation probe, the page cache
    for _ in range(args.n):  # interleaved, so that every variant sees the same load
        for name, run in variants.items():
            times[name].append(timed_ms(run))
    bare = statistics.median(times["bare interpreter"])
    for name, values in times.items():
        ms = statistics.median(values)
        extra = f"  (+{ms - bare:.1f} ms over the bare interpreter)" if name != "bare interpreter" else ""
        print(f"{name:<16} median {ms:6.1f} ms, p90 {statistics.quantiles(values, n=10)[-1]:6.1f} ms{extra}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
