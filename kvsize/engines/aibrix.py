"""AIBrix KV cache offloading (``aibrix-kvcache`` 0.8.0) under vLLM, its ``AIBrixOffloadingConnector``.
Confidence: medium.

From the aibrix-kvcache 0.8.0 wheel (``pip download --no-deps aibrix-kvcache==0.8.0``; paths under
``aibrix_kvcache/``), its cache manager run on CPU as the connector drives it; not run on a GPU or under vLLM:

- the block B is ``AIBRIX_KV_CACHE_OL_BLOCK_SIZE`` when above 0, and must then be a power of two (``spec.py``
  ``KVCacheBlockSpec.__post_init__`` asserts it); else (-1, the default) vLLM's ``--block-size``, 16 by default
  (``integration/vllm/kv_connector/aibrix_offloading_connector_type1.py`` ``_init_worker``:
  ``block_ntokens = cache_config.block_size``);
- one object is one block of one TP rank of one PP stage, K and V of all that stage's layers for that rank's KV
  heads: ``2 x B x layers x heads x head_size x dtype`` bytes (``spec.py`` ``block_nbytes``), no header in the
  default compact layout (``memory/allocator.py`` ``ManagedMemoryRegion.calculate_size``); ``_init_worker`` gives
  rank r the heads ``[h*r, h*(r+1))`` with ``h = get_num_kv_heads`` (``max(1, H_kv // TP)``) and its stage's layers
  (``get_layers_start_end_indices``, vLLM's ``get_pp_indices``): every rank of every stage writes, replicated heads
  under keys of their own;
- only whole blocks are stored (``l2/l2_cache.py`` ``L2Cache.put``: "If it is not a full block, we don't need to
  cache it"; the connector's ``_send_kv_sync_impl`` rounds each step down to blocks): ``TP x PP x floor(N / B)``
  objects per prompt, the tail never;
- ``AIBRIX_KV_CACHE_OL_CHUNK_SIZE`` (512) is tokens per cache-manager call, not an object: rounded down to a
  multiple of B and raised to 4 x B (``cache_manager.py`` ``BaseKVCacheManager.__init__``);
- a load is skipped when a step's block-aligned uncached part is under ``max(8 x vLLM block, B)`` tokens
  (``_recv_kv_sync_impl``, ``OFFLOADING_CONNECTOR_SKIP_THRESHOLD``);
- an L2 get or exists of m blocks times out after ``m x B x 20 ms`` and counts as a miss
  (``AIBRIX_KV_CACHE_OL_L2_CACHE_PER_TOKEN_TIMEOUT_MS``; ``cache_manager.py`` ``_acquire_impl``, ``_exists_impl``);
- ``AIBRIX_KV_CACHE_OL_L2_CACHE_BACKEND`` defaults to none (L1 only, pinned CPU memory, 10 GiB per rank); with
  L1 on, ``AIBRIX_KV_CACHE_OL_L2_CACHE_INGESTION_TYPE`` decides when a block reaches L2: ``ALL`` at its put,
  ``HOT`` (the default) at its first L1 hit, anything else when L1 evicts it (``BaseKVCacheManager.__init__``);
- requests in flight per rank: SHFS one (``l2/connectors/shfs.py`` ``SHFSConnector.mget`` awaits one ``get`` at
  a time), RocksDB ``min(32, blocks of a chunk, 8 workers)`` (per-key calls on the
  ``AIBRIX_KV_CACHE_OL_L2_CACHE_NUM_ASYNC_WORKERS`` executor, ``l2/connectors/rocksdb.py``);
- MLA is refused at worker start: only the FLASH_ATTN and FLASHINFER layouts exist (``_get_block_layout`` raises
  ``NotImplementedError``); the connector keeps one KV-cache group (no ``SupportsHMA``), and its copy kernel
  checks that every layer of the stage has a KV cache (``csrc/cache_kernels.cu`` in vllm-project/aibrix:
  ``TORCH_CHECK(num_layers == offload_kv_cache_num_layers)``);
- AIBrix's image builds on vLLM v0.21.0 (vllm-project/aibrix ``build/container/Dockerfile.vllm``); vLLM 0.33's
  attention backends no longer have the ``get_kv_cache_shape`` that ``_init_worker`` calls, so 0.8.0 does not
  start there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kvsize.engines.base import (
    Connector,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Flag,
    Layout,
    Limit,
    SweepRow,
    per_writer_bytes,
)
from kvsize.engines.per_rank import PerRankEngine, per_rank_row, refuse_beyond_attention, stages
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers, version_tuple
from kvsize.errors import KvsizeError, UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.quoting import comment, env_assignment, exact_number, shell_line
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.plan import Sweep

VERSION = "0.8.0"
VLLM_BLOCK = 16
"""vLLM's default ``--block-size`` (``CacheConfig.DEFAULT_BLOCK_SIZE``): AIBrix's block when none is set."""
CHUNK_TOKENS = 512
"""``AIBRIX_KV_CACHE_OL_CHUNK_SIZE``'s default (``envs.py``)."""
SKIP_THRESHOLD = 8
"""``OFFLOADING_CONNECTOR_SKIP_THRESHOLD``: vLLM blocks a step must load, at least."""
TIMEOUT_PER_TOKEN_S = 0.020
"""``AIBRIX_KV_CACHE_OL_L2_CACHE_PER_TOKEN_TIMEOUT_MS`` (20) in seconds."""
L1_GIB = 10
"""``AIBRIX_KV_CACHE_OL_L1_CACHE_CAPACITY_GB``'s default: GiB per TP rank (``int(x * 1024**3)``)."""
STAGING_CHUNKS = 3
"""With an L2 backend the pinned pool also holds one chunk of blocks for writes and two for gets
(``BaseKVCacheManager.__init__``: ``nblocks_per_batch`` + ``2 * nblocks_per_batch``)."""
GIB = 2**30
TARGET_VLLM = "0.21.0"
BROKEN_VLLM = "0.33.0"
CANDIDATES = (16, 32, 64, 128, 256, 512, 1024)
UNVERIFIED = (
    "the connector and its CUDA copy kernels on a GPU",
    "a block other than vLLM's",
    "the InfiniStore, HPKV, PrisKV and EIC servers",
)
CONNECTOR_CONFIG = {
    "kv_connector": "AIBrixOffloadingConnector",
    "kv_role": "kv_both",
    "kv_connector_module_path": "aibrix_kvcache.integration.vllm.kv_connector.aibrix_offloading_connector_type1",
}
_SRC = "aibrix_kvcache/l2/connectors/"
_VAR = "AIBRIX_KV_CACHE_OL_"


