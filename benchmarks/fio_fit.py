"""The profile `kvsize probe --from-fio` fits from fio's run of `--emit fio`, against the probe's own fit on the
same directory.

    python benchmarks/fio_fit.py --dir DIR [--object-sizes 1MiB,16MiB] [--concurrency 1,4] [--objects 64] [--repeats 3]

Each repeat runs, interleaved: `kvsize probe DIR` (its own writes and reads) and `kvsize probe DIR --emit fio` run by
the real fio, then `--from-fio` on fio's JSON. It prints, per fitted figure (latency L, stream bandwidth b,
aggregate bandwidth B), the ratio fio-fit / probe-fit: the median of the repeats and its spread. Target: within
+/-25%. Both read with O_DIRECT when `--direct` is given (DIR must then take O_DIRECT: not tmpfs).
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

FIGURES = ("latency_s", "stream_bytes_per_s", "aggregate_bytes_per_s")


def kvsize(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "kvsize.cli", "probe", *args, "--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr.strip())
    data: dict[str, object] = json.loads(out.stdout)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    parser.add_argument("--object-sizes", default="1MiB,16MiB")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--objects", default="64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--direct", action="store_true")
    args = parser.parse_args()
    if shutil.which("fio") is None:
        raise SystemExit("fio is not installed (Debian package fio)")
    sets = ["--object-sizes", args.object_sizes, "--concurrency", args.concurrency, "--objects", args.objects]
    sets += ["--direct"] if args.direct else []
    ratios: dict[str, list[float]] = {figure: [] for figure in FIGURES}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            probe = kvsize(str(args.dir), *sets)["profile"]
            job = subprocess.run(
                [sys.executable, "-m", "kvsize.cli", "probe", str(args.dir), *sets, "--emit", "fio"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (Path(tmp) / "kv.fio").write_text(job)
            result = subprocess.run(
                ["fio", "--output-format=json", "kv.fio"], capture_output=True, text=True, check=True, cwd=tmp
            )
            (Path(tmp) / "result.json").write_text(result.stdout)
            fitted = kvsize(str(args.dir), "--from-fio", str(Path(tmp) / "result.json"))["profile"]
            assert isinstance(probe, dict) and isinstance(fitted, dict)
            line = []
            for figure in FIGURES:
                if probe.get(figure) and fitted.get(figure):
                    ratios[figure].append(float(fitted[figure]) / float(probe[figure]))
                    line.append(f"{figure} {ratios[figure][-1]:.2f}")
                else:  # a fit of 0 or none (latency below the noise at these sizes): no ratio
                    line.append(f"{figure} n/a (probe {probe.get(figure)}, fio {fitted.get(figure)})")
            print(f"repeat {repeat + 1}: fio-fit / probe-fit: {', '.join(line)}")
    for figure, values in ratios.items():
        if values:
            median = statistics.median(values)
            verdict = "OK" if 0.75 <= median <= 1.25 else "OUTSIDE +/-25%"
            print(f"{figure:24s} median {median:.2f} (spread {min(values):.2f} to {max(values):.2f}): {verdict}")


if __name__ == "__main__":
    main()
