"""What an engine's layout and rows are made of: the connector an object goes through, the stages and groups that
store, and one row per chunk size (objects, bytes, tail)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from kvsize.engines.options import EngineOptions, Serving


class Connector(BaseModel):
    """How one engine's backend or tier lays an object out, and how it reaches the storage."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    """What selects it in the engine's own settings (``s3://``, ``root_dir``, ``--hicache-storage-backend file``)."""
    layout: str
    source: str
    header_bytes: int = 0
    """Metadata bytes per object (inline header plus any separate metadata key or file)."""
    requests_per_object: int = 1
    """Storage operations per object: 2 for redis's two keys and GDS's two files, else 1."""
    stores_partial_chunks: bool = False
    int32_header: bool = False
    """The header's length field is an int32: objects of 2 GiB or more cannot be described."""
    multipart: bool = False
    """The client splits an object into parts, each a request on the wire (awscrt on S3)."""
    pinned_memory_rule: bool = False
    """LMCache's S3 pinned-memory rule applies: object x s3_max_inflight_reqs + max_local_cpu_size x TP."""
    io_threads: int | None = None
    """Requests the engine keeps in flight per writer, when the engine fixes it (vLLM's FS tier: 16 read threads);
    None when the storage profile's concurrency applies."""
    io_note: str | None = None
    """The sentence saying where ``io_threads`` comes from (a timing note)."""
    transport: str = "file"
    """What kind of storage it reaches: object (S3 and alike), file (a directory: a mount or a local disk),
    kv (a key-value server such as Redis), memory (CPU memory) or other (a system no preset describes)."""

    @property
    def inline_header_bytes(self) -> int:
        """Header bytes inside the object itself (a separate metadata key or file is a request of its own)."""
        return self.header_bytes if self.requests_per_object == 1 else 0


class KvGroup(BaseModel):
    """One KV-cache group: layers that share a block table (vLLM ``KVCacheGroupSpec``)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """The layers' kind (``LayerKind`` value): full_attention, sliding_attention, chunked_attention, mla or a state kind."""
    layers: tuple[int, ...]
    """The model's layer indices in the group."""
    window_tokens: int | None = None
    """A sliding window's tokens (the group stores only the window's chunks); None for other kinds."""


class Stage(BaseModel):
    """One pipeline stage: its layer range and what each of its writers stores per token."""

    model_config = ConfigDict(frozen=True)

    index: int
    first_layer: int
    layers: int
    kv_layers: int
    draft_layers: int
    writers: int
    bytes_per_token_per_rank: int

    @property
    def stored_layers(self) -> int:
        return self.kv_layers + self.draft_layers


class Layout(BaseModel):
    """The storage layout of one model under one engine and its settings."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    options: EngineOptions
    connector: Connector
    kv_dtype: str
    dtype_bytes: int
    kv_factor: int
    heads_per_rank: int
    head_size: int
    replication: int
    """How many ranks hold a copy of each KV head (TP / H_kv when TP > H_kv, else 1)."""
    stages: tuple[Stage, ...]
    bytes_per_token: int
    """Stored KV per token of the whole model: all stages, stored layers, no TP replication."""
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    dtype_field: str
    block_tokens: int | None = None
    """The GPU block every chunk is a multiple of, when the engine has one; None otherwise."""
    objects_per_chunk: int = 1
    """Objects each writer stores per chunk: 2 when K and V are stored apart (SGLang's zero-copy backends)."""

    @property
    def engine(self) -> str:
        return self.options.engine

    @property
    def serving(self) -> Serving:
        return self.options.serving

    @property
    def writers(self) -> int:
        return sum(stage.writers for stage in self.stages)

    @property
    def largest_stage(self) -> Stage:
        """The stage whose writers store the most per token (a stage with no writer of its own is never it: under
        vLLM native offloading the first stage's scheduler writes for every stage)."""
        writing = [stage for stage in self.stages if stage.writers] or list(self.stages)
        return max(writing, key=lambda stage: (stage.bytes_per_token_per_rank, stage.writers))

    @property
    def bytes_per_token_per_rank(self) -> int:
        return self.largest_stage.bytes_per_token_per_rank


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
    states_handed_over: int | None = None
    """A state group's states the scheduler hands the connector for the prompt (stored only where a chunk ends);
    null for other groups."""
    resend_hit_tokens: int | None = None
    """For a state model's groups: the tokens an identical prompt reloads from the offload tier (0 when no state is
    stored where a reload can use it, so the attention chunks are not loaded either); null otherwise."""


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


def per_writer_bytes(row: SweepRow, layout: Layout) -> int:
    """KV bytes one writer of the largest stage loads for the prompt (what its CPU buffer must hold)."""
    largest = layout.largest_stage
    return row.stages[largest.index].total_bytes // largest.writers


@dataclass(frozen=True)
class GpuGroup:
    """One KV-cache group as vLLM sizes it in GPU memory: its kind and, for a windowed kind, the window."""

    kind: str
    window_tokens: int | None = None
    """A sliding window's tokens (sliding_attention) or a local chunk's (chunked_attention); None otherwise."""


@dataclass(frozen=True)
class GpuPages:
    """How vLLM lays a model's KV cache out in GPU memory under an engine: the groups that share one pool of blocks,
    the block, and the bytes one block takes on the busiest worker."""

    block_tokens: int
    page_bytes_per_layer: int
    """One layer's page: ``block x per-token bytes of one layer on one rank`` (K and V, or MLA's latent)."""
    layers_per_block: int
    """Layers of the widest group on the busiest worker: a block's bytes are this many pages."""
    groups: tuple[GpuGroup, ...]
    rule: str
    """Why the groups are what they are (the engine's own words, cited)."""

    @property
    def bytes_per_block(self) -> int:
        return self.layers_per_block * self.page_bytes_per_layer


@dataclass(frozen=True)
class StoredGroup:
    """The chunks one KV-cache group stores for one prompt (for an engine with one group: the whole model)."""

    start: int
    stop: int
    """Whole chunks ``start`` to ``stop - 1`` are stored."""
    window: int | None = None
    """None: a load needs every chunk from the first on (a prefix); W: the W chunks before the hit (a sliding window)."""
    tail_tokens: int = 0
    """A partial chunk stored after the whole ones (chunk ``stop``), 0 when none."""


@dataclass(frozen=True)
class StoredChunks:
    """What a prompt of N tokens stores at chunk C, per group, and the most a later load of it may cover."""

    groups: tuple[StoredGroup, ...]
    max_hit_tokens: int
    """Tokens a load may cover at most (N, or N - 1 where the engine recomputes the prompt's last token)."""


@dataclass(frozen=True)
class Admission:
    """A tier that stores a chunk only on its ``sightings``-th offer within ``window_seconds`` (a frequency filter)."""

    sightings: int
    window_seconds: float
    source: str
