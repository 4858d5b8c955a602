"""``--emit``: which chunk to emit settings for, and LMCache's settings for one chunk size of a sweep, sized from its
prediction (vLLM's are ``kvsize.engines.vllm_settings``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kvsize.engines.lmcache import DEFAULT_BLOCKING_TIMEOUT_S, DEFAULT_CPU_BUFFER_BYTES, GIB
from kvsize.engines.lmcache_settings import MAX_CPU_GB, MAX_TIMEOUT_S, emit_settings
from kvsize.errors import KvsizeError
from kvsize.plan import Sweep

if TYPE_CHECKING:
    from kvsize.results import SizeResult
    from kvsize.storage import StoragePlan


def settings_for(sweep: Sweep, plan: StoragePlan | None, chunk: int, margin: float) -> tuple[str, list[str]]:
    """The LMCache YAML for one chunk size of a sweep, sized with ``margin`` over the prediction, and warnings.

    ``blocking_timeout_secs`` covers the predicted load (with a backend) and ``max_local_cpu_size``
    one writer's bytes, each times ``margin`` and never below LMCache's defaults (10 s, 5 GB).
    """
    from kvsize.quoting import exact_number
    from kvsize.storage import per_writer_bytes
    from kvsize.units import format_iec

    index = next(i for i, row in enumerate(sweep.rows) if row.chunk_tokens == chunk)
    row = sweep.rows[index]
    layout = sweep.layout
    writer_bytes = per_writer_bytes(row, layout)
    cpu_gb = max(DEFAULT_CPU_BUFFER_BYTES // GIB, math.ceil(writer_bytes * margin / GIB))
    times = exact_number(margin)
    comments = [
        f"LMCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, connector {layout.connector.name}.",
        f"chunk_size {chunk:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt.",
        f"max_local_cpu_size {cpu_gb:,} GB: one writer loads {format_iec(writer_bytes)} per prompt, x {times} margin "
        "(LMCache default 5).",
    ]
    warnings: list[str] = []
    timeout = int(DEFAULT_BLOCKING_TIMEOUT_S)
    if plan is not None:
        timing = plan.timings[index]
        timeout = max(timeout, math.ceil(timing.load_seconds * margin))
        prompts = plan.options.concurrent_prompts
        comments.append(
            f"blocking_timeout_secs {timeout:,}: predicted load {timing.load_seconds:.2f} s on {plan.backend.name} with "
            f"{prompts} prompt{'s' if prompts != 1 else ''} at once, x {times} margin (LMCache default 10)."
        )
        warnings += [
            f"chunk {chunk:,} breaks an engine limit no setting here fixes: {risk.detail}"
            for risk in timing.breaches
            if risk.limit in ("max_value_size", "int32_header", "pinned_memory")
        ]
    else:
        comments.append("blocking_timeout_secs 10: LMCache's default; no backend given, so no load was predicted.")
    comments.append("Replace the <placeholders> with your deployment's values.")
    _readable(cpu_gb, timeout, times)
    text = emit_settings(
        chunk_size=chunk,
        connector=layout.connector.name,
        save_unfull_chunk=layout.options.save_unfull_chunk,
        layerwise=layout.options.layerwise,
        blocking_timeout_secs=timeout,
        max_local_cpu_size_gb=cpu_gb,
        comments=comments,
    )
    return text, warnings


def _readable(cpu_gb: int, timeout: int, margin: str) -> None:
    """Refuse settings past what ``kvsize check`` reads back (``lmcache_settings.read_settings``'s bounds)."""
    for key, value, high, unit in (
        ("max_local_cpu_size", cpu_gb, MAX_CPU_GB, "GB"),
        ("blocking_timeout_secs", timeout, MAX_TIMEOUT_S, "s"),
    ):
        if value > high:
            raise KvsizeError(
                f"`emit` lmcache: {key} would be {value:,} {unit} (the prediction x `margin` {margin}), past the "
                f"{high:,} {unit} kvsize check reads back: lower `margin`, or size a shorter `prompt`",
                field="margin",
            )


def emit_chunk(result: SizeResult, chunk_size: int | None, what: str) -> int:
    """The chunk to emit ``what``'s settings for: ``chunk_size``, else the recommendation (refused when recomputing
    beats loading, or when the result sizes another engine)."""
    _emit_engine(result, what)
    plan = result.plans[0] if result.plans else None
    if chunk_size is not None:
        return chunk_size
    if plan is None:
        raise KvsizeError(f"`emit` {what} needs `chunk_size` N, or `backend` to recommend one", field="chunk_size")
    if plan.offload_pays is False:
        raise KvsizeError(
            f"`emit` {what}: recomputing is faster than loading on {plan.backend.name} "
            f"({plan.full_recompute_seconds:.2f} s to prefill the prompts of one instance, against the best "
            "load + tail recompute), so there is no chunk size to recommend; give `chunk_size` N to emit one anyway",
            field="chunk_size",
        )
    if plan.recommendation is None:
        raise KvsizeError(f"`emit` {what}: no recommendation to emit (see the warning); give `chunk_size` N", field="chunk_size")
    return int(plan.recommendation.chunk_tokens)


def _emit_engine(result: SizeResult, what: str) -> None:
    if result.offload_engine != what:
        raise KvsizeError(
            f"`emit` {what} writes {what}'s settings, but this result sizes `engine` {result.offload_engine}: "
            f"give `engine` {what}" + (" or `emit` vllm" if result.offload_engine == "vllm" else ""),
            field="emit",
        )


def stack_settings(result: SizeResult, what: str, chunk_size: int | None, margin: float) -> tuple[str, list[str]]:
    """``--emit vllm|sglang|kvbm``: the engine's serving settings for one row of a ``size`` result, and warnings."""
    from kvsize.engines import stack_settings as settings
    from kvsize.errors import finite

    finite(margin, "`margin`", low=1, high=1000)
    chunk = emit_chunk(result, chunk_size, what)
    row = next((r for r in result.sweep.rows if r.chunk_tokens == chunk), None)
    if row is None:
        raise KvsizeError(
            f"`emit` {what}: chunk {chunk:,} is not one of the sizes sized; add it to `chunk_sizes`", field="chunk_size"
        )
    plan = result.plans[0] if result.plans else None
    emitter = {"vllm": settings.vllm_flags, "sglang": settings.sglang_flags, "kvbm": settings.kvbm_env}[what]
    return emitter(result.sweep, row, plan.options if plan else None, margin)
