"""`kvsize probe` against fio on the same directory, object size and concurrency, both with O_DIRECT.

    python benchmarks/probe_vs_fio.py [--dir DIR] [--object-size 8MiB] [--concurrency 4] [--objects 16] [--repeats 5]

fio (Debian package `fio`) reads N files of one object each with C jobs (docs/load-time.md, "Measuring a path"):
    fio --name=kv --directory=DIR --bs=OBJECT --filesize=OBJECT --nrfiles=N --numjobs=C --ioengine=psync
        --direct=1 --rw=read --group_reporting --output-format=json
kvsize probe writes the same C x N objects, reads them with C workers and O_DIRECT. Each repeat runs both,
interleaved; the script prints the ratio of read throughput (probe / fio): median of the repeats and its spread.
Target: within +/-15%. DIR must be a real file system that takes O_DIRECT (not tmpfs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kvsize.storage.probe import DirectoryTarget, run_probe
from kvsize.units import format_iec, parse_size


def fio_read_bytes_per_s(directory: Path, size: int, files: int, jobs: int) -> float:
    command = [
        "fio",
        "--name=kv",
        f"--directory={directory}",
        f"--bs={size}",
        f"--filesize={size}",
        f"--nrfiles={files}",
        f"--numjobs={jobs}",
        "--ioengine=psync",
        "--direct=1",
        "--rw=read",
        "--group_reporting",
        "--output-format=json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    data = json.loads(result.stdout[result.stdout.index("{") :])
    return float(data["jobs"][0]["read"]["bw_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--object-size", default="8MiB")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--objects", type=int, default=16, help="objects per worker")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("fio") is None:
        sys.exit("fio is not installed: apt-get install fio")
    size = parse_size(args.object_size)
    ratios, fio_rates, probe_rates = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="kvsize-bench-fio-") as work:
            fio_rate = fio_read_bytes_per_s(Path(work), size, args.objects, args.concurrency)
        report = run_probe(
            DirectoryTarget(args.dir, direct=True),
            [size],
            [args.concurrency],
            objects=args.objects * args.concurrency,
            max_bytes=size * args.objects * args.concurrency,
            time_limit_s=600,
            direct=True,
        )
        probe_rate = report.results[0].read_bytes_per_s
        fio_rates.append(fio_rate)
        probe_rates.append(probe_rate)
        ratios.append(probe_rate / fio_rate)
        print(
            f"repeat {repeat + 1}: fio {format_iec(fio_rate)}/s, probe {format_iec(probe_rate)}/s, "
            f"ratio {probe_rate / fio_rate:.3f}"
        )
    median = statistics.median(ratios)
    print(
        f"{format_iec(size)} objects, {args.concurrency} in flight, {args.objects * args.concurrency} objects, "
        f"O_DIRECT, {args.repeats} repeats"
    )
    print(
        f"read throughput probe / fio: median {median:.3f} (spread {min(ratios):.3f} to {max(ratios):.3f}); "
        f"target 0.85 to 1.15: {'OK' if 0.85 <= median <= 1.15 else 'OUTSIDE'}"
    )


if __name__ == "__main__":
    main()
