"""What LMCache stores for a served model: writers, stages, per-rank bytes, headers.

Rules (ENGINE-FACTS §2, §3), LMCache 0.5.6 in-process connector with vLLM 0.33:

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

from kvsize.errors import KvsizeError, ParallelismError, UnsupportedModelError, shown
from kvsize.model.spec import LayerKind, ModelSpec

KvDtype = Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2"]
KV_DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
MAX_PARALLEL = 100_000


class Connector(BaseModel):
    """How one LMCache backend lays a chunk object out (ENGINE-FACTS §2, LMCache 0.5.6)."""

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
        _version_tuple(self.vllm_version, "`vllm_version`")


# vLLM 0.33.0 vllm/model_executor/models/registry.py, _PREVIOUSLY_SUPPORTED_MODELS: architecture -> the last
# vLLM version that served it. ModelRegistry._raise_for_unsupported refuses a config none of whose
# architectures is served, naming this version.
RETIRED_ARCHITECTURES: dict[str, str] = {
    "MotifForCausalLM": "0.10.2",
    "Phi3SmallForCausalLM": "0.9.2",
    "Phi4FlashForCausalLM": "0.10.2",
    "Phi4MultimodalForCausalLM": "0.12.0",
    "JAISLMHeadModel": "0.22.0",
    "ErnieModel": "0.23.0",
    "ErnieForSequenceClassification": "0.23.0",
    "ErnieForTokenClassification": "0.23.0",
    "InternLM2VEForCausalLM": "0.23.0",
    "QWenLMHeadModel": "0.23.0",
    "QwenVLForConditionalGeneration": "0.23.0",
    "InternLMForCausalLM": "0.23.0",
    "DonutForConditionalGeneration": "0.10.2",
    "MllamaForConditionalGeneration": "0.10.2",
    "XverseForCausalLM": "0.23.0",
    "Dots1ForCausalLM": "0.23.0",
    "BambaForCausalLM": "0.23.0",
    "MiniMaxForCausalLM": "0.23.0",
    "MiniMaxText01ForCausalLM": "0.23.0",
    "MiniMaxM1ForCausalLM": "0.23.0",
    "MiniMaxVL01ForConditionalGeneration": "0.23.0",
    "BaiChuanForCausalLM": "0.23.0",
    "BaichuanForCausalLM": "0.23.0",
    "AquilaModel": "0.24.0",
    "AquilaForCausalLM": "0.24.0",
    "Grok1ModelForCausalLM": "0.24.0",
    "Grok1ForCausalLM": "0.24.0",
    "TarsierForConditionalGeneration": "0.24.0",
    "Tarsier2ForConditionalGeneration": "0.23.0",
    "MantisForConditionalGeneration": "0.24.0",
    "MusicFlamingoForConditionalGeneration": "0.24.0",
    "AyaVisionForConditionalGeneration": "0.24.0",
    "TeleChatForCausalLM": "0.25.0",
    "PersimmonForCausalLM": "0.25.0",
    "FuyuForCausalLM": "0.25.0",
    "Plamo2ForCausalLM": "0.26.0",
    "OuroForCausalLM": "0.26.0",
    "ArcticForCausalLM": "0.28.0",
    "ChameleonForConditionalGeneration": "0.28.0",
    "Cheers": "0.28.0",
    "CheersForConditionalGeneration": "0.28.0",
    "Fairseq2LlamaForCausalLM": "0.28.0",
    "FireRedLIDForConditionalGeneration": "0.28.0",
    "GritLM": "0.28.0",
    "HCXVisionForCausalLM": "0.28.0",
    "MPTForCausalLM": "0.28.0",
    "MptForCausalLM": "0.28.0",
    "RWForCausalLM": "0.28.0",
    "StableLMEpochForCausalLM": "0.28.0",
    "PrithviGeoSpatialMAE": "0.28.0",
}


def _version_tuple(text: str, what: str) -> tuple[int, ...]:
    parts = text.strip().removeprefix("v").split(".")
    if not 1 <= len(parts) <= 4 or not all(part.isdigit() and len(part) <= 6 for part in parts):
        raise KvsizeError(f"{what} {shown(text)} is not a version: write it like 0.23.0", field=what)
    return tuple(int(part) for part in parts)


def check_served(spec: ModelSpec, vllm_version: str) -> None:
    """Refuse a model whose every architecture ``vllm_version`` no longer serves (vLLM's own rule)."""
    version = _version_tuple(vllm_version, "`vllm_version`")
    retired = [arch for arch in spec.architectures if arch in RETIRED_ARCHITECTURES]
    if not retired or len(retired) < len(spec.architectures):
        return
    arch, until = retired[0], RETIRED_ARCHITECTURES[retired[0]]
    if version > _version_tuple(until, "`vllm_version`"):
        raise UnsupportedModelError(
            f"{spec.name}: vLLM serves architecture {arch} only until v{until} (its registry's previously-supported list), "
            f"so vLLM {vllm_version} refuses it; give `vllm_version` {until} to size it for that vLLM",
            field="architectures",
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

    @property
    def writers(self) -> int:
        return sum(stage.writers for stage in self.stages)

    @property
    def largest_stage(self) -> Stage:
        return max(self.stages, key=lambda stage: (stage.bytes_per_token_per_rank, stage.writers))

    @property
    def bytes_per_token_per_rank(self) -> int:
        return self.largest_stage.bytes_per_token_per_rank


def pp_split(num_layers: int, pp: int) -> list[int]:
    """Layers per stage, as vLLM's ``get_pp_indices`` (``vllm/distributed/utils.py``) splits them.

    ``n // pp`` each; the remainder goes one layer each to the stages counting back
    from the second-to-last, never the last: 4 at PP 3 → [1, 2, 1]; 61 at PP 4 → [15, 15, 16, 15].
    """
    partitions = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        partitions[-i] += 1
    return partitions


def resolve_kv_dtype(spec: ModelSpec, kv_dtype: str) -> tuple[str, str, list[str]]:
    """The KV-cache dtype LMCache stores, why, and any warning (ENGINE-FACTS §2)."""
    warnings: list[str] = []

    def field(name: str, fallback: str) -> str:
        source = spec.fields.get(name)
        return source.field if source else fallback

    if kv_dtype != "auto":
        return kv_dtype, "--kv-dtype", warnings
    if spec.kv_cache_quant:
        return spec.kv_cache_quant, field("kv cache quant", "the checkpoint's KV-cache scheme"), warnings
    if spec.config_dtype is None:
        warnings.append(
            "the config names no dtype: sized as bfloat16, as vLLM serves it (falls back to the weights' dtype, "
            "then float32, which current GPUs serve as bf16); pass --kv-dtype if the deployment differs"
        )
        return "bfloat16", "no dtype in config: bfloat16", warnings
    if spec.config_dtype == "float32":
        warnings.append(
            "the config's dtype is float32: sized as bfloat16, as current GPUs serve it; pass --kv-dtype float16 if not"
        )
        return "bfloat16", f"{field('dtype', 'config dtype')} = float32, served as bfloat16", warnings
    return spec.config_dtype, field("dtype", "config dtype"), warnings


def plan_layout(spec: ModelSpec, options: EngineOptions) -> Layout:
    """Apply vLLM's parallelism and LMCache's object rules to a model spec."""
    tp, pp = options.tp, options.pp
    if not (1 <= tp <= MAX_PARALLEL and 1 <= pp <= MAX_PARALLEL):
        raise ParallelismError(f"`tp` and `pp` must be 1 to {MAX_PARALLEL:,}, got TP {shown(tp)}, PP {shown(pp)}", field="tp")
    check_served(spec, options.vllm_version)
    connector = CONNECTORS.get(options.connector)
    if connector is None:
        raise KvsizeError(f"unknown connector {shown(options.connector)}: use one of {', '.join(CONNECTORS)}")
    _check_tp(spec, tp)
    warnings: list[str] = []
    notes: list[str] = []
    heads = spec.num_kv_heads

    if spec.use_mla:
        if pp > 1:
            raise UnsupportedModelError(
                f"{spec.name} uses MLA and PP is {pp}: LMCache stores MLA from global rank 0 only, so later "
                "stages' layers may never be stored (ENGINE-FACTS §3); kvsize will not guess: use `pp` 1"
            )
        heads_per_rank = 1
        replication = 1
        if options.layerwise:
            writers_per_stage = tp
            warnings.append("layerwise MLA has no first-rank check in LMCache: every TP rank stores its own copy of the latent")
        else:
            writers_per_stage = 1
            if tp > 1:
                notes.append(
                    f"MLA: only TP rank 0 stores (save_only_first_rank defaults to use_mla) and broadcasts on load: "
                    f"one object per chunk at TP {tp}"
                )
    else:
        heads_per_rank = max(1, heads // tp)
        replication = max(1, tp // heads)
        writers_per_stage = tp
        if replication > 1:
            notes.append(
                f"TP {tp} > {heads} KV heads: each head is replicated on {replication} ranks and every copy is "
                f"stored, so stored bytes are {replication}x the model's KV"
            )

    if options.layerwise and not connector.stores_partial_chunks:
        raise KvsizeError(
            "`layerwise` with `connector` s3 stores nothing: LMCache's S3 connector only uploads objects of exactly "
            "one full chunk; pick another `connector` or drop `layerwise`"
        )
    if options.draft_layers and pp > 1:
        raise UnsupportedModelError(
            "draft layers with `pp` > 1: kvsize does not know which stage stores them and will not guess; use `pp` 1"
        )
    if spec.is_hybrid:
        counts = spec.kind_counts()
        stateful = ", ".join(
            f"{counts[kind]} {kind.value}" for kind in (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV) if kind in counts
        )
        warnings.append(
            f"{spec.name} is a hybrid ({stateful} layers keep state, not per-token KV): vLLM's in-process LMCache "
            "connector cannot serve it (LMCacheConnectorV1 lacks SupportsHMA, so vLLM turns the hybrid KV-cache "
            "manager off and the engine fails at start); LMCache's multiprocess connector (LMCacheMPConnector) can, "
            f"packing all layer groups into one object per chunk per rank. Sized: the {spec.kv_layers} attention layers"
        )

    kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
    warnings.extend(dtype_warnings)
    dtype_bytes = DTYPE_BYTES[kv_dtype]
    # Each layer kind knows its byte rule (kvsize.spec.LayerKind); draft layers are of the model's attention kind.
    draft_kind = LayerKind.MLA if spec.use_mla else LayerKind.FULL
    kv_factor = draft_kind.kv_factor

    def per_token(kinds: tuple[LayerKind, ...], drafts: int, kv_heads: int) -> int:
        layers = sum(kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes) for kind in kinds)
        return layers + drafts * draft_kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes)

    partition = _partition(spec, options)
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
                writers=writers_per_stage if kv_layers + draft else 0,
                bytes_per_token_per_rank=per_token(kinds, draft, heads_per_rank),
            )
        )
        first += count
    bytes_per_token = per_token(spec.layer_kinds, options.draft_layers, heads)
    return Layout(
        options=options,
        connector=connector,
        kv_dtype=kv_dtype,
        dtype_bytes=dtype_bytes,
        kv_factor=kv_factor,
        heads_per_rank=heads_per_rank,
        head_size=spec.head_size,
        replication=replication,
        stages=tuple(stages),
        bytes_per_token=bytes_per_token,
        warnings=tuple(warnings),
        notes=tuple(notes),
        dtype_field=dtype_field,
    )


