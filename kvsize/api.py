"""One call per command: ``size`` here, ``check`` and ``capacity`` in ``kvsize.guard``, ``probe`` in
``kvsize.measure`` (and ``lmcache_config`` for ``--emit``).

Each takes the command's options, named as its long flags in snake_case and typed (counts and
bytes as ``int``, seconds and rates as ``float``), and returns one pydantic result whose
``model_dump(mode="json")`` is the command's ``--format json`` output. The CLI only parses
strings into these arguments and renders the results. Parameter names appear in error messages
in backticks (`tp`), which the CLI turns into its flags (--tp).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.engines.lmcache import (
    DEFAULT_BLOCKING_TIMEOUT_S,
    DEFAULT_CPU_BUFFER_BYTES,
    DEFAULT_S3_MAX_INFLIGHT_REQS,
    EngineOptions,
)
from kvsize.errors import KvsizeError, finite, whole
from kvsize.plan import DEFAULT_CHUNK_SIZES, MAX_CHUNK_CANDIDATES, MAX_TOKENS, plan_sweep
from kvsize.results import SizeResult, size_result
from kvsize.served import engine_choice, offloading_bytes

if TYPE_CHECKING:
    from kvsize.model.spec import ModelSpec
    from kvsize.storage import BackendProfile, StoragePlan, TimeOptions

GIB = 2**30
MAX_PROMPTS = 1_000_000
MAX_BACKENDS = 16
MAX_PARALLEL = 100_000
VLLM_VERSION = "0.33.0"


def resolve_spec(model: str, catalog: Path | str | None, revision: str | None, offline: bool) -> ModelSpec:
    from kvsize.model.sources import resolve_model

    return resolve_model(model, catalog_path=catalog, revision=revision, offline=offline or None)


def candidate_sizes(
    chunk_sizes: Sequence[int] | None, chunk_size: int | None, defaults: tuple[int, ...] | None = DEFAULT_CHUNK_SIZES
) -> tuple[int, ...] | None:
    """The sizes given (``chunk_size`` or ``chunk_sizes``), else ``defaults`` (None: the engine's, for the layout)."""
    if chunk_sizes is not None and chunk_size is not None:
        raise KvsizeError("give `chunk_sizes` or `chunk_size`, not both", field="chunk_sizes")
    if chunk_size is not None:
        whole(chunk_size, "chunk_size", 1, MAX_TOKENS)
    sizes = (chunk_size,) if chunk_size is not None else tuple(chunk_sizes) if chunk_sizes is not None else defaults
    if sizes is not None and len(sizes) > MAX_CHUNK_CANDIDATES:
        raise KvsizeError(
            f"`chunk_sizes` has {len(sizes):,} entries; give at most {MAX_CHUNK_CANDIDATES} "
            "(with a backend, `search` finds the best size between them)",
            field="chunk_sizes",
        )
    return sizes


def _draft_layers(spec: ModelSpec, mtp: bool, draft_layers: int | None) -> int:
    if mtp and draft_layers is not None:
        raise KvsizeError("give `mtp` or `draft_layers`, not both", field="mtp")
    if draft_layers is not None:
        return whole(draft_layers, "draft_layers", 1, 10_000)
    if mtp and not spec.draft_layers:
        raise KvsizeError(f"`mtp`: {spec.name}'s config has no num_nextn_predict_layers; give `draft_layers` N", field="mtp")
    return spec.draft_layers if mtp else 0


def backend_overrides(
    *,
    latency: float | None = None,
    stream_bandwidth: float | None = None,
    aggregate_bandwidth: float | None = None,
    concurrency: int | None = None,
    max_requests_per_s: float | None = None,
    part_size: int | None = None,
) -> dict[str, Any]:
    """Figures given explicitly (seconds, bytes/s, a count, requests/s, bytes), as ``BackendProfile`` fields."""
    out: dict[str, Any] = {}
    if latency is not None:
        out["latency_s"] = finite(latency, "`latency`", low=0, high=3600)
    for name, field, value in (
        ("stream_bandwidth", "stream_bytes_per_s", stream_bandwidth),
        ("aggregate_bandwidth", "aggregate_bytes_per_s", aggregate_bandwidth),
        ("max_requests_per_s", "max_requests_per_s", max_requests_per_s),
    ):
        if value is not None:
            out[field] = finite(value, f"`{name}`", low=0, low_open=True, high=1e18)
    if concurrency is not None:
        out["concurrency"] = whole(concurrency, "concurrency", 1, MAX_PARALLEL)
    if part_size is not None:
        out["part_size_bytes"] = whole(part_size, "part_size", 1, 2**40)
    return out


def prefill_rate(
    spec: ModelSpec, gpus: int, prompt_tokens: int, prefill_tps: float | None, gpu: str, mfu: float
) -> tuple[float | None, str | None, list[str]]:
    """Prefill tokens/s (given, or estimated from the config), the sentence saying which, and any warning."""
    from kvsize.storage import estimate_prefill

    finite(mfu, "`mfu`", low=0, low_open=True, high=1)
    if prefill_tps is not None:
        finite(prefill_tps, "`prefill_tps`", low=1, high=1e12)
        return prefill_tps, f"prefill {prefill_tps:,.0f} tokens/s (given with --prefill-tps)", []
    attention = (spec.kv_layers, spec.num_attention_heads, spec.head_size)
    estimate = estimate_prefill(spec.active_params, attention, gpus, gpu.lower(), mfu, prompt_tokens)
    if estimate is None:
        warning = (
            f"no recommendation: {spec.name}'s config does not give a parameter count kvsize can derive, so the "
            "recompute cost is unknown; give --prefill-tps (measured prefill tokens/s)"
        )
        return None, None, [warning]
    return estimate.tokens_per_s, estimate.assumption, []


def backend_profiles(backend: Sequence[str | BackendProfile] | None, overrides: dict[str, Any]) -> list[BackendProfile]:
    from kvsize.storage import BackendProfile, resolve_backend

    names: list[str | BackendProfile | None] = list(backend) if backend else [None]
    if len(names) > MAX_BACKENDS:
        raise KvsizeError(f"`backend` is given {len(names)} times; compare at most {MAX_BACKENDS} in one run", field="backend")
    return [name if isinstance(name, BackendProfile) else resolve_backend(name, overrides) for name in names]


def size(
    model: str,
    *,
    tp: int = 1,
    pp: int = 1,
    prompt: int = 100_000,
    chunk_sizes: Sequence[int] | None = None,
    chunk_size: int | None = None,
    kv_dtype: str = "auto",
    save_unfull_chunk: bool = False,
    layerwise: bool = False,
    connector: str | None = None,
    engine: str = "lmcache",
    tier: str | None = None,
    gpu_block_size: int | None = None,
    kv_offloading_size: float | None = None,
    sglang_backend: str | None = None,
    kvbm_engine: str | None = None,
    kvbm_tier: str | None = None,
    host_cpus: int | None = None,
    mtp: bool = False,
    draft_layers: int | None = None,
    pp_partition: Sequence[int] | None = None,
    explain: bool = False,
    catalog: Path | str | None = None,
    revision: str | None = None,
    offline: bool = False,
    backend: Sequence[str | BackendProfile] | None = None,
    latency: float | None = None,
    stream_bandwidth: float | None = None,
    aggregate_bandwidth: float | None = None,
    concurrency: int | None = None,
    max_requests_per_s: float | None = None,
    part_size: int | None = None,
    concurrent_prompts: int = 1,
    instances: int = 1,
    blocking_timeout: float = DEFAULT_BLOCKING_TIMEOUT_S,
    cpu_buffer: int = DEFAULT_CPU_BUFFER_BYTES,
    pinned_memory: int | None = None,
    shared_prefix: int | None = None,
    prefill_tps: float | None = None,
    gpu: str = "h100",
    mfu: float = 0.4,
    search: bool = False,
    vllm_version: str = VLLM_VERSION,
) -> SizeResult:
    """What one prompt stores at each candidate chunk size; with ``backend``, its load time and a pick."""
    if backend is not None and (isinstance(backend, str) or not isinstance(backend, Sequence)):
        backend = [backend]  # one backend, not a sequence of its letters
    choice = engine_choice(
        engine,
        connector=connector,
        tier=tier,
        gpu_block_size=gpu_block_size,
        layerwise=layerwise or None,
        save_unfull_chunk=save_unfull_chunk or None,
        sglang_backend=sglang_backend,
        kvbm_engine=kvbm_engine,
        kvbm_tier=kvbm_tier,
    )
    if choice.get("connector") is None and engine == "lmcache":
        choice["connector"] = "s3"
    choice = {key: value for key, value in choice.items() if value is not None}
    sizes = candidate_sizes(chunk_sizes, chunk_size, None)
    overrides = backend_overrides(
        latency=latency,
        stream_bandwidth=stream_bandwidth,
        aggregate_bandwidth=aggregate_bandwidth,
        concurrency=concurrency,
        max_requests_per_s=max_requests_per_s,
        part_size=part_size,
    )
    timed = bool(backend) or bool(overrides)
    if search and not timed:
        raise KvsizeError("`search` needs a storage backend: give `backend` (e.g. s3)", field="search")
    spec = resolve_spec(model, catalog, revision, offline)
    options = EngineOptions(
        tp=tp,
        pp=pp,
        kv_dtype=kv_dtype,
        **choice,
        draft_layers=_draft_layers(spec, mtp, draft_layers),
        pp_partition=tuple(pp_partition) if pp_partition else None,
        vllm_version=vllm_version,
    )
    cpu_tier = offloading_bytes(kv_offloading_size, engine)
    sweep = plan_sweep(spec, options, prompt, sizes)
    if not timed:
        return size_result(sweep, [], list(sweep.warnings), _explain(sweep, [], explain))
    whole(concurrent_prompts, "concurrent_prompts", 1, MAX_PROMPTS)
    whole(instances, "instances", 1, MAX_PROMPTS)
    rate, assumption, warnings = prefill_rate(spec, tp * pp, prompt, prefill_tps, gpu, mfu)
    time_options = time_options_for(
        concurrent_prompts, instances, blocking_timeout, cpu_buffer, pinned_memory, shared_prefix, rate
    ).model_copy(update={"offload_cpu_bytes": cpu_tier, "host_cpus": cpus(host_cpus)})
    profiles = backend_profiles(backend, overrides)
    plans = _plans(sweep, profiles, time_options, assumption, search, warnings)
    sweep = plans[0][0]
    warnings += connector_mismatches(backend, sweep.layout.connector.name, engine)
    timed_plans = [plan for _, plan in plans]
    return size_result(sweep, timed_plans, [*sweep.warnings, *warnings], _explain(sweep, timed_plans, explain))


def _explain(sweep: Any, plans: list[StoragePlan], explain: bool) -> list[str] | None:
    if not explain:
        return None
    from kvsize.explain import explain_lines

    return explain_lines(sweep, plans)


def cpus(host_cpus: int | None) -> int | None:
    """``host_cpus`` checked (the serving host's CPUs), or None."""
    return whole(host_cpus, "host_cpus", 1, 100_000) if host_cpus is not None else None


def time_options_for(
    concurrent_prompts: int,
    instances: int,
    blocking_timeout: float,
    cpu_buffer: int,
    pinned_memory: int | None,
    shared_prefix: int | None,
    rate: float | None,
    s3_max_inflight_reqs: int = DEFAULT_S3_MAX_INFLIGHT_REQS,
) -> TimeOptions:
    from kvsize.storage import TimeOptions

    return TimeOptions(
        concurrent_prompts=concurrent_prompts,
        instances=instances,
        blocking_timeout_s=finite(blocking_timeout, "`blocking_timeout`", low=0, low_open=True, high=1e7),
        cpu_buffer_bytes=whole(cpu_buffer, "cpu_buffer", 1, 2**60),
        pinned_memory_bytes=whole(pinned_memory, "pinned_memory", 1, 2**60) if pinned_memory is not None else None,
        shared_prefix_tokens=whole(shared_prefix, "shared_prefix", 1, 10**9) if shared_prefix is not None else None,
        prefill_tokens_per_s=rate,
        s3_max_inflight_reqs=s3_max_inflight_reqs,
    )


def _plans(
    sweep: Any, profiles: list[BackendProfile], options: TimeOptions, assumption: str | None, search: bool, notes: list[str]
) -> list[tuple[Any, StoragePlan]]:
    """Every backend's plan; with ``search``, the sweep gains the best multiple of the vLLM block between candidates."""
    from kvsize.storage import plan_storage, search_chunk

    if search:
        sizes = [row.chunk_tokens for row in sweep.rows]
        # The GPU block of the vLLM family; under LMCache vLLM's default block (MLA backends 64 or more).
        block = sweep.layout.block_tokens or (64 if sweep.spec.use_mla else 16)
        low, high = min(sizes), max(sizes)
        found = {search_chunk(sweep.layout, sweep.prompt_tokens, p, options, low, high, block, notes=notes) for p in profiles}
        extra = tuple(chunk for chunk in found if chunk is not None and chunk not in sizes)
        if extra:
            sweep = plan_sweep(sweep.spec, sweep.layout.options, sweep.prompt_tokens, (*sizes, *extra))
    return [(sweep, plan_storage(sweep.rows, sweep.layout, p, options, assumption)) for p in profiles]


def connector_mismatches(backend: Sequence[str | BackendProfile] | None, connector: str, engine: str = "lmcache") -> list[str]:
    from kvsize.storage import connector_mismatch

    names = [name for name in backend or [] if isinstance(name, str)]
    return [warning for name in names if (warning := connector_mismatch(name, connector, engine))]


def lmcache_config(result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0) -> tuple[str, list[str]]:
    """The LMCache YAML (with its ``LMCACHE_*`` form) for the recommended chunk of a ``size`` result, or ``chunk_size``
    (which must be one of the result's rows), and its warnings. Refuses when recomputing beats loading."""
    from kvsize.emit import emit_chunk, settings_for

    finite(margin, "`margin`", low=1, high=1000)
    chunk = emit_chunk(result, chunk_size, "lmcache")
    return settings_for(result.sweep, result.plans[0] if result.plans else None, chunk, margin)


def vllm_config(result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0) -> tuple[str, list[str]]:
    """The ``vllm serve`` flags (``--kv-transfer-config``, ``--kv-offloading-size``) for vLLM native offloading at the
    recommended chunk of a ``size`` result, or ``chunk_size``; and its warnings."""
    from kvsize.emit import stack_settings

    return stack_settings(result, "vllm", chunk_size, margin)


def sglang_config(result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0) -> tuple[str, list[str]]:
    """The SGLang server flags (``--page-size``, ``--enable-hierarchical-cache``, the backend) for a ``size`` result."""
    from kvsize.emit import stack_settings

    return stack_settings(result, "sglang", chunk_size, margin)


def kvbm_config(result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0) -> tuple[str, list[str]]:
    """The ``DYN_KVBM_*`` environment (and the engine's block flag) for a ``size`` result."""
    from kvsize.emit import stack_settings

    return stack_settings(result, "kvbm", chunk_size, margin)


def deployment(
    lmcache_config_file: Path | str | None,
    environ: Mapping[str, str] | None,
    chunk_size: int | None,
    options: dict[str, Any],
) -> tuple[Any, int | None, EngineOptions]:
    """The deployment's LMCache settings (file + ``LMCACHE_*`` environment), with explicit arguments winning; for
    another engine its own options, and no chunk when none is given (the engine's first default applies)."""
    from kvsize.engines.lmcache_settings import read_settings

    if chunk_size is not None:
        whole(chunk_size, "chunk_size", 1, MAX_TOKENS)
    layerwise, unfull, connector = options.pop("layerwise"), options.pop("save_unfull_chunk"), options.pop("connector")
    name = options.pop("engine")
    served = {key: options.pop(key) for key in ("tier", "gpu_block_size", "sglang_backend", "kvbm_engine", "kvbm_tier")}
    choice = engine_choice(name, connector=connector, layerwise=layerwise, save_unfull_chunk=unfull, **served)
    if name != "lmcache":
        if lmcache_config_file is not None:
            raise KvsizeError(f"`lmcache_config` is LMCache's: drop it with `engine` {name}", field="lmcache_config")
        return read_settings(None, {}), chunk_size, EngineOptions(**options, **choice)
    settings = read_settings(lmcache_config_file, environ)
    engine = EngineOptions(
        **options,
        connector=connector or settings.connector or "s3",
        layerwise=settings.use_layerwise if layerwise is None else layerwise,
        save_unfull_chunk=settings.save_unfull_chunk if unfull is None else unfull,
    )
    return settings, chunk_size if chunk_size is not None else settings.chunk_size, engine
