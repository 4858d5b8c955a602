"""The ``kvsize`` command: parse, call the library, render. No arithmetic here."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from kvsize.errors import KvsizeError

DEFAULT_COMMAND = "size"
GROUP_FLAGS = ("--help", "-h", "--version", "--install-completion", "--show-completion")


class DefaultCommandGroup(TyperGroup):
    """Routes ``kvsize MODEL ...`` to the ``size`` command beside the named subcommands,
    and turns every usage or input error into one line on stderr with exit code 2."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in GROUP_FLAGS:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        standalone = standalone_mode
        try:
            # Not standalone: typer returns an Exit's code instead of exiting, and
            # re-raises click errors so they are printed here, on one line.
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _click.exceptions.NoArgsIsHelpError:
            sys.exit(2)  # the help was printed: no model given
        except _click.exceptions.UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "kvsize"
            _fail(f"{error.format_message()} (see '{command} --help')")
        except KvsizeError as error:
            _fail(str(error))
        except _click.exceptions.ClickException as error:
            _fail(error.format_message())
        except typer.Abort:
            sys.stderr.write("kvsize: aborted\n")
            sys.exit(130)
        if standalone:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _fail(message: str) -> None:
    sys.stderr.write(f"kvsize: error: {' '.join(message.split())}\n")
    sys.exit(2)


app = typer.Typer(
    cls=DefaultCommandGroup,
    add_completion=False,
    no_args_is_help=True,
    help="Size LMCache KV-cache offloading for a model: per-token bytes, objects per chunk size, and more.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class KvDtypeChoice(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    fp8 = "fp8"
    fp8_e4m3 = "fp8_e4m3"
    fp8_e5m2 = "fp8_e5m2"


def _version(value: bool) -> None:
    if value:
        from kvsize import __version__

        sys.stdout.write(f"kvsize {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Size LMCache KV-cache offloading: `kvsize MODEL --tp 4 --prompt 100k`."""


@app.command(DEFAULT_COMMAND)
def size(
    model: Annotated[str, typer.Argument(help="Catalog name (see 'kvsize models'), a config.json, or a directory holding one.")],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")] = 1,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Prompt tokens: 100000, 100k, 128Ki, 1M.")] = "100k",
    chunk_sizes: Annotated[str | None, typer.Option("--chunk-sizes", help="Candidate chunk sizes, e.g. 256,512,2048.")] = None,
    chunk_size: Annotated[str | None, typer.Option("--chunk-size", help="One chunk size (instead of --chunk-sizes).")] = None,
    kv_dtype: Annotated[
        KvDtypeChoice, typer.Option("--kv-dtype", help="KV-cache dtype; auto follows the checkpoint.")
    ] = KvDtypeChoice.auto,
    save_unfull_chunk: Annotated[
        bool,
        typer.Option("--save-unfull-chunk", help="Store the tail past the last whole chunk (LMCache <= 0.3.10 default)."),
    ] = False,
    layerwise: Annotated[
        bool, typer.Option("--layerwise", help="LMCache use_layerwise: one object per layer per chunk.")
    ] = False,
    connector: Annotated[
        str,
        typer.Option(
            "--connector",
            help="LMCache backend: s3, fs, redis, valkey, resp, mooncakestore, gds, weka, local-disk, cpu.",
        ),
    ] = "s3",
    mtp: Annotated[
        bool,
        typer.Option("--mtp", help="Speculative decoding with the config's num_nextn_predict_layers draft layers."),
    ] = False,
    draft_layers: Annotated[int | None, typer.Option("--draft-layers", help="Speculative decoding with N draft layers.")] = None,
    pp_partition: Annotated[
        str | None, typer.Option("--pp-partition", help="Layers per stage, as VLLM_PP_LAYER_PARTITION.")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show which config field gave each value and every formula.")
    ] = False,
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="A catalog YAML whose entries override the bundled ones (or KVSIZE_CATALOG)."),
    ] = None,
) -> None:
    """Objects and bytes LMCache stores for one prompt, per candidate chunk size."""
    from kvsize.layout import EngineOptions
    from kvsize.plan import DEFAULT_CHUNK_SIZES, plan_sweep
    from kvsize.sources import resolve_model
    from kvsize.units import parse_count, parse_int_list

    if chunk_sizes is not None and chunk_size is not None:
        raise KvsizeError("give --chunk-sizes or --chunk-size, not both")
    if mtp and draft_layers is not None:
        raise KvsizeError("give --mtp or --draft-layers, not both")
    if draft_layers is not None and draft_layers < 1:
        raise KvsizeError(f"--draft-layers must be at least 1, got {draft_layers}")
    prompt_tokens = parse_count(prompt, "--prompt")
    if chunk_size is not None:
        sizes: tuple[int, ...] = (parse_count(chunk_size, "--chunk-size"),)
    elif chunk_sizes is not None:
        sizes = tuple(parse_int_list(chunk_sizes, "--chunk-sizes"))
    else:
        sizes = DEFAULT_CHUNK_SIZES
    partition = tuple(parse_int_list(pp_partition, "--pp-partition")) if pp_partition else None

    spec = resolve_model(model, catalog_path=catalog)
    drafts = draft_layers or 0
    if mtp:
        if not spec.draft_layers:
            raise KvsizeError(f"--mtp: {spec.name}'s config has no num_nextn_predict_layers; use --draft-layers N")
        drafts = spec.draft_layers
    options = EngineOptions(
        tp=tp,
        pp=pp,
        kv_dtype=kv_dtype.value,
        connector=connector,
        layerwise=layerwise,
        save_unfull_chunk=save_unfull_chunk,
        draft_layers=drafts,
        pp_partition=partition,
    )
    sweep = plan_sweep(spec, options, prompt_tokens, sizes)
    _emit_sweep(sweep, output, explain)


