"""What the library calls return: one pydantic result per command.

``result.model_dump(mode="json")`` **is** the command's ``--format json`` output, key for key
(the JSON contract: keys are added, never renamed, removed or retyped). A key that does not
apply to a run is null (or an empty list), never absent. The objects the renderers need
(the sweep, the timed plans) ride along, excluded from the dump.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from kvsize.calls.gpu_memory import GpuReport
from kvsize.plan import GroupObjects, Sweep, SweepRow

if TYPE_CHECKING:
    from kvsize.storage import StoragePlan


class StageView(BaseModel):
    """One pipeline stage as the JSON shows it."""

    model_config = ConfigDict(frozen=True)

    stage: int
    first_layer: int
    layers: int
    stored_layers: int
    writers: int
    bytes_per_token_per_rank: int


class RowView(BaseModel):
    """One chunk size: chunks, tail, objects and bytes (exact integers)."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    full_chunks: int
    tail_tokens: int
    tail_saved: bool
    object_bytes: int
    tail_object_bytes: int
    objects: int
    objects_per_writer: int
    total_bytes: int
    header_bytes: int
    stored_bytes: int
    reduction_vs_256: float | None
    groups: list[GroupObjects] | None = None
    """Per KV-cache group, for engines that store per group (vLLM native, llm-d); null for the others."""

    @classmethod
    def of(cls, row: SweepRow) -> RowView:
        return cls.model_validate(row.model_dump(exclude={"stages"}))


class TimingView(BaseModel):
    """One row timed on one backend (``RowTiming`` as the JSON shows it)."""

    model_config = ConfigDict(frozen=True)

    load_seconds: float | None = None
    load_bound: str | None = None
    store_seconds: float | None = None
    wire_requests: int | None = None
    max_concurrent_prompts: int | None = None
    per_writer_bytes: int | None = None
    pinned_bytes_needed: int | None = None
    recompute_tokens: int | None = None
    recompute_seconds: float | None = None
    cost_seconds: float | None = None
    terms: dict[str, Any] | None = None
    """Every term of the load time, as the time model computed it (``LoadTerms``)."""
    risks: list[str] | None = None
    risk_details: list[str] | None = None


class TimedRow(TimingView, RowView):
    """A row with the first backend's timing (null without a backend)."""


class BackendResult(BaseModel):
    """One ``--backend``: its figures, the pick, and every row's timing."""

    model_config = ConfigDict(frozen=True)

    backend: dict[str, Any]
    recommended_chunk_tokens: int | None
    recommendation: str | None
    recommended_at_risk: bool | None
    rows: list[TimingView]
    notes: list[str]
    full_recompute_seconds: float | None
    offload_pays: bool | None


class SweepReport(BaseModel):
    """A model, how it is served, and what one prompt stores at each chunk size: the core contract."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    model: str
    tp: int
    pp: int
    prompt_tokens: int
    kv_dtype: str
    dtype_bytes: int
    bytes_per_token: int
    bytes_per_token_per_rank: int
    writers: int
    warnings: list[str]
    rows: list[RowView]
    notes: list[str]
    connector: str
    layerwise: bool
    save_unfull_chunk: bool
    source: str
    model_type: str
    layers: int
    kv_layers: int
    draft_layers: int
    kv_heads: int
    kv_heads_per_rank: int
    head_size: int
    use_mla: bool
    stages: list[StageView]
    offload_engine: str
    """The offloading stack sized (``kvsize engines`` lists them)."""
    engine_options: dict[str, Any] = {}
    """The stack's own settings that shape its objects (LMCache: connector, layerwise, ...; vLLM: tier, GPU block, ...)."""
    sweep: Sweep = Field(exclude=True, repr=False)


