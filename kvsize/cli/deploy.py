"""``kvsize check`` and ``kvsize capacity``: parse the flags, call ``kvsize.check`` / ``kvsize.capacity``, render."""

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from kvsize.cli import options as o
from kvsize.cli.app import app, warn
from kvsize.cli.engine_flags import EngineCommand, engine_settings

if TYPE_CHECKING:
    from kvsize.storage.capacity import CapacityReport
    from kvsize.storage.limits import CheckReport


@app.command("check", cls=EngineCommand)
def check(
    model: o.Model,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    prompt: o.Prompt = "100k",
    chunk_size: o.DeployChunk = None,
    kv_dtype: o.KvDtype = o.KvDtypeChoice.auto,
    lmcache_config: o.LmcacheConfig = None,
    engine: o.Engine = o.DEFAULT_ENGINE_CHOICE,
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
    latency: o.Latency = None,
    stream_bandwidth: o.StreamBandwidth = None,
    aggregate_bandwidth: o.AggregateBandwidth = None,
    concurrency: o.Concurrency = None,
    max_requests_per_s: o.MaxRequests = None,
    part_size: o.PartSize = None,
    concurrent_prompts: o.ConcurrentPrompts = 1,
    instances: o.Instances = 1,
    host_cpus: o.HostCpus = None,
    prefill_tps: o.PrefillTps = None,
    gpu: o.PrefillGpu = "h100",
    mfu: o.Mfu = 0.4,
    output: Annotated[o.ReportFormat, typer.Option("--format", "-f", help="Output format.")] = o.ReportFormat.table,
    catalog: o.Catalog = None,
    revision: o.Revision = None,
    offline: o.Offline = False,
    vllm_version: o.VllmVersion = "0.33.0",
) -> None:
    """Exit 0 when the serving config keeps every limit, 1 with the violated ones, 2 for bad input."""
    from kvsize.calls.args import Workload
    from kvsize.calls.guard import check as check_call
    from kvsize.cli.reports import print_check
    from kvsize.engines.base import Serving
    from kvsize.units import parse_count, parse_duration, parse_size

    report = check_call(
        model,
        serving=Serving(tp=tp, pp=pp, kv_dtype=kv_dtype.value, vllm_version=vllm_version),
        engine=engine_settings(engine),
        workload=Workload(
            prompt=parse_count(prompt, "--prompt"),
            concurrent_prompts=concurrent_prompts,
            instances=instances,
            prefill_tps=prefill_tps,
            gpu=gpu,
            mfu=mfu,
            host_cpus=host_cpus,
        ),
        storage=o.storage(
            [backend] if backend else None,
            latency,
            stream_bandwidth,
            aggregate_bandwidth,
            concurrency,
            max_requests_per_s,
            part_size,
        ),
        chunk_size=parse_count(chunk_size, "--chunk-size") if chunk_size is not None else None,
        max_objects=max_objects,
        max_object_size=parse_size(max_object_size, "--max-object-size") if max_object_size else None,
        max_total_bytes=parse_size(max_total_bytes, "--max-total-bytes") if max_total_bytes else None,
        max_load_seconds=parse_duration(max_load_seconds, "--max-load-seconds") if max_load_seconds else None,
        lmcache_config=lmcache_config,
        catalog=catalog,
        revision=revision,
        offline=offline,
    )
    warn(*report.warnings)
    _write(report, output, print_check)
    if not report.ok:
        raise typer.Exit(1)


@app.command("capacity", cls=EngineCommand)
def capacity(
    model: o.Model,
    tp: o.Tp = 1,
    pp: o.Pp = 1,
    prompt: o.Prompt = "100k",
    chunk_size: o.DeployChunk = None,
    storage_size: Annotated[
        str | None, typer.Option("--storage", help="Storage to fill, e.g. 10TiB: how many prompts fit.")
    ] = None,
    prompts: Annotated[int | None, typer.Option("--prompts", help="Prompts to keep: the storage they need.")] = None,
    shared_prefix: Annotated[
        str | None, typer.Option("--shared-prefix", help="Tokens every prompt shares (stored once).")
    ] = None,
    kv_dtype: o.KvDtype = o.KvDtypeChoice.auto,
    lmcache_config: o.LmcacheConfig = None,
    engine: o.Engine = o.DEFAULT_ENGINE_CHOICE,
    output: Annotated[
        o.ReportFormat, typer.Option("--format", "-f", help="Output format (markdown: a section for a capacity-planning doc).")
    ] = o.ReportFormat.table,
    catalog: o.Catalog = None,
    revision: o.Revision = None,
    offline: o.Offline = False,
    vllm_version: o.VllmVersion = "0.33.0",
) -> None:
    """How many prompts fit in a storage tier (--storage), or the storage N prompts need (--prompts)."""
    from kvsize.calls.args import Workload
    from kvsize.calls.guard import capacity as capacity_call
    from kvsize.cli.reports import print_capacity
    from kvsize.engines.base import Serving
    from kvsize.units import parse_count, parse_size

    report = capacity_call(
        model,
        serving=Serving(tp=tp, pp=pp, kv_dtype=kv_dtype.value, vllm_version=vllm_version),
        engine=engine_settings(engine),
        workload=Workload(
            prompt=parse_count(prompt, "--prompt"),
            shared_prefix=parse_count(shared_prefix, "--shared-prefix") if shared_prefix else None,
        ),
        chunk_size=parse_count(chunk_size, "--chunk-size") if chunk_size is not None else None,
        storage=parse_size(storage_size, "--storage") if storage_size else None,
        prompts=prompts,
        lmcache_config=lmcache_config,
        catalog=catalog,
        revision=revision,
        offline=offline,
    )
    warn(*report.warnings)
    _write(report, output, print_capacity)


def _write(report: "CheckReport | CapacityReport", output: o.ReportFormat, printer: Callable[..., None]) -> None:
    if output is o.ReportFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(report.model_dump(mode="json")))
    else:
        printer(report, markdown=output is o.ReportFormat.markdown)
