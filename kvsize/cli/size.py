"""``kvsize MODEL`` (``kvsize size``): parse the flags, call ``kvsize.size``, render."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kvsize.cli import options as o
from kvsize.cli.app import DEFAULT_COMMAND, app, warn
from kvsize.errors import KvsizeError

if TYPE_CHECKING:
    from kvsize.results import SizeResult


@app.command(DEFAULT_COMMAND)
def size(
    model: o.Model,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    prompt: o.Prompt = "100k",
    chunk_sizes: o.ChunkSizes = None,
    chunk_size: Annotated[str | None, typer.Option("--chunk-size", help="One chunk size (instead of --chunk-sizes).")] = None,
    kv_dtype: o.KvDtype = o.KvDtypeChoice.auto,
    save_unfull_chunk: Annotated[
        bool, typer.Option("--save-unfull-chunk", help="Store the tail past the last whole chunk (LMCache <= 0.3.10 default).")
    ] = False,
    layerwise: Annotated[
        bool, typer.Option("--layerwise", help="LMCache use_layerwise: one object per layer per chunk.")
    ] = False,
    connector: Annotated[str | None, typer.Option("--connector", help=o.CONNECTOR_HELP)] = None,
    engine: o.Engine = o.EngineChoice.lmcache,
    tier: o.Tier = None,
    gpu_block_size: o.GpuBlockSize = None,
    sglang_backend: o.SglangBackend = None,
    kvbm_engine: o.KvbmEngine = None,
    kvbm_tier: o.KvbmTier = None,
    kv_offloading_size: o.KvOffloadingSize = None,
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
    blocking_timeout: Annotated[
        str, typer.Option("--blocking-timeout", help="LMCache blocking_timeout_secs.", rich_help_panel=o.TIME)
    ] = "10s",
    cpu_buffer: Annotated[
        str, typer.Option("--cpu-buffer", help="LMCache max_local_cpu_size per worker.", rich_help_panel=o.TIME)
    ] = "5GiB",
    pinned_memory: o.PinnedMemory = None,
    shared_prefix: o.SharedPrefix = None,
    prefill_tps: o.PrefillTps = None,
    gpu: o.Gpu = "h100",
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
    emit: Annotated[
        o.EmitFormat | None,
        typer.Option(
            "--emit",
            help="Print the engine's settings for the recommended or --chunk-size chunk: lmcache (YAML, with the "
            "LMCACHE_* form), vllm (vllm serve flags), sglang (server flags), kvbm (DYN_KVBM_* environment).",
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option("--margin", help="With --emit: the timeout and CPU buffer cover the prediction times this.")
    ] = 2.0,
    vllm_version: o.VllmVersion = "0.33.0",
) -> None:
    """Objects and bytes the offloading engine stores for one prompt, per candidate chunk size; with --backend, load
    time and a pick."""
    from kvsize import api
    from kvsize.units import parse_count, parse_duration, parse_int_list, parse_size

    result = api.size(
        model,
        tp=tp,
        pp=pp,
        prompt=parse_count(prompt, "--prompt"),
        chunk_sizes=parse_int_list(chunk_sizes, "--chunk-sizes") if chunk_sizes is not None else None,
        chunk_size=parse_count(chunk_size, "--chunk-size") if chunk_size is not None else None,
        kv_dtype=kv_dtype.value,
        save_unfull_chunk=save_unfull_chunk,
        layerwise=layerwise,
        connector=connector,
        **o.engine_flags(engine, tier, gpu_block_size, sglang_backend, kvbm_engine, kvbm_tier),
        kv_offloading_size=kv_offloading_size,
        mtp=mtp,
        draft_layers=draft_layers,
        pp_partition=parse_int_list(pp_partition, "--pp-partition") if pp_partition else None,
        explain=explain,
        catalog=catalog,
        revision=revision,
        offline=offline,
        backend=backend,
        **o.figures(latency, stream_bandwidth, aggregate_bandwidth, concurrency, max_requests_per_s, part_size),
        concurrent_prompts=concurrent_prompts,
        instances=instances,
        host_cpus=host_cpus,
        blocking_timeout=parse_duration(blocking_timeout, "--blocking-timeout"),
        cpu_buffer=parse_size(cpu_buffer, "--cpu-buffer"),
        pinned_memory=parse_size(pinned_memory, "--pinned-memory") if pinned_memory else None,
        shared_prefix=parse_count(shared_prefix, "--shared-prefix") if shared_prefix else None,
        prefill_tps=prefill_tps,
        gpu=gpu,
        mfu=mfu,
        search=search,
        vllm_version=vllm_version,
    )
    _render(result, output, plot, emit, chunk_size is not None, margin)


def _render(
    result: "SizeResult", output: o.SizeFormat, plot: Path | None, emit: o.EmitFormat | None, chosen: bool, margin: float
) -> None:
    from kvsize import api
    from kvsize.cli import render

    if plot is not None and not result.plans:
        raise KvsizeError("--plot needs a storage backend: give --backend (e.g. s3)")
    if plot is not None:
        from kvsize.cli.plot import plot_plans

        plot_plans(result.sweep, list(result.plans), plot)
    warn(*result.warnings)
    if emit is not None:
        emitter = {
            o.EmitFormat.lmcache: api.lmcache_config,
            o.EmitFormat.vllm: api.vllm_config,
            o.EmitFormat.sglang: api.sglang_config,
            o.EmitFormat.kvbm: api.kvbm_config,
        }[emit]
        text, warnings = emitter(result, chunk_size=result.rows[0].chunk_tokens if chosen else None, margin=margin)
        warn(*warnings)
        sys.stdout.write(text)
    elif output is o.SizeFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(result.model_dump(mode="json")))
    elif output is o.SizeFormat.csv:
        sys.stdout.write(render.render_csv(result.sweep, list(result.plans)))
    elif output is o.SizeFormat.markdown:
        text = render.render_markdown(result.sweep, list(result.plans))
        if result.explain:
            text += "\n```\n" + "\n".join(result.explain) + "\n```\n"
        sys.stdout.write(text)
    else:
        render.print_size(result.sweep, list(result.plans), result.explain)
