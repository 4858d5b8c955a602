"""A whole replay: every chunk size at once over one pass of the trace (streamed), the GPU tier in front, then each
chunk size's row: totals, per-second rates, the capacity curve, and its loads timed by the time model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kvsize.engines.base import Engine, Layout, StageObjects, SweepRow
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError
from kvsize.traces.lru import GpuPrefixCache
from kvsize.traces.reader import Request
from kvsize.traces.replayer import ChunkReplay
from kvsize.traces.result import Rate, ReplayRow, TraceInfo

CURVE_POINTS = 64


@dataclass
class Tiers:
    """The tiers in front of and beside storage, as given."""

    gpu_blocks: int | None = None
    gpu_block_tokens: int = 16
    cpu_bytes: int | None = None
    storage_bytes: int | None = None


@dataclass
class Pass:
    """What one pass over the trace gathered beside the chunk sizes' own counts."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    longest: int = 0
    gpu_tokens: int = 0
    first_ms: float = 0.0
    last_ms: float = 0.0
    first_second: int = 0
    cpu_chunks: dict[int, int | None] = field(default_factory=dict)
    storage_chunks: dict[int, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def prepare(layout: Layout, chunks: tuple[int, ...], trace_block: int, tiers: Tiers) -> tuple[list[ChunkReplay], Pass]:
    """One replayer per chunk size, each with its tiers' capacities in chunks."""
    engine = engine_for(layout.engine)
    admission = engine.admission(layout, tiers.cpu_bytes is not None)
    state = Pass()
    replays = []
    for chunk in chunks:
        engine.stored_chunks(layout, chunk, chunk)  # an engine that cannot say what a request stores refuses here
        if chunk % trace_block and trace_block % chunk:
            raise KvsizeError(
                f"chunk {chunk:,} against the trace's {trace_block}-token blocks: a replay needs {trace_block} % chunk == 0 "
                f"or chunk % {trace_block} == 0 (the trace names whole blocks only); pick another `chunk_sizes`",
                field="chunk_sizes",
            )
        row = engine.chunk_row(layout, chunk)
        cpu = None
        if tiers.cpu_bytes is not None:
            cpu, how = engine.cpu_tier_chunks(layout, row, tiers.cpu_bytes)
            state.notes.append(f"chunk {chunk:,}: the CPU tier holds {cpu:,} chunks ({how})")
        storage = None if tiers.storage_bytes is None else tiers.storage_bytes // max(1, row.stored_bytes)
        state.cpu_chunks[chunk], state.storage_chunks[chunk] = cpu, storage
        replays.append(ChunkReplay(engine, layout, chunk, trace_block, storage, cpu, admission))
    if admission is not None:
        state.notes.append(
            f"the storage tier takes a chunk on its {admission.sightings}nd offer within {admission.window_seconds:g} s: "
            f"{admission.source}"
        )
    return replays, state


def run(
    requests: Iterable[Request],
    replays: list[ChunkReplay],
    state: Pass,
    tiers: Tiers,
    trace_block: int,
) -> None:
    """Replay every request at every chunk size, after the GPU tier when there is one."""
    gpu = None
    if tiers.gpu_blocks is not None:
        if trace_block % tiers.gpu_block_tokens and tiers.gpu_block_tokens % trace_block:
            raise KvsizeError(
                f"the GPU block of {tiers.gpu_block_tokens} tokens against the trace's {trace_block}-token blocks: the "
                "GPU tier needs one to divide the other; give `gpu_block_size` (engine vllm) or drop the GPU",
                field="gpu",
            )
        gpu = GpuPrefixCache(tiers.gpu_blocks, tiers.gpu_block_tokens, trace_block)
    for request in requests:
        if not state.requests:
            state.first_ms = request.timestamp_ms
            state.first_second = int(request.timestamp_ms // 1000)
        state.requests += 1
        state.input_tokens += request.input_length
        state.output_tokens += request.output_length
        state.longest = max(state.longest, request.input_length)
        state.last_ms = request.timestamp_ms
        second = int(request.timestamp_ms // 1000) - state.first_second
        hit = gpu.visit(request.hash_ids, request.input_length) if gpu is not None else 0
        state.gpu_tokens += hit
        for replay in replays:
            replay.visit(request, hit, second)
    if not state.requests:
        raise KvsizeError("the trace has no requests: give a JSONL file with one request per line", field="trace")


def nearest_rank(share: float, count: int) -> int:
    """The 1-based nearest rank of the ``share`` percentile of ``count`` values (``ceil(share x count)``, at least 1),
    computed so that 0.99 x 100 is 99."""
    return max(1, -(-round(share * count * 1_000_000) // 1_000_000))


def rate(per_second: dict[int, int], windows: int) -> Rate:
    """Mean, p99 (nearest rank, empty windows as 0) and peak over ``windows`` seconds."""
    values = sorted(per_second.values())
    rank = nearest_rank(0.99, windows) - 1
    zeros = windows - len(values)
    p99 = 0 if rank < zeros else values[rank - zeros]
    return Rate(mean=sum(values) / windows, p99=float(p99), peak=float(values[-1] if values else 0))


def trace_info(state: Pass, source: str, trace_block: int, generated: dict[str, Any] | None) -> TraceInfo:
    return TraceInfo(
        source=source,
        requests=state.requests,
        input_tokens=state.input_tokens,
        output_tokens=state.output_tokens,
        first_timestamp_ms=state.first_ms,
        last_timestamp_ms=state.last_ms,
        duration_seconds=(state.last_ms - state.first_ms) / 1000,
        windows=windows(state),
        trace_block=trace_block,
        generated=generated,
    )


def windows(state: Pass) -> int:
    return int(state.last_ms // 1000) - state.first_second + 1


def capacity_for(needed: dict[int, int], share: float, key_bytes: int) -> int | None:
    """The least storage (in bytes of whole chunks) an LRU tier needs to keep ``share`` of the hit tokens."""
    total = sum(needed.values())
    if not total:
        return None
    goal, running = share * total, 0
    for depth in sorted(needed):
        running += needed[depth]
        if running >= goal:
            return (depth + 1) * key_bytes
    return (max(needed) + 1) * key_bytes


def curve(needed: dict[int, int], key_bytes: int) -> list[tuple[int, float]]:
    """(storage bytes, share of the unlimited storage hit tokens) at up to ``CURVE_POINTS`` capacities."""
    total = sum(needed.values())
    if not total:
        return []
    depths = sorted(needed)
    step = max(1, len(depths) // CURVE_POINTS)
    points, running = [(0, 0.0)], 0
    for index, depth in enumerate(depths):
        running += needed[depth]
        if index % step == step - 1 or index == len(depths) - 1:
            points.append(((depth + 1) * key_bytes, running / total))
    return points


def scaled(row: SweepRow, chunks: int) -> SweepRow:
    """``chunks`` chunks of ``row`` (one chunk of one group) as one load's row, for the time model."""
    stages = tuple(
        StageObjects(
            stage=s.stage,
            objects=s.objects * chunks,
            object_bytes=s.object_bytes,
            tail_object_bytes=0,
            total_bytes=s.total_bytes * chunks,
        )
        for s in row.stages
    )
    return row.model_copy(
        update={
            "full_chunks": chunks,
            "tail_tokens": 0,
            "objects": row.objects * chunks,
            "objects_per_writer": row.objects_per_writer * chunks,
            "total_bytes": row.total_bytes * chunks,
            "header_bytes": row.header_bytes * chunks,
            "stored_bytes": row.stored_bytes * chunks,
            "stages": stages,
            "groups": None,
        }
    )


def base_row(replay: ChunkReplay, state: Pass, wire: int | None = None) -> dict[str, Any]:
    """A row's counts and rates (no timing): totals, per-second rates, storage needed and the capacity curve;
    ``wire`` is a chunk's requests on the wire (default: its objects x the connector's requests per object)."""
    engine: Engine = replay.engine
    one = engine.chunk_row(replay.layout, replay.chunk)
    if wire is None:
        wire = one.objects * replay.layout.connector.requests_per_object
    totals, objects = replay.totals, one.objects
    span = windows(state)
    series = {name: {s: v[i] for s, v in replay.seconds.items() if v[i]} for i, name in enumerate(("sc", "sb", "lc", "lb"))}
    offload = totals["cpu_tokens"] + totals["storage_tokens"]
    hit = state.gpu_tokens + offload
    return {
        "chunk_tokens": replay.chunk,
        "requests": state.requests,
        "input_tokens": state.input_tokens,
        "hit_tokens": hit,
        "hit_rate": hit / state.input_tokens,
        "gpu_hit_tokens": state.gpu_tokens,
        "cpu_hit_tokens": totals["cpu_tokens"],
        "storage_hit_tokens": totals["storage_tokens"],
        "prefill_tokens_saved": offload,
        "recompute_tokens": state.input_tokens - hit,
        "objects_stored": totals["stored_chunks"] * objects,
        "objects_loaded": totals["storage_chunks"] * objects,
        "bytes_stored": totals["stored_bytes"],
        "bytes_loaded": totals["storage_bytes"],
        "cpu_objects_loaded": totals["cpu_chunks"] * objects,
        "cpu_bytes_loaded": totals["cpu_bytes"],
        "object_bytes": one.object_bytes,
        "objects_per_chunk": objects,
        "stored_objects_per_s": rate({s: v * objects for s, v in series["sc"].items()}, span),
        "loaded_objects_per_s": rate({s: v * objects for s, v in series["lc"].items()}, span),
        "stored_bytes_per_s": rate(series["sb"], span),
        "loaded_bytes_per_s": rate(series["lb"], span),
        "read_requests_per_s": rate({s: v * wire for s, v in series["lc"].items()}, span),
        "write_requests_per_s": rate({s: v * wire for s, v in series["sc"].items()}, span),
        "storage_needed_bytes": totals["distinct_bytes"],
        "storage_hit_tokens_unlimited": sum(replay.needed.values()),
        "capacity_90_bytes": capacity_for(replay.needed, 0.9, replay.key_bytes),
        "capacity_99_bytes": capacity_for(replay.needed, 0.99, replay.key_bytes),
        "storage_capacity_chunks": state.storage_chunks.get(replay.chunk),
        "cpu_tier_chunks": state.cpu_chunks.get(replay.chunk),
    }


def untimed(fields: dict[str, Any]) -> ReplayRow:
    return ReplayRow(
        **fields,
        read_request_limit=None,
        write_request_limit=None,
        load_seconds_median=None,
        load_seconds_p99=None,
        load_seconds_total=None,
        past_timeout_share=None,
        recompute_seconds=None,
        cost_seconds=None,
        risks=[],
        risk_details=[],
    )
