"""The deployment calls: ``check`` (the CI guard) and ``capacity`` (capacity planning).

Both read the deployment's own LMCache settings (a file, ``LMCACHE_CONFIG_FILE``, the
``LMCACHE_*`` environment, exactly as LMCache 0.5.6 parses them); explicit arguments win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.api import (
    MAX_PROMPTS,
    VLLM_VERSION,
    backend_overrides,
    backend_profiles,
    connector_mismatches,
    cpus,
    deployment,
    prefill_rate,
    resolve_spec,
    time_options_for,
)
from kvsize.errors import KvsizeError, finite, whole
from kvsize.plan import MAX_TOKENS, Sweep, plan_sweep
from kvsize.served import offloading_bytes

if TYPE_CHECKING:
    from kvsize.storage import RowTiming, TimeOptions
    from kvsize.storage.capacity import CapacityReport
    from kvsize.storage.limits import CheckReport


def check(
    model: str,
    *,
    tp: int = 1,
    pp: int = 1,
    prompt: int = 100_000,
    chunk_size: int | None = None,
    kv_dtype: str = "auto",
    connector: str | None = None,
    save_unfull_chunk: bool | None = None,
    layerwise: bool | None = None,
    lmcache_config: Path | str | None = None,
    engine: str = "lmcache",
    tier: str | None = None,
    gpu_block_size: int | None = None,
    kv_offloading_size: float | None = None,
    sglang_backend: str | None = None,
    kvbm_engine: str | None = None,
    kvbm_tier: str | None = None,
    host_cpus: int | None = None,
    max_objects: int | None = None,
    max_object_size: int | None = None,
    max_total_bytes: int | None = None,
    max_load_seconds: float | None = None,
    backend: str | None = None,
    latency: float | None = None,
    stream_bandwidth: float | None = None,
    aggregate_bandwidth: float | None = None,
    concurrency: int | None = None,
    max_requests_per_s: float | None = None,
    part_size: int | None = None,
    concurrent_prompts: int = 1,
    instances: int = 1,
    prefill_tps: float | None = None,
    gpu: str = "h100",
    mfu: float = 0.4,
    blocking_timeout: float | None = None,
    cpu_buffer: int | None = None,
    pinned_memory: int | None = None,
    catalog: Path | str | None = None,
    revision: str | None = None,
    offline: bool = False,
    vllm_version: str = VLLM_VERSION,
    environ: Mapping[str, str] | None = None,
) -> CheckReport:
    """Does one serving configuration keep every limit? ``ok`` is the verdict (``kvsize check`` exits 0 or 1)."""
    from kvsize.storage.limits import Limits, check_row

    options = {"tp": tp, "pp": pp, "kv_dtype": kv_dtype, "vllm_version": vllm_version}
    options |= {"connector": connector, "layerwise": layerwise, "save_unfull_chunk": save_unfull_chunk}
    options |= {"engine": engine, "tier": tier, "gpu_block_size": gpu_block_size, "sglang_backend": sglang_backend}
    options |= {"kvbm_engine": kvbm_engine, "kvbm_tier": kvbm_tier}
    settings, chunk, served = deployment(lmcache_config, environ, chunk_size, options)
    limits = Limits(
        max_objects=whole(max_objects, "max_objects", 1, 10**15) if max_objects is not None else None,
        max_object_bytes=max_object_size,
        max_total_bytes=max_total_bytes,
        max_load_seconds=finite(max_load_seconds, "`max_load_seconds`", low=0) if max_load_seconds is not None else None,
    )
    overrides = backend_overrides(
        latency=latency,
        stream_bandwidth=stream_bandwidth,
        aggregate_bandwidth=aggregate_bandwidth,
        concurrency=concurrency,
        max_requests_per_s=max_requests_per_s,
        part_size=part_size,
    )
    timed = backend is not None or bool(overrides)
    if limits.max_load_seconds is not None and not timed:
        raise KvsizeError("`max_load_seconds` needs a storage backend: give `backend` (e.g. s3)", field="max_load_seconds")
    whole(concurrent_prompts, "concurrent_prompts", 1, MAX_PROMPTS)
    whole(instances, "instances", 1, MAX_PROMPTS)
    timeout = blocking_timeout if blocking_timeout is not None else settings.blocking_timeout_secs
    buffer = cpu_buffer if cpu_buffer is not None else settings.max_local_cpu_size_bytes
    time_options = time_options_for(
        concurrent_prompts, instances, timeout, buffer, pinned_memory, None, None, settings.s3_max_inflight_reqs
    ).model_copy(update={"offload_cpu_bytes": offloading_bytes(kv_offloading_size, engine), "host_cpus": cpus(host_cpus)})
    spec = resolve_spec(model, catalog, revision, offline)
    sweep = plan_sweep(spec, served, prompt, (chunk,) if chunk is not None else None)
    timed_part = _Timed(warnings=[*sweep.warnings, *settings.warnings])
    if timed:
        rate, _, missing = prefill_rate(spec, tp * pp, prompt, prefill_tps, gpu, mfu)
        timed_part = _timed(sweep, backend, overrides, time_options.model_copy(update={"prefill_tokens_per_s": rate}))
        timed_part.warnings[:0] = [*sweep.warnings, *settings.warnings]
        timed_part.warnings += [w.replace("no recommendation", "no recompute comparison") for w in missing]
        time_options = timed_part.options or time_options
    result = check_row(
        sweep.rows[0],
        sweep.layout,
        limits,
        time_options,
        timed_part.timing,
        full_recompute_s=timed_part.full_recompute_s,
        remote_url_problem=settings.remote_url_problem,
    )
    return _report(result, sweep, limits, time_options, settings, timed_part, backend, instances)


@dataclass
class _Timed:
    """The timed half of a check: the row's timing, the full-recompute time, and what to warn about."""

    timing: RowTiming | None = None
    full_recompute_s: float | None = None
    options: TimeOptions | None = None
    warnings: list[str] = field(default_factory=list)


