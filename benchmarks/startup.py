"""Start-up time of `kvsize <catalog model>`, of a local config.json and of `--help` against the smallest app
of the same shape.

The baseline is one typer command with the same options (read off ``kvsize size``) that builds a pydantic
row model, imports yaml and prints a five-row rich table: what any CLI on this
stack pays before doing work. Both run interleaved in the same process loop, so
machine load affects them alike; the ratio is what counts (target <= 1.25x).

    python benchmarks/startup.py [--runs 15] [--model Qwen/Qwen3-4B-Instruct-2507]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE_HEAD = """
from typing import Annotated, Optional
import typer, yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

class Row(BaseModel):
    chunk_tokens: int
    objects: int
    object_bytes: int

app = typer.Typer(add_completion=False)

@app.command()
def size(
    model: str,
"""

BASELINE_TAIL = """
) -> None:
    rows = [Row(chunk_tokens=c, objects=100000 // c * 4, object_bytes=c * 36864) for c in (256, 512, 1024, 2048, 4096)]
    table = Table(title=model)
    for name in ("chunk", "objects", "object"):
        table.add_column(name)
    for row in rows:
        table.add_row(str(row.chunk_tokens), str(row.objects), str(row.object_bytes))
    Console().print(table)

app()
"""


def baseline_source() -> str:
    """The baseline app, declaring the same options as ``kvsize size`` (read off the real command)."""
    import typer

    from kvsize.cli import app

    command = typer.main.get_command(app).commands["size"]  # type: ignore[attr-defined]
    lines = []
    for param in command.params:
        if param.param_type_name != "option":
            continue
        flags = ", ".join(repr(flag) for flag in param.opts)
        if param.is_flag:
            lines.append(f"    {param.name}: Annotated[bool, typer.Option({flags})] = False,")
        elif param.multiple:
            lines.append(f"    {param.name}: Annotated[Optional[list[str]], typer.Option({flags})] = None,")
        else:
            lines.append(f"    {param.name}: Annotated[Optional[str], typer.Option({flags})] = None,")
    return BASELINE_HEAD + "\n".join(lines) + BASELINE_TAIL


# Byte-code is written on the warm-up run, as an installed package has it (pip compiles on install).
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", default="Qwen/Qwen3-4B-Instruct-2507")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.hub_server import FakeHub, serve

    config = Path(__file__).resolve().parents[1] / "tests/data/configs" / (args.model.replace("/", "__") + ".json")
    hub = FakeHub()
    hub.add("bench/model", config.read_bytes())
    with tempfile.TemporaryDirectory() as tmp, serve(hub):
        baseline_file = Path(tmp) / "baseline.py"
        baseline_file.write_text(baseline_source())
        local = Path(tmp) / "config.json"
        local.write_text(config.read_text())
        # A Hub model fetched once (from a local server that speaks the Hub's protocol), then run from cache.
        hub_env = {"HF_ENDPOINT": hub.url, "HF_HOME": f"{tmp}/hf", "KVSIZE_CACHE": f"{tmp}/kvsize"}
        ENV.update(hub_env)
        timed([sys.executable, "-m", "kvsize.cli", "bench/model"])
        commands = {
            "import floor (typer, rich, pydantic, yaml)": [sys.executable, "-c", "import typer, rich, pydantic, yaml"],
            "baseline app": [sys.executable, str(baseline_file), args.model, "--tp", "4", "--prompt", "100000"],
            "kvsize, catalog model": [sys.executable, "-m", "kvsize.cli", args.model, "--tp", "4", "--prompt", "100000"],
            "kvsize, local config.json": [sys.executable, "-m", "kvsize.cli", str(local), "--tp", "4", "--prompt", "100000"],
            "kvsize, cached Hub model, offline": [
                sys.executable,
                "-m",
                "kvsize.cli",
                "bench/model",
                "--offline",
                "--tp",
                "4",
                "--prompt",
                "100000",
            ],
            "baseline app --help": [sys.executable, str(baseline_file), "--help"],
            "kvsize --help": [sys.executable, "-m", "kvsize.cli", "--help"],
            "kvsize size --help": [sys.executable, "-m", "kvsize.cli", "size", "--help"],
            "kvsize, cached Hub model, one revision check": [
                sys.executable,
                "-m",
                "kvsize.cli",
                "bench/model",
                "--tp",
                "4",
                "--prompt",
                "100000",
            ],
        }
        for command in commands.values():  # warm the file cache and byte-code
            timed(command)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(timed(command))

    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["baseline app"]
    print(f"{args.runs} interleaved runs, median wall time")
    for name, median in medians.items():
        spread = max(samples[name]) - min(samples[name])
        print(f"  {name:45s} {median * 1000:7.1f} ms  (spread {spread * 1000:5.1f} ms)  {median / base:5.2f}x baseline")
    checks = {
        "catalog run / baseline app": medians["kvsize, catalog model"] / base,
        "local config.json / baseline app": medians["kvsize, local config.json"] / base,
        "kvsize --help / baseline --help": medians["kvsize --help"] / medians["baseline app --help"],
        "kvsize size --help / baseline --help": medians["kvsize size --help"] / medians["baseline app --help"],
    }
    for label, ratio in checks.items():
        print(f"{label} = {ratio:.2f}x (target <= 1.25x): {'OK' if ratio <= 1.25 else 'OVER'}")


if __name__ == "__main__":
    main()
