"""``--emit``: an engine's own settings for the recommended chunk of a ``size`` result (or one given), written by
the engine itself (``Engine.emit``); here only which chunk, and whether there is one to recommend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.engines.registry import ENGINE_NAMES, engine_for
from kvsize.errors import KvsizeError, finite, shown

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.results import SizeResult


def emit_chunk(result: SizeResult, chunk_size: int | None, what: str) -> int:
    """The chunk to emit ``what``'s settings for: ``chunk_size``, else the recommendation (refused when recomputing
    beats loading, or when the result sizes another engine)."""
    if result.offload_engine != what:
        sized = engine_for(result.offload_engine)
        other = f" or `emit` {result.offload_engine}" if sized.emits else ""
        why = f" ({sized.no_emit_reason})" if sized.no_emit_reason else ""
        raise KvsizeError(
            f"`emit` {what} writes {what}'s settings, but this result sizes `engine` {result.offload_engine}{why}: "
            f"give `engine` {what}{other}",
            field="emit",
        )
    plan = result.plans[0] if result.plans else None
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
            raise KvsizeError(f"`chunk_size` must be a whole number of tokens, got {shown(chunk_size)}", field="chunk_size")
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


def emit_config(
    result: SizeResult,
    *,
    engine: str | None = None,
    chunk_size: int | None = None,
    margin: float = 2.0,
    emit_options: EmitOptions | None = None,
) -> tuple[str, list[str]]:
    """The settings of the result's engine (or ``engine``, which must be the result's) for the recommended chunk of
    a ``size`` result, or ``chunk_size`` (one of its rows), sized with ``margin`` over the prediction, with the
    directory, bucket, region, host and disk size of ``emit_options`` where given (placeholders otherwise); and
    warnings. Refuses when recomputing beats loading."""
    from kvsize.engines.emit_options import EmitOptions

    if emit_options is not None and not isinstance(emit_options, EmitOptions):
        raise KvsizeError(f"`emit_options` must be kvsize.EmitOptions, got {shown(emit_options)}", field="emit_options")
    what = result.offload_engine if engine is None else engine
    if what not in ENGINE_NAMES:
        raise KvsizeError(f"unknown `emit` {shown(what)}: use one of {', '.join(ENGINE_NAMES)}", field="emit")
    finite(margin, "`margin`", low=1, high=1000)
    chunk = emit_chunk(result, chunk_size, what)
    row = next((r for r in result.sweep.rows if r.chunk_tokens == chunk), None)
    if row is None:
        raise KvsizeError(
            f"`emit` {what}: chunk {chunk:,} is not one of the sizes sized; add it to `chunk_sizes`", field="chunk_size"
        )
    plan = result.plans[0] if result.plans else None
    return engine_for(what).emit(result.sweep, row, plan, margin, emit_options)


def lmcache_config(
    result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0, emit_options: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The LMCache YAML (with its ``LMCACHE_*`` form) for the recommended chunk of a ``size`` result, or ``chunk_size``,
    and its warnings (``--emit lmcache``)."""
    return emit_config(result, engine="lmcache", chunk_size=chunk_size, margin=margin, emit_options=emit_options)


def vllm_config(
    result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0, emit_options: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The ``vllm serve`` flags of vLLM native offloading for a ``size`` result (``--emit vllm``)."""
    return emit_config(result, engine="vllm", chunk_size=chunk_size, margin=margin, emit_options=emit_options)


def sglang_config(
    result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0, emit_options: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The SGLang server flags (``--page-size``, HiCache and its backend) for a ``size`` result (``--emit sglang``)."""
    return emit_config(result, engine="sglang", chunk_size=chunk_size, margin=margin, emit_options=emit_options)


def kvbm_config(
    result: SizeResult, *, chunk_size: int | None = None, margin: float = 2.0, emit_options: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The ``DYN_KVBM_*`` environment for a ``size`` result (``--emit kvbm``)."""
    return emit_config(result, engine="kvbm", chunk_size=chunk_size, margin=margin, emit_options=emit_options)