def _connector(name: str, layout: str, source: str, transport: str, **more: Any) -> Connector:
    return Connector(
        name=name,
        url=f"{_VAR}L2_CACHE_BACKEND={name.upper()}" if name != "l1" else f"{_VAR}L2_CACHE_BACKEND unset (L1 only)",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout=layout,
        source=source,
        transport=transport,
        **more,
    )


_KV_SERVER = "one key per block per TP rank (the block's prefix hash and the rank's heads and layers) on {} (RDMA)"
BACKENDS: dict[str, Connector] = {
    "shfs": _connector(
        "shfs",
        "one file per block per TP rank: <root>/<ns>_h<heads>_l<layers>_lcnd<B>roc/xx/yy/<hash>, written to .tmp "
        "then renamed; AIBrix never deletes them",
        _SRC + "shfs.py SHFSConnector",
        "file",
        io_threads=1,
        io_note="1 request in flight per rank: AIBrix's SHFS connector gets one file at a time (mget awaits each get, "
        f"{_SRC}shfs.py SHFSConnector.mget), whatever the profile's concurrency",
    ),
    "rocksdb": _connector(
        "rocksdb",
        "one record per block per TP rank in a RocksDB of its own on the node's disk (<root>/<ns>_h..._l...), "
        "expired at compaction after AIBRIX_KV_CACHE_OL_ROCKSDB_TTL_S (600 s)",
        _SRC + "rocksdb.py RocksDBConnector",
        "file",
        io_threads=8,
        io_note="8 requests in flight per rank: AIBrix runs RocksDB's per-key gets on its "
        "AIBRIX_KV_CACHE_OL_L2_CACHE_NUM_ASYNC_WORKERS (8) threads, at most one chunk's blocks at a time: 4 at "
        "blocks of 128 tokens or more, which the time model does not lower",
    ),
    "infinistore": _connector("infinistore", _KV_SERVER.format("InfiniStore"), _SRC + "infinistore.py", "kv"),
    "hpkv": _connector("hpkv", _KV_SERVER.format("HPKV"), _SRC + "hpkv.py", "kv"),
    "priskv": _connector("priskv", _KV_SERVER.format("PrisKV"), _SRC + "priskv/priskv.py", "kv"),
    "eic": _connector("eic", _KV_SERVER.format("EIC"), _SRC + "eic/eic.py", "kv"),
    "l1": _connector(
        "l1",
        "one pinned CPU memory region per block per TP rank (L1, S3FIFO eviction by bytes); nothing reaches storage",
        "aibrix_kvcache/l1/l1_cache.py L1Cache",
        "memory",
    ),
}
L2Backend = Literal["shfs", "rocksdb", "infinistore", "hpkv", "priskv", "eic", "none"]
TRANSPORT_BACKENDS: dict[str, L2Backend] = {"file": "shfs", "kv": "infinistore", "memory": "none"}
BACKEND_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "shfs": (("SHFS_ROOT", "<shared mount path>"),),
    "rocksdb": (("ROCKSDB_ROOT", "<local disk path>"), ("ROCKSDB_TTL_S", "<seconds a prompt must stay reusable>")),
    "infinistore": (("INFINISTORE_HOST_ADDR", "<host IP>"), ("INFINISTORE_SERVICE_PORT", "<port>")),
    "hpkv": (
        ("HPKV_REMOTE_ADDR", "<host>"),
        ("HPKV_REMOTE_PORT", "<port>"),
        ("HPKV_LOCAL_ADDR", "<this host's address>"),
        ("HPKV_LOCAL_PORT", "<local port>"),
    ),
    "priskv": (("PRISKV_REMOTE_ADDR", "<host>"), ("PRISKV_REMOTE_PORT", "<port>")),
    "eic": (("EIC_CONFIG_FILE", "<EIC config file path>"),),
}
"""Each L2 backend's own variables (``envs.py``), the user-only values as placeholders."""
INGESTION_NOTES = {
    "all": "ingestion all: every block reaches L2 as it is stored, synchronously in vLLM's step "
    "(AIBRIX_KV_CACHE_OL_L2_CACHE_INGESTION_MAX_INFLIGHT_TOKENS 0)",
    "hot": "ingestion hot (AIBrix's default): L2 receives a prompt only at its first reuse from L1, synchronously "
    "in that load; a prompt L1 evicts before its reuse never reaches L2",
    "evicted": "ingestion evicted: L2 receives only the blocks L1 evicts unreused; a prompt still in L1 is not in L2",
}


