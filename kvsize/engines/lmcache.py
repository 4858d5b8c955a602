"""What LMCache stores for a served model: writers, stages, per-rank bytes, headers.

Rules (docs/rules.md), LMCache 0.5.6 in-process connector with vLLM 0.33:

- ``kv_shape = (num_layer, 1 if use_mla else 2, chunk_size, num_kv_head, head_size)``
  (``lmcache/integration/vllm/vllm_service_factory.py``, ``get_or_create_metadata``);
- per-rank KV heads ``max(1, H_kv // TP)`` (vLLM ``ModelConfig.get_num_kv_heads``), so
  heads are replicated, and every copy stored, when TP > H_kv;
- MLA: ``save_only_first_rank`` defaults to ``use_mla``: one writer whatever TP is;
- PP: each stage stores its own layers, split as vLLM's ``get_pp_indices`` does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from kvsize.engines.base import (
    ENGINE_NAMES,
    KVBM_ENGINES,
    KVBM_TIERS,
    SGLANG_BACKENDS,
    TIERS,
    EngineInfo,
    KvGroup,
    StageObjects,
    SweepRow,
)
from kvsize.engines.connectors import CONNECTORS, Connector
from kvsize.engines.serving import (
    DTYPE_BYTES,
    check_served,
    check_tp,
    resolve_kv_dtype,
    stage_layers,
    version_tuple,
)
from kvsize.errors import KvsizeError, ParallelismError, UnsupportedModelError, shown
from kvsize.model.spec import LayerKind, ModelSpec

KvDtype = Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2"]
KV_DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2")
MAX_PARALLEL = 100_000
GIB = 2**30

# LMCache 0.5.6 defaults, in one place (lmcache/v1/config.py _CONFIG_DEFINITIONS; the S3 adapter's extra_config).
DEFAULT_CHUNK_TOKENS = 256  # chunk_size
DEFAULT_BLOCKING_TIMEOUT_S = 10.0  # blocking_timeout_secs
DEFAULT_CPU_BUFFER_BYTES = 5 * GIB  # max_local_cpu_size 5.0 (GB, read as GiB)
DEFAULT_S3_MAX_INFLIGHT_REQS = 64  # extra_config s3_max_inflight_reqs


class EngineOptions(BaseModel):
    """How the model is served and cached: the knobs of vLLM + LMCache that change what is stored."""

    model_config = ConfigDict(frozen=True)

    tp: int = 1
    pp: int = 1
    kv_dtype: KvDtype = "auto"
    connector: str = "s3"
    layerwise: bool = False
    save_unfull_chunk: bool = False
    draft_layers: int = 0
    """MTP/EAGLE draft layers stored beside the model's (only with speculative decoding on)."""
    pp_partition: tuple[int, ...] | None = None
    """Layers per stage, as ``VLLM_PP_LAYER_PARTITION`` sets them; None = vLLM's default split."""
    vllm_version: str = "0.33.0"
    """The vLLM serving the model: an architecture it no longer serves is refused (``RETIRED_ARCHITECTURES``)."""
    engine: str = "lmcache"
    """The offloading stack (``kvsize.engines.registry.ENGINES``); the options below it apply to the vLLM family."""
    tier: str = "fs"
    """vLLM native offloading's secondary tier: cpu (``--kv-offloading-size`` alone), fs or obj."""
    gpu_block_size: int = 16
    """vLLM's GPU KV-cache block in tokens (``--block-size``; ``CacheConfig.DEFAULT_BLOCK_SIZE`` 16)."""
    sglang_backend: str = "file"
    """SGLang HiCache's L3 backend (``--hicache-storage-backend``): file, mooncake, nixl or hf3fs."""
    kvbm_engine: str = "vllm"
    """The engine Dynamo KVBM runs under: vllm (16-token blocks) or trtllm (32)."""
    kvbm_tier: str = "disk"
    """KVBM's tier: disk (G3, one preallocated file per worker) or object (G4, one object per block per worker)."""

    def __init__(self, **data: Any) -> None:
        for name in ("tp", "pp", "draft_layers", "gpu_block_size"):  # whole numbers: never a bool, a float or text
            value = data.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int):
                kind = ParallelismError if name in ("tp", "pp") else KvsizeError
                raise kind(f"`{name}` must be a whole number, got {shown(value)}", field=name)
        try:
            super().__init__(**data)
        except ValidationError as error:
            first = error.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "engine"
            raise KvsizeError(f"`{name}`: {first['msg'].lower()}, got {shown(first.get('input'))}", field=name) from None
        if not (1 <= self.tp <= MAX_PARALLEL and 1 <= self.pp <= MAX_PARALLEL):
            raise ParallelismError(
                f"`tp` and `pp` must be 1 to {MAX_PARALLEL:,}, got TP {shown(self.tp)}, PP {shown(self.pp)}",
                field="tp" if not 1 <= self.tp <= MAX_PARALLEL else "pp",
            )
        if self.connector not in CONNECTORS:
            raise KvsizeError(
                f"unknown `connector` {shown(self.connector)}: use one of {', '.join(CONNECTORS)}", field="connector"
            )
        if not 0 <= self.draft_layers <= 10_000:
            raise KvsizeError(f"`draft_layers` must be 0 to 10,000, got {shown(self.draft_layers)}", field="draft_layers")
        if self.pp_partition is not None and (len(self.pp_partition) != self.pp or min(self.pp_partition) < 1):
            raise ParallelismError(f"`pp_partition` must give {self.pp} stages of at least one layer", field="pp_partition")
        version_tuple(self.vllm_version, "`vllm_version`")
        if self.engine not in ENGINE_NAMES:
            raise KvsizeError(f"unknown `engine` {shown(self.engine)}: use one of {', '.join(ENGINE_NAMES)}", field="engine")
        for name, value, choices in (
            ("tier", self.tier, TIERS),
            ("sglang_backend", self.sglang_backend, SGLANG_BACKENDS),
            ("kvbm_engine", self.kvbm_engine, KVBM_ENGINES),
            ("kvbm_tier", self.kvbm_tier, KVBM_TIERS),
        ):
            if value not in choices:
                raise KvsizeError(f"unknown `{name}` {shown(value)}: use one of {', '.join(choices)}", field=name)
        if isinstance(self.gpu_block_size, bool) or not 1 <= self.gpu_block_size <= 65_536:
            raise KvsizeError(
                f"`gpu_block_size` must be 1 to 65,536 tokens, got {shown(self.gpu_block_size)}", field="gpu_block_size"
            )


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
    """The storage layout of one model under one set of engine options."""

    model_config = ConfigDict(frozen=True)

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
    engine: str = "lmcache"
    groups: tuple[KvGroup, ...] = ()
    """The KV-cache groups an engine stores apart (vLLM's hybrid allocator); empty for LMCache."""
    block_tokens: int | None = None
    """The GPU block every chunk must be a multiple of (vLLM family); None for LMCache."""
    worker_block_bytes: int | None = None
    """One GPU block of one worker's KV-cache slot (vLLM's ``worker_kv_bytes_per_block``)."""
    copies: int | None = None
    """Workers' slices in one object (vLLM's ``num_copies``: the world size, 1 under the replicated layout)."""
    host_page_bytes: int | None = None
    """What vLLM rounds each object up to (``mmap.PAGESIZE``)."""
    objects_per_chunk: int = 1
    """Objects each writer stores per chunk: 2 when K and V are stored apart (SGLang's zero-copy backends)."""

    @property
    def writers(self) -> int:
        return sum(stage.writers for stage in self.stages)

    @property
    def largest_stage(self) -> Stage:
        return max(self.stages, key=lambda stage: (stage.bytes_per_token_per_rank, stage.writers))

    @property
    def bytes_per_token_per_rank(self) -> int:
        return self.largest_stage.bytes_per_token_per_rank


