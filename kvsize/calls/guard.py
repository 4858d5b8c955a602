"""The deployment calls: ``check`` (the CI guard) and ``capacity`` (capacity planning).

Both read the deployment's own engine config where the engine has one (LMCache: a file,
``LMCACHE_CONFIG_FILE``, the ``LMCACHE_*`` environment, exactly as it parses them, ``Engine.deployment``);
settings given explicitly win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.calls.args import Storage, Workload, resolve_spec
from kvsize.calls.sizing import _groups
from kvsize.calls.timed import backend_profiles, mismatches, prefill_rate, time_options
from kvsize.engines.base import Deployment, EngineOptions, EngineSettings, Serving
from kvsize.engines.registry import DEFAULT_ENGINE, engine_for
from kvsize.errors import KvsizeError, shown, whole
from kvsize.plan import MAX_TOKENS, Sweep, plan_sweep

if TYPE_CHECKING:
    from kvsize.storage import RowTiming
    from kvsize.storage.capacity import CapacityReport
    from kvsize.storage.limits import CheckReport, Limits


def _limits(
    max_objects: int | None, max_object_size: int | None, max_total_bytes: int | None, max_load_seconds: float | None
) -> Limits:
    """The user's limits, each a positive whole number (seconds: a positive finite number), or None."""
    from kvsize.errors import finite, whole
    from kvsize.storage.limits import Limits

    def count(value: int | None, name: str) -> int | None:
        return None if value is None else whole(value, name, 1, 10**18)

    return Limits(
        max_objects=count(max_objects, "max_objects"),
        max_object_bytes=count(max_object_size, "max_object_size"),
        max_total_bytes=count(max_total_bytes, "max_total_bytes"),
        max_load_seconds=None
        if max_load_seconds is None
        else finite(max_load_seconds, "`max_load_seconds`", low=0, low_open=True, high=1e9),
    )


def _deployment(
    lmcache_config: str | Path | None,
    environ: Mapping[str, str] | None,
    chunk_size: int | None,
    settings: EngineSettings,
) -> Deployment:
    if lmcache_config is not None and not isinstance(lmcache_config, (str, Path)):
        raise KvsizeError(f"`lmcache_config` must be a path, got {shown(lmcache_config)}", field="lmcache_config")
    if chunk_size is not None:
        whole(chunk_size, "chunk_size", 1, MAX_TOKENS)
    config = Path(lmcache_config) if lmcache_config is not None else None
    return engine_for(settings.engine_name()).deployment(config, environ, settings, chunk_size)


def _plan(model: str, serving: Serving, deployment: Deployment, workload: Workload, source: dict[str, Any]) -> Sweep:
    spec = resolve_spec(model, source["catalog"], source["revision"], source["offline"])
    settings = deployment.settings
    options = EngineOptions(serving=serving, settings=settings, engine=settings.engine_name())
    chunks = (deployment.chunk_tokens,) if deployment.chunk_tokens is not None else None
    return plan_sweep(spec, options, workload.prompt, chunks)


def check(
    model: str,
    *,
    serving: Serving | None = None,
    engine: str | EngineSettings | None = None,
    workload: Workload | None = None,
    storage: Storage | None = None,
    chunk_size: int | None = None,
    max_objects: int | None = None,
    max_object_size: int | None = None,
    max_total_bytes: int | None = None,
    max_load_seconds: float | None = None,
    lmcache_config: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    catalog: str | Path | None = None,
    revision: str | None = None,
    offline: bool = False,
    **flat: Any,
) -> CheckReport:
    """Does one serving configuration keep every limit? ``ok`` is the verdict (``kvsize check`` exits 0 or 1).

    The engine's own config (``lmcache_config``, and the ``environ`` it reads) gives the settings not given."""
    from kvsize.storage.limits import check_row

    if isinstance(flat.get("backend"), (list, tuple)) and len(flat["backend"]) > 1:
        raise KvsizeError("`backend`: check times one backend; give one", field="backend")
    serving, settings, workload, storage = _groups("check", flat, serving, engine, workload, storage)
    if len(storage.backend) > 1:
        raise KvsizeError("`backend`: check times one backend; give one", field="backend")
    limits = _limits(max_objects, max_object_size, max_total_bytes, max_load_seconds)
    if limits.max_load_seconds is not None and not storage.timed:
        raise KvsizeError("`max_load_seconds` needs a storage backend: give `backend` (e.g. s3)", field="max_load_seconds")
    deployment = _deployment(lmcache_config, environ, chunk_size, settings)
    source = {"catalog": catalog, "revision": revision, "offline": offline}
    sweep = _plan(model, serving, deployment, workload, source)
    timed = _Timed(warnings=[*sweep.warnings, *deployment.warnings])
    if storage.timed:
        timed = _timed(sweep, storage, workload, deployment)
    result = check_row(
        sweep.rows[0],
        sweep.layout,
        limits,
        timing=timed.timing,
        full_recompute_s=timed.full_recompute_s,
        remote_url_problem=deployment.problem,
    )
    return _report(result, sweep, limits, deployment, timed, storage, workload)


