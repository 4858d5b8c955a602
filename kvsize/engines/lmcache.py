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

from pydantic import BaseModel, ConfigDict

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


class Connector(BaseModel):
    """How one LMCache backend lays a chunk object out (docs/rules.md, LMCache 0.5.6)."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    header_bytes: int
    """Connector metadata bytes per object (inline header plus any separate metadata key or file)."""
    requests_per_object: int
    """Storage operations per object: 2 for redis's two keys and GDS's two files, else 1."""
    stores_partial_chunks: bool
    int32_header: bool
    """The header's length field is an int32: objects of 2 GiB or more cannot be described."""
    layout: str
    source: str
    multipart: bool = False
    """The client splits an object into parts, each a request on the wire (awscrt on S3)."""
    pinned_memory_rule: bool = False
    """LMCache's S3 pinned-memory rule applies: object x s3_max_inflight_reqs + max_local_cpu_size x TP."""

    @property
    def inline_header_bytes(self) -> int:
        """Header bytes inside the object itself (a separate metadata key or file is a request of its own)."""
        return self.header_bytes if self.requests_per_object == 1 else 0


CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector(
            name="s3",
            url="s3://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=False,
            int32_header=False,
            layout="raw bytes, one object; only whole chunks are uploaded",
            source="lmcache/v1/storage_backend/connector/s3_connector.py",
            multipart=True,
            pinned_memory_rule=True,
        ),
        Connector(
            name="fs",
            url="fs://",
            header_bytes=28,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes, one file (tmp write + rename)",
            source="lmcache/v1/storage_backend/connector/fs_connector.py",
        ),
        Connector(
            name="mooncakestore",
            url="mooncakestore://",
            header_bytes=28,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes",
            source="lmcache/v1/storage_backend/connector/mooncakestore_connector.py",
        ),
        Connector(
            name="redis",
            url="redis://",
            header_bytes=28,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="two keys per chunk: <key>kv_bytes (raw) and <key>metadata (28 bytes)",
            source="lmcache/v1/storage_backend/connector/redis_connector.py",
        ),
        Connector(
            name="valkey",
            url="valkey://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/valkey_connector.py",
        ),
        Connector(
            name="resp",
            url="resp://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/resp_connector.py",
        ),
        Connector(
            name="local-disk",
            url="local_disk",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="raw bytes, one file",
            source="lmcache/v1/storage_backend/local_disk_backend.py",
        ),
        Connector(
            name="gds",
            url="gds_path",
            header_bytes=8192,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="4,096-byte header inside the data file + a 4,096-byte .metadata file (two files per chunk)",
            source="lmcache/v1/storage_backend/gds_backend.py",
        ),
        Connector(
            name="weka",
            url="weka_path",
            header_bytes=8192,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="as gds: 4,096-byte header in the data file + a 4,096-byte .metadata file",
            source="lmcache/v1/storage_backend/weka_gds_backend.py",
        ),
        Connector(
            name="cpu",
            url="local_cpu",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="pinned CPU memory, one buffer per chunk",
            source="lmcache/v1/storage_backend/local_cpu_backend.py",
        ),
    )
}


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

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if not (1 <= self.tp <= MAX_PARALLEL and 1 <= self.pp <= MAX_PARALLEL):
            raise ParallelismError(
                f"`tp` and `pp` must be 1 to {MAX_PARALLEL:,}, got TP {shown(self.tp)}, PP {shown(self.pp)}", field="tp"
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