class Aibrix(EngineSettings):
    """AIBrix KV cache offloading as the engine: ``kvsize.size(model, engine=kvsize.engines.Aibrix(l2_backend="rocksdb"))``.

    The block, AIBrix's knob (``AIBRIX_KV_CACHE_OL_BLOCK_SIZE``), is the chunk size swept (``chunk_sizes``)."""

    ENGINE: ClassVar[str] = "aibrix"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "l2_backend": Flag(
            "--l2-backend",
            "AIBrix's L2 backend: shfs (default, files on a shared mount), rocksdb, infinistore, hpkv, priskv, eic, or "
            "none (AIBrix's own default: L1 CPU memory only).",
        ),
        "l2_ingestion": Flag(
            "--l2-ingestion",
            "When L1 hands a block to L2: all (default here, at its store), hot (AIBrix's default: at its first "
            "reuse), evicted (when L1 evicts it).",
        ),
        "l1_capacity_gb": Flag(
            "--l1-capacity-gb",
            "AIBrix's L1, pinned CPU memory per TP rank, in GiB (AIBrix's default 10).",
            "float",
        ),
        "gpu_block_size": Flag(
            "--gpu-block-size",
            "vLLM's GPU block in tokens (default 16; say 32 or 64 for a backend that forces it).",
            "int",
        ),
    }

    l2_backend: L2Backend = "shfs"
    """AIBrix's L2 backend; none keeps every block in L1 (pinned CPU memory) only."""
    l2_ingestion: Literal["all", "hot", "evicted"] = "all"
    """When L1 hands a block to L2: all (at its put), hot (at its first L1 hit), evicted (when L1 evicts it)."""
    l1_capacity_gb: float | None = Field(default=None, gt=0, le=65_536)
    """L1 per TP rank in GiB; None: AIBrix's 10 (``--emit aibrix`` sizes it)."""
    gpu_block_size: int | None = Field(default=None, ge=1, le=65_536)
    """vLLM's ``--block-size``: AIBrix's block when ``AIBRIX_KV_CACHE_OL_BLOCK_SIZE`` is unset; None: 16."""

    @model_validator(mode="after")
    def _ingestion_needs_l2(self) -> Aibrix:
        if self.l2_backend == "none" and "l2_ingestion" in self.model_fields_set:
            raise KvsizeError(
                "`l2_ingestion` decides when L1 hands blocks to an L2 backend, and `l2_backend` none has none: drop "
                "`l2_ingestion` or give `l2_backend`",
                field="l2_ingestion",
            )
        return self

    @property
    def vllm_block(self) -> int:
        return self.gpu_block_size or VLLM_BLOCK

    @property
    def l1_gib(self) -> float:
        return L1_GIB if self.l1_capacity_gb is None else self.l1_capacity_gb