def _partition(spec: ModelSpec, options: EngineOptions) -> list[int]:
    pp = options.pp
    if pp > spec.num_layers:
        raise ParallelismError(f"`pp` {pp} is more than the model's {spec.num_layers} layers: each stage needs at least one")
    if options.pp_partition is None:
        return pp_split(spec.num_layers, pp)
    partition = list(options.pp_partition)
    if len(partition) != pp or sum(partition) != spec.num_layers or min(partition) < 1:
        raise ParallelismError(
            f"`pp_partition` {','.join(map(str, partition))} must give {pp} stages of at least one layer "
            f"that add up to the model's {spec.num_layers} layers"
        )
    return partition


def _check_tp(spec: ModelSpec, tp: int) -> None:
    """vLLM rejects a TP that does not divide the attention heads, or that neither divides
    nor is a multiple of the KV heads (``ModelConfig.verify_with_parallel_config``;
    ``QKVParallelLinear``)."""
    heads = spec.num_attention_heads
    if heads % tp:
        options = [n for n in (1, 2, 4, 8, 16, 32, 64, 128) if heads % n == 0]
        raise ParallelismError(
            f"TP {tp} does not divide {spec.name}'s {heads} attention heads, so vLLM rejects it; "
            f"use `tp` {', '.join(map(str, options))}"
        )
    if spec.use_mla:
        return
    kv = spec.num_kv_heads
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        raise ParallelismError(
            f"TP {tp} neither divides nor is a multiple of {spec.name}'s {kv} KV heads, so vLLM rejects it; "
            "pick a TP that divides the KV heads or is a multiple of them"
        )
