"""What ``kvsize.replay`` returns: its ``model_dump(mode="json")`` is ``kvsize replay --format json`` (docs/json.md).

Counts and bytes are exact integers; a key that does not apply to a run is null, never absent. The per-second series
and the hit-rate curves the plot draws ride along, excluded from the dump.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kvsize.calls.gpu_memory import GpuReport


class Rate(BaseModel):
    """A quantity per second of the trace's clock, over 1 s windows from its first request to its last."""

    model_config = ConfigDict(frozen=True)

    mean: float
    p99: float
    """The 99th percentile of the windows (nearest rank; empty windows count as 0)."""
    peak: float


class TraceInfo(BaseModel):
    """The trace replayed."""

    model_config = ConfigDict(frozen=True)

    source: str
    """The file, or ``generated`` for a ``SyntheticTrace``."""
    requests: int
    input_tokens: int
    output_tokens: int
    first_timestamp_ms: float
    last_timestamp_ms: float
    duration_seconds: float
    windows: int
    """1 s windows from the first request to the last (what ``mean`` divides by)."""
    trace_block: int
    generated: dict[str, Any] | None
    """The ``SyntheticTrace`` arguments when the trace was generated; null for a file."""


class ReplayRow(BaseModel):
    """One chunk size over the whole trace."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    requests: int
    input_tokens: int
    hit_tokens: int
    """Tokens not prefilled: the GPU tier's hits plus the offload tiers' (C x the chunks loaded, past the GPU hit)."""
    hit_rate: float
    gpu_hit_tokens: int
    cpu_hit_tokens: int
    storage_hit_tokens: int
    prefill_tokens_saved: int
    """What offloading saves beyond the GPU's prefix cache: the CPU and storage tiers' hit tokens."""
    recompute_tokens: int
    objects_stored: int
    """New objects written to storage (every writer's), a chunk already stored not counted again."""
    objects_loaded: int
    """Objects loaded from storage (every writer's)."""
    bytes_stored: int
    bytes_loaded: int
    cpu_objects_loaded: int
    cpu_bytes_loaded: int
    object_bytes: int
    objects_per_chunk: int
    """Objects one chunk of one group is (every writer's)."""
    stored_objects_per_s: Rate
    loaded_objects_per_s: Rate
    stored_bytes_per_s: Rate
    loaded_bytes_per_s: Rate
    read_requests_per_s: Rate
    """Storage requests on the wire for loads (parts of a multipart client, two keys for redis ...)."""
    write_requests_per_s: Rate
    read_request_limit: float | None
    """The backend's published read-request cap (S3: 5,500 GET/s per prefix); null without one."""
    write_request_limit: float | None
    storage_needed_bytes: int
    """What holding every chunk the trace stores takes (no eviction)."""
    storage_hit_tokens_unlimited: int
    """Offload hit tokens with storage the only offload tier and no capacity limit."""
    capacity_90_bytes: int | None
    """The least storage (LRU) that keeps 90% of those hit tokens; null when nothing is hit."""
    capacity_99_bytes: int | None
    storage_capacity_chunks: int | None
    """The storage tier's chunks at ``storage_capacity`` (null: unlimited)."""
    cpu_tier_chunks: int | None
    load_seconds_median: float | None
    load_seconds_p99: float | None
    load_seconds_total: float | None
    past_timeout_share: float | None
    """Share of requests whose load takes longer than the engine's timeout (null: no backend, or no timeout)."""
    recompute_seconds: float | None
    cost_seconds: float | None
    """Loads plus recompute of what was not hit, over the trace: what the pick minimises."""
    risks: list[str]
    risk_details: list[str]


class ReplayResult(BaseModel):
    """``kvsize.replay()`` / ``kvsize replay --format json``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    model: str
    tp: int
    pp: int
    kv_dtype: str
    bytes_per_token: int
    writers: int
    offload_engine: str
    engine_options: dict[str, Any]
    connector: str
    trace: TraceInfo
    gpu: GpuReport | None
    cpu_tier_bytes: int | None
    storage_capacity_bytes: int | None
    backend: dict[str, Any] | None
    time_options: dict[str, Any] | None
    prefill: str | None
    recommended_chunk_tokens: int | None
    recommendation: str | None
    recommended_at_risk: bool | None
    rows: list[ReplayRow]
    warnings: list[str]
    notes: list[str]
    assumptions: list[str]
    curves: dict[int, list[tuple[int, float]]] = Field(default_factory=dict, exclude=True, repr=False)
    """Per chunk size: (storage bytes, share of the unlimited storage hit tokens) points, for the plot."""
    series: dict[int, dict[int, tuple[int, int]]] = Field(default_factory=dict, exclude=True, repr=False)
    """Per chunk size: per second of the trace, (read requests, write requests), for the plot."""
