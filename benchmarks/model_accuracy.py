"""How well the fitted time model predicts a real load.

    python benchmarks/model_accuracy.py [--dir DIR] [--concurrency 8] [--repeats 3] [--direct]

1. Fit a profile on DIR with `kvsize probe` (the two object sizes below, concurrency 1 and C).
2. Predict, with that profile, the load time of one writer's real object set for the reference case:
   Qwen/Qwen3-4B-Instruct-2507, TP 4, a 32,000-token prompt, chunk 256 (125 objects of 9 MiB) and 2048
   (15 objects of 72 MiB): kvsize's own sweep and time model, C in flight.
3. Write that set at its true sizes, make the reads come from storage (O_DIRECT with --direct, else the page
   cache dropped), and time reading it with C workers; repeat.
Prints predicted / measured per chunk size, the median of the repeats and its spread. Target: within +/-25%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kvsize
from kvsize.storage import BackendProfile
from kvsize.storage.probe import DirectoryTarget, _measure, run_probe
from kvsize.storage.timing import load_seconds, terms_for
from kvsize.units import format_iec

MODEL, TP, PROMPT, CHUNKS = "Qwen/Qwen3-4B-Instruct-2507", 4, 32_000, (256, 2048)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct", action="store_true")
    args = parser.parse_args()

    spec = kvsize.resolve_model(MODEL)
    sweep = kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=TP, connector="fs"), PROMPT, CHUNKS)
    sizes = [row.object_bytes for row in sweep.rows]
    ratios: dict[int, list[float]] = {row.chunk_tokens: [] for row in sweep.rows}
    for repeat in range(args.repeats):
        # Fit and measure in the same repeat, so a drifting device moves both alike.
        fitted = run_probe(
            DirectoryTarget(args.dir, args.direct),
            sizes,
            sorted({1, args.concurrency}),
            objects=256,
            max_bytes=2**30,  # sets of about 1 GiB, the size of the load predicted
            time_limit_s=900,
            direct=args.direct,
        ).profile
        if fitted.latency_s is None or fitted.stream_bytes_per_s is None:
            sys.exit(f"the probe could not fit the profile: {fitted.notes}")
        profile = BackendProfile(
            name="fitted",
            latency_s=fitted.latency_s,
            stream_bytes_per_s=fitted.stream_bytes_per_s,
            aggregate_bytes_per_s=fitted.aggregate_bytes_per_s,
            concurrency=args.concurrency,
        )
        print(
            f"repeat {repeat + 1}: fitted L {fitted.latency_s * 1e6:,.0f} us, b {format_iec(fitted.stream_bytes_per_s)}/s, "
            f"B {format_iec(fitted.aggregate_bytes_per_s)}/s"
        )
        for row in sweep.rows:
            # One writer's set: its objects, its bytes; the fs connector's one request per object.
            predicted, bound = load_seconds(
                terms_for(
                    objects_per_writer=row.objects_per_writer,
                    object_bytes=row.object_bytes,
                    stored_bytes=row.objects_per_writer * row.object_bytes,
                    wire_requests=row.objects_per_writer,
                    round_trips=1,
                    profile=profile,
                )
            )
            target = DirectoryTarget(args.dir, args.direct)
            target.prepare(row.objects_per_writer * row.object_bytes)
            try:
                measured = _measure(target, row.object_bytes, args.concurrency, row.objects_per_writer).read_seconds
            finally:
                target.close()
            ratios[row.chunk_tokens].append(predicted / measured)
            print(
                f"  chunk {row.chunk_tokens:>5,}: {row.objects_per_writer} objects of {format_iec(row.object_bytes)}: "
                f"predicted {predicted:.3f} s ({bound}), measured {measured:.3f} s"
            )
    mode = "O_DIRECT" if args.direct else "page cache dropped"
    print(f"{MODEL}, TP {TP}, {PROMPT:,}-token prompt, one writer's objects, {args.concurrency} in flight, {mode}")
    for chunk, values in ratios.items():
        median = statistics.median(values)
        print(
            f"chunk {chunk:>5,}: predicted / measured median {median:.3f} (spread {min(values):.3f} to "
            f"{max(values):.3f}, {len(values)} repeats); target 0.75 to 1.25: "
            f"{'OK' if 0.75 <= median <= 1.25 else 'OUTSIDE'}"
        )


if __name__ == "__main__":
    main()
