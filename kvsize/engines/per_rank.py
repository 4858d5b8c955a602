"""What the per-rank engines share (SGLang HiCache, Dynamo KVBM): every TP rank of every PP stage stores its own
objects, each holding its stage's attention layers for its KV heads, like LMCache; only the knob, the split
of K and V and the PP rule differ.
"""

from __future__ import annotations

from kvsize.engines.base import StageObjects, SweepRow, whole_chunk_row
from kvsize.engines.lmcache import EngineOptions, Layout, Stage
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec

ATTENTION = (LayerKind.FULL, LayerKind.MLA)


def refuse_beyond_attention(spec: ModelSpec, options: EngineOptions, why: str) -> None:
    """Fail closed on what the per-rank engines' facts do not size: extra pools (sliding window, chunked local,
    Mamba, linear attention, conv) and draft layers, naming them."""
    counts = spec.kind_counts()
    extra = [kind for kind in counts if kind not in (*ATTENTION, LayerKind.MLP)]
    if extra:
        named = ", ".join(f"{counts[kind]} {kind.value}" for kind in extra)
        raise UnsupportedModelError(
            f"{spec.name} has {named} layers: {why}; kvsize does not size them and will not guess "
            "(`engine` vllm or lmcache size this model)",
            field="engine",
        )
    if options.draft_layers:
        raise UnsupportedModelError(
            f"draft layers under `engine` {options.engine}: kvsize does not know how it stores them; drop `draft_layers`/`mtp`",
            field="draft_layers",
        )


def stages(spec: ModelSpec, partition: list[int], writers_per_stage: int, heads_per_rank: int, dtype_bytes: int) -> list[Stage]:
    """Each stage's layers and what one of its writers stores per token."""
    out, first = [], 0
    for index, count in enumerate(partition):
        kinds = spec.layer_kinds[first : first + count]
        kv_layers = sum(1 for kind in kinds if kind.keeps_kv)
        out.append(
            Stage(
                index=index,
                first_layer=first,
                layers=count,
                kv_layers=kv_layers,
                draft_layers=0,
                writers=writers_per_stage if kv_layers else 0,
                bytes_per_token_per_rank=sum(kind.bytes_per_token(heads_per_rank, spec.head_size, dtype_bytes) for kind in kinds),
            )
        )
        first += count
    return out


def per_rank_row(layout: Layout, prompt_tokens: int, chunk_tokens: int, align: int = 1) -> SweepRow:
    """Only whole chunks; every writer stores ``objects_per_chunk`` objects per chunk, each ``chunk x bytes per
    token / objects_per_chunk`` rounded up to ``align``."""
    full_chunks = prompt_tokens // chunk_tokens
    split = layout.objects_per_chunk
    rows = []
    for stage in layout.stages:
        raw = chunk_tokens * stage.bytes_per_token_per_rank // split if stage.writers else 0
        object_bytes = -(-raw // align) * align
        objects = stage.writers * full_chunks * split
        rows.append(
            StageObjects(
                stage=stage.index,
                objects=objects,
                object_bytes=object_bytes,
                tail_object_bytes=0,
                total_bytes=objects * object_bytes,
            )
        )
    largest = rows[layout.largest_stage.index]
    return whole_chunk_row(prompt_tokens, chunk_tokens, rows, largest.object_bytes, (prompt_tokens // chunk_tokens) * split)
