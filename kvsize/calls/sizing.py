"""``kvsize.size``: what one prompt stores at each candidate chunk size; with storage, its load time and a pick.

Each argument group is typed (``kvsize.Serving``, the engine's settings, ``kvsize.Workload``,
``kvsize.Storage``); the result's ``model_dump(mode="json")`` is ``kvsize MODEL --format json``.
Parameter names appear in error messages in backticks (`tp`), which the CLI turns into its flags (--tp).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.calls.args import Storage, Workload, draft_layers, grouped, resolve_spec
from kvsize.calls.timed import backend_profiles, mismatches, prefill_rate, time_options
from kvsize.engines.base import EngineOptions, EngineSettings, Serving
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError, shown, whole
from kvsize.gpu import Gpu
from kvsize.plan import MAX_CHUNK_CANDIDATES, MAX_TOKENS, Sweep, plan_sweep
from kvsize.results import SizeResult, size_result

if TYPE_CHECKING:
    from kvsize.calls.gpu_memory import GpuReport
    from kvsize.storage import BackendProfile, StoragePlan, TimeOptions


def candidate_sizes(chunk_sizes: Sequence[int] | None, chunk_size: int | None) -> tuple[int, ...] | None:
    """The sizes given (``chunk_size`` or ``chunk_sizes``), else None (the engine's own, for the layout)."""
    if chunk_sizes is not None and chunk_size is not None:
        raise KvsizeError("give `chunk_sizes` or `chunk_size`, not both", field="chunk_sizes")
    if chunk_size is not None:
        whole(chunk_size, "chunk_size", 1, MAX_TOKENS)
        chunk_sizes = (chunk_size,)
    if chunk_sizes is None:
        return None
    if isinstance(chunk_sizes, (str, bytes)) or not isinstance(chunk_sizes, Sequence):
        raise KvsizeError(f"`chunk_sizes` must be a list of token counts, got {shown(chunk_sizes)}", field="chunk_sizes")
    if len(chunk_sizes) > MAX_CHUNK_CANDIDATES:
        raise KvsizeError(
            f"`chunk_sizes` has {len(chunk_sizes):,} entries; give at most {MAX_CHUNK_CANDIDATES} "
            "(with a backend, `search` finds the best size between them)",
            field="chunk_sizes",
        )
    for chunk in chunk_sizes:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_TOKENS:
            raise KvsizeError(f"chunk size must be 1 to {MAX_TOKENS:,} tokens, got {shown(chunk)}", field="chunk_sizes")
    return tuple(chunk_sizes)


def size(
    model: str,
    *,
    serving: Serving | None = None,
    engine: str | EngineSettings | None = None,
    workload: Workload | None = None,
    storage: Storage | None = None,
    gpu: Gpu | None = None,
    chunk_sizes: Sequence[int] | None = None,
    chunk_size: int | None = None,
    mtp: bool = False,
    explain: bool = False,
    catalog: str | Path | None = None,
    revision: str | None = None,
    offline: bool = False,
    **flat: Any,
) -> SizeResult:
    """What one prompt stores at each candidate chunk size; with ``storage``, its load time and a pick.

    ``kvsize.size("Qwen/Qwen3-4B-Instruct-2507", serving=kvsize.Serving(tp=4), engine=kvsize.engines.Vllm(tier="obj"),
    workload=kvsize.Workload(prompt=100_000), storage=kvsize.Storage(backend="s3"))``. The flat keywords of earlier
    releases (``tp=4``, ``backend=["s3"]``, ``tier="obj"``) work for one more release, with a ``DeprecationWarning``.
    With ``gpu=kvsize.Gpu(gpu="h100")`` (or ``kv_cache_memory_bytes``) the result's ``gpu`` holds the first tier: vLLM's
    KV memory per GPU, the tokens that fit and the maximum concurrency for the prompt.
    """
    serving, settings, workload, storage = _groups("size", flat, serving, engine, workload, storage)
    gpu = gpu_group(gpu)
    workload = prefill_gpu(workload, gpu)
    if not isinstance(explain, bool):
        raise KvsizeError(f"`explain` must be True or False, got {shown(explain)}", field="explain")
    sizes = candidate_sizes(chunk_sizes, chunk_size)
    if storage.search and not storage.timed:
        raise KvsizeError("`search` needs a storage backend: give `backend` (e.g. s3)", field="search")
    spec = resolve_spec(model, catalog, revision, offline)
    options = EngineOptions(serving=draft_layers(spec, serving, mtp), settings=settings, engine=settings.engine_name())
    sweep = plan_sweep(spec, options, workload.prompt, sizes)
    tier = _gpu_tier(sweep, gpu)
    if not storage.timed:
        return size_result(sweep, [], list(sweep.warnings), _explain(sweep, [], explain), tier)
    rate, assumption, warnings = prefill_rate(spec, serving.tp * serving.pp, workload)
    profiles = backend_profiles(storage)
    plans = _plans(sweep, profiles, time_options(sweep.layout, workload, rate), assumption, storage.search, warnings)
    sweep = plans[0][0]
    warnings += mismatches(storage, sweep.layout)
    timed_plans = [plan for _, plan in plans]
    return size_result(sweep, timed_plans, [*sweep.warnings, *warnings], _explain(sweep, timed_plans, explain), tier)


def gpu_group(gpu: Gpu | None) -> Gpu:
    """``gpu`` checked (None: no GPU given)."""
    if gpu is None:
        return Gpu()
    if not isinstance(gpu, Gpu):
        raise KvsizeError(f"`gpu` must be kvsize.Gpu, got {shown(gpu)}", field="gpu")
    return gpu


def prefill_gpu(workload: Workload, gpu: Gpu) -> Workload:
    """The workload with the GPU named in ``gpu`` as the prefill estimate's, unless the workload names its own."""
    if gpu.gpu is None or "gpu" in workload.model_fields_set:
        return workload
    return workload.model_copy(update={"gpu": gpu.gpu})


def _gpu_tier(sweep: Sweep, gpu: Gpu) -> GpuReport | None:
    """The GPU tier for the sweep's prompt, when a GPU (or vLLM's KV memory) is given."""
    if not gpu.given:
        return None
    from kvsize.calls.gpu_memory import plan_gpu

    return plan_gpu(sweep.spec, sweep.layout, gpu, sweep.prompt_tokens)


FLAT_ENGINE_OPTIONS = (
    "connector",
    "layerwise",
    "save_unfull_chunk",
    "tier",
    "gpu_block_size",
    "kv_offloading_size",
    "sglang_backend",
    "kvbm_engine",
    "kvbm_tier",
    "blocking_timeout",
    "cpu_buffer",
    "pinned_memory",
)
"""The engine options earlier releases took as flat keywords (each engine's settings now hold them)."""


def _groups(
    call: str,
    flat: dict[str, Any],
    serving: Serving | None,
    engine: str | EngineSettings | None,
    workload: Workload | None,
    storage: Storage | None,
) -> tuple[Serving, EngineSettings, Workload, Storage]:
    """The argument groups, with the flat keywords of earlier releases merged in (any other keyword refused)."""
    from kvsize.calls.args import SERVING_KEYS, STORAGE_KEYS, WORKLOAD_KEYS

    known = {*SERVING_KEYS, *WORKLOAD_KEYS, *STORAGE_KEYS}
    unknown = sorted(set(flat) - known - set(FLAT_ENGINE_OPTIONS))
    if unknown:
        raise KvsizeError(f"kvsize.{call}() has no argument `{unknown[0]}`", field=unknown[0])
    engine_options = {name: flat[name] for name in FLAT_ENGINE_OPTIONS if name in flat}
    rest = {name: value for name, value in flat.items() if name in known}
    return grouped(
        rest,
        serving=serving,
        engine=engine,
        workload=workload,
        storage=storage,
        call=call,
        given_engine_options=engine_options,
    )


def _explain(sweep: Sweep, plans: list[StoragePlan], explain: bool) -> list[str] | None:
    if not explain:
        return None
    from kvsize.calls.explain import explain_lines

    return explain_lines(sweep, plans)


def _plans(
    sweep: Sweep,
    profiles: list[BackendProfile],
    options: TimeOptions,
    assumption: str | None,
    search: bool,
    notes: list[str],
) -> list[tuple[Sweep, StoragePlan]]:
    """Every backend's plan; with ``search``, the sweep gains the best multiple of the engine's block between the
    candidates."""
    from kvsize.storage import plan_storage, search_chunk

    if search:
        sizes = [row.chunk_tokens for row in sweep.rows]
        engine = engine_for(sweep.layout.engine)
        low, high = min(sizes), max(sizes)
        block = engine.search_step(sweep.layout, sweep.spec)
        steps = engine.search_sizes(sweep.layout, sweep.spec, low, high)
        found = {
            search_chunk(sweep.layout, sweep.prompt_tokens, p, options, low, high, block, notes=notes, sizes=steps)
            for p in profiles
        }
        extra = tuple(chunk for chunk in found if chunk is not None and chunk not in sizes)
        if extra:
            sweep = plan_sweep(sweep.spec, sweep.layout.options, sweep.prompt_tokens, (*sizes, *extra))
    return [(sweep, plan_storage(sweep.rows, sweep.layout, p, options, assumption)) for p in profiles]
