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

from kvsize.errors import KvsizeError, finite, shown

DEFAULT_COMMAND = "size"
VLLM_VERSION = "0.33.0"
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
        except RecursionError:
            _fail("the input is nested too deeply for kvsize to read; check the file you gave")
        except OSError as error:  # a path the process cannot reach (permissions, a vanished mount)
            where = f" {error.filename}" if error.filename else ""
            _fail(f"cannot access{where}: {error.strerror or error}; check the path and its permissions")
        except Exception as error:  # a bug: one line, never a traceback (exit 70, so tests tell it from bad input)
            sys.stderr.write(
                f"kvsize: internal error: {type(error).__name__}: {shown(str(error), 120)}; "
                "this is a kvsize bug, please report it with the command line\n"
            )
            sys.exit(70)
        if standalone:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _fail(message: str) -> None:
    sys.stderr.write(f"kvsize: error: {KvsizeError(message)}\n")
    sys.exit(2)


class _Output:
    """Rich output that reads well on a terminal (its width honoured) and in a pipe or a CI log
    (no hard wraps inside sentences, no name broken, no column dropped, no trailing spaces)."""

    def __init__(self) -> None:
        import io

        from rich.console import Console

        self.terminal = Console().is_terminal
        self.buffer: io.StringIO | None = None
        if self.terminal:
            self.console = Console(highlight=False)
        else:
            self.buffer = io.StringIO()
            self.console = Console(file=self.buffer, highlight=False, width=100_000, color_system=None)

    def print(self, *objects: Any, **options: Any) -> None:
        from rich.table import Table

        for item in objects:
            if isinstance(item, Table) and (item.title or item.caption):
                # A title or caption is a sentence: printed as a line of its own, never wrapped to the table's width.
                title, caption = item.title, item.caption
                item.title = item.caption = None
                if title:
                    self.console.print(str(title), markup=False, soft_wrap=not self.terminal)
                self.console.print(item, **options)
                if caption:
                    self.console.print(str(caption), markup=False, soft_wrap=not self.terminal)
            else:
                self.console.print(item, soft_wrap=not self.terminal, **options)

    def close(self) -> None:
        if self.buffer is not None:
            sys.stdout.write("".join(line.rstrip() + "\n" for line in self.buffer.getvalue().splitlines()))


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


class ReportFormat(str, Enum):
    """check and capacity: no CSV (their output is not one table of rows)."""

    table = "table"
    json = "json"
    markdown = "markdown"


class TableFormat(str, Enum):
    """inspect and probe."""

    table = "table"
    json = "json"


class EmitFormat(str, Enum):
    lmcache = "lmcache"


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


_TIME = "Storage time model"


