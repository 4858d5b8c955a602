"""``kvsize MODEL`` (``kvsize size``): parse the flags, call ``kvsize.size``, render."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kvsize.cli import options as o
from kvsize.cli.app import DEFAULT_COMMAND, app, warn
from kvsize.cli.engine_flags import EngineCommand, engine_settings
from kvsize.errors import KvsizeError

if TYPE_CHECKING:
    from kvsize.results import SizeResult


@app.command(DEFAULT_COMMAND, cls=EngineCommand)
def size(
    model: o.Model,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    prompt: o.Prompt = "100k",
    chunk_sizes: o.ChunkSizes = None,
    chunk_size: Annotated[str | None, typer.Option("--chunk-size", help="One chunk size (instead of --chunk-sizes).")] = None,
    kv_dtype: o.KvDtype = o.KvDtypeChoice.auto,
    engine: o.Engine = o.DEFAULT_ENGINE_CHOICE,
    mtp: Annotated[
        bool, typer.Option("--mtp", help="Speculative decoding with the config's num_nextn_predict_layers draft layers.")
    ] = False,
    draft_layers: Annotated[int | None, typer.Option("--draft-layers", help="Speculative decoding with N draft layers.")] = None,
    pp_partition: Annotated[
        str | None, typer.Option("--pp-partition", help="Layers per stage, as VLLM_PP_LAYER_PARTITION.")
    ] = None,
    output: Annotated[o.SizeFormat, typer.Option("--format", "-f", help="Output format.")] = o.SizeFormat.table,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show which config field gave each value and every formula.")
    ] = False,
    catalog: o.Catalog = None,
    revision: o.Revision = None,
    offline: o.Offline = False,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            "--backend",
            "-b",
            help="Time loads on a preset (s3, s3-express, nfs, nfs-100g, pnfs-rdma, nvme, redis, cpu) or a profile YAML.",
            rich_help_panel=o.TIME,
        ),
    ] = None,
    latency: o.Latency = None,
    stream_bandwidth: o.StreamBandwidth = None,
    aggregate_bandwidth: o.AggregateBandwidth = None,
    concurrency: o.Concurrency = None,
    max_requests_per_s: o.MaxRequests = None,
    part_size: o.PartSize = None,
    concurrent_prompts: o.ConcurrentPrompts = 1,
    instances: o.Instances = 1,
    host_cpus: o.HostCpus = None,
    shared_prefix: o.SharedPrefix = None,
    prefill_tps: o.PrefillTps = None,
    gpu: o.Gpu = None,
    gpu_memory: o.GpuMemory = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None,
    kv_cache_memory_bytes: o.KvCacheMemoryBytes = None,
    mfu: o.Mfu = 0.4,
    search: Annotated[
        bool,
        typer.Option(
            "--search", help="Also search every multiple of the vLLM block size between the candidates.", rich_help_panel=o.TIME
        ),
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Draw load time against chunk size into FILE.png or FILE.svg (needs: pip install 'kvsize\\[plot]').",
            rich_help_panel=o.TIME,
        ),
    ] = None,
    emit: o.Emit = None,
    margin: Annotated[
        float, typer.Option("--margin", help="With --emit: the timeout and CPU buffer cover the prediction times this.")
    ] = 2.0,
    vllm_version: o.VllmVersion = "0.33.0",
    emit_dir: o.EmitDir = None,
    emit_bucket: o.EmitBucket = None,
    emit_region: o.EmitRegion = None,
    emit_host: o.EmitHost = None,
    emit_disk_size: o.EmitDiskSize = None,
) -> None:
    """Objects and bytes the offloading engine stores for one prompt, per candidate chunk size; with --backend, load
    time and a pick."""
    from kvsize.calls.args import Workload
    from kvsize.calls.sizing import size as size_call
    from kvsize.engines.base import Serving
    from kvsize.errors import whole
    from kvsize.units import parse_count, parse_int_list

    if draft_layers is not None:
        whole(draft_layers, "draft_layers", 1, 10_000)
    targets = o.emit_options(emit, emit_dir, emit_bucket, emit_region, emit_host, emit_disk_size)

    result = size_call(
        model,
        serving=Serving(
            tp=tp,
            pp=pp,
            kv_dtype=kv_dtype.value,
            draft_layers=draft_layers or 0,
            pp_partition=tuple(parse_int_list(pp_partition, "--pp-partition")) if pp_partition else None,
            vllm_version=vllm_version,
        ),
        engine=engine_settings(engine),
        workload=Workload(
            prompt=parse_count(prompt, "--prompt"),
            concurrent_prompts=concurrent_prompts,
            instances=instances,
            shared_prefix=parse_count(shared_prefix, "--shared-prefix") if shared_prefix else None,
            prefill_tps=prefill_tps,
            mfu=mfu,
            host_cpus=host_cpus,
        ),
        storage=o.storage(
            backend, latency, stream_bandwidth, aggregate_bandwidth, concurrency, max_requests_per_s, part_size, search
        ),
        gpu=o.gpu(gpu, gpu_memory, gpu_memory_utilization, kv_cache_memory_bytes),
        chunk_sizes=parse_int_list(chunk_sizes, "--chunk-sizes") if chunk_sizes is not None else None,
        chunk_size=parse_count(chunk_size, "--chunk-size") if chunk_size is not None else None,
        mtp=mtp,
        explain=explain,
        catalog=catalog,
        revision=revision,
        offline=offline,
    )
    _render(result, output, plot, emit, chunk_size is not None, margin, targets)


def _render(
    result: "SizeResult", output: o.SizeFormat, plot: Path | None, emit: Any, chosen: bool, margin: float, targets: Any = None
) -> None:
    from kvsize.cli import render

    if plot is not None and not result.plans:
        raise KvsizeError("--plot needs a storage backend: give --backend (e.g. s3)")
    if plot is not None:
        from kvsize.cli.plot import plot_plans

        plot_plans(result.sweep, list(result.plans), plot)
    warn(*result.warnings)
    if emit is not None:
        from kvsize.engines.emit import emit_config

        chunk = result.rows[0].chunk_tokens if chosen else None
        text, warnings = emit_config(result, engine=emit.value, chunk_size=chunk, margin=margin, emit_options=targets)
        warn(*warnings)
        sys.stdout.write(text)
    elif output is o.SizeFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(result.model_dump(mode="json")))
    elif output is o.SizeFormat.csv:
        sys.stdout.write(render.render_csv(result.sweep, list(result.plans)))
    elif output is o.SizeFormat.markdown:
        text = render.render_markdown(result.sweep, list(result.plans), result.gpu)
        if result.explain:
            text += "\n```\n" + "\n".join(result.explain) + "\n```\n"
        sys.stdout.write(text)
    else:
        render.print_size(result.sweep, list(result.plans), result.explain, result.gpu)
