"""What the per-rank engines share (SGLang HiCache, Dynamo KVBM): every TP rank of every PP stage stores its own
objects, each holding its stage's attention layers for its KV heads, like LMCache; only the knob, the split
of K and V and the PP rule differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.engines.base import Engine, EngineOptions, Layout, Stage, StageObjects, SweepRow, whole_chunk_row
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec

if TYPE_CHECKING:
    from kvsize.plan import Sweep

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


class PerRankEngine(Engine):
    """An engine whose every rank of every stage stores its own objects per chunk (a page, a block)."""

    def explain(self, sweep: Sweep) -> list[str]:
        """Per rank and stage, like LMCache, with the engine's unit and K/V split."""
        layout = sweep.layout
        unit = self.text(layout).unit
        split = layout.objects_per_chunk
        lines = [
            f"Layout ({self.name}: every rank of every stage stores its own objects per {unit}"
            + (", K and V apart" if split == 2 else "")
            + ")",
            f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}",
            f"  heads/rank: {layout.heads_per_rank}, kv_factor {layout.kv_factor}",
        ]
        for stage in layout.stages:
            lines.append(
                f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, "
                f"{stage.kv_layers} stored: {stage.bytes_per_token_per_rank:,} B/token per rank, {stage.writers} writers"
            )
        for row in sweep.rows:
            lines.append(f"{unit.capitalize()} {row.chunk_tokens:,}")
            lines.append(
                f"  {unit}s = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; tail = "
                f"{row.tail_tokens:,} (not stored: only whole {unit}s)"
            )
            for stage, objs in zip(layout.stages, row.stages, strict=True):
                lines.append(
                    f"  stage {stage.index}: object = {row.chunk_tokens:,} x {stage.bytes_per_token_per_rank:,}"
                    f"{' / 2' if split == 2 else ''} = {objs.object_bytes:,} B; objects = {stage.writers} writers x "
                    f"{row.full_chunks:,}{' x 2' if split == 2 else ''} = {objs.objects:,}"
                )
            lines.append(f"  total {row.objects:,} objects, {row.total_bytes:,} B")
        return lines

    def assumptions(self, sweep: Sweep) -> list[str]:
        spec, layout = sweep.spec, sweep.layout
        info, connector = self.info, layout.connector
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{info.stack}: {info.object_rule} ({info.source}; confidence {info.confidence}).",
            f"TP {layout.options.tp} x PP {layout.options.pp}: {layout.writers} writers, each storing its own objects.",
            "Chunks: only full chunks are stored; the tail is recomputed.",
            f"Tier {connector.name}: {connector.layout} ({connector.source}).",
            "Prompts sharing a prefix share its whole chunks (chained block hashes), stored once.",
            "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
        ]
