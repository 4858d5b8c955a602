"""The engine interface and the vocabulary every engine and every consumer shares.

An engine is one module behind ``Engine``: its facts (``EngineInfo``), its own typed settings
(``EngineSettings``, whose fields carry their command-line flags), the layout it gives a model, one
row per chunk size, and every other answer that differs by engine: its limits, the requests it keeps
in flight, what one shared chunk stores, its JSON options, its words for the tables, its derivation
for ``--explain``, its emitted settings and how it reads a deployment's own config. The time model,
``check``, ``capacity``, the renderers and the CLI ask the engine; none of them names one.

Nothing here imports an engine module: the registry (``kvsize.engines.registry``) loads the one asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from kvsize.engines.layout import (
    Admission,
    Connector,
    GpuGroup,
    GpuPages,
    GroupObjects,
    KvGroup,
    Layout,
    Stage,
    StageObjects,
    StoredChunks,
    StoredGroup,
    SweepRow,
    per_writer_bytes,
    whole_chunk_row,
)
from kvsize.engines.options import (
    MAX_DRAFT_LAYERS,
    MAX_PARALLEL,
    VLLM_VERSION,
    Checked,
    EngineOptions,
    EngineSettings,
    Flag,
    KvDtype,
    Serving,
    pydantic_problem,
)
from kvsize.errors import KvsizeError, UnsupportedModelError
from kvsize.model.spec import LayerKind

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.model.spec import ModelSpec
    from kvsize.plan import Sweep

HOST_ALIGN_BYTES = 4096
"""What a CPU tier rounds each object up to (LMCache's ``ALIGN_BYTES``; vLLM's ``mmap.PAGESIZE``)."""

__all__ = [
    "HOST_ALIGN_BYTES",
    "MAX_DRAFT_LAYERS",
    "MAX_PARALLEL",
    "VLLM_VERSION",
    "Admission",
    "Checked",
    "Connector",
    "Deployment",
    "Engine",
    "EngineInfo",
    "EngineOptions",
    "EngineSettings",
    "EngineText",
    "Flag",
    "GpuGroup",
    "GpuPages",
    "GroupObjects",
    "KvDtype",
    "KvGroup",
    "Layout",
    "Limit",
    "Serving",
    "Share",
    "Stage",
    "StageObjects",
    "StoredChunks",
    "StoredGroup",
    "SweepRow",
    "per_writer_bytes",
    "pydantic_problem",
    "whole_chunk_row",
]


class EngineInfo(BaseModel):
    """One engine as ``kvsize engines`` and the docs show it."""

    model_config = ConfigDict(frozen=True)

    name: str
    stack: str
    knob: str
    """The setting that sets the object size, as the engine spells it."""
    setting: str
    """The knob's short name, for tables (``block_size 256``)."""
    default_chunk: int
    """The knob's default, in tokens."""
    candidates: tuple[int, ...]
    """The chunk sizes kvsize sweeps when none are given."""
    object_rule: str
    writers: str
    source: str
    confidence: str = "high"