def sweep_fields(sweep: Sweep, warnings: list[str]) -> dict[str, Any]:
    """The core contract's values for ``sweep`` (rows untimed)."""
    layout, spec = sweep.layout, sweep.spec
    return {
        "model": spec.name,
        "tp": layout.options.tp,
        "pp": layout.options.pp,
        "prompt_tokens": sweep.prompt_tokens,
        "kv_dtype": layout.kv_dtype,
        "dtype_bytes": layout.dtype_bytes,
        "bytes_per_token": layout.bytes_per_token,
        "bytes_per_token_per_rank": layout.bytes_per_token_per_rank,
        "writers": layout.writers,
        "warnings": warnings,
        "rows": [RowView.of(row) for row in sweep.rows],
        "notes": list(sweep.notes),
        "connector": layout.connector.name,
        "layerwise": bool(getattr(layout.options.settings, "layerwise", False)),
        "save_unfull_chunk": bool(getattr(layout.options.settings, "save_unfull_chunk", False)),
        "source": spec.source,
        "model_type": spec.model_type,
        "layers": spec.num_layers,
        "kv_layers": spec.kv_layers,
        "draft_layers": layout.options.draft_layers,
        "kv_heads": spec.num_kv_heads,
        "kv_heads_per_rank": layout.heads_per_rank,
        "head_size": spec.head_size,
        "use_mla": spec.use_mla,
        "stages": [
            StageView(
                stage=s.index,
                first_layer=s.first_layer,
                layers=s.layers,
                stored_layers=s.stored_layers,
                writers=s.writers,
                bytes_per_token_per_rank=s.bytes_per_token_per_rank,
            )
            for s in layout.stages
        ],
        "offload_engine": layout.engine,
        "engine_options": engine_options(layout),
        "sweep": sweep,
    }


def engine_options(layout: Any) -> dict[str, Any]:
    """The engine's own settings, as the JSON's ``engine_options`` shows them (``Engine.engine_options``)."""
    from kvsize.engines.registry import engine_for

    return engine_for(layout.engine).engine_options(layout)


class SizeResult(SweepReport):
    """``kvsize.size()`` / ``kvsize MODEL --format json``."""

    rows: list[TimedRow]  # type: ignore[assignment]
    backend: dict[str, Any] | None
    """The first backend's figures (with ``figures`` and ``missing``); null without ``backend``."""
    recommended_chunk_tokens: int | None
    full_recompute_seconds: float | None
    offload_pays: bool | None
    backends: list[BackendResult]
    time_options: dict[str, Any] | None
    prefill: str | None
    explain: list[str] | None
    gpu: GpuReport | None = None
    """The GPU tier (``kvsize.Gpu`` given): vLLM's KV memory per GPU, tokens that fit, maximum concurrency; else null."""
    plans: tuple[Any, ...] = Field(default=(), exclude=True, repr=False)
    """The timed plans (``StoragePlan``), one per backend, for the renderers."""


def timing_view(timing: Any) -> TimingView:
    return TimingView.model_validate(timing.model_dump(exclude={"chunk_tokens", "breaches"}))


def backend_result(plan: StoragePlan) -> BackendResult:
    pick = plan.recommendation
    return BackendResult(
        backend=plan.backend.model_dump(),
        recommended_chunk_tokens=pick.chunk_tokens if pick else None,
        recommendation=pick.reason if pick else None,
        recommended_at_risk=pick.at_risk if pick else None,
        rows=[timing_view(t) for t in plan.timings],
        notes=list(plan.notes),
        full_recompute_seconds=plan.full_recompute_seconds,
        offload_pays=plan.offload_pays,
    )


def size_result(
    sweep: Sweep, plans: list[StoragePlan], warnings: list[str], explain: list[str] | None, gpu: GpuReport | None = None
) -> SizeResult:
    """The JSON contract of ``kvsize MODEL``: the sweep, and with backends the first one's timing on every row."""
    fields = sweep_fields(sweep, warnings)
    first = plans[0] if plans else None
    timings = [timing_view(t) for t in first.timings] if first else [TimingView() for _ in sweep.rows]
    fields["rows"] = [
        TimedRow(**row.model_dump(), **timing.model_dump()) for row, timing in zip(fields["rows"], timings, strict=True)
    ]
    results = [backend_result(plan) for plan in plans]
    return SizeResult(
        **fields,
        backend=results[0].backend if results else None,
        recommended_chunk_tokens=results[0].recommended_chunk_tokens if results else None,
        full_recompute_seconds=first.full_recompute_seconds if first else None,
        offload_pays=first.offload_pays if first else None,
        backends=results,
        time_options=first.options.model_dump() if first else None,
        prefill=first.prefill_assumption if first else None,
        explain=explain,
        gpu=gpu,
        plans=tuple(plans),
    )
