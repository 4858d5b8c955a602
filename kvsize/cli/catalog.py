"""``kvsize models``, ``kvsize inspect`` and ``kvsize catalog add``."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from kvsize.cli import options as o
from kvsize.cli.app import app, catalog_app, warn


@app.command("models")
def models(
    output: Annotated[o.SizeFormat, typer.Option("--format", "-f", help="Output format.")] = o.SizeFormat.table,
    catalog: o.Catalog = None,
) -> None:
    """The model catalog, with each model's KV bytes per token (TP 1, the config's dtype)."""
    from rich.table import Table

    from kvsize.cli.output import Output
    from kvsize.cli.reports import catalog_rows, render_rows
    from kvsize.engines.base import EngineOptions
    from kvsize.model.catalog import Catalog
    from kvsize.model.sources import resolve_model
    from kvsize.plan import plan_layout
    from kvsize.units import format_count

    book = Catalog(catalog)
    specs = [resolve_model(name, catalog=book) for name in sorted(book.entries, key=str.lower)]
    rows = catalog_rows([(spec, plan_layout(spec, EngineOptions())) for spec in specs])
    if output is not o.SizeFormat.table:
        sys.stdout.write(render_rows(rows, output.value))
        return
    table = Table(title=f"{len(rows)} models (bundled catalog{' + ' + str(catalog) if catalog else ''})", title_justify="left")
    columns = (("model", "left"), ("type", "left"), ("layers", "right"), ("KV heads", "right"), ("head", "right"))
    for header, justify in (*columns, ("dtype", "left"), ("B/token", "right")):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        layers = f"{row['kv_layers']}/{row['layers']}" if row["kv_layers"] != row["layers"] else str(row["layers"])
        heads = "MLA" if row["use_mla"] else str(row["kv_heads"])
        cells = (row["model"], row["model_type"], layers, heads, str(row["head_size"]), row["kv_dtype"])
        table.add_row(*cells, format_count(row["bytes_per_token"]))
    out = Output()
    out.print(table)
    out.close()


@app.command("inspect")
def inspect(
    model: o.Model,
    output: Annotated[o.TableFormat, typer.Option("--format", "-f", help="Output format.")] = o.TableFormat.table,
    catalog: o.Catalog = None,
    revision: o.Revision = None,
    offline: o.Offline = False,
) -> None:
    """The normalised spec: each value beside the config field (and file) it came from."""
    from rich.table import Table

    from kvsize.cli.output import Output
    from kvsize.cli.reports import spec_dict
    from kvsize.model.sources import resolve_model

    spec = resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)
    warn(*spec.warnings)
    if output is o.TableFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(spec_dict(spec)))
        return
    table = Table(title=f"{spec.name}\n{spec.source}", title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_column("from config field", overflow="fold")
    for name, source in spec.fields.items():
        table.add_row(name, source.value, source.field)
    out = Output()
    out.print(table)
    for note in spec.notes:
        out.print(note, markup=False)
    out.close()


@catalog_app.command("add")
def catalog_add(
    models: Annotated[list[str], typer.Argument(help="Hub repos ORG/NAME, config.json files or directories holding one.")],
    catalog: Annotated[Path | None, typer.Option("--catalog", help="The catalog file to write (or KVSIZE_CATALOG).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The entry's name (one MODEL only); default: the repo id or directory name.")
    ] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    offline: o.Offline = False,
) -> None:
    """Normalise configs and write them as entries of a catalog file; they load back to the same numbers."""
    from kvsize.model.catalog_add import add_models

    target, added = add_models(models, catalog=catalog, name=name, revision=revision, offline=offline)
    for spec in added:
        sys.stdout.write(f"added {spec.name} ({spec.model_type}, {spec.num_layers} layers) to {target}\n")
