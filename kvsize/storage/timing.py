"""The load-time model and the chunk-size recommendation.

The time model (docs/load-time.md, "Time for n objects of s bytes with C in flight")::

    t_op         = r · L + s / b             (r round trips per object: 2 for redis's two keys)
    load_seconds = max( ceil(n_w / C) · t_op,  (waves: each writer loads its n_w objects, C in flight)
                        N · bytes / B,         (aggregate bandwidth, shared by all writers and prompts)
                        N · wire / R )         (request-rate cap on what the storage sees)

Every term is recorded on the row's timing (``LoadTerms``), so ``--explain`` renders the
calculation that was made instead of making another.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, computed_field

from kvsize.engines.base import Layout, Limit, SweepRow, per_writer_bytes
from kvsize.engines.registry import engine_for
from kvsize.storage.backends import BackendProfile
from kvsize.storage.risks import TimeOptions, engine_risks, pinned_bytes_needed
from kvsize.units import format_iec

EQUAL_COST = 0.01
"""Costs within 1% of the least count as equal; the smallest such chunk is recommended."""


class LoadTerms(BaseModel):
    """Every term of one row's load time, as computed: what ``--explain`` shows.

    ``load = max(waves x op, prompts x stored / aggregate, prompts x wire / rate)``,
    ``op = round_trips x latency + object / stream``.
    """

    model_config = ConfigDict(frozen=True)

    objects_per_writer: int
    concurrency: int
    waves: int
    round_trips: int
    latency_s: float
    object_bytes: int
    """One object as stored (payload + an inline header)."""
    stream_bytes_per_s: float
    op_seconds: float
    waves_seconds: float
    prompts: int
    stored_bytes: int
    aggregate_bytes_per_s: float | None
    bandwidth_seconds: float | None
    wire_requests: int
    max_requests_per_s: float | None
    request_rate_seconds: float | None
    in_flight: int | None = None
    """Requests in flight over all writers and prompts: where a profile measured per level, B is read there."""


class RowTiming(BaseModel):
    """The time model and the broken limits for one sweep row on one backend."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    load_seconds: float
    load_bound: str
    """Which term set the load time: 'waves' (each writer's requests, C in flight), 'bandwidth' (aggregate) or 'request rate'."""
    store_seconds: float | None
    wire_requests: int
    max_concurrent_prompts: int | None
    """Prompts that can load at once within the blocking timeout; None = no shared cap limits them."""
    per_writer_bytes: int
    pinned_bytes_needed: int | None
    recompute_tokens: int
    recompute_seconds: float | None
    cost_seconds: float | None
    terms: LoadTerms
    breaches: tuple[Limit, ...] = ()
    """The limits this row breaks (the same type the CI guard reports)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def risks(self) -> tuple[str, ...]:
        return tuple(limit.limit for limit in self.breaches)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def risk_details(self) -> tuple[str, ...]:
        return tuple(limit.detail for limit in self.breaches)


def wire_requests(row: SweepRow, layout: Layout, profile: BackendProfile) -> int:
    """Requests the storage sees for one prompt.

    A connector whose client splits objects into parts (S3: ``ceil(s / part_size)`` ranged GETs or
    part PUTs per object, an estimate since LMCache leaves the part size to awscrt); else the
    connector's requests per object (redis: two keys per chunk).
    """
    connector = layout.connector
    if connector.multipart and profile.part_size_bytes:
        # S3 stores whole chunks only, so every object is a full one of its stage's size.
        part = profile.part_size_bytes
        return sum(stage.objects * math.ceil(stage.object_bytes / part) for stage in row.stages if stage.objects)
    return row.objects * connector.requests_per_object


def engine_concurrency(layout: Layout, host_cpus: int | None) -> int | None:
    """Requests one writer keeps in flight when the engine fixes it, else None (the profile's concurrency):
    ``Engine.requests_in_flight`` (vLLM's tiers their thread counts; LMCache's fs connector, given the serving host's
    CPUs, asyncio's default thread pool)."""
    return engine_for(layout.engine).requests_in_flight(layout, host_cpus)


def load_terms(row: SweepRow, layout: Layout, profile: BackendProfile, prompts: int, host_cpus: int | None = None) -> LoadTerms:
    """The time model's terms for one prompt's objects (``prompts`` of them loading at once)."""
    connector = layout.connector
    threads = engine_concurrency(layout, host_cpus)
    return terms_for(
        objects_per_writer=row.objects_per_writer,
        object_bytes=row.object_bytes + connector.inline_header_bytes,
        stored_bytes=row.stored_bytes,
        wire_requests=wire_requests(row, layout, profile),
        round_trips=connector.requests_per_object,
        profile=profile if threads is None else profile.model_copy(update={"concurrency": threads}),
        prompts=prompts,
        writers=layout.writers,
    )


def terms_for(
    *,
    objects_per_writer: int,
    object_bytes: int,
    stored_bytes: int,
    wire_requests: int,
    round_trips: int,
    profile: BackendProfile,
    prompts: int = 1,
    writers: int = 1,
) -> LoadTerms:
    """The time model's terms from explicit counts (what ``load_terms`` derives from a row)."""
    latency, stream, concurrency = profile.require()
    op = round_trips * latency + object_bytes / stream
    waves = math.ceil(objects_per_writer / concurrency)
    in_flight = writers * min(concurrency, max(1, objects_per_writer)) * prompts
    aggregate, rate = profile.aggregate_at(in_flight, object_bytes), profile.max_requests_per_s
    return LoadTerms(
        objects_per_writer=objects_per_writer,
        concurrency=concurrency,
        waves=waves,
        round_trips=round_trips,
        latency_s=latency,
        object_bytes=object_bytes,
        stream_bytes_per_s=stream,
        op_seconds=op,
        waves_seconds=waves * op,
        prompts=prompts,
        stored_bytes=stored_bytes,
        aggregate_bytes_per_s=aggregate,
        bandwidth_seconds=prompts * stored_bytes / aggregate if aggregate else None,
        wire_requests=wire_requests,
        max_requests_per_s=rate,
        request_rate_seconds=prompts * wire_requests / rate if rate else None,
        in_flight=in_flight,
    )


def load_seconds(terms: LoadTerms) -> tuple[float, str]:
    """``(seconds, bound)``: the largest term and its name ('waves', 'bandwidth' or 'request rate')."""
    candidates = {"waves": terms.waves_seconds, "bandwidth": terms.bandwidth_seconds, "request rate": terms.request_rate_seconds}
    present = {name: value for name, value in candidates.items() if value is not None}
    bound = max(present, key=lambda name: present[name])
    return present[bound], bound


def _max_prompts(terms: LoadTerms, layout: Layout) -> int | None:
    """Prompts that can load at once within the engine's load timeout (None: no shared cap limits them, or an
    engine without such a timeout)."""
    timeout = engine_for(layout.engine).timeout_seconds(layout)
    if timeout is None:
        return None
    if terms.waves_seconds > timeout:
        return 0
    caps = []
    if terms.aggregate_bytes_per_s and terms.stored_bytes:
        caps.append(timeout * terms.aggregate_bytes_per_s / terms.stored_bytes)
    if terms.max_requests_per_s and terms.wire_requests:
        caps.append(timeout * terms.max_requests_per_s / terms.wire_requests)
    return math.floor(min(caps)) if caps else None


def _store_seconds(terms: LoadTerms, profile: BackendProfile) -> float | None:
    if not profile.write_max_requests_per_s:
        return None
    store = [terms.waves_seconds, terms.prompts * terms.wire_requests / profile.write_max_requests_per_s]
    if terms.bandwidth_seconds is not None:
        store.append(terms.bandwidth_seconds)
    return max(store)


def _breaches(row: SweepRow, layout: Layout, profile: BackendProfile, load: float) -> list[Limit]:
    found = engine_risks(row, layout, load)
    stored_object = row.object_bytes + layout.connector.inline_header_bytes
    if profile.max_value_bytes is not None and stored_object > profile.max_value_bytes:
        found.append(
            Limit(
                limit="max_value_size",
                value=stored_object,
                threshold=profile.max_value_bytes,
                unit="B",
                detail=f"object {format_iec(stored_object)} > {profile.name} max value {format_iec(profile.max_value_bytes)}",
            )
        )
    return found


def time_row(row: SweepRow, layout: Layout, profile: BackendProfile, options: TimeOptions) -> RowTiming:
    """One row on one backend: the load, its bound, the limits it breaks, and the recompute it leaves."""
    terms = load_terms(row, layout, profile, options.concurrent_prompts, options.host_cpus)
    load, bound = load_seconds(terms)
    recompute = engine_for(layout.engine).recompute_tokens(row, layout)
    if options.shared_prefix_tokens is not None:
        recompute += options.shared_prefix_tokens % row.chunk_tokens
    recompute_s = recompute / options.prefill_tokens_per_s if options.prefill_tokens_per_s else None
    return RowTiming(
        chunk_tokens=row.chunk_tokens,
        load_seconds=load,
        load_bound=bound,
        store_seconds=_store_seconds(terms, profile),
        wire_requests=terms.wire_requests,
        max_concurrent_prompts=_max_prompts(terms, layout),
        per_writer_bytes=per_writer_bytes(row, layout),
        pinned_bytes_needed=pinned_bytes_needed(row, layout),
        recompute_tokens=recompute,
        recompute_seconds=recompute_s,
        cost_seconds=load + recompute_s if recompute_s is not None else None,
        terms=terms,
        breaches=tuple(_breaches(row, layout, profile, load)),
    )


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    at_risk: bool
    """True when every row is at risk and this is the least-bad one."""
    reason: str


def recommend(timings: list[RowTiming]) -> Recommendation | None:
    """The chunk size minimising load + recompute among rows with no risk; else the least bad, flagged.

    None when the recompute cost is unknown (no prefill throughput).
    """
    if not timings or any(t.cost_seconds is None for t in timings):
        return None
    safe = [t for t in timings if not t.risks]
    fewest = min(len(t.risks) for t in timings)
    pool = safe or [t for t in timings if len(t.risks) == fewest]
    least = min(t.cost_seconds or 0.0 for t in pool)
    # Costs within EQUAL_COST of the least are equal at the model's precision: the smaller chunk wins them
    # (less pinned memory per request in flight, a shorter tail to recompute).
    best = min((t for t in pool if (t.cost_seconds or 0.0) <= least * (1 + EQUAL_COST)), key=lambda t: t.chunk_tokens)
    assert best.cost_seconds is not None and best.recompute_seconds is not None
    reason = (
        f"chunk {best.chunk_tokens:,}: load {best.load_seconds:.2f} s ({best.load_bound}-bound) + recompute of "
        f"{best.recompute_tokens:,} tokens {best.recompute_seconds:.2f} s = {best.cost_seconds:.2f} s, the least"
    )
    if best.cost_seconds and best.cost_seconds > least:
        reason += " (within 1% of the least cost, and the smallest such chunk)"
    if safe:
        reason += f" of the {len(safe)} chunk sizes with no risk"
    else:
        reason += f"; every chunk size is at risk, this one least ({', '.join(best.risks)})"
    return Recommendation(chunk_tokens=best.chunk_tokens, at_risk=not safe, reason=reason)


class StoragePlan(BaseModel):
    """A sweep's rows timed on one backend, with the recommendation."""

    model_config = ConfigDict(frozen=True)

    backend: BackendProfile
    options: TimeOptions
    timings: tuple[RowTiming, ...]
    recommendation: Recommendation | None
    prefill_assumption: str | None
    notes: tuple[str, ...]
    full_recompute_seconds: float | None = None
    """Prefill of the prompts one serving instance holds, all recomputed: ``ceil(N / instances) x prompt / rate``."""
    engine: str
    """The offloading engine whose rows these are (``Layout.engine``)."""
    offload_pays: bool | None = None
    """False when the recommended chunk's load + tail recompute is not below ``full_recompute_seconds``;
    None when the recompute cost is unknown."""
    timeout_seconds: float | None = None
    """The engine's load timeout (``Engine.timeout_seconds``); None when it has none."""
    no_timeout_note: str = ""
    """Why no prompt cap is shown, for an engine without a load timeout."""


def prompts_per_instance(options: TimeOptions) -> int:
    """Prompts one serving instance holds when ``concurrent_prompts`` are spread over ``instances``."""
    return -(-options.concurrent_prompts // options.instances)


def full_recompute_seconds(prompt_tokens: int, options: TimeOptions) -> float | None:
    """What one serving instance needs to prefill its share of the prompts instead of loading them."""
    if not options.prefill_tokens_per_s:
        return None
    return prompts_per_instance(options) * prompt_tokens / options.prefill_tokens_per_s


def plan_storage(
    rows: tuple[SweepRow, ...] | list[SweepRow],
    layout: Layout,
    profile: BackendProfile,
    options: TimeOptions,
    prefill_assumption: str | None = None,
) -> StoragePlan:
    """Time every row on ``profile`` and pick the chunk size."""
    engine = engine_for(layout.engine)
    timings = [time_row(row, layout, profile, options) for row in rows]
    notes = []
    if layout.kv_factor == 1 and layout.writers == 1 and layout.options.tp > 1:
        notes.append("MLA loads through one writer; its broadcast to the other TP ranks is not modelled")
    if layout.connector.multipart:
        notes.append(
            "S3 wire requests are an estimate: ceil(object / part size) ranged GETs per object (LMCache leaves the "
            "part size to awscrt); the one HEAD per chunk of a lookup is cached per process and not counted"
        )
    notes += engine.timing_notes(layout, options.host_cpus)
    if profile.aggregate_by_concurrency or profile.aggregate_by_object_size:
        notes.append(
            "B read at the load's own requests in flight (writers x per-writer concurrency x prompts), from the probe's "
            "sets of the object size nearest the load's, between the levels measured (linear; the nearest outside)"
        )
    if layout.connector.io_note:
        notes.append(layout.connector.io_note)
    recommendation = recommend(timings)
    prompt_tokens = rows[0].full_chunks * rows[0].chunk_tokens + rows[0].tail_tokens if rows else 0
    recompute_all = full_recompute_seconds(prompt_tokens, options)
    pays = None
    if recommendation is not None and recompute_all is not None:
        best = next(t for t in timings if t.chunk_tokens == recommendation.chunk_tokens)
        pays = best.cost_seconds is not None and best.cost_seconds < recompute_all
    return StoragePlan(
        backend=profile,
        options=options,
        timings=tuple(timings),
        recommendation=recommendation,
        prefill_assumption=prefill_assumption,
        notes=tuple(notes),
        full_recompute_seconds=recompute_all,
        offload_pays=pays,
        engine=layout.engine,
        timeout_seconds=engine.timeout_seconds(layout),
        no_timeout_note=engine.text(layout).no_timeout_note,
    )