@app.command(DEFAULT_COMMAND)
def size(
    model: Annotated[
        str, typer.Argument(help="Catalog name (see 'kvsize models'), a config.json or its directory, or a Hub repo ORG/NAME.")
    ],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")] = 1,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Prompt tokens: 100000, 100k, 128Ki, 1M.")] = "100k",
    chunk_sizes: Annotated[str | None, typer.Option("--chunk-sizes", help="Candidate chunk sizes, e.g. 256,512,2048.")] = None,
    chunk_size: Annotated[str | None, typer.Option("--chunk-size", help="One chunk size (instead of --chunk-sizes).")] = None,
    kv_dtype: Annotated[
        KvDtypeChoice, typer.Option("--kv-dtype", help="KV-cache dtype; auto follows the checkpoint.")
    ] = KvDtypeChoice.auto,
    save_unfull_chunk: Annotated[
        bool, typer.Option("--save-unfull-chunk", help="Store the tail past the last whole chunk (LMCache <= 0.3.10 default).")
    ] = False,
    layerwise: Annotated[
        bool, typer.Option("--layerwise", help="LMCache use_layerwise: one object per layer per chunk.")
    ] = False,
    connector: Annotated[
        str,
        typer.Option(
            "--connector", help="LMCache backend: s3, fs, redis, valkey, resp, mooncakestore, gds, weka, local-disk, cpu."
        ),
    ] = "s3",
    mtp: Annotated[
        bool, typer.Option("--mtp", help="Speculative decoding with the config's num_nextn_predict_layers draft layers.")
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
        Path | None, typer.Option("--catalog", help="A catalog YAML whose entries override the bundled ones (or KVSIZE_CATALOG).")
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Hub branch, tag or commit (goes to the Hub even for catalog names).")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="No network: Hub models from the cache only (as HF_HUB_OFFLINE=1).")
    ] = False,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="Time loads on a preset (s3, s3-express, nfs, nfs-100g, pnfs-rdma, nvme, redis, cpu) or a profile YAML.",
            rich_help_panel=_TIME,
        ),
    ] = None,
    latency: Annotated[
        str | None, typer.Option("--latency", help="Per-operation latency, e.g. 100ms.", rich_help_panel=_TIME)
    ] = None,
    stream_bandwidth: Annotated[
        str | None, typer.Option("--stream-bandwidth", help="Per-stream bandwidth, e.g. 90MB/s.", rich_help_panel=_TIME)
    ] = None,
    aggregate_bandwidth: Annotated[
        str | None,
        typer.Option(
            "--aggregate-bandwidth", help="Bandwidth shared by all writers and prompts, e.g. 100Gbit/s.", rich_help_panel=_TIME
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Requests in flight per writer.", rich_help_panel=_TIME)
    ] = None,
    max_requests_per_s: Annotated[
        float | None,
        typer.Option("--max-requests-per-s", help="Request-rate cap of the storage, e.g. 5500.", rich_help_panel=_TIME),
    ] = None,
    part_size: Annotated[str | None, typer.Option("--part-size", help="S3 part size, e.g. 8MiB.", rich_help_panel=_TIME)] = None,
    concurrent_prompts: Annotated[
        int,
        typer.Option(
            "--concurrent-prompts", help="Prompts loading at once on the same storage (all instances).", rich_help_panel=_TIME
        ),
    ] = 1,
    instances: Annotated[
        int,
        typer.Option(
            "--instances", help="Serving instances the concurrent prompts are spread over (default 1).", rich_help_panel=_TIME
        ),
    ] = 1,
    blocking_timeout: Annotated[
        str, typer.Option("--blocking-timeout", help="LMCache blocking_timeout_secs.", rich_help_panel=_TIME)
    ] = "10s",
    cpu_buffer: Annotated[
        str, typer.Option("--cpu-buffer", help="LMCache max_local_cpu_size per worker.", rich_help_panel=_TIME)
    ] = "5GiB",
    pinned_memory: Annotated[
        str | None, typer.Option("--pinned-memory", help="Pinned memory available, for LMCache's S3 rule.", rich_help_panel=_TIME)
    ] = None,
    shared_prefix: Annotated[
        str | None, typer.Option("--shared-prefix", help="Tokens another prompt shares with this one.", rich_help_panel=_TIME)
    ] = None,
    prefill_tps: Annotated[
        float | None,
        typer.Option("--prefill-tps", help="Measured prefill tokens/s, for the recompute cost.", rich_help_panel=_TIME),
    ] = None,
    gpu: Annotated[
        str, typer.Option("--gpu", help="GPU for the prefill estimate: a100, h100, h200, l40s, b200.", rich_help_panel=_TIME)
    ] = "h100",
    mfu: Annotated[
        float, typer.Option("--mfu", help="Utilisation of peak FLOP/s for the prefill estimate.", rich_help_panel=_TIME)
    ] = 0.4,
    search: Annotated[
        bool,
        typer.Option(
            "--search", help="Also search every multiple of the vLLM block size between the candidates.", rich_help_panel=_TIME
        ),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Draw load time against chunk size into FILE.png or FILE.svg (needs: pip install 'kvsize\\[plot]').",
            rich_help_panel=_TIME,
        ),
    ] = None,
    emit: Annotated[
        EmitFormat | None,
        typer.Option(
            "--emit", help="Print the LMCache config (YAML, with the LMCACHE_* form) for the recommended or --chunk-size chunk."
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="With --emit: the timeout and CPU buffer cover the prediction times this.")
    ] = 2.0,
    vllm_version: Annotated[
        str, typer.Option("--vllm-version", help="The vLLM that serves the model (architectures it retired are refused).")
    ] = VLLM_VERSION,
) -> None:
    """Objects and bytes LMCache stores for one prompt, per candidate chunk size; with --backend, load time and a pick."""
    from kvsize.engines.lmcache import EngineOptions
    from kvsize.model.sources import resolve_model
    from kvsize.plan import DEFAULT_CHUNK_SIZES, plan_sweep
    from kvsize.units import parse_count, parse_int_list

    if chunk_sizes is not None and chunk_size is not None:
        raise KvsizeError("give --chunk-sizes or --chunk-size, not both")
    if mtp and draft_layers is not None:
        raise KvsizeError("give --mtp or --draft-layers, not both")
    if draft_layers is not None:
        _bounded(draft_layers, "--draft-layers", 10_000)
    prompt_tokens = parse_count(prompt, "--prompt")
    if chunk_size is not None:
        sizes: tuple[int, ...] = (parse_count(chunk_size, "--chunk-size"),)
    elif chunk_sizes is not None:
        sizes = tuple(parse_int_list(chunk_sizes, "--chunk-sizes"))
    else:
        sizes = DEFAULT_CHUNK_SIZES
    partition = tuple(parse_int_list(pp_partition, "--pp-partition")) if pp_partition else None
    overrides = _backend_overrides(latency, stream_bandwidth, aggregate_bandwidth, concurrency, max_requests_per_s, part_size)
    timed = bool(backend) or bool(overrides)
    if not timed and (search or plot):
        raise KvsizeError(f"{'--search' if search else '--plot'} needs a storage backend: give --backend (e.g. s3)")

    spec = resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)
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
        vllm_version=vllm_version,
    )
    finite(margin, "--margin", low=1, high=1000)
    sweep = plan_sweep(spec, options, prompt_tokens, sizes)
    if not timed:
        if emit is not None:
            if chunk_size is None:
                raise KvsizeError("--emit lmcache needs --chunk-size N, or --backend to recommend one")
            _emit_lmcache(sweep, None, sizes[0], margin)
            return
        _emit_sweep(sweep, output, explain, [])
        return

    from kvsize import storage
    from kvsize.units import parse_duration, parse_size

    _bounded(concurrent_prompts, "--concurrent-prompts", MAX_PROMPTS)
    _bounded(instances, "--instances", MAX_PROMPTS)
    extra_warnings: list[str] = []
    prefill_tps, assumption, missing = _prefill(spec, tp * pp, prompt_tokens, prefill_tps, gpu, mfu)
    extra_warnings += missing
    time_options = storage.TimeOptions(
        concurrent_prompts=concurrent_prompts,
        instances=instances,
        blocking_timeout_s=parse_duration(blocking_timeout, "--blocking-timeout"),
        cpu_buffer_bytes=parse_size(cpu_buffer, "--cpu-buffer"),
        pinned_memory_bytes=parse_size(pinned_memory, "--pinned-memory") if pinned_memory else None,
        shared_prefix_tokens=parse_count(shared_prefix, "--shared-prefix") if shared_prefix else None,
        prefill_tokens_per_s=prefill_tps,
    )
    names: list[str | None] = list(backend) if backend else [None]
    if len(names) > MAX_BACKENDS:
        raise KvsizeError(f"--backend is given {len(names)} times; compare at most {MAX_BACKENDS} backends in one run")
    profiles = [storage.resolve_backend(name, overrides) for name in names]
    extra_warnings += [w for name in names if (w := storage.connector_mismatch(name, options.connector))]
    if search:
        block = 64 if spec.use_mla else 16  # vLLM's default block size (MLA backends 64 or more)
        found = {
            storage.search_chunk(sweep.layout, prompt_tokens, p, time_options, min(sizes), max(sizes), block) for p in profiles
        }
        extra = tuple(c for c in found if c is not None and c not in sizes)
        if extra:
            sweep = plan_sweep(spec, options, prompt_tokens, (*sizes, *extra))
    plans = [storage.plan_storage(sweep.rows, sweep.layout, p, time_options, assumption) for p in profiles]
    if plot is not None:
        from kvsize.cli.plot import plot_plans

        plot_plans(sweep, plans, plot)
    if emit is not None:
        for warning in extra_warnings:
            sys.stderr.write(f"kvsize: warning: {warning}\n")
        if chunk_size is not None:
            chosen = sizes[0]
        elif plans[0].offload_pays is False:
            raise KvsizeError(
                f"--emit lmcache: recomputing is faster than loading on {plans[0].backend.name} "
                f"({plans[0].full_recompute_seconds:.2f} s to prefill the prompts of one instance, against the best "
                "load + tail recompute), so there is no chunk size to recommend; give --chunk-size N to emit one anyway"
            )
        elif plans[0].recommendation is not None:
            chosen = plans[0].recommendation.chunk_tokens
        else:
            raise KvsizeError("--emit lmcache: no recommendation to emit (see the warning); give --chunk-size N")
        _emit_lmcache(sweep, plans[0], chosen, margin)
        return
    _emit_sweep(sweep, output, explain, plans, extra_warnings)