@app.command("models")
def models(
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
) -> None:
    """The model catalog, with each model's KV bytes per token (TP 1, the config's dtype)."""
    from kvsize.catalog import Catalog
    from kvsize.layout import EngineOptions, plan_layout
    from kvsize.render import catalog_rows, render_rows
    from kvsize.sources import resolve_model

    book = Catalog(catalog)
    specs = []
    for name in sorted(book.entries, key=str.lower):
        spec = resolve_model(name, catalog=book)
        specs.append((spec, plan_layout(spec, EngineOptions())))
    rows = catalog_rows(specs)
    if output is not OutputFormat.table:
        sys.stdout.write(render_rows(rows, output.value))
        return
    from rich.console import Console
    from rich.table import Table

    from kvsize.units import format_count

    table = Table(title=f"{len(rows)} models (bundled catalog{' + ' + str(catalog) if catalog else ''})", title_justify="left")
    for header, justify in (
        ("model", "left"),
        ("type", "left"),
        ("layers", "right"),
        ("KV heads", "right"),
        ("head", "right"),
        ("dtype", "left"),
        ("B/token", "right"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        layers = f"{row['kv_layers']}/{row['layers']}" if row["kv_layers"] != row["layers"] else str(row["layers"])
        heads = "MLA" if row["use_mla"] else str(row["kv_heads"])
        table.add_row(
            row["model"],
            row["model_type"],
            layers,
            heads,
            str(row["head_size"]),
            row["kv_dtype"],
            format_count(row["bytes_per_token"]),
        )
    Console(highlight=False).print(table)


@app.command("inspect")
def inspect(
    model: Annotated[str, typer.Argument(help="Catalog name, a config.json, or a directory holding one.")],
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format (table or json).")] = OutputFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
) -> None:
    """The normalised spec: each value beside the config field (and file) it came from."""
    import json

    from kvsize.render import spec_dict
    from kvsize.sources import resolve_model

    spec = resolve_model(model, catalog_path=catalog)
    for warning in spec.warnings:
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(spec_dict(spec), indent=2) + "\n")
        return
    if output is not OutputFormat.table:
        raise KvsizeError(f"inspect prints table or json, not {output.value}")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name}\n{spec.source}", title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_column("from config field", overflow="fold")
    for name, source in spec.fields.items():
        table.add_row(name, source.value, source.field)
    Console(highlight=False).print(table)
    for note in spec.notes:
        Console(highlight=False).print(note, markup=False)


catalog_app = typer.Typer(help="Manage catalog files of your own.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("add")
def catalog_add(
    models: Annotated[list[str], typer.Argument(help="config.json files or directories holding one.")],
    catalog: Annotated[Path | None, typer.Option("--catalog", help="The catalog file to write (or KVSIZE_CATALOG).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The entry's name (one MODEL only); default: the directory's name.")
    ] = None,
) -> None:
    """Normalise local configs and write them as entries of a catalog file; they load back to the same numbers."""
    import os

    from kvsize.catalog import CATALOG_ENV, CatalogEntry, dump_catalog, load_catalog_file
    from kvsize.normalize import spec_from_config
    from kvsize.sources import catalog_entry, config_file, read_config

    target = catalog or (Path(os.environ[CATALOG_ENV]) if os.environ.get(CATALOG_ENV) else None)
    if target is None:
        raise KvsizeError(f"catalog add needs a file to write: give --catalog PATH or set {CATALOG_ENV}")
    if name is not None and len(models) != 1:
        raise KvsizeError("--name names one entry: give one MODEL with it")
    entries: dict[str, CatalogEntry] = dict(load_catalog_file(target)) if target.exists() else {}
    added = []
    for model in models:
        file = config_file(Path(model).expanduser())
        raw = read_config(file)
        entry = catalog_entry(raw, source=f"local file {file.resolve()}", origin=str(file))
        entry_name = name or file.resolve().parent.name
        # Fail closed before writing: the entry must size exactly as the file does.
        spec = spec_from_config(entry.config, name=entry_name, origin=str(file), defaults=entry.defaults)
        entries[entry_name] = entry
        added.append(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(dump_catalog(entries, "# kvsize catalog (written by 'kvsize catalog add')\n"), encoding="utf-8")
    temporary.replace(target)
    for spec in added:
        sys.stdout.write(f"added {spec.name} ({spec.model_type}, {spec.num_layers} layers) to {target}\n")


def _emit_sweep(sweep: Any, output: OutputFormat, explain: bool) -> None:
    from kvsize import render

    for warning in sweep.warnings:
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    if output is OutputFormat.json:
        sys.stdout.write(render.render_json(sweep, explain))
    elif output is OutputFormat.csv:
        sys.stdout.write(render.render_csv(sweep))
    elif output is OutputFormat.markdown:
        text = render.render_markdown(sweep)
        if explain:
            text += "\n```\n" + "\n".join(render.explain_lines(sweep)) + "\n```\n"
        sys.stdout.write(text)
    else:
        _print_table(sweep, explain)


def _print_table(sweep: Any, explain: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from kvsize import render

    console = Console(highlight=False, soft_wrap=False)
    table = Table(title=render.headline(sweep), caption=render.subtitle(sweep), title_justify="left", caption_justify="left")
    for header in render.TABLE_HEADERS:
        table.add_column(header, justify="right", no_wrap=header not in ("tail",))
    for row in sweep.rows:
        table.add_row(*render.table_cells(row))
    console.print(table)
    for note in render.footnotes(sweep):
        console.print(note, markup=False)
    if explain:
        console.print()
        for line in render.explain_lines(sweep):
            console.print(line, markup=False)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