def _timed(sweep: Sweep, backend: str | None, overrides: dict[str, Any], options: TimeOptions) -> _Timed:
    from kvsize.storage import full_recompute_seconds, time_row

    backends = [backend] if backend else None
    timing = time_row(sweep.rows[0], sweep.layout, backend_profiles(backends, overrides)[0], options)
    return _Timed(
        timing=timing,
        full_recompute_s=full_recompute_seconds(sweep.prompt_tokens, options),
        options=options,
        warnings=connector_mismatches(backends, sweep.layout.connector.name, sweep.layout.engine),
    )


def _report(
    result: Any,
    sweep: Sweep,
    limits: Any,
    options: TimeOptions,
    settings: Any,
    timed: _Timed,
    backend: str | None,
    instances: int,
) -> CheckReport:
    from kvsize.results import RowView, engine_options
    from kvsize.storage.limits import CheckReport
    from kvsize.storage.limits import EngineSettingsView as Engine

    layout = sweep.layout
    return CheckReport(
        ok=result.ok,
        violations=list(result.violations),
        model=sweep.spec.name,
        tp=layout.options.tp,
        pp=layout.options.pp,
        prompt_tokens=sweep.prompt_tokens,
        chunk_tokens=sweep.rows[0].chunk_tokens,
        connector=layout.connector.name,
        kv_dtype=layout.kv_dtype,
        limits=limits.model_dump(),
        engine=Engine(
            blocking_timeout_secs=options.blocking_timeout_s,
            max_local_cpu_size_bytes=options.cpu_buffer_bytes,
            pinned_memory_bytes=options.pinned_memory_bytes,
            save_unfull_chunk=layout.options.save_unfull_chunk,
            use_layerwise=layout.options.layerwise,
        ),
        lmcache_sources=settings.sources,
        row=RowView.of(sweep.rows[0]),
        load_seconds=timed.timing.load_seconds if timed.timing else None,
        backend=backend if timed.timing else None,
        full_recompute_seconds=timed.full_recompute_s,
        instances=instances,
        warnings=timed.warnings,
        offload_engine=layout.engine,
        engine_options=engine_options(layout),
        sweep=sweep,
    )


def capacity(
    model: str,
    *,
    tp: int = 1,
    pp: int = 1,
    prompt: int = 100_000,
    chunk_size: int | None = None,
    storage: int | None = None,
    prompts: int | None = None,
    shared_prefix: int | None = None,
    kv_dtype: str = "auto",
    connector: str | None = None,
    save_unfull_chunk: bool | None = None,
    layerwise: bool | None = None,
    lmcache_config: Path | str | None = None,
    engine: str = "lmcache",
    tier: str | None = None,
    gpu_block_size: int | None = None,
    sglang_backend: str | None = None,
    kvbm_engine: str | None = None,
    kvbm_tier: str | None = None,
    catalog: Path | str | None = None,
    revision: str | None = None,
    offline: bool = False,
    vllm_version: str = VLLM_VERSION,
    environ: Mapping[str, str] | None = None,
) -> CapacityReport:
    """How many prompts fit in ``storage`` bytes, or the storage ``prompts`` prompts need (``kvsize capacity``)."""
    from kvsize.explain import assumptions
    from kvsize.results import sweep_fields
    from kvsize.storage.capacity import CapacityReport, plan_capacity

    if prompts is not None:
        whole(prompts, "prompts", 1, 10**12)
    options = {"tp": tp, "pp": pp, "kv_dtype": kv_dtype, "vllm_version": vllm_version}
    options |= {"connector": connector, "layerwise": layerwise, "save_unfull_chunk": save_unfull_chunk}
    options |= {"engine": engine, "tier": tier, "gpu_block_size": gpu_block_size, "sglang_backend": sglang_backend}
    options |= {"kvbm_engine": kvbm_engine, "kvbm_tier": kvbm_tier}
    _, chunk, served = deployment(lmcache_config, environ, chunk_size, options)
    whole(prompt, "prompt", 1, MAX_TOKENS)
    shared = whole(shared_prefix, "shared_prefix", 1, 10**9) if shared_prefix is not None else 0
    if shared > prompt:
        raise KvsizeError(f"`shared_prefix` {shared:,} is longer than the {prompt:,}-token prompt", field="shared_prefix")
    spec = resolve_spec(model, catalog, revision, offline)
    sweep = plan_sweep(spec, served, prompt, (chunk,) if chunk is not None else None)
    plan = plan_capacity(sweep.rows[0], sweep.layout, storage_bytes=storage, prompts=prompts, shared_prefix_tokens=shared)
    return CapacityReport(**sweep_fields(sweep, list(sweep.warnings)), capacity=plan, assumptions=assumptions(sweep))
