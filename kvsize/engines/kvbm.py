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
  sequence hash, a design no released kvbm (0.7.0 to 1.6.1) implements.

Unverified, and said so in the output: the alignment the disk tier asks for, and whether MLA is de-duplicated
across ranks (kvsize counts one copy per rank).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from kvsize.engines.base import (
    Admission,
    Connector,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Flag,
    GpuPages,
    Layout,
    StoredChunks,
    StoredGroup,
    SweepRow,
)
from kvsize.engines.per_rank import PerRankEngine, per_rank_row, refuse_beyond_attention, stages
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.plan import Sweep

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
        transport="file",
    ),
    "object": Connector(
        name="object",
        url="DYN_KVBM_OBJECT_BUCKET",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one object per (block, worker), keyed by sequence hash",
        # Unreleased: no kvbm wheel (0.7.0 to 1.6.1) reads DYN_KVBM_OBJECT_*; the design is dynamo's v2 connector's.
        source="ai-dynamo/dynamo docs/kvbm/kvbm_g4_object_storage.md (unreleased)",
        transport="object",
    ),
}


OBJECT_UNRELEASED = (
    "KVBM's object tier (G4) is in no released kvbm (kvbm 1.6.1 reads no DYN_KVBM_OBJECT_* variable): sized as dynamo's "
    "unreleased design, and --emit kvbm refuses it"
)


class Kvbm(EngineSettings):
    """Dynamo KVBM as the engine: ``kvsize.size(model, engine=kvsize.engines.Kvbm(tier="object"))``."""

    ENGINE: ClassVar[str] = "kvbm"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "framework": Flag("--kvbm-engine", "The engine under KVBM: vllm (16-token blocks, default), trtllm (32)."),
        "tier": Flag("--kvbm-tier", "disk (G3, default) or object (G4: in no released kvbm, sized as designed)."),
    }
    ALIASES: ClassVar[Mapping[str, str]] = {"kvbm_engine": "framework", "kvbm_tier": "tier"}

    framework: Literal["vllm", "trtllm"] = "vllm"
    """The engine KVBM runs under: vllm (16-token blocks) or trtllm (32)."""
    tier: Literal["disk", "object"] = "disk"
    """KVBM's tier: disk (G3, one preallocated file per worker) or object (G4, one object per block per worker)."""


