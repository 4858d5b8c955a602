"""A replay's loads on a storage backend, timed by the same time model as ``kvsize MODEL --backend``
(``kvsize.storage.timing``): each request's load is a row of the chunks it loaded, so its time, its bound and the
engine limits it breaks are the single-prompt model's. The pick is the same rule too (``recommend``): the chunk size
with the least loads plus recompute over the trace, among those with no risk."""

from __future__ import annotations

from typing import Any

from kvsize.engines.base import Layout, Limit
from kvsize.engines.registry import engine_for
from kvsize.storage import PRESETS, BackendProfile, RowTiming, TimeOptions, load_terms, time_row
from kvsize.storage.timing import load_seconds, wire_requests
from kvsize.traces.replayer import ChunkReplay
from kvsize.traces.result import ReplayRow
from kvsize.traces.session import Pass, base_row, nearest_rank, scaled


def _percentile(times: list[tuple[float, int]], share: float, total: int) -> float:
    """The nearest-rank percentile of request load times given as (seconds, requests) pairs."""
    goal, seen = nearest_rank(share, total), 0
    for seconds, count in sorted(times):
        seen += count
        if seen >= goal:
            return seconds
    return max(seconds for seconds, _ in times)


def _cpu_seconds(layout: Layout, replay: ChunkReplay, chunks: int, options: TimeOptions) -> float:
    """Loading ``chunks`` chunks from the CPU tier, on the ``cpu`` preset (PCIe to the GPU)."""
    if not chunks:
        return 0.0
    row = scaled(replay.engine.chunk_row(layout, replay.chunk), chunks)
    return load_seconds(load_terms(row, layout, PRESETS["cpu"], options.concurrent_prompts))[0]


def _peaks(fields: dict[str, Any], profile: BackendProfile) -> list[Limit]:
    """The storage's published request-rate caps the trace's busiest second breaks."""
    found = []
    for kind, key, cap in (
        ("read", "read_requests_per_s", profile.max_requests_per_s),
        ("write", "write_requests_per_s", profile.write_max_requests_per_s),
    ):
        peak = fields[key].peak
        if cap is not None and peak > cap:
            found.append(
                Limit(
                    limit=f"peak_{kind}_rate",
                    value=peak,
                    threshold=cap,
                    unit="requests/s",
                    detail=f"the busiest second has {peak:,.0f} {kind} requests > {profile.name}'s published {cap:,.0f}/s "
                    "(for S3, per partitioned prefix: spread the keys over prefixes)",
                )
            )
    return found


def timed_row(replay: ChunkReplay, state: Pass, profile: BackendProfile, options: TimeOptions) -> tuple[ReplayRow, RowTiming]:
    """The row with its loads timed, and the ``RowTiming`` the pick compares (totals over the trace)."""
    layout = replay.layout
    one = replay.engine.chunk_row(layout, replay.chunk)
    fields = base_row(replay, state, wire_requests(one, layout, profile))
    cache: dict[int, RowTiming] = {}
    times: list[tuple[float, int]] = []
    for (from_storage, from_cpu), requests in replay.loads.items():
        if from_storage not in cache:
            cache[from_storage] = time_row(scaled(one, from_storage), layout, profile, options)
        seconds = cache[from_storage].load_seconds + _cpu_seconds(layout, replay, from_cpu, options)
        times.append((seconds, requests))
    timeout = engine_for(layout.engine).timeout_seconds(layout)
    total = sum(seconds * count for seconds, count in times)
    slowest = cache[max(cache)]
    recompute = fields["recompute_tokens"] / options.prefill_tokens_per_s if options.prefill_tokens_per_s else None
    breaches = [*slowest.breaches, *_peaks(fields, profile)]
    timing = slowest.model_copy(
        update={
            "chunk_tokens": replay.chunk,
            "load_seconds": total,
            "recompute_tokens": fields["recompute_tokens"],
            "recompute_seconds": recompute,
            "cost_seconds": None if recompute is None else total + recompute,
            "breaches": tuple(breaches),
        }
    )
    row = ReplayRow(
        **fields,
        read_request_limit=profile.max_requests_per_s,
        write_request_limit=profile.write_max_requests_per_s,
        load_seconds_median=_percentile(times, 0.5, state.requests),
        load_seconds_p99=_percentile(times, 0.99, state.requests),
        load_seconds_total=total,
        past_timeout_share=None
        if timeout is None
        else sum(count for seconds, count in times if seconds > timeout) / state.requests,
        recompute_seconds=recompute,
        cost_seconds=timing.cost_seconds,
        risks=[limit.limit for limit in breaches],
        risk_details=[limit.detail for limit in breaches],
    )
    return row, timing