class _Writers(BaseModel):
    """Who stores: KV heads per rank, how many ranks hold each head, writers per stage (LMCache, docs/rules.md)."""

    heads_per_rank: int
    replication: int
    writers_per_stage: int
    warnings: list[str]
    notes: list[str]


def _writers(spec: ModelSpec, options: EngineOptions) -> _Writers:
    tp, heads = options.tp, spec.num_kv_heads
    if not spec.use_mla:
        replication = max(1, tp // heads)
        notes = []
        if replication > 1:
            notes.append(
                f"TP {tp} > {heads} KV heads: each head is replicated on {replication} ranks and every copy is "
                f"stored, so stored bytes are {replication}x the model's KV"
            )
        return _Writers(
            heads_per_rank=max(1, heads // tp), replication=replication, writers_per_stage=tp, warnings=[], notes=notes
        )
    if options.pp > 1:
        raise UnsupportedModelError(
            f"{spec.name} uses MLA and PP is {options.pp}: LMCache stores MLA from global rank 0 only, so later "
            "stages' layers may never be stored (docs/rules.md); kvsize will not guess: use `pp` 1"
        )
    if options.layerwise:
        warning = "layerwise MLA has no first-rank check in LMCache: every TP rank stores its own copy of the latent"
        return _Writers(heads_per_rank=1, replication=1, writers_per_stage=tp, warnings=[warning], notes=[])
    note = (
        f"MLA: only TP rank 0 stores (save_only_first_rank defaults to use_mla) and broadcasts on load: "
        f"one object per chunk at TP {tp}"
    )
    return _Writers(heads_per_rank=1, replication=1, writers_per_stage=1, warnings=[], notes=[note] if tp > 1 else [])


def _refusals(spec: ModelSpec, options: EngineOptions, connector: Connector) -> list[str]:
    """What LMCache cannot store for this model and these options (errors), and what it stores differently (warnings)."""
    if options.layerwise and not connector.stores_partial_chunks:
        raise KvsizeError(
            "`layerwise` with `connector` s3 stores nothing: LMCache's S3 connector only uploads objects of exactly "
            "one full chunk; pick another `connector` or drop `layerwise`",
            field="layerwise",
        )
    if options.draft_layers and options.pp > 1:
        raise UnsupportedModelError(
            "draft layers with `pp` > 1: kvsize does not know which stage stores them and will not guess; use `pp` 1",
            field="draft_layers",
        )
    if not spec.is_hybrid:
        return []
    counts = spec.kind_counts()
    stateful = ", ".join(
        f"{counts[kind]} {kind.value}" for kind in (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV) if kind in counts
    )
    return [
        f"{spec.name} is a hybrid ({stateful} layers keep state, not per-token KV): vLLM's in-process LMCache "
        "connector cannot serve it (LMCacheConnectorV1 lacks SupportsHMA, so vLLM turns the hybrid KV-cache "
        "manager off and the engine fails at start); LMCache's multiprocess connector (LMCacheMPConnector) can, "
        f"packing all layer groups into one object per chunk per rank. Sized: the {spec.kv_layers} attention layers"
    ]


def _stages(spec: ModelSpec, options: EngineOptions, writers: _Writers, dtype_bytes: int) -> tuple[list[Stage], int]:
    """Each stage's layers, stored layers, writers and bytes per token per writer; and the model's bytes per token."""
    # Each layer kind knows its byte rule (kvsize.model.spec.LayerKind); draft layers are of the model's attention kind.
    draft_kind = LayerKind.MLA if spec.use_mla else LayerKind.FULL

    def per_token(kinds: tuple[LayerKind, ...], drafts: int, kv_heads: int) -> int:
        layers = sum(kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes) for kind in kinds)
        return layers + drafts * draft_kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes)

    partition = stage_layers(spec, options.pp, options.pp_partition)
    stages: list[Stage] = []
    first = 0
    for index, count in enumerate(partition):
        kinds = spec.layer_kinds[first : first + count]
        kv_layers = sum(1 for kind in kinds if kind.keeps_kv)
        draft = options.draft_layers if index == len(partition) - 1 else 0
        stages.append(
            Stage(
                index=index,
                first_layer=first,
                layers=count,
                kv_layers=kv_layers,
                draft_layers=draft,
                # A stage with no attention layer (a hybrid's Mamba-only stage) has nothing to store.
                writers=writers.writers_per_stage if kv_layers + draft else 0,
                bytes_per_token_per_rank=per_token(kinds, draft, writers.heads_per_rank),
            )
        )
        first += count
    return stages, per_token(spec.layer_kinds, options.draft_layers, spec.num_kv_heads)


