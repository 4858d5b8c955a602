"""A replay's result: every chunk size's row (timed when a backend is given), the GPU tier at the trace's longest
prompt, the pick, and what the numbers rest on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvsize.calls.args import Storage, Workload
from kvsize.engines.base import Layout
from kvsize.engines.registry import engine_for
from kvsize.gpu import Gpu
from kvsize.model.spec import ModelSpec
from kvsize.results import engine_options
from kvsize.traces.replayer import ChunkReplay
from kvsize.traces.result import ReplayResult, ReplayRow
from kvsize.traces.session import Pass, Tiers, base_row, curve, trace_info, untimed


@dataclass(frozen=True)
class Context:
    """What the replay was given, beside the trace's requests."""

    spec: ModelSpec
    layout: Layout
    source: str
    trace_block: int
    generated: dict[str, Any] | None
    gpu: Gpu
    workload: Workload
    storage: Storage
    tiers: Tiers


def _timed(context: Context, replays: list[ChunkReplay], state: Pass) -> dict[str, Any]:
    """Rows timed on the backend, the pick, and the time model's options; warnings."""
    from kvsize.calls.timed import backend_profiles, mismatches, prefill_rate, time_options
    from kvsize.storage import recommend
    from kvsize.traces.timed import timed_row

    layout, spec = context.layout, context.spec
    mean = max(1, round(state.input_tokens / state.requests))
    workload = context.workload.model_copy(update={"prompt": mean})
    rate, assumption, warnings = prefill_rate(spec, layout.options.tp * layout.options.pp, workload)
    options = time_options(layout, workload, rate)
    profile = backend_profiles(context.storage)[0]
    pairs = [timed_row(replay, state, profile, options) for replay in replays]
    pick = recommend([timing for _, timing in pairs])
    return {
        "rows": [row for row, _ in pairs],
        "backend": profile.model_dump(),
        "time_options": options.model_dump(),
        "prefill": assumption,
        "recommended_chunk_tokens": pick.chunk_tokens if pick else None,
        "recommendation": pick.reason if pick else None,
        "recommended_at_risk": pick.at_risk if pick else None,
        "warnings": [*warnings, *mismatches(context.storage, layout)],
    }


def _untimed(replays: list[ChunkReplay], state: Pass) -> dict[str, Any]:
    rows: list[ReplayRow] = [untimed(base_row(replay, state)) for replay in replays]
    return {
        "rows": rows,
        "backend": None,
        "time_options": None,
        "prefill": None,
        "recommended_chunk_tokens": None,
        "recommendation": None,
        "recommended_at_risk": None,
        "warnings": [],
    }


def _assumptions(context: Context, rule: str) -> list[str]:
    layout = context.layout
    engine = engine_for(layout.engine)
    lines = [
        rule,
        f"{engine.info.stack}: {engine.info.object_rule} ({engine.info.source}).",
        "Requests are replayed one at a time in timestamp order (ties in file order); each load is timed alone, as "
        f"{context.workload.concurrent_prompts} prompt(s) loading at once (`concurrent_prompts`).",
        "The GPU tier is vLLM's prefix cache: the blocks vLLM's KV memory holds, per group, least recently used evicted "
        "first; it holds no running request's blocks (no concurrency is modelled).",
        "Storage capacity for a hit rate: the least LRU storage, storage the only offload tier, that keeps 90% (99%) "
        "of the offload hit tokens of unlimited storage.",
    ]
    lines += [note + "." for note in engine.replay_notes(layout)]
    return lines


def assemble(context: Context, replays: list[ChunkReplay], state: Pass, rule: str) -> ReplayResult:
    """The result of a finished pass."""
    layout, spec = context.layout, context.spec
    gpu_report = None
    if context.gpu.given:
        from kvsize.calls.gpu_memory import plan_gpu

        gpu_report = plan_gpu(spec, layout, context.gpu, spec.max_position_embeddings or state.longest)
    parts = _timed(context, replays, state) if context.storage.timed else _untimed(replays, state)
    warnings = [*spec.warnings, *layout.warnings, *parts.pop("warnings")]
    if any(replay.tail_bytes for replay in replays):
        warnings.append("a partial chunk's load is timed as a whole chunk's (save_unfull_chunk): the load times are high")
    return ReplayResult(
        model=spec.name,
        tp=layout.options.tp,
        pp=layout.options.pp,
        kv_dtype=layout.kv_dtype,
        bytes_per_token=layout.bytes_per_token,
        writers=layout.writers,
        offload_engine=layout.engine,
        engine_options=engine_options(layout),
        connector=layout.connector.name,
        trace=trace_info(state, context.source, context.trace_block, context.generated),
        gpu=gpu_report,
        cpu_tier_bytes=context.tiers.cpu_bytes,
        storage_capacity_bytes=context.tiers.storage_bytes,
        **parts,
        warnings=warnings,
        notes=[*layout.notes, *state.notes],
        assumptions=_assumptions(context, rule),
        curves={replay.chunk: curve(replay.needed, replay.key_bytes) for replay in replays},
        series={replay.chunk: _series(replay, replay.layout) for replay in replays},
    )


def _series(replay: ChunkReplay, layout: Layout) -> dict[int, tuple[int, int]]:
    """Per second: storage read and write requests (objects x the connector's requests per object)."""
    per = engine_for(layout.engine).chunk_row(layout, replay.chunk).objects * layout.connector.requests_per_object
    return {second: (row[2] * per, row[0] * per) for second, row in sorted(replay.seconds.items())}