@dataclass
class _Timed:
    """The timed half of a check: the row's timing, the full-recompute time, and what to warn about."""

    timing: RowTiming | None = None
    full_recompute_s: float | None = None
    warnings: list[str] = field(default_factory=list)


def _timed(sweep: Sweep, storage: Storage, workload: Workload, deployment: Deployment) -> _Timed:
    from kvsize.storage import full_recompute_seconds, time_row

    serving = sweep.layout.serving
    rate, _, missing = prefill_rate(sweep.spec, serving.tp * serving.pp, workload)
    options = time_options(sweep.layout, workload, rate)
    timing = time_row(sweep.rows[0], sweep.layout, backend_profiles(storage)[0], options)
    warnings = [*sweep.warnings, *deployment.warnings, *mismatches(storage, sweep.layout)]
    warnings += [w.replace("no recommendation", "no recompute comparison") for w in missing]
    return _Timed(timing=timing, full_recompute_s=full_recompute_seconds(sweep.prompt_tokens, options), warnings=warnings)


def _report(
    result: Any,
    sweep: Sweep,
    limits: Limits,
    deployment: Deployment,
    timed: _Timed,
    storage: Storage,
    workload: Workload,
) -> CheckReport:
    from kvsize.results import RowView
    from kvsize.storage.limits import CheckReport
    from kvsize.storage.limits import EngineSettingsView as View

    layout = sweep.layout
    engine = engine_for(layout.engine)
    view = deployment.view or _default_view()
    backend = storage.backend[0] if storage.backend and timed.timing else None
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
        engine=View(**view),
        lmcache_sources=deployment.sources,
        row=RowView.of(sweep.rows[0]),
        load_seconds=timed.timing.load_seconds if timed.timing else None,
        backend=backend if isinstance(backend, str) or backend is None else backend.name,
        full_recompute_seconds=timed.full_recompute_s,
        instances=workload.instances,
        warnings=timed.warnings,
        offload_engine=layout.engine,
        engine_options=engine.engine_options(layout),
        sweep=sweep,
    )


def _default_view() -> dict[str, Any]:
    """The check report's ``engine`` view for an engine with no config of its own: the default engine's defaults."""
    default = engine_for(DEFAULT_ENGINE)
    return default.deployment(None, {}, default.Settings(), None).view


def capacity(
    model: str,
    *,
    serving: Serving | None = None,
    engine: str | EngineSettings | None = None,
    workload: Workload | None = None,
    chunk_size: int | None = None,
    storage: int | None = None,
    prompts: int | None = None,
    lmcache_config: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    catalog: str | Path | None = None,
    revision: str | None = None,
    offline: bool = False,
    **flat: Any,
) -> CapacityReport:
    """How many prompts fit in ``storage`` bytes, or the storage ``prompts`` prompts need (``kvsize capacity``)."""
    from kvsize.errors import whole
    from kvsize.results import sweep_fields
    from kvsize.storage.capacity import CapacityReport, plan_capacity

    if prompts is not None:
        whole(prompts, "prompts", 1, 10**12)
    if storage is not None:
        whole(storage, "storage", 1, 2**80)
    serving, settings, workload, _ = _groups("capacity", flat, serving, engine, workload, None)
    deployment = _deployment(lmcache_config, environ, chunk_size, settings)
    shared = workload.shared_prefix or 0
    if shared > workload.prompt:
        raise KvsizeError(
            f"`shared_prefix` {shared:,} is longer than the {workload.prompt:,}-token prompt", field="shared_prefix"
        )
    sweep = _plan(model, serving, deployment, workload, {"catalog": catalog, "revision": revision, "offline": offline})
    plan = plan_capacity(sweep.rows[0], sweep.layout, storage_bytes=storage, prompts=prompts, shared_prefix_tokens=shared)
    assumptions = engine_for(sweep.layout.engine).assumptions(sweep)
    return CapacityReport(**sweep_fields(sweep, list(sweep.warnings)), capacity=plan, assumptions=assumptions)
