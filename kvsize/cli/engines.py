"""``kvsize engines``: the offloading stacks kvsize sizes, and one prompt under each."""

import sys
from typing import Annotated

import typer

from kvsize.cli import options as o
from kvsize.cli.app import app, warn


@app.command("engines")
def engines(
    model: Annotated[
        str | None, typer.Argument(help="Optional: a model to size under every engine (catalog name, config or Hub repo).")
    ] = None,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    prompt: o.Prompt = "100k",
    chunk_sizes: Annotated[
        str, typer.Option("--chunk-sizes", help="Sizes to compare beside each engine's default (default 256).")
    ] = "256",
    output: Annotated[o.ReportFormat, typer.Option("--format", "-f", help="Output format.")] = o.ReportFormat.table,
    catalog: o.Catalog = None,
    offline: o.Offline = False,
) -> None:
    """Each offloading engine: its knob, default, object rule and source; with MODEL, one prompt under each."""
    from kvsize.calls.compare import compare_engines as compare
    from kvsize.units import parse_count, parse_int_list

    report = compare(
        model,
        tp=tp,
        pp=pp,
        prompt=parse_count(prompt, "--prompt"),
        chunk_sizes=parse_int_list(chunk_sizes, "--chunk-sizes"),
        catalog=catalog,
        offline=offline,
    )
    warn(*report.warnings)
    if output is o.ReportFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(report.model_dump(mode="json")))
        return
    from kvsize.cli.reports import engines_markdown, print_engines

    if output is o.ReportFormat.markdown:
        sys.stdout.write(engines_markdown(report))
    else:
        print_engines(report)
