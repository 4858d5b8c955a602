"""The engine interface: what every offloading stack kvsize sizes answers, and the rows it produces.

An engine is one module behind ``Engine``: its knob and default (``EngineInfo``), the layout it
gives a model (which layers or groups are stored, by whom), one row per chunk size (objects, their
bytes as written, the unstored tail) and which chunk sizes it refuses. The time model, the risks,
``check`` and ``capacity`` only read rows and layouts, so they work for every engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from kvsize.engines.lmcache import EngineOptions, Layout
    from kvsize.model.spec import ModelSpec


ENGINE_NAMES: tuple[str, ...] = ("lmcache", "vllm", "llmd-fs", "sglang", "kvbm")
TIERS: tuple[str, ...] = ("cpu", "fs", "obj")
SGLANG_BACKENDS: tuple[str, ...] = ("file", "mooncake", "nixl", "hf3fs")
KVBM_ENGINES: tuple[str, ...] = ("vllm", "trtllm")
KVBM_TIERS: tuple[str, ...] = ("disk", "object")


class KvGroup(BaseModel):
    """One KV-cache group: layers that share a block table (vLLM ``KVCacheGroupSpec``)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """The layers' kind (``LayerKind`` value): full_attention, sliding_attention, chunked_attention or mla."""
    layers: tuple[int, ...]
    """The model's layer indices in the group."""
    window_tokens: int | None = None
    """A sliding window's tokens (the group stores only the window's chunks); None for other kinds."""


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


class StageObjects(BaseModel):
    """One stage's share of a row: how many objects its writers store, and their bytes."""

    model_config = ConfigDict(frozen=True)

    stage: int
    objects: int
    object_bytes: int
    tail_object_bytes: int
    total_bytes: int


class GroupObjects(BaseModel):
    """One KV-cache group's share of a row (engines that store per group)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    layers: int
    objects: int
    object_bytes: int


class SweepRow(BaseModel):
    """What loading (or storing) one prompt costs at one chunk size."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    full_chunks: int
    tail_tokens: int
    tail_saved: bool
    object_bytes: int
    """The largest object as the engine writes it (one layer's when LMCache is layerwise)."""
    tail_object_bytes: int
    """KV payload of one tail object of the largest stage (0 when the tail is not saved)."""
    objects: int
    """Objects stored for the prompt: all writers, stages and groups (x layers when layerwise)."""
    objects_per_writer: int
    """Objects of the busiest writer."""
    total_bytes: int
    """The sum of the objects as written."""
    header_bytes: int
    stored_bytes: int
    reduction_vs_256: float | None
    """The engine's objects at chunk 256 divided by this row's; None when either stores nothing."""
    stages: tuple[StageObjects, ...]
    groups: tuple[GroupObjects, ...] | None = None
    """Per KV-cache group (engines that store per group); None otherwise."""


def whole_chunk_row(
    prompt_tokens: int,
    chunk_tokens: int,
    stages: list[StageObjects],
    object_bytes: int,
    objects_per_writer: int,
    groups: tuple[GroupObjects, ...] | None = None,
) -> SweepRow:
    """A row of an engine that stores whole chunks only and no headers: objects and bytes are its stages' sums."""
    full_chunks, tail = divmod(prompt_tokens, chunk_tokens)
    objects = sum(stage.objects for stage in stages)
    total = sum(stage.total_bytes for stage in stages)
    return SweepRow(
        chunk_tokens=chunk_tokens,
        full_chunks=full_chunks,
        tail_tokens=tail,
        tail_saved=False,
        object_bytes=object_bytes if objects else 0,
        tail_object_bytes=0,
        objects=objects,
        objects_per_writer=objects_per_writer,
        total_bytes=total,
        header_bytes=0,
        stored_bytes=total,
        reduction_vs_256=None,
        stages=tuple(stages),
        groups=groups,
    )


class Engine(Protocol):
    """One offloading stack: its facts, the layout it gives a model, and its rows."""

    info: EngineInfo

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        """Apply the stack's parallelism and object rules to a model spec (refusing what it cannot serve)."""
        ...

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        """One chunk size: chunks, tail, objects and bytes, exactly as the stack stores them."""
        ...

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        """Why the stack refuses ``chunk_tokens`` for this layout (None when it accepts it)."""
        ...

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        """The chunk sizes to sweep when none are given (they depend on the layout's GPU block)."""
        ...