MAX_PROMPTS = 1_000_000
MAX_BACKENDS = 16
MAX_PARALLEL = 100_000


def _bounded(value: int, flag: str, high: int, low: int = 1) -> int:
    """An integer flag inside [low, high], else one line naming the flag."""
    if not low <= value <= high:
        raise KvsizeError(f"{flag} must be {low:,} to {high:,}, got {shown(value)}", field=flag)
    return value


def _prefill(
    spec: Any, gpus: int, prompt_tokens: int, prefill_tps: float | None, gpu: str, mfu: float
) -> tuple[float | None, str | None, list[str]]:
    """Prefill tokens/s (given, or estimated from the config), the sentence saying which, and any warning."""
    from kvsize import storage

    finite(mfu, "--mfu", low=0, low_open=True, high=1)
    if prefill_tps is not None:
        finite(prefill_tps, "--prefill-tps", low=1, high=1e12)
        return prefill_tps, f"prefill {prefill_tps:,.0f} tokens/s (given with --prefill-tps)", []
    attention = (spec.kv_layers, spec.num_attention_heads, spec.head_size)
    estimate = storage.estimate_prefill(spec.active_params, attention, gpus, gpu.lower(), mfu, prompt_tokens)
    if estimate is None:
        return (
            None,
            None,
            [
                f"no recommendation: {spec.name}'s config does not give a parameter count kvsize can derive, so the "
                "recompute cost is unknown; give --prefill-tps (measured prefill tokens/s)"
            ],
        )
    return estimate.tokens_per_s, estimate.assumption, []


def _emit_lmcache(sweep: Any, plan: Any, chunk: int, margin: float) -> None:
    """Print the LMCache settings for one chunk size (kvsize.lmcache.settings_for) and their warnings."""
    from kvsize.engines.lmcache_settings import settings_for

    text, warnings = settings_for(sweep, plan, chunk, margin)
    for warning in (*sweep.warnings, *warnings):
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    sys.stdout.write(text)


def _backend_overrides(
    latency: str | None,
    stream: str | None,
    aggregate: str | None,
    concurrency: int | None,
    max_requests: float | None,
    part_size: str | None,
) -> dict[str, Any]:
    from kvsize.units import parse_duration, parse_rate, parse_size

    out: dict[str, Any] = {}
    if latency is not None:
        out["latency_s"] = parse_duration(latency, "--latency")
    if stream is not None:
        out["stream_bytes_per_s"] = parse_rate(stream, "--stream-bandwidth")
    if aggregate is not None:
        out["aggregate_bytes_per_s"] = parse_rate(aggregate, "--aggregate-bandwidth")
    if concurrency is not None:
        out["concurrency"] = _bounded(concurrency, "--concurrency", MAX_PARALLEL)
    if max_requests is not None:
        out["max_requests_per_s"] = finite(max_requests, "--max-requests-per-s", low=0, low_open=True, high=1e12)
    if part_size is not None:
        out["part_size_bytes"] = parse_size(part_size, "--part-size")
    return out


@app.command("models")
def models(
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
) -> None:
    """The model catalog, with each model's KV bytes per token (TP 1, the config's dtype)."""
    from kvsize.cli.render import catalog_rows, render_rows
    from kvsize.engines.lmcache import EngineOptions, plan_layout
    from kvsize.model.catalog import Catalog
    from kvsize.model.sources import resolve_model

    book = Catalog(catalog)
    specs = []
    for name in sorted(book.entries, key=str.lower):
        spec = resolve_model(name, catalog=book)
        specs.append((spec, plan_layout(spec, EngineOptions())))
    rows = catalog_rows(specs)
    if output is not OutputFormat.table:
        sys.stdout.write(render_rows(rows, output.value))
        return
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
    out = _Output()
    out.print(table)
    out.close()