def _settings(layout: Layout) -> Aibrix:
    settings = layout.options.settings
    assert isinstance(settings, Aibrix)
    return settings


def aibrix_chunk(block: int) -> int:
    """The tokens of one cache-manager call for block ``block``: 512 rounded down to a multiple of it, at least
    4 blocks (``BaseKVCacheManager.__init__``)."""
    chunk = CHUNK_TOKENS - CHUNK_TOKENS % block
    return max(chunk, 4 * block)


def load_threshold(block: int, vllm_block: int) -> int:
    """The fewest block-aligned uncached tokens a step loads (``_recv_kv_sync_impl``)."""
    return max(SKIP_THRESHOLD * vllm_block, block)


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _refuse(spec: ModelSpec, options: EngineOptions) -> None:
    """What AIBrix 0.8.0 cannot serve: MLA, extra KV pools and layers without a KV cache (one line, naming them)."""
    if spec.use_mla:
        source = spec.fields.get("kv_lora_rank")
        named = f"{source.field} = {source.value}" if source else "MLA layers"
        raise UnsupportedModelError(
            f"{spec.name} uses MLA ({named}): AIBrix {VERSION}'s vLLM connector raises NotImplementedError at worker "
            "start for MLA attention backends (only FLASH_ATTN and FLASHINFER: _get_block_layout); `engine` lmcache, "
            "vllm or sglang size this model",
            field="engine",
        )
    refuse_beyond_attention(spec, options, f"AIBrix {VERSION}'s connector keeps one KV-cache group of attention layers")
    plain = spec.kind_counts().get(LayerKind.MLP, 0)
    if plain:
        raise UnsupportedModelError(
            f"{spec.name} has {plain} mlp layers (no attention): AIBrix {VERSION} counts every layer of a stage, vLLM "
            "keeps KV for attention layers only, and its copy kernel's layer check fails (cache_kernels.cu); "
            "`engine` lmcache or vllm size this model",
            field="engine",
        )


def _vllm_warnings(vllm_version: str) -> list[str]:
    """What kvsize knows of the vLLM serving AIBrix: it targets 0.21.0, and 0.33 cannot load its connector."""
    version = version_tuple(vllm_version, "`vllm_version`")
    if version <= version_tuple(TARGET_VLLM, "`vllm_version`"):
        return []
    if version >= version_tuple(BROKEN_VLLM, "`vllm_version`"):
        said = f"does not run on vLLM {vllm_version}: its connector calls the attention backend's get_kv_cache_shape, "
        said += f"which vLLM {BROKEN_VLLM} no longer has"
    else:
        said = f"is not known to run on vLLM {vllm_version} (vLLM {BROKEN_VLLM} cannot load its connector)"
    return [
        f"AIBrix {VERSION} {said}; it targets vLLM {TARGET_VLLM} (its image): serve it there and give `vllm_version` "
        f"{TARGET_VLLM}"
    ]


