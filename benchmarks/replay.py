"""The whole Mooncake conversation trace replayed at one engine's five default chunk sizes: wall time and peak memory
of the real command (``kvsize replay MODEL TRACE --format json``, a process of its own each run).

    python benchmarks/replay.py [--trace PATH] [--engine lmcache] [--runs 3] [--model Qwen/Qwen3-4B-Instruct-2507]

Targets: under 10 s and under 500 MiB on the 2-CPU development machine. The trace ships beside the repository, in
``../shared/reference/traces/`` (not in CI: tests/data holds a slice of it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "reference" / "traces" / "mooncake-conversation-trace.jsonl"


def run_once(command: list[str]) -> tuple[float, float, dict[str, object]]:
    """(seconds, peak MiB of this child, its JSON): one run in a fresh process, timed from outside."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"kvsize replay failed ({done.returncode}): {done.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak < before:  # ru_maxrss of the children is their largest, not a sum: a smaller run does not show
        peak = before
    return seconds, peak / 1024, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--engine", default="lmcache")
    parser.add_argument("--model", default="Qwen/Qwen3-4B-Instruct-2507")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not args.trace.is_file():
        sys.exit(f"no trace at {args.trace}: give --trace PATH")
    kvsize = [sys.executable, "-m", "kvsize"]
    command = [*kvsize, "replay", args.model, str(args.trace), "--engine", args.engine, "--tp", "4", "--format", "json"]
    times, peaks = [], []
    data: dict[str, object] = {}
    for _ in range(args.runs):
        seconds, peak, data = run_once(command)
        times.append(seconds)
        peaks.append(peak)
    rows = data["rows"]
    assert isinstance(rows, list)
    print(f"{args.model}, engine {args.engine}, {os.cpu_count()} CPUs, {args.runs} runs")
    print(f"chunk sizes: {', '.join(str(row['chunk_tokens']) for row in rows)}; requests: {rows[0]['requests']:,}")
    print(f"wall time: median {statistics.median(times):.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}); target < 10 s")
    print(f"peak memory: {max(peaks):.0f} MiB; target < 500 MiB")
    for row in rows:
        print(
            f"  chunk {row['chunk_tokens']:>5,}: hit rate {row['hit_rate']:.1%}, objects stored {row['objects_stored']:,}, "
            f"loaded {row['objects_loaded']:,}, storage needed {row['storage_needed_bytes'] / 2**40:.2f} TiB, "
            f"for 90% {row['capacity_90_bytes'] / 2**40:.2f} TiB"
        )


if __name__ == "__main__":
    main()