class KvbmEngine(PerRankEngine):
    """Dynamo KVBM: one transfer per (block, worker) of all that worker's layers."""

    name = "kvbm"
    Settings = Kvbm
    emits = True
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
        settings = options.settings
        assert isinstance(settings, Kvbm)
        if settings.framework == "vllm":
            check_served(spec, options.vllm_version)
        check_tp(spec, options.tp)
        refuse_beyond_attention(spec, options, "KVBM's facts size one contiguous block of attention layers per worker")
        kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
        dtype_bytes = DTYPE_BYTES[kv_dtype]
        heads = 1 if spec.use_mla else max(1, spec.num_kv_heads // options.tp)
        partition = stage_layers(spec, options.pp, options.pp_partition)
        notes = [
            f"confidence medium (docs and Rust read, not run); unverified: {'; '.join(UNVERIFIED)}",
            f"the block is {settings.framework}'s ({BLOCK_TOKENS[settings.framework]} tokens by default): other "
            "sizes show what a different block size would give",
        ]
        if settings.framework == "trtllm" and options.pp > 1:
            notes.append("PP under TensorRT-LLM: stages split as vLLM's get_pp_indices (not verified for TensorRT-LLM)")
        return Layout(
            options=options,
            connector=TIERS[settings.tier],
            kv_dtype=kv_dtype,
            dtype_bytes=dtype_bytes,
            kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
            heads_per_rank=heads,
            head_size=spec.head_size,
            replication=1 if spec.use_mla else max(1, options.tp // spec.num_kv_heads),
            stages=tuple(stages(spec, partition, options.tp, heads, dtype_bytes)),
            bytes_per_token=sum(k.bytes_per_token(spec.num_kv_heads, spec.head_size, dtype_bytes) for k in spec.layer_kinds),
            warnings=(*dtype_warnings, *([OBJECT_UNRELEASED] if settings.tier == "object" else [])),
            notes=tuple(notes),
            dtype_field=dtype_field,
            block_tokens=BLOCK_TOKENS[settings.framework],
        )

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return per_rank_row(layout, prompt_tokens, chunk_tokens)

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        return (layout.block_tokens or 16,)

    def gpu_pages(self, layout: Layout, spec: ModelSpec) -> GpuPages:
        settings = layout.options.settings
        assert isinstance(settings, Kvbm)
        if settings.framework != "vllm":
            raise UnsupportedModelError(
                "`gpu` under KVBM with TensorRT-LLM: its KV pool follows free_gpu_memory_fraction, not vLLM's rule that "
                "kvsize models; drop `gpu`, or use `kvbm_engine` vllm",
                field="gpu",
            )
        return super().gpu_pages(layout, spec)

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        """Whole blocks; a match that reaches the prompt's last token on a block boundary drops that block
        (``slot.rs`` ``acquire_local_matches``): at most N - 1 tokens."""
        return StoredChunks(groups=(StoredGroup(start=0, stop=prompt_tokens // chunk_tokens),), max_hit_tokens=prompt_tokens - 1)

    def admission(self, layout: Layout, cpu_tier: bool) -> Admission | None:
        """With a host tier (G2) and the disk tier (G3), a block reaches disk on its second offer within about 600 s
        (``offload/filter.rs`` ``FrequencyFilter::new(2, 600 s, ...)``, attached only when both tiers exist)."""
        if not cpu_tier or layout.connector.name != "disk":
            return None
        return Admission(
            sightings=2,
            window_seconds=600.0,
            source="KVBM's disk offload filter (lib/llm/src/block_manager/offload/filter.rs FrequencyFilter; "
            "DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER=true turns it off)",
        )

    def replay_notes(self, layout: Layout) -> list[str]:
        return [
            "KVBM's host (G2) and disk (G3) pools evict the least recently released block (pool/managed/inactive.rs "
            "InactiveBlockPool, priority 0); its object tier (G4) never evicts"
        ]

    def engine_options(self, layout: Layout) -> dict[str, Any]:
        settings = layout.options.settings
        assert isinstance(settings, Kvbm)
        return {
            "framework": settings.framework,
            "tier": layout.connector.name,
            "block_tokens": layout.block_tokens,
            "confidence": self.info.confidence,
            "unverified": list(UNVERIFIED),
            "source": layout.connector.source,
        }

    def text(self, layout: Layout) -> EngineText:
        settings = layout.options.settings
        assert isinstance(settings, Kvbm)
        per_rank = layout.bytes_per_token_per_rank
        return EngineText(
            subtitle=f"Dynamo KVBM under {settings.framework}, tier {layout.connector.name} (confidence medium): "
            f"{format_count(per_rank)} B/token per rank ({format_iec(per_rank)}); {layout.kv_dtype} KV",
            object_note="chunk = the engine's block; object = one worker's block transfer; objects = all workers.",
            tail_reason="only full chunks are stored",
            headline_suffix=f", engine {self.name}",
            unit="block",
            no_timeout_note=f"prompts: {self.name} has no blocking timeout, so no cap is shown.",
        )

    def emit(
        self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: EmitOptions | None = None
    ) -> tuple[str, list[str]]:
        from kvsize.engines.kvbm_settings import kvbm_env

        return kvbm_env(sweep, row, plan.options if plan else None, margin, emit_options)

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        assert isinstance(given, Kvbm)
        if "tier" in given.model_fields_set or TIERS[given.tier].transport == transport:
            return given
        tier = {"file": "disk", "object": "object"}.get(transport)
        return None if tier is None else given.model_copy(update={"tier": tier})