@app.command("inspect")
def inspect(
    model: Annotated[str, typer.Argument(help="Catalog name, a config.json or its directory, or a Hub repo ORG/NAME.")],
    output: Annotated[TableFormat, typer.Option("--format", "-f", help="Output format.")] = TableFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No network: Hub models from the cache only.")] = False,
) -> None:
    """The normalised spec: each value beside the config field (and file) it came from."""
    import json

    from kvsize.cli.render import spec_dict
    from kvsize.model.sources import resolve_model

    spec = resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)
    for warning in spec.warnings:
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    if output is TableFormat.json:
        sys.stdout.write(json.dumps(spec_dict(spec), indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"{spec.name}\n{spec.source}", title_justify="left")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_column("from config field", overflow="fold")
    for name, source in spec.fields.items():
        table.add_row(name, source.value, source.field)
    out = _Output()
    out.print(table)
    for note in spec.notes:
        out.print(note, markup=False)
    out.close()


def _deployment(
    lmcache_config: Path | None,
    chunk_size: str | None,
    connector: str | None,
    layerwise: bool | None,
    save_unfull_chunk: bool | None,
    tp: int,
    pp: int,
    kv_dtype: KvDtypeChoice,
) -> tuple[Any, int, Any]:
    """The deployment's LMCache settings (file + LMCACHE_* environment), with command-line flags winning."""
    from kvsize.engines.lmcache import EngineOptions
    from kvsize.engines.lmcache_settings import read_settings
    from kvsize.units import parse_count

    settings = read_settings(lmcache_config)
    chunk = parse_count(chunk_size, "--chunk-size") if chunk_size is not None else settings.chunk_size
    options = EngineOptions(
        tp=tp,
        pp=pp,
        kv_dtype=kv_dtype.value,
        connector=connector or settings.connector or "s3",
        layerwise=settings.use_layerwise if layerwise is None else layerwise,
        save_unfull_chunk=settings.save_unfull_chunk if save_unfull_chunk is None else save_unfull_chunk,
    )
    return settings, chunk, options


def _limit_cells(violation: Any) -> list[str]:
    from kvsize.units import format_count, format_iec

    def show(value: float) -> str:
        if violation.unit == "B":
            return f"{format_iec(value)} ({int(value):,} B)"
        if violation.unit == "s":
            return f"{value:.3f} s"
        return format_count(int(value))

    return [violation.limit, show(violation.value), show(violation.threshold), show(violation.over_by)]


@app.command("check")
def check(
    model: Annotated[str, typer.Argument(help="Catalog name, a config.json or its directory, or a Hub repo ORG/NAME.")],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")] = 1,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Prompt tokens: 100000, 100k, 128Ki, 1M.")] = "100k",
    chunk_size: Annotated[
        str | None, typer.Option("--chunk-size", help="Chunk size (else the LMCache config's, else 256).")
    ] = None,
    kv_dtype: Annotated[
        KvDtypeChoice, typer.Option("--kv-dtype", help="KV-cache dtype; auto follows the checkpoint.")
    ] = KvDtypeChoice.auto,
    connector: Annotated[
        str | None, typer.Option("--connector", help="LMCache backend (else from the LMCache config's remote_url).")
    ] = None,
    save_unfull_chunk: Annotated[
        bool | None, typer.Option("--save-unfull-chunk/--no-save-unfull-chunk", help="Override save_unfull_chunk.")
    ] = None,
    layerwise: Annotated[bool | None, typer.Option("--layerwise/--no-layerwise", help="Override use_layerwise.")] = None,
    lmcache_config: Annotated[
        Path | None,
        typer.Option(
            "--lmcache-config", help="The deployment's LMCache YAML (or LMCACHE_CONFIG_FILE); LMCACHE_* variables apply over it."
        ),
    ] = None,
    max_objects: Annotated[int | None, typer.Option("--max-objects", help="Most objects one prompt may store.")] = None,
    max_object_size: Annotated[str | None, typer.Option("--max-object-size", help="Largest object, e.g. 128MiB.")] = None,
    max_total_bytes: Annotated[
        str | None, typer.Option("--max-total-bytes", help="Most bytes one prompt may store, e.g. 20GB.")
    ] = None,
    max_load_seconds: Annotated[
        str | None, typer.Option("--max-load-seconds", help="Longest load, e.g. 5s (needs --backend).")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", "-b", help="Time the load on a preset or profile YAML; its engine risks become limits."),
    ] = None,
    latency: Annotated[str | None, typer.Option("--latency", help="Per-operation latency, e.g. 100ms.")] = None,
    stream_bandwidth: Annotated[str | None, typer.Option("--stream-bandwidth", help="Per-stream bandwidth, e.g. 90MB/s.")] = None,
    aggregate_bandwidth: Annotated[
        str | None, typer.Option("--aggregate-bandwidth", help="Shared bandwidth, e.g. 100Gbit/s.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Requests in flight per writer.")] = None,
    max_requests_per_s: Annotated[
        float | None, typer.Option("--max-requests-per-s", help="Request-rate cap of the storage.")
    ] = None,
    part_size: Annotated[str | None, typer.Option("--part-size", help="S3 part size, e.g. 8MiB.")] = None,
    concurrent_prompts: Annotated[int, typer.Option("--concurrent-prompts", help="Prompts loading at once.")] = 1,
    instances: Annotated[int, typer.Option("--instances", help="Serving instances the concurrent prompts are spread over.")] = 1,
    prefill_tps: Annotated[
        float | None, typer.Option("--prefill-tps", help="Measured prefill tokens/s, for the recompute comparison.")
    ] = None,
    gpu: Annotated[str, typer.Option("--gpu", help="GPU for the prefill estimate: a100, h100, h200, l40s, b200.")] = "h100",
    mfu: Annotated[float, typer.Option("--mfu", help="Utilisation of peak FLOP/s for the prefill estimate.")] = 0.4,
    blocking_timeout: Annotated[
        str | None, typer.Option("--blocking-timeout", help="blocking_timeout_secs (else the LMCache config's, else 10s).")
    ] = None,
    cpu_buffer: Annotated[
        str | None, typer.Option("--cpu-buffer", help="max_local_cpu_size (else the LMCache config's, else 5GiB).")
    ] = None,
    pinned_memory: Annotated[str | None, typer.Option("--pinned-memory", help="Pinned memory available (S3 rule).")] = None,
    output: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No network: Hub models from the cache only.")] = False,
) -> None:
    """Exit 0 when the serving config keeps every limit, 1 with the violated ones, 2 for bad input."""
    import json

    from kvsize import storage
    from kvsize.model.sources import resolve_model
    from kvsize.plan import plan_sweep
    from kvsize.storage.limits import Limits, check_row
    from kvsize.units import parse_count, parse_duration, parse_size

    settings, chunk, options = _deployment(lmcache_config, chunk_size, connector, layerwise, save_unfull_chunk, tp, pp, kv_dtype)
    if max_objects is not None and max_objects < 1:
        raise KvsizeError(f"--max-objects must be at least 1, got {max_objects}")
    limits = Limits(
        max_objects=max_objects,
        max_object_bytes=parse_size(max_object_size, "--max-object-size") if max_object_size else None,
        max_total_bytes=parse_size(max_total_bytes, "--max-total-bytes") if max_total_bytes else None,
        max_load_seconds=parse_duration(max_load_seconds, "--max-load-seconds") if max_load_seconds else None,
    )
    overrides = _backend_overrides(latency, stream_bandwidth, aggregate_bandwidth, concurrency, max_requests_per_s, part_size)
    timed = backend is not None or bool(overrides)
    if limits.max_load_seconds is not None and not timed:
        raise KvsizeError("--max-load-seconds needs a storage backend: give --backend (e.g. s3)")
    _bounded(concurrent_prompts, "--concurrent-prompts", MAX_PROMPTS)
    _bounded(instances, "--instances", MAX_PROMPTS)
    time_options = storage.TimeOptions(
        concurrent_prompts=concurrent_prompts,
        instances=instances,
        blocking_timeout_s=parse_duration(blocking_timeout, "--blocking-timeout")
        if blocking_timeout
        else settings.blocking_timeout_secs,
        cpu_buffer_bytes=parse_size(cpu_buffer, "--cpu-buffer") if cpu_buffer else settings.max_local_cpu_size_bytes,
        pinned_memory_bytes=parse_size(pinned_memory, "--pinned-memory") if pinned_memory else None,
        s3_max_inflight_reqs=settings.s3_max_inflight_reqs,
    )
    spec = resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)
    prompt_tokens = parse_count(prompt, "--prompt")
    sweep = plan_sweep(spec, options, prompt_tokens, (chunk,))
    row = sweep.rows[0]
    timing = None
    recompute_all = None
    if timed:
        rate, _, missing = _prefill(spec, tp * pp, prompt_tokens, prefill_tps, gpu, mfu)
        time_options = time_options.model_copy(update={"prefill_tokens_per_s": rate})
        for warning in missing:
            sys.stderr.write(f"kvsize: warning: {warning.replace('no recommendation', 'no recompute comparison')}\n")
        profile = storage.resolve_backend(backend, overrides)
        timing = storage.time_row(row, sweep.layout, profile, time_options)
        recompute_all = storage.full_recompute_seconds(prompt_tokens, time_options)
        if mismatch := storage.connector_mismatch(backend, options.connector):
            sys.stderr.write(f"kvsize: warning: {mismatch}\n")
    result = check_row(
        row,
        sweep.layout,
        limits,
        time_options,
        timing,
        full_recompute_s=recompute_all,
        remote_url_problem=settings.remote_url_problem,
    )
    for warning in (*sweep.warnings, *settings.warnings):
        sys.stderr.write(f"kvsize: warning: {warning}\n")

    summary = {
        "ok": result.ok,
        "violations": [v.model_dump() for v in result.violations],
        "model": spec.name,
        "tp": tp,
        "pp": pp,
        "prompt_tokens": prompt_tokens,
        "chunk_tokens": chunk,
        "connector": sweep.layout.connector.name,
        "kv_dtype": sweep.layout.kv_dtype,
        "limits": limits.model_dump(),
        "engine": {
            "blocking_timeout_secs": time_options.blocking_timeout_s,
            "max_local_cpu_size_bytes": time_options.cpu_buffer_bytes,
            "pinned_memory_bytes": time_options.pinned_memory_bytes,
            "save_unfull_chunk": options.save_unfull_chunk,
            "use_layerwise": options.layerwise,
        },
        "lmcache_sources": settings.sources,
        "row": {k: v for k, v in row.model_dump().items() if k != "stages"},
        "load_seconds": timing.load_seconds if timing else None,
        "backend": timing and backend,
        "full_recompute_seconds": recompute_all,
        "instances": instances,
    }
    title = (
        f"{spec.name}, TP {tp} x PP {pp}, {prompt_tokens:,}-token prompt, chunk {chunk:,}, "
        f"connector {sweep.layout.connector.name}"
    )
    if output is ReportFormat.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif output is ReportFormat.markdown:
        lines = [f"### kvsize check: {'OK' if result.ok else 'FAILED'}", "", title + ".", ""]
        if result.violations:
            lines += ["| limit | value | threshold | over by |", "|---|---:|---:|---:|"]
            lines += ["| " + " | ".join(_limit_cells(v)) + " |" for v in result.violations]
        else:
            lines.append("Every limit holds.")
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        from rich.table import Table

        console = _Output()
        if result.ok:
            console.print(f"OK: {title}: every limit holds.", markup=False)
        else:
            table = Table(title=f"FAILED: {title}", title_justify="left")
            for header in ("limit", "value", "threshold", "over by"):
                table.add_column(header, justify="left" if header == "limit" else "right", overflow="fold")
            for violation in result.violations:
                table.add_row(*_limit_cells(violation))
            console.print(table)
            for violation in result.violations:
                console.print(f"{violation.limit}: {violation.detail}", markup=False)
        console.close()
    if not result.ok:
        raise typer.Exit(1)