def plan_layout(spec: ModelSpec, options: EngineOptions) -> Layout:
    """Apply vLLM's parallelism and LMCache's object rules to a model spec."""
    check_served(spec, options.vllm_version)
    connector = CONNECTORS[options.connector]
    check_tp(spec, options.tp)
    writers = _writers(spec, options)
    hybrid = _refusals(spec, options, connector)
    kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
    dtype_bytes = DTYPE_BYTES[kv_dtype]
    stages, bytes_per_token = _stages(spec, options, writers, dtype_bytes)
    return Layout(
        options=options,
        connector=connector,
        kv_dtype=kv_dtype,
        dtype_bytes=dtype_bytes,
        kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
        heads_per_rank=writers.heads_per_rank,
        head_size=spec.head_size,
        replication=writers.replication,
        stages=tuple(stages),
        bytes_per_token=bytes_per_token,
        warnings=(*writers.warnings, *hybrid, *dtype_warnings),
        notes=tuple(writers.notes),
        dtype_field=dtype_field,
    )


def plan_row(layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
    """One chunk size: chunks, tail, objects and bytes, exactly as LMCache stores them.

    The token database cuts a prompt into chunks (``lmcache/v1/token_database.py``,
    ``ChunkedTokenDatabase._chunk_tokens``): ``end = len(tokens) if save_unfull_chunk else
    len(tokens) - len(tokens) % chunk_size``. Every writer stores its own object per chunk
    (per layer in layerwise mode).
    """
    options = layout.options
    full_chunks, tail_tokens = divmod(prompt_tokens, chunk_tokens)
    tail_saved = options.save_unfull_chunk and layout.connector.stores_partial_chunks and tail_tokens > 0
    saved_tail = tail_tokens if tail_saved else 0
    chunks = full_chunks + (1 if tail_saved else 0)

    stages = []
    for stage in layout.stages:
        per_object = stage.stored_layers if options.layerwise else 1
        objects = stage.writers * chunks * per_object
        bytes_per_token = stage.bytes_per_token_per_rank
        layer_share = stage.stored_layers if options.layerwise else 1
        stages.append(
            StageObjects(
                stage=stage.index,
                objects=objects,
                object_bytes=chunk_tokens * bytes_per_token // layer_share if stage.stored_layers else 0,
                tail_object_bytes=saved_tail * bytes_per_token // layer_share if stage.stored_layers else 0,
                total_bytes=stage.writers * (full_chunks * chunk_tokens + saved_tail) * bytes_per_token,
            )
        )
    largest = stages[layout.largest_stage.index]
    objects = sum(s.objects for s in stages)
    total_bytes = sum(s.total_bytes for s in stages)
    header_bytes = objects * layout.connector.header_bytes
    return SweepRow(
        chunk_tokens=chunk_tokens,
        full_chunks=full_chunks,
        tail_tokens=tail_tokens,
        tail_saved=tail_saved,
        object_bytes=largest.object_bytes,
        tail_object_bytes=largest.tail_object_bytes,
        objects=objects,
        objects_per_writer=largest.objects // layout.largest_stage.writers,
        total_bytes=total_bytes,
        header_bytes=header_bytes,
        stored_bytes=total_bytes + header_bytes,
        reduction_vs_256=None,
        stages=tuple(stages),
    )


class LMCacheEngine:
    """LMCache 0.5.6's in-process connector under vLLM 0.33 (``LMCacheConnectorV1``)."""

    info = EngineInfo(
        name="lmcache",
        stack="LMCache 0.5.6 in-process connector (vLLM 0.33)",
        setting="chunk_size",
        knob="chunk_size (LMCACHE_CHUNK_SIZE)",
        default_chunk=DEFAULT_CHUNK_TOKENS,
        candidates=(256, 512, 1024, 2048, 4096),
        object_rule="one object per (chunk, TP rank, PP stage): chunk x layers x (2|1) x heads/rank x head x dtype",
        writers="every TP rank of every stage (MLA: rank 0 only)",
        source="lmcache/v1/token_database.py, lmcache/integration/vllm/vllm_service_factory.py",
    )

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        return plan_layout(spec, options)

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return plan_row(layout, prompt_tokens, chunk_tokens)

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        return None

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        return self.info.candidates


LMCACHE = LMCacheEngine()
