"""NVIDIA Dynamo KVBM (KV Block Manager), its disk (G3) and object (G4) tiers. Confidence: medium.

From ai-dynamo/dynamo's KVBM docs and Rust (``docs/kvbm/kvbm_design.md``, ``lib/llm/src/block_manager``),
read, not run:

- the block is the engine's (vLLM ``--block-size`` 16, TensorRT-LLM ``tokens_per_block`` 32); KVBM has no token
  knob of its own, and only complete blocks move;
- one block of one worker holds its layers contiguously (``layout.rs`` ``FullyContiguous``:
  ``num_layers x outer_dim x page_size x inner_dim x dtype``, ``outer_dim`` 2 for K and V, 1 for MLA), its
  stride rounded up to ``LayoutConfig.alignment`` (builder default 1);
- G3 (``storage/disk.rs``): one preallocated file per worker (``DYN_KVBM_DISK_CACHE_DIR``, O_DIRECT), a block is
  an offset read; G4 (``docs/kvbm/kvbm_g4_object_storage.md``): one object per (block, worker) keyed by
  sequence hash.

Unverified, and said so in the output: the alignment the disk tier asks for, and whether MLA is de-duplicated
across ranks (kvsize counts one copy per rank).
"""

from __future__ import annotations

from kvsize.engines.base import EngineInfo, SweepRow
from kvsize.engines.connectors import Connector
from kvsize.engines.lmcache import EngineOptions, Layout
from kvsize.engines.per_rank import per_rank_row, refuse_beyond_attention, stages
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers
from kvsize.model.spec import LayerKind, ModelSpec

BLOCK_TOKENS = {"vllm": 16, "trtllm": 32}
"""The engine's KV block KVBM moves: vLLM ``CacheConfig.DEFAULT_BLOCK_SIZE``; TensorRT-LLM ``tokens_per_block``."""
UNVERIFIED = ("the disk tier's block alignment (LayoutConfig.alignment; 1 assumed)", "MLA de-duplication across ranks")

TIERS: dict[str, Connector] = {
    "disk": Connector(
        name="disk",
        url="DYN_KVBM_DISK_CACHE_DIR",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one preallocated file per worker; a block is an offset read or write (O_DIRECT)",
        source="ai-dynamo/dynamo lib/llm/src/block_manager/storage/disk.rs",
    ),
    "object": Connector(
        name="object",
        url="DYN_KVBM_OBJECT_BUCKET",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one object per (block, worker), keyed by sequence hash",
        source="ai-dynamo/dynamo docs/kvbm/kvbm_g4_object_storage.md",
    ),
}


class KvbmEngine:
    """Dynamo KVBM: one transfer per (block, worker) of all that worker's layers."""

    info = EngineInfo(
        name="kvbm",
        stack="NVIDIA Dynamo KVBM (G3 disk, G4 object), under vLLM or TensorRT-LLM",
        setting="block",
        knob="the engine's block: vLLM --block-size (16), TensorRT-LLM tokens_per_block (32)",
        default_chunk=16,
        candidates=(16,),
        object_rule="one transfer per (block, worker): align(L x (2|1) x B x heads/rank x head x dtype); t x p x "
        "floor(N / B) per prompt",
        writers="every worker (TP x PP)",
        source="ai-dynamo/dynamo lib/llm/src/block_manager/layout.rs, docs/kvbm/kvbm_design.md",
        confidence="medium",
    )

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        if options.kvbm_engine == "vllm":
            check_served(spec, options.vllm_version)
        check_tp(spec, options.tp)
        refuse_beyond_attention(spec, options, "KVBM's facts size one contiguous block of attention layers per worker")
        kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
        dtype_bytes = DTYPE_BYTES[kv_dtype]
        heads = 1 if spec.use_mla else max(1, spec.num_kv_heads // options.tp)
        partition = stage_layers(spec, options.pp, options.pp_partition)
        notes = [
            f"confidence medium (docs and Rust read, not run); unverified: {'; '.join(UNVERIFIED)}",
            f"the block is {options.kvbm_engine}'s ({BLOCK_TOKENS[options.kvbm_engine]} tokens by default): other "
            "sizes show what a different block size would give",
        ]
        if options.kvbm_engine == "trtllm" and options.pp > 1:
            notes.append("PP under TensorRT-LLM: stages split as vLLM's get_pp_indices (not verified for TensorRT-LLM)")
        return Layout(
            options=options,
            connector=TIERS[options.kvbm_tier],
            kv_dtype=kv_dtype,
            dtype_bytes=dtype_bytes,
            kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
            heads_per_rank=heads,
            head_size=spec.head_size,
            replication=1 if spec.use_mla else max(1, options.tp // spec.num_kv_heads),
            stages=tuple(stages(spec, partition, options.tp, heads, dtype_bytes)),
            bytes_per_token=sum(k.bytes_per_token(spec.num_kv_heads, spec.head_size, dtype_bytes) for k in spec.layer_kinds),
            warnings=tuple(dtype_warnings),
            notes=tuple(notes),
            dtype_field=dtype_field,
            engine="kvbm",
            block_tokens=BLOCK_TOKENS[options.kvbm_engine],
        )

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return per_rank_row(layout, prompt_tokens, chunk_tokens)

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        return None

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        return (layout.block_tokens or 16,)


KVBM = KvbmEngine()