class Limit(BaseModel):
    """One limit broken: its name, the value, the threshold, by how much, and a sentence."""

    model_config = ConfigDict(frozen=True)

    limit: str
    value: int | float
    """An integer for counts and bytes, seconds as a float (the JSON keeps the kind)."""
    threshold: int | float
    unit: str
    over_by: int | float = 0
    """``value - threshold``, always derived."""
    detail: str

    @model_validator(mode="before")
    @classmethod
    def _derive_over_by(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "threshold" in data:
            data = {**data, "over_by": data["value"] - data["threshold"]}
        return data


class Share(BaseModel):
    """Objects and stored bytes (payload + connector headers), in total and for the busiest writer."""

    model_config = ConfigDict(frozen=True)

    objects: int
    stored_bytes: int
    objects_per_writer: int
    stored_bytes_per_writer: int


@dataclass(frozen=True)
class EngineText:
    """An engine's words for the tables: what its objects are, and what it calls things."""

    subtitle: str
    """The line under the sweep's table (bytes per token per writer, dtype, the backend)."""
    object_note: str
    """What ``object`` and ``objects`` mean in the table."""
    tail_reason: str
    """Why the tail past the last whole chunk is not stored."""
    headline_suffix: str = ""
    """Added to the headline (``, engine vllm``); empty for the default engine."""
    unit: str = "chunk"
    """What the engine calls a chunk (page, block)."""
    no_timeout_note: str = ""
    """Under a timing table when the engine has no load timeout: why no prompt cap is shown."""


@dataclass(frozen=True)
class Deployment:
    """A deployment's own engine config, read as the engine reads it (``check``, ``capacity``)."""

    settings: EngineSettings
    chunk_tokens: int | None
    """The chunk the config sets; None when it sets none (the engine's default applies)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Each setting read, and where from (a file, an environment variable)."""
    warnings: tuple[str, ...] = ()
    problem: str | None = None
    """Why the engine could not use the config (it would store nothing), or None."""
    violations: tuple[tuple[str, str], ...] = ()
    """What in the config the engine cannot start or store with: each setting's key and a sentence."""
    view: dict[str, Any] = field(default_factory=dict)
    """The limits the config sets, for the check report."""


class Engine(ABC):
    """One offloading stack: its facts, its settings, the layout it gives a model, its rows, and every answer
    that differs by engine (each with a default that holds for an engine that stores whole chunks per writer)."""

    name: ClassVar[str]
    info: ClassVar[EngineInfo]
    Settings: ClassVar[type[EngineSettings]]
    emits: ClassVar[bool] = False
    """True when ``--emit NAME`` writes this engine's settings (``emit``)."""

    # --- sizing -------------------------------------------------------------------------------------------------

    @abstractmethod
    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        """Apply the stack's parallelism and object rules to a model spec (refusing what it cannot serve)."""

    @abstractmethod
    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        """One chunk size: chunks, tail, objects and bytes, exactly as the stack stores them."""

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        """Why the stack refuses ``chunk_tokens`` for this layout (None when it accepts it)."""
        return None

    def stores_nothing(self, layout: Layout, chunk_tokens: int) -> str | None:
        """Why the stack takes ``chunk_tokens`` but never stores an object of it (its row stores none), or None."""
        return None

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        """The chunk sizes to sweep when none are given (they may depend on the layout's GPU block)."""
        return self.info.candidates

    def row_notes(self, layout: Layout, prompt_tokens: int, rows: Sequence[SweepRow]) -> list[str]:
        """What the engine says about the sweep's rows, beside the layout's notes (none by default)."""
        return []

    def search_step(self, layout: Layout, spec: ModelSpec) -> int:
        """The granularity ``search`` steps through: the GPU block every chunk must be a multiple of."""
        return layout.block_tokens or 16

    def search_sizes(self, layout: Layout, spec: ModelSpec, low: int, high: int) -> Sequence[int]:
        """The chunk sizes ``search`` may time in [low, high], each one the engine takes: every multiple of
        ``search_step`` (an engine whose sizes are not evenly spaced gives its own)."""
        step = self.search_step(layout, spec)
        return range(max(step, -(-low // step) * step), high + 1, step)

    # --- the time model -----------------------------------------------------------------------------------------

    def recompute_tokens(self, row: SweepRow, layout: Layout) -> int:
        """Tokens a resend of the prompt recomputes after its load: the tail past the last whole chunk, unless stored."""
        return 0 if row.tail_saved else row.tail_tokens

    def requests_in_flight(self, layout: Layout, host_cpus: int | None) -> int | None:
        """Requests one writer keeps in flight when the engine fixes it; None: the storage profile's concurrency."""
        return layout.connector.io_threads

    def timeout_seconds(self, layout: Layout) -> float | None:
        """The time after which the engine abandons a load (None: it has no such timeout)."""
        return None

    def limits(self, row: SweepRow, layout: Layout, load_seconds: float | None) -> list[Limit]:
        """The engine limits ``row`` breaks (``load_seconds`` when the load was timed)."""
        return []

    def pinned_bytes_needed(self, row: SweepRow, layout: Layout) -> int | None:
        """The pinned memory the engine's own rule asks for one prompt's load; None when it has no such rule."""
        return None

    def time_option_values(self, layout: Layout) -> dict[str, Any]:
        """The engine's limits as the JSON's ``time_options`` shows them (``TimeOptions`` field names)."""
        return {}

    def timing_notes(self, layout: Layout, host_cpus: int | None) -> list[str]:
        """What the engine adds under a timing table (beside its connector's ``io_note``)."""
        return []

    # --- capacity -----------------------------------------------------------------------------------------------

    def shared_chunk(self, layout: Layout, row: SweepRow) -> Share:
        """What one whole chunk of a shared prefix stores (found again by its chained key): every writer's objects
        (nothing when the row stores nothing)."""
        if not row.objects:
            return Share(objects=0, stored_bytes=0, objects_per_writer=0, stored_bytes_per_writer=0)
        header = layout.connector.header_bytes
        per_chunk = layout.objects_per_chunk
        objects = sum(stage.writers * per_chunk for stage in layout.stages)
        largest = layout.largest_stage
        return Share(
            objects=objects,
            stored_bytes=sum(s.writers * row.chunk_tokens * s.bytes_per_token_per_rank for s in layout.stages) + objects * header,
            objects_per_writer=per_chunk,
            stored_bytes_per_writer=row.chunk_tokens * largest.bytes_per_token_per_rank + per_chunk * header,
        )

    # --- GPU memory and a trace replay --------------------------------------------------------------------------

    def gpu_pages(self, layout: Layout, spec: ModelSpec) -> GpuPages:
        """How vLLM lays the KV cache out in GPU memory under this engine. The default: vLLM with its hybrid KV-cache
        manager off (a connector without ``SupportsHMA``: ``vllm/config/vllm.py``), so every attention layer is in one
        full-attention group (``unify_hybrid_kv_cache_specs`` promotes sliding and chunked layers)."""
        if spec.is_hybrid:
            raise UnsupportedModelError(
                f"`gpu`: {spec.name} has state layers, which vLLM sizes in GPU memory by a rule kvsize does not model "
                f"under `engine` {self.name}; drop `gpu`",
                field="gpu",
            )
        block = layout.block_tokens or 16
        kind = LayerKind.MLA if spec.use_mla else LayerKind.FULL
        return GpuPages(
            block_tokens=block,
            page_bytes_per_layer=block * kind.bytes_per_token(layout.heads_per_rank, layout.head_size, layout.dtype_bytes),
            layers_per_block=max(stage.stored_layers for stage in layout.stages),
            groups=(GpuGroup(kind=kind.value),),
            rule="one full-attention group of every attention layer: the connector lacks SupportsHMA, so vLLM turns its "
            "hybrid KV-cache manager off (vllm/config/vllm.py)",
        )

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        """The chunks a prompt stores, per group, as ``plan_row`` counts them; the default: whole chunks
        0 .. floor(N / C) - 1 of one group, loadable up to all N tokens."""
        return StoredChunks(groups=(StoredGroup(start=0, stop=prompt_tokens // chunk_tokens),), max_hit_tokens=prompt_tokens)

    def chunk_row(self, layout: Layout, chunk_tokens: int) -> SweepRow:
        """One stored chunk of one group as a row: its objects (every writer's) and bytes, to scale by the chunks a
        request stores or loads."""
        return self.plan_row(layout, chunk_tokens, chunk_tokens)

    def cpu_tier_chunks(self, layout: Layout, chunk_row: SweepRow, cpu_bytes: int) -> tuple[int, str]:
        """Chunks a CPU tier of ``cpu_bytes`` holds, and how; the default: the whole instance's tier holds every writer's
        objects of a chunk, each rounded up to the host page."""
        per_chunk = sum(s.objects * -(-s.object_bytes // HOST_ALIGN_BYTES) * HOST_ALIGN_BYTES for s in chunk_row.stages)
        return cpu_bytes // max(1, per_chunk), f"{cpu_bytes:,} B for the instance / {per_chunk:,} B per chunk (every writer)"

    def admission(self, layout: Layout, cpu_tier: bool) -> Admission | None:
        """A filter that decides which offered chunks the storage tier takes (None: it takes every new one)."""
        return None

    def replay_notes(self, layout: Layout) -> list[str]:
        """What a replay assumes of this engine's tiers (their eviction policy, cited)."""
        return []

    # --- what it says -------------------------------------------------------------------------------------------

    @abstractmethod
    def engine_options(self, layout: Layout) -> dict[str, Any]:
        """The engine's own settings that shape its objects, as the JSON's ``engine_options`` shows them."""

    @abstractmethod
    def text(self, layout: Layout) -> EngineText:
        """The engine's words for the tables."""

    @abstractmethod
    def explain(self, sweep: Sweep) -> list[str]:
        """The derivation of the sweep's every number (``--explain``), from the layout and rows that computed it."""

    @abstractmethod
    def assumptions(self, sweep: Sweep) -> list[str]:
        """What a capacity number rests on, with sources: for a planning document."""

    # --- its own configuration ----------------------------------------------------------------------------------

    no_emit_reason: ClassVar[str] = ""
    """Why kvsize writes no settings for this engine (said when ``--emit`` asks), when it does not."""

    def emit(
        self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: EmitOptions | None = None
    ) -> tuple[str, list[str]]:
        """The engine's settings for ``row``'s chunk (``--emit``), sized from ``plan`` (a ``StoragePlan`` or None),
        with the values the user gave (``emit_options``) in place of placeholders; and warnings."""
        why = f": {self.no_emit_reason}" if self.no_emit_reason else ""
        raise KvsizeError(f"`emit` {self.name}: kvsize writes no settings for engine {self.name}{why}", field="emit")

    def deployment(
        self, config: Path | None, environ: Mapping[str, str] | None, given: EngineSettings, chunk_tokens: int | None
    ) -> Deployment:
        """The deployment's settings: the engine's own config file and environment where it has them, with the
        settings ``given`` winning. The default: the settings given, no config of its own."""
        if config is not None:
            raise KvsizeError(
                f"`lmcache_config` is LMCache's config file: engine {self.name} has no config file kvsize reads; drop it",
                field="lmcache_config",
            )
        return Deployment(settings=given, chunk_tokens=chunk_tokens)

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        """The settings that reach a storage of ``transport`` kind (object, file, kv, memory), keeping the ones
        ``given``; None when the engine has no way to reach it."""
        return given