@app.command("capacity")
def capacity(
    model: Annotated[str, typer.Argument(help="Catalog name, a config.json or its directory, or a Hub repo ORG/NAME.")],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")] = 1,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Prompt tokens: 100000, 100k, 128Ki, 1M.")] = "100k",
    chunk_size: Annotated[
        str | None, typer.Option("--chunk-size", help="Chunk size (else the LMCache config's, else 256).")
    ] = None,
    storage_size: Annotated[
        str | None, typer.Option("--storage", help="Storage to fill, e.g. 10TiB: how many prompts fit.")
    ] = None,
    prompts: Annotated[int | None, typer.Option("--prompts", help="Prompts to keep: the storage they need.")] = None,
    shared_prefix: Annotated[
        str | None, typer.Option("--shared-prefix", help="Tokens every prompt shares (stored once).")
    ] = None,
    kv_dtype: Annotated[
        KvDtypeChoice, typer.Option("--kv-dtype", help="KV-cache dtype; auto follows the checkpoint.")
    ] = KvDtypeChoice.auto,
    connector: Annotated[str | None, typer.Option("--connector", help="LMCache backend (else from the LMCache config).")] = None,
    save_unfull_chunk: Annotated[
        bool | None, typer.Option("--save-unfull-chunk/--no-save-unfull-chunk", help="Override save_unfull_chunk.")
    ] = None,
    layerwise: Annotated[bool | None, typer.Option("--layerwise/--no-layerwise", help="Override use_layerwise.")] = None,
    lmcache_config: Annotated[
        Path | None, typer.Option("--lmcache-config", help="The deployment's LMCache YAML (or LMCACHE_CONFIG_FILE).")
    ] = None,
    output: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Output format (markdown: a section for a capacity-planning doc).")
    ] = ReportFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No network: Hub models from the cache only.")] = False,
) -> None:
    """How many prompts fit in a storage tier (--storage), or the storage N prompts need (--prompts)."""
    import json

    from kvsize.cli import render
    from kvsize.model.sources import resolve_model
    from kvsize.plan import plan_sweep
    from kvsize.storage.capacity import plan_capacity
    from kvsize.units import parse_count, parse_size

    if prompts is not None and prompts < 1:
        raise KvsizeError(f"--prompts must be at least 1, got {prompts}")
    _, chunk, options = _deployment(lmcache_config, chunk_size, connector, layerwise, save_unfull_chunk, tp, pp, kv_dtype)
    storage_bytes = parse_size(storage_size, "--storage") if storage_size else None
    shared = parse_count(shared_prefix, "--shared-prefix") if shared_prefix else 0
    prompt_tokens = parse_count(prompt, "--prompt")
    if shared > prompt_tokens:
        raise KvsizeError(f"--shared-prefix {shared:,} is longer than the {prompt_tokens:,}-token prompt")
    spec = resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)
    sweep = plan_sweep(spec, options, prompt_tokens, (chunk,))
    plan = plan_capacity(sweep.rows[0], sweep.layout, storage_bytes=storage_bytes, prompts=prompts, shared_prefix_tokens=shared)
    for warning in sweep.warnings:
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    if output is ReportFormat.json:
        data = {**render.sweep_dict(sweep), "capacity": plan.model_dump(), "assumptions": render.assumptions(sweep)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif output is ReportFormat.markdown:
        sys.stdout.write(render.capacity_markdown(sweep, plan))
    else:
        from rich.table import Table

        console = _Output()
        table = Table(title=render.capacity_title(sweep, plan), title_justify="left")
        for header in render.CAPACITY_HEADERS:
            table.add_column(header, justify="left" if header == "" else "right")
        for cells in render.capacity_cells(plan):
            table.add_row(*cells)
        console.print(table)
        for line in render.capacity_notes(sweep, plan):
            console.print(line, markup=False)
        console.close()


@app.command("probe")
def probe(
    target: Annotated[
        str, typer.Argument(help="A directory (local disk, NFS/pNFS mount), s3://bucket/prefix or redis://host:port.")
    ],
    model: Annotated[str | None, typer.Option("--model", help="Probe the object sizes kvsize predicts for this model.")] = None,
    tp: Annotated[int, typer.Option("--tp", help="With --model: tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="With --model: pipeline-parallel size.")] = 1,
    chunk_sizes: Annotated[
        str | None, typer.Option("--chunk-sizes", help="With --model: chunk sizes (default 256,...,4096).")
    ] = None,
    kv_dtype: Annotated[KvDtypeChoice, typer.Option("--kv-dtype", help="With --model: KV-cache dtype.")] = KvDtypeChoice.auto,
    object_sizes: Annotated[
        str | None, typer.Option("--object-sizes", help="Explicit object sizes, e.g. 9MiB,72MiB (default 1MiB,16MiB,64MiB).")
    ] = None,
    concurrency: Annotated[str, typer.Option("--concurrency", help="Concurrency levels, e.g. 1,4,16.")] = "1,4,16",
    objects: Annotated[int, typer.Option("--objects", help="Objects per set (fewer when --max-bytes says so).")] = 256,
    max_bytes: Annotated[
        str, typer.Option("--max-bytes", help="Most bytes one object set may write; sets the size of a real load fit best.")
    ] = "1GiB",
    time_limit: Annotated[str, typer.Option("--time-limit", help="Stop starting new sets after this long.")] = "120s",
    direct: Annotated[bool, typer.Option("--direct", help="Read with O_DIRECT (directory targets).")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3 endpoint (else AWS_ENDPOINT_URL / AWS default).")
    ] = None,
    save_profile: Annotated[
        Path | None, typer.Option("--save-profile", help="Write the fitted backend profile YAML here (for --backend).")
    ] = None,
    output: Annotated[TableFormat, typer.Option("--format", "-f", help="Output format.")] = TableFormat.table,
    catalog: Annotated[Path | None, typer.Option("--catalog", help="A catalog YAML layered over the bundled one.")] = None,
    clean: Annotated[
        bool,
        typer.Option("--clean", help="Remove what earlier probes killed mid-run left on TARGET (their process gone), then stop."),
    ] = False,
) -> None:
    """Measure a storage target with LMCache-shaped objects and fit the time model's L, b and B."""
    import json

    from kvsize.storage import probe as probing
    from kvsize.units import parse_duration, parse_int_list, parse_size

    if model is not None and object_sizes is not None:
        raise KvsizeError("give --model (its predicted object sizes) or --object-sizes, not both")
    if objects < 1:
        raise KvsizeError(f"--objects must be at least 1, got {objects}")
    levels = parse_int_list(concurrency, "--concurrency")
    if model is not None:
        from kvsize.engines.lmcache import EngineOptions, plan_layout
        from kvsize.model.sources import resolve_model
        from kvsize.plan import DEFAULT_CHUNK_SIZES, plan_row

        layout = plan_layout(resolve_model(model, catalog_path=catalog), EngineOptions(tp=tp, pp=pp, kv_dtype=kv_dtype.value))
        chunks = parse_int_list(chunk_sizes, "--chunk-sizes") if chunk_sizes else list(DEFAULT_CHUNK_SIZES)
        sizes = sorted({plan_row(layout, chunk, chunk).object_bytes for chunk in chunks})
    else:
        if chunk_sizes is not None:
            raise KvsizeError("--chunk-sizes goes with --model")
        sizes = sorted(
            {
                parse_size(part.strip(), "--object-sizes")
                for part in (object_sizes or "1MiB,16MiB,64MiB").split(",")
                if part.strip()
            }
        )
        if not sizes:
            raise KvsizeError("--object-sizes is empty: give sizes like 9MiB,72MiB")
    limit_bytes = parse_size(max_bytes, "--max-bytes")
    seconds = parse_duration(time_limit, "--time-limit")
    if save_profile is not None:
        _writable(save_profile, "--save-profile")
    probe_target = probing.open_target(target, direct=direct, endpoint_url=endpoint_url)
    if _leftovers(probe_target, clean):
        return

    from rich.progress import Progress

    show = sys.stderr.isatty() and output is TableFormat.table
    with Progress(transient=True, disable=not show) as bar:
        task = bar.add_task("probing", total=len(sizes) * len(levels))

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=label)

        try:
            report = probing.run_probe(
                probe_target,
                sizes,
                levels,
                objects=objects,
                max_bytes=limit_bytes,
                time_limit_s=seconds,
                direct=direct,
                progress=progress,
            )
        except probing.Interrupted as stop:
            sys.stderr.write(f"kvsize: probe {stop}; removed everything it wrote\n")
            raise typer.Exit(143 if "SIGTERM" in str(stop) else 130) from None
    if save_profile is not None:
        try:
            save_profile.write_text(probing.profile_yaml(report.profile), encoding="utf-8")
        except OSError as error:
            raise KvsizeError(
                f"measured, but cannot write --save-profile {save_profile}: {error.strerror or error} (nothing is left on "
                "the target); give a writable path"
            ) from None
    for note in report.notes:
        sys.stderr.write(f"kvsize: note: {note}\n")
    if output is TableFormat.json:
        sys.stdout.write(json.dumps(report.model_dump(), indent=2) + "\n")
        return
    from rich.table import Table

    from kvsize.units import format_iec

    console = _Output()
    table = Table(title=f"Probe of {report.target}{' (O_DIRECT)' if report.direct else ''}", title_justify="left")
    for header in ("object", "conc", "objects", "write/s", "read/s", "read p50", "read p99"):
        table.add_column(header, justify="right")
    for r in report.results:
        table.add_row(
            format_iec(r.object_bytes),
            str(r.concurrency),
            str(r.objects),
            format_iec(r.write_bytes_per_s),
            format_iec(r.read_bytes_per_s),
            f"{r.read_latency_p50_s * 1000:.2f} ms",
            f"{r.read_latency_p99_s * 1000:.2f} ms",
        )
    console.print(table)
    fitted = report.profile
    latency = "not fitted" if fitted.latency_s is None else f"{fitted.latency_s * 1e6:,.0f} us"
    stream = "not fitted" if fitted.stream_bytes_per_s is None else f"{format_iec(fitted.stream_bytes_per_s)}/s"
    console.print(
        f"Fitted: latency {latency}, stream bandwidth {stream}, aggregate "
        f"{format_iec(fitted.aggregate_bytes_per_s)}/s at up to {fitted.concurrency} in flight.",
        markup=False,
    )
    for note in fitted.notes:
        console.print(note, markup=False)
    if save_profile is not None:
        console.print(f"Profile written to {save_profile}: kvsize MODEL --backend {save_profile}", markup=False)
    console.close()


def _writable(path: Path, flag: str) -> None:
    """Refuse before any work a file path whose folder is missing or not writable (kvsize creates no folders)."""
    import os

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise KvsizeError(f"{flag} {path} is a folder: give a file name, e.g. {path / 'profile.yaml'}")
    if not folder.is_dir():
        raise KvsizeError(f"{flag} {path}: the folder {folder} does not exist; create it or give another path")
    if not os.access(folder, os.W_OK):
        raise KvsizeError(f"{flag} {path}: the folder {folder} is not writable; give another path")


def _leftovers(target: Any, clean: bool) -> bool:
    """Say what earlier killed probes left on the target; with ``clean``, remove those whose process is gone.

    True when the command is done (``--clean``)."""
    from kvsize.storage.leftovers import classify

    found = [left for name in target.leftovers() if (left := classify(name)) is not None]
    if not clean:
        for left in found:
            fix = "run 'kvsize probe TARGET --clean' to remove it" if left.owner_gone else "kvsize leaves it alone"
            sys.stderr.write(f"kvsize: note: {target.name} holds {left.name} from an earlier probe ({left.why}); {fix}\n")
        return False
    removed = 0
    for left in found:
        if not left.owner_gone:
            sys.stderr.write(f"kvsize: note: kept {left.name} ({left.why})\n")
            continue
        problem = target.clean(left.name)
        if problem:
            sys.stderr.write(f"kvsize: note: {problem}\n")
        else:
            removed += 1
            sys.stdout.write(f"removed {left.name} ({left.why})\n")
    if not removed:
        sys.stdout.write(f"nothing to remove on {target.name}\n")
    return True


catalog_app = typer.Typer(help="Manage catalog files of your own.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("add")
def catalog_add(
    models: Annotated[list[str], typer.Argument(help="Hub repos ORG/NAME, config.json files or directories holding one.")],
    catalog: Annotated[Path | None, typer.Option("--catalog", help="The catalog file to write (or KVSIZE_CATALOG).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The entry's name (one MODEL only); default: the repo id or directory name.")
    ] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="No network: Hub models from the cache only.")] = False,
) -> None:
    """Normalise configs and write them as entries of a catalog file; they load back to the same numbers."""
    import os

    from kvsize.model import hub
    from kvsize.model.catalog import CATALOG_ENV, CatalogEntry, dump_catalog, load_catalog_file
    from kvsize.model.config import read_config
    from kvsize.model.normalize import spec_from_config
    from kvsize.model.sources import catalog_entry, config_file

    target = catalog or (Path(os.environ[CATALOG_ENV]) if os.environ.get(CATALOG_ENV) else None)
    if target is None:
        raise KvsizeError(f"catalog add needs a file to write: give --catalog PATH or set {CATALOG_ENV}")
    if name is not None and len(models) != 1:
        raise KvsizeError("--name names one entry: give one MODEL with it")
    entries: dict[str, CatalogEntry] = dict(load_catalog_file(target)) if target.exists() else {}
    added = []
    for model in models:
        path = Path(model).expanduser()
        if path.exists() and revision is None:
            file = config_file(path)
            entry = catalog_entry(read_config(file), source=f"local file {file.resolve()}", origin=str(file))
            entry_name, origin = name or file.resolve().parent.name, str(file)
        elif hub.looks_like_repo_id(model):
            is_offline = offline or hub.offline_from_env()
            raw, defaults, commit, _ = hub.fetch_config(model, revision or "main", offline=is_offline)
            import transformers

            entry = CatalogEntry(
                source=f"{hub.endpoint()}/{model} config.json at commit {commit}",
                revision=commit,
                filled_by=f"transformers {transformers.__version__}",
                config=raw,
                defaults=defaults,
            )
            entry_name, origin = name or model, f"{model}@{commit[:12]}"
        else:
            config_file(path)  # raises the missing-file error
            raise AssertionError("unreachable")
        # Fail closed before writing: the entry must size exactly as the source does.
        spec = spec_from_config(entry.config, name=entry_name, origin=origin, defaults=entry.defaults)
        entries[entry_name] = entry
        added.append(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(dump_catalog(entries, "# kvsize catalog (written by 'kvsize catalog add')\n"), encoding="utf-8")
    temporary.replace(target)
    for spec in added:
        sys.stdout.write(f"added {spec.name} ({spec.model_type}, {spec.num_layers} layers) to {target}\n")


def _emit_sweep(
    sweep: Any, output: OutputFormat, explain: bool, plans: list[Any], extra_warnings: list[str] | None = None
) -> None:
    from kvsize.cli import render

    warnings = [*sweep.warnings, *(extra_warnings or [])]
    for warning in warnings:
        sys.stderr.write(f"kvsize: warning: {warning}\n")
    if output is OutputFormat.json:
        sys.stdout.write(render.render_json(sweep, explain, plans, extra_warnings or []))
    elif output is OutputFormat.csv:
        sys.stdout.write(render.render_csv(sweep, plans))
    elif output is OutputFormat.markdown:
        text = render.render_markdown(sweep, plans)
        if explain:
            text += "\n```\n" + "\n".join(render.explain_lines(sweep, plans)) + "\n```\n"
        sys.stdout.write(text)
    else:
        _print_table(sweep, explain, plans)


def _print_table(sweep: Any, explain: bool, plans: list[Any]) -> None:
    from rich.table import Table

    from kvsize.cli import render

    console = _Output()
    table = Table(title=render.headline(sweep), caption=render.subtitle(sweep), title_justify="left", caption_justify="left")
    for header in render.TABLE_HEADERS:
        table.add_column(header, justify="right", no_wrap=header not in ("tail",))
    for row in sweep.rows:
        table.add_row(*render.table_cells(row))
    console.print(table)
    for note in render.footnotes(sweep):
        console.print(note, markup=False)
    for plan in plans:
        console.print()
        timing = Table(title=render.timing_title(plan), title_justify="left")
        for header in render.TIMING_HEADERS:
            timing.add_column(header, justify="left" if header in ("load", "risks") else "right", no_wrap=header != "risks")
        for cells in render.timing_cells(plan):
            timing.add_row(*cells)
        console.print(timing)
        for line in render.timing_footnotes(plan):
            console.print(line, markup=False)
    if explain:
        console.print()
        for line in render.explain_lines(sweep, plans):
            console.print(line, markup=False)
    console.close()


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