class AibrixEngine(PerRankEngine):
    """AIBrix KV cache offloading: one object per block per TP rank of every PP stage."""

    name = "aibrix"
    Settings = Aibrix
    emits = True
    info = EngineInfo(
        name="aibrix",
        stack=f"AIBrix KV cache offloading (aibrix-kvcache {VERSION}) under vLLM {TARGET_VLLM} (AIBrixOffloadingConnector)",
        setting="AIBrix block",
        knob="AIBRIX_KV_CACHE_OL_BLOCK_SIZE (tokens, a power of two; unset: vLLM --block-size, 16)",
        default_chunk=VLLM_BLOCK,
        candidates=CANDIDATES,
        object_rule="one object per (block, TP rank, PP stage): 2 x B x L x heads/rank x head x dtype; t x p x "
        "floor(N / B) per prompt",
        writers="every TP rank of every stage (MLA refused)",
        source=f"aibrix_kvcache/spec.py KVCacheBlockSpec, cache_manager.py, l2/l2_cache.py, integration/vllm "
        f"(aibrix-kvcache {VERSION})",
        confidence="medium",
    )

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        settings = options.settings
        assert isinstance(settings, Aibrix)
        check_served(spec, options.vllm_version)
        check_tp(spec, options.tp)
        _refuse(spec, options)
        kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
        dtype_bytes = DTYPE_BYTES[kv_dtype]
        heads = max(1, spec.num_kv_heads // options.tp)
        partition = stage_layers(spec, options.pp, options.pp_partition)
        connector = BACKENDS["l1" if settings.l2_backend == "none" else settings.l2_backend]
        return Layout(
            options=options,
            connector=connector,
            kv_dtype=kv_dtype,
            dtype_bytes=dtype_bytes,
            kv_factor=LayerKind.FULL.kv_factor,
            heads_per_rank=heads,
            head_size=spec.head_size,
            replication=max(1, options.tp // spec.num_kv_heads),
            stages=tuple(stages(spec, partition, options.tp, heads, dtype_bytes)),
            bytes_per_token=sum(k.bytes_per_token(spec.num_kv_heads, spec.head_size, dtype_bytes) for k in spec.layer_kinds),
            warnings=(*dtype_warnings, *_vllm_warnings(options.vllm_version)),
            notes=tuple(self._notes(settings)),
            dtype_field=dtype_field,
            block_tokens=settings.vllm_block,
        )

    def _notes(self, settings: Aibrix) -> list[str]:
        block = settings.vllm_block
        notes = [
            f"confidence medium (the aibrix-kvcache {VERSION} wheel read, its cache manager run on CPU); unverified: "
            + "; ".join(UNVERIFIED),
            f"AIBrix {VERSION} targets vLLM {TARGET_VLLM} (its image) and does not run on vLLM {BROKEN_VLLM}",
            f"the block is AIBRIX_KV_CACHE_OL_BLOCK_SIZE, a power of two; unset, vLLM's --block-size ({block})",
            f"AIBRIX_KV_CACHE_OL_CHUNK_SIZE ({CHUNK_TOKENS}, raised to 4 blocks) is tokens per cache call, not an object",
        ]
        if settings.l2_backend == "none":
            notes.append(
                f"no L2 backend (AIBrix's default): the blocks stay in L1, pinned CPU memory, {exact_number(settings.l1_gib)} "
                "GiB per TP rank (AIBRIX_KV_CACHE_OL_L1_CACHE_CAPACITY_GB); nothing reaches storage"
            )
        else:
            notes.append(INGESTION_NOTES[settings.l2_ingestion])
        return notes

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return per_rank_row(layout, prompt_tokens, chunk_tokens)

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        vllm_block = _settings(layout).vllm_block
        if _power_of_two(chunk_tokens) or chunk_tokens == vllm_block:
            return None
        lower = 1 << (chunk_tokens.bit_length() - 1)
        return (
            f"AIBrix refuses block {chunk_tokens:,}: AIBRIX_KV_CACHE_OL_BLOCK_SIZE must be a power of two (spec.py "
            f"KVCacheBlockSpec asserts it); use {lower:,} or {2 * lower:,}"
        )

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        """vLLM's block (AIBrix's default) and every power of two above it up to 1,024."""
        block = _settings(layout).vllm_block
        return tuple(sorted({block, *(size for size in CANDIDATES if size > block)}))

    def search_sizes(self, layout: Layout, spec: ModelSpec, low: int, high: int) -> Sequence[int]:
        """The blocks AIBrix takes in [low, high]: vLLM's block and the powers of two."""
        block = _settings(layout).vllm_block
        powers = [1 << bit for bit in range(max(0, low - 1).bit_length(), high.bit_length() + 1)]
        return sorted({size for size in (block, *powers) if low <= size <= high})

    def row_notes(self, layout: Layout, prompt_tokens: int, rows: Sequence[SweepRow]) -> list[str]:
        block = _settings(layout).vllm_block
        notes = []
        unloaded = [row for row in rows if row.full_chunks * row.chunk_tokens < load_threshold(row.chunk_tokens, block)]
        if unloaded:
            sizes = ", ".join(f"{row.chunk_tokens:,}" for row in unloaded)
            notes.append(
                f"at block {sizes} the {prompt_tokens:,}-token prompt is not loaded: a step loads at least max({SKIP_THRESHOLD}"
                f" x {block}, block) block-aligned tokens (_recv_kv_sync_impl); it is recomputed in full"
            )
        below = [f"{row.chunk_tokens:,}" for row in rows if row.chunk_tokens < block]
        if below:
            notes.append(f"block {', '.join(below)} is below vLLM's {block}-token block: not run on a GPU")
        return notes

    def recompute_tokens(self, row: SweepRow, layout: Layout) -> int:
        """The tail, or the whole prompt when its stored part is under the load threshold (nothing is loaded)."""
        stored = row.full_chunks * row.chunk_tokens
        if stored < load_threshold(row.chunk_tokens, _settings(layout).vllm_block):
            return stored + row.tail_tokens
        return row.tail_tokens

    def replay_notes(self, layout: Layout) -> list[str]:
        return [
            "AIBrix's L1 evicts by S3FIFO, not LRU (AIBRIX_KV_CACHE_OL_L1_CACHE_EVICTION_POLICY): a replay's CPU tier "
            "is LRU; its L2 ingestion modes and its load threshold (loads under max(8 x vLLM block, B) tokens are "
            "skipped) are not replayed"
        ]

    def limits(self, row: SweepRow, layout: Layout, load_seconds: float | None) -> list[Limit]:
        settings = _settings(layout)
        found = []
        stored = row.full_chunks * row.chunk_tokens
        timeout = stored * TIMEOUT_PER_TOKEN_S
        if settings.l2_backend != "none" and load_seconds is not None and stored and load_seconds > timeout:
            found.append(
                Limit(
                    limit="l2_get_timeout",
                    value=load_seconds,
                    threshold=timeout,
                    unit="s",
                    detail=f"load {load_seconds:.2f} s > AIBrix's L2 get timeout, 20 ms x {stored:,} tokens = {timeout:.2f} s "
                    "(AIBRIX_KV_CACHE_OL_L2_CACHE_PER_TOKEN_TIMEOUT_MS): late blocks count as misses",
                )
            )
        per_rank = per_writer_bytes(row, layout)
        capacity = int(settings.l1_gib * GIB)
        if (settings.l2_backend == "none" or settings.l2_ingestion == "hot") and per_rank > capacity:
            where = "holds the blocks" if settings.l2_backend == "none" else "holds the blocks until their first reuse"
            found.append(
                Limit(
                    limit="l1_capacity",
                    value=per_rank,
                    threshold=capacity,
                    unit="B",
                    detail=f"one rank's {format_iec(per_rank)} > L1 {exact_number(settings.l1_gib)} GiB "
                    f"(AIBRIX_KV_CACHE_OL_L1_CACHE_CAPACITY_GB), which {where}: the first are evicted",
                )
            )
        return found

    def timing_notes(self, layout: Layout, host_cpus: int | None) -> list[str]:
        return [
            f"AIBrix loads one chunk (max({CHUNK_TOKENS}, 4 blocks) tokens) at a time per rank, so at most its blocks are "
            "in flight (4 at blocks of 128 tokens or more), with a TP all-reduce after each (VLLM_AIBRIX_SYNC_GRANULARITY "
            "PER_OP): the time model adds neither"
        ]

    def engine_options(self, layout: Layout) -> dict[str, Any]:
        settings = _settings(layout)
        return {
            "l2_backend": settings.l2_backend,
            "l2_ingestion": None if settings.l2_backend == "none" else settings.l2_ingestion,
            "l1_capacity_gib": float(settings.l1_gib),
            "vllm_block_tokens": settings.vllm_block,
            "chunk_size_tokens": CHUNK_TOKENS,
            "per_token_timeout_ms": round(TIMEOUT_PER_TOKEN_S * 1000),
            "io_threads": layout.connector.io_threads,
            "targets_vllm": TARGET_VLLM,
            "confidence": self.info.confidence,
            "unverified": list(UNVERIFIED),
            "source": layout.connector.source,
        }

    def text(self, layout: Layout) -> EngineText:
        settings = _settings(layout)
        per_rank = layout.bytes_per_token_per_rank
        where = "L1 only" if settings.l2_backend == "none" else f"L2 {settings.l2_backend}, ingestion {settings.l2_ingestion}"
        return EngineText(
            subtitle=f"AIBrix {VERSION}, {where} (confidence medium): {format_count(per_rank)} B/token per rank "
            f"({format_iec(per_rank)}); {layout.kv_dtype} KV",
            object_note="chunk = AIBrix's block (AIBRIX_KV_CACHE_OL_BLOCK_SIZE); object = one rank's block; objects = all ranks.",
            tail_reason="only full blocks are stored",
            headline_suffix=f", engine {self.name}",
            unit="block",
            no_timeout_note=f"prompts: {self.name} times out an L2 get at 20 ms per token asked (a limit), so no cap is shown.",
        )

    def explain(self, sweep: Sweep) -> list[str]:
        block = _settings(sweep.layout).vllm_block
        lines = super().explain(sweep)
        lines.append(f"AIBrix per block B (vLLM block {block}):")
        for row in sweep.rows:
            lines.append(
                f"  block {row.chunk_tokens:,}: chunk = max({CHUNK_TOKENS} - {CHUNK_TOKENS} mod B, 4 x B) = "
                f"{aibrix_chunk(row.chunk_tokens):,} tokens per cache call; a step loads at least max({SKIP_THRESHOLD} "
                f"x {block}, B) = {load_threshold(row.chunk_tokens, block):,} tokens"
            )
        return lines

    def assumptions(self, sweep: Sweep) -> list[str]:
        spec, layout = sweep.spec, sweep.layout
        settings, info, connector = _settings(layout), self.info, layout.connector
        where = (
            "No L2 backend: the blocks stay in L1 (pinned CPU memory)."
            if settings.l2_backend == "none"
            else INGESTION_NOTES[settings.l2_ingestion].capitalize() + "."
        )
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{info.stack}: {info.object_rule} ({info.source}; confidence {info.confidence}).",
            f"TP {layout.options.tp} x PP {layout.options.pp}: {layout.writers} writers, each storing its own objects "
            "(replicated KV heads under keys of their own).",
            "Blocks: only whole blocks are stored; the tail is recomputed. No header: the compact layout "
            "(AIBRIX_KV_CACHE_OL_TOKEN_VALIDATION_ENABLED off, its default).",
            f"L2 {connector.name}: {connector.layout} ({connector.source}).",
            where,
            f"vLLM {TARGET_VLLM}, AIBrix's image; AIBrix {VERSION} does not run on vLLM {BROKEN_VLLM}.",
            "Prompts sharing a prefix share its whole blocks (rolling-hash keys over the prefix), stored once.",
            "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
        ]

    def emit(self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: Any = None) -> tuple[str, list[str]]:
        return aibrix_env(sweep, row, plan.options if plan else None, margin, emit_options)

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        assert isinstance(given, Aibrix)
        current = BACKENDS["l1" if given.l2_backend == "none" else given.l2_backend]
        if "l2_backend" in given.model_fields_set or current.transport == transport:
            return given
        backend = TRANSPORT_BACKENDS.get(transport)
        if backend is None:
            return None
        return given.model_copy(update={"l2_backend": backend})


def pinned_pool_bytes(settings: Aibrix, row: SweepRow) -> int:
    """What one rank pins at start: L1 plus, with an L2 backend, three chunks of staging blocks, in whole 1 GiB slabs
    (``BaseKVCacheManager.__init__``; ``memory/allocator.py`` ``TensorPoolAllocator._grow``)."""
    pool = int(settings.l1_gib * GIB)
    if settings.l2_backend != "none":
        pool += STAGING_CHUNKS * (aibrix_chunk(row.chunk_tokens) // row.chunk_tokens) * row.object_bytes
    return -(-pool // GIB) * GIB


def aibrix_env(sweep: Sweep, row: SweepRow, options: Any, margin: float, given: Any = None) -> tuple[str, list[str]]:
    """``--emit aibrix``: the ``AIBRIX_KV_CACHE_OL_*`` environment (names from ``envs.py``) that stores ``row``'s blocks
    where the settings say, and the ``vllm serve`` line that loads the connector; and warnings. ``given`` (an
    ``EmitOptions``) fills the backend's directory (``--emit-dir``) and server (``--emit-host``)."""
    from kvsize.engines.stack_settings import model_argument

    layout = sweep.layout
    settings = _settings(layout)
    prompts = -(-options.concurrent_prompts // options.instances) if options else 1
    per_rank = per_writer_bytes(row, layout)
    needed = max(1, math.ceil(per_rank * prompts * margin / GIB))
    l1 = needed if settings.l1_capacity_gb is None else settings.l1_capacity_gb
    pool = pinned_pool_bytes(settings.model_copy(update={"l1_capacity_gb": l1}), row)
    where = "no L2 (L1 only)" if settings.l2_backend == "none" else f"L2 {settings.l2_backend}"
    lines = [
        f"AIBrix KV cache offloading (aibrix-kvcache {VERSION}) from kvsize for {sweep.spec.name}, TP "
        f"{layout.options.tp} x PP {layout.options.pp}, {sweep.prompt_tokens:,}-token prompts, {where} (confidence medium).",
        f"AIBrix {VERSION} targets vLLM {TARGET_VLLM} (its image); it does not run on vLLM {BROKEN_VLLM}, whose attention "
        f"backends lack the get_kv_cache_shape its connector calls. Install both: pip install aibrix-kvcache=={VERSION} "
        f"vllm=={TARGET_VLLM}",
        f"block {row.chunk_tokens:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt (one per block "
        f"per TP rank); each rank holds {format_iec(per_rank)} a prompt.",
        f"L1 {exact_number(l1)} GiB per rank: {format_iec(per_rank)} x {prompts} prompt(s) x {exact_number(margin)} margin "
        f"needs {needed}; each rank pins {format_iec(pool)} at start (L1 and staging, in 1 GiB slabs).",
    ]
    if not _power_of_two(row.chunk_tokens):
        lines.append(f"AIBRIX_KV_CACHE_OL_BLOCK_SIZE stays unset: the block is vLLM's --block-size {settings.vllm_block}.")
    if settings.l2_backend != "none":
        lines.append("Replace each <...> placeholder: kvsize cannot know your mount, host or port.")
    exports = [(_VAR + name, _filled(value, given)) for name, value in _env(settings, row.chunk_tokens, l1)]
    if layout.options.pp_partition:
        exports.append(("VLLM_PP_LAYER_PARTITION", ",".join(map(str, layout.options.pp_partition))))
    command = ["vllm", "serve", model_argument(sweep), "--tensor-parallel-size", str(layout.options.tp)]
    command += ["--pipeline-parallel-size", str(layout.options.pp), "--block-size", str(settings.vllm_block)]
    command += ["--kv-transfer-config", json.dumps(CONNECTOR_CONFIG, separators=(",", ":"))]
    text = "".join(comment(line) + "\n" for line in lines)
    text += "".join(f"export {env_assignment(name, value)}\n" for name, value in exports)
    return text + shell_line(command) + "\n", _emit_warnings(settings, row.chunk_tokens, needed)


def _env(settings: Aibrix, block: int, l1: float) -> list[tuple[str, str]]:
    """The ``AIBRIX_KV_CACHE_OL_*`` settings (without the prefix) that store ``block``-token blocks where ``settings``
    say: the compact layout, the block (a power of two, else vLLM's), L1, and the L2 backend with its ingestion."""
    env = [("TOKEN_VALIDATION_ENABLED", "0")]
    if _power_of_two(block):
        env.append(("BLOCK_SIZE", str(block)))
    env += [("CHUNK_SIZE", str(aibrix_chunk(block))), ("L1_CACHE_ENABLED", "1"), ("L1_CACHE_CAPACITY_GB", exact_number(l1))]
    if settings.l2_backend != "none":
        env += [("L2_CACHE_BACKEND", settings.l2_backend.upper()), ("L2_CACHE_INGESTION_TYPE", settings.l2_ingestion.upper())]
        env += BACKEND_ENV[settings.l2_backend]
    return env


def _filled(value: str, given: Any) -> str:
    """A placeholder the user gave a value for (``--emit-dir`` for a mount or disk path, ``--emit-host`` for a host)."""
    if given is None:
        return value
    directory, host = getattr(given, "dir", None), getattr(given, "host", None)
    if directory is not None and value in ("<shared mount path>", "<local disk path>"):
        return str(directory)
    if host is not None and value in ("<host>", "<host IP>"):
        return str(host)
    return value


def _emit_warnings(settings: Aibrix, block: int, needed: int) -> list[str]:
    warnings = []
    if block < settings.vllm_block:
        warnings.append(f"block {block} is below vLLM's {settings.vllm_block}-token block: AIBrix takes it, not run on a GPU")
    if settings.l2_backend != "none" and settings.l2_ingestion != "all":
        warnings.append(f"{INGESTION_NOTES[settings.l2_ingestion]}: give `l2_ingestion` all to store each prompt at once")
    if settings.l1_capacity_gb is not None and settings.l1_capacity_gb < needed:
        warnings.append(
            f"`l1_capacity_gb` {exact_number(settings.l1_capacity_gb)} is below the {needed} GiB per rank the prompts need; "
            "emitted as given"
        )
    if settings.l2_backend == "rocksdb":
        warnings.append("RocksDB drops records older than AIBRIX_KV_CACHE_OL_ROCKSDB_TTL_S (600 s by default) at compaction")
    return warnings
