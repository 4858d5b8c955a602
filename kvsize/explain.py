"""Every number, explained: the derivation behind a sweep and its timing, and the assumptions
behind a capacity plan. Rendered from the objects that computed them, never recomputed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.plan import Sweep
from kvsize.units import format_count

if TYPE_CHECKING:  # the time model loads only when a backend is given
    from kvsize.storage import StoragePlan


def explain_lines(sweep: Sweep, plans: list[StoragePlan] | None = None) -> list[str]:
    """The derivation of every number, from the objects that computed the table."""
    spec, layout = sweep.spec, sweep.layout
    lines = [f"Model {spec.name} ({spec.source})"]
    for name, field in spec.fields.items():
        lines.append(f"  {name}: {field.value}  <- {field.field}")
    if layout.engine in ("sglang", "kvbm"):
        lines.extend(_explain_per_rank(sweep))
        for plan in plans or []:
            lines.extend(_explain_timing(sweep, plan))
        return lines
    if layout.engine != "lmcache":
        lines.extend(_explain_vllm_family(sweep))
        for plan in plans or []:
            lines.extend(_explain_timing(sweep, plan))
        return lines
    opts = layout.options
    lines.append("Layout (LMCache kv_shape = (layers, 1 if MLA else 2, chunk, heads/rank, head size))")
    lines.append(f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}")
    if spec.use_mla:
        lines.append(f"  heads/rank: 1 (MLA latent of {spec.head_size}), kv_factor 1")
    else:
        lines.append(
            f"  heads/rank: max(1, {spec.num_kv_heads} // TP {opts.tp}) = {layout.heads_per_rank}, kv_factor 2 (K and V)"
        )
    draft = f" + {opts.draft_layers} draft" if opts.draft_layers else ""
    lines.append(
        f"  B/token (model) = ({spec.kv_layers} KV layers{draft}) x {layout.kv_factor} x {spec.num_kv_heads} heads x "
        f"{spec.head_size} x {layout.dtype_bytes} B = {layout.bytes_per_token:,}"
    )
    for stage in layout.stages:
        lines.append(
            f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, "
            f"{stage.stored_layers} stored x {layout.kv_factor} x {layout.heads_per_rank} x {spec.head_size} x "
            f"{layout.dtype_bytes} B = {stage.bytes_per_token_per_rank:,} B/token per writer, {stage.writers} writers"
        )
    for row in sweep.rows:
        lines.append(f"Chunk {row.chunk_tokens:,}")
        lines.append(
            f"  chunks = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; "
            f"tail = {sweep.prompt_tokens:,} % {row.chunk_tokens:,} = {row.tail_tokens:,} "
            f"({'saved' if row.tail_saved else 'not stored'})"
        )
        tail = 1 if row.tail_saved else 0
        for stage, objs in zip(layout.stages, row.stages, strict=True):
            per_object = f" x {stage.stored_layers} layers" if opts.layerwise else ""
            lines.append(
                f"  stage {stage.index}: object = {row.chunk_tokens:,} x {stage.bytes_per_token_per_rank:,}"
                f"{' / ' + str(stage.stored_layers) + ' layers' if opts.layerwise else ''} = {objs.object_bytes:,} B; "
                f"objects = {stage.writers} writers x {row.full_chunks + tail:,} chunks{per_object} = {objs.objects:,}; "
                f"bytes = {stage.writers} x ({row.full_chunks:,} x {row.chunk_tokens:,}"
                f"{' + ' + format(row.tail_tokens, ',') if row.tail_saved else ''}) x "
                f"{stage.bytes_per_token_per_rank:,} = {objs.total_bytes:,}"
            )
        lines.append(
            f"  total {row.total_bytes:,} B + headers {row.objects:,} x {layout.connector.header_bytes} B = "
            f"{row.stored_bytes:,} B stored"
        )
    for plan in plans or []:
        lines.extend(_explain_timing(sweep, plan))
    return lines


def _explain_per_rank(sweep: Sweep) -> list[str]:
    """SGLang / KVBM: per rank and stage, like LMCache, with the engine's unit and K/V split."""
    layout = sweep.layout
    unit = "page" if layout.engine == "sglang" else "block"
    split = layout.objects_per_chunk
    lines = [
        f"Layout ({layout.engine}: every rank of every stage stores its own objects per {unit}"
        + (", K and V apart" if split == 2 else "")
        + ")",
        f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}",
        f"  heads/rank: {layout.heads_per_rank}, kv_factor {layout.kv_factor}",
    ]
    for stage in layout.stages:
        lines.append(
            f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, {stage.kv_layers} "
            f"stored: {stage.bytes_per_token_per_rank:,} B/token per rank, {stage.writers} writers"
        )
    for row in sweep.rows:
        lines.append(f"{unit.capitalize()} {row.chunk_tokens:,}")
        lines.append(
            f"  {unit}s = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; tail = {row.tail_tokens:,} "
            f"(not stored: only whole {unit}s)"
        )
        for stage, objs in zip(layout.stages, row.stages, strict=True):
            lines.append(
                f"  stage {stage.index}: object = {row.chunk_tokens:,} x {stage.bytes_per_token_per_rank:,}"
                f"{' / 2' if split == 2 else ''} = {objs.object_bytes:,} B; objects = {stage.writers} writers x "
                f"{row.full_chunks:,}{' x 2' if split == 2 else ''} = {objs.objects:,}"
            )
        lines.append(f"  total {row.objects:,} objects, {row.total_bytes:,} B")
    return lines


def _explain_vllm_family(sweep: Sweep) -> list[str]:
    """vLLM native / llm-d: the groups, the shared slot, the page rounding, each group's stored chunks."""
    from kvsize.engines.vllm_groups import STATE_KIND_NAMES, window_chunks

    layout = sweep.layout
    per_worker = layout.engine == "llmd-fs"
    block, slot_bytes = layout.block_tokens or 1, layout.worker_block_bytes or 0
    lines = [
        "Layout (llm-d fs: one file per (chunk, KV-cache group, worker rank))"
        if per_worker
        else "Layout (vLLM native: one object per (chunk, KV-cache group) = round_up(copies x worker block x "
        "blocks per chunk, host page))",
        f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}",
        f"  heads/rank: {layout.heads_per_rank}; GPU block {block} tokens",
        "  groups: " + ", ".join(f"{g.kind} x {len(g.layers)}" for g in layout.groups),
    ]
    for stage in layout.stages:
        lines.append(
            f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, a slot of "
            f"{stage.bytes_per_token_per_rank:,} B/token per worker (the largest group's layers there), {stage.writers} writers"
        )
    if not per_worker:
        per_token = layout.stages[0].bytes_per_token_per_rank
        lines.append(f"  worker block = {block} x {per_token:,} = {slot_bytes:,} B; copies {layout.copies}")
    for row in sweep.rows:
        lines.append(f"Chunk {row.chunk_tokens:,} ({row.chunk_tokens // block} blocks)")
        lines.append(
            f"  chunks = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; tail = "
            f"{row.tail_tokens:,} (not stored: only full chunks)"
        )
        if not per_worker:
            raw = (layout.copies or 1) * slot_bytes * (row.chunk_tokens // block)
            lines.append(
                f"  object = round_up({layout.copies} x {slot_bytes:,} x {row.chunk_tokens // block}, "
                f"{layout.host_page_bytes}) = round_up({raw:,}) = {row.object_bytes:,} B"
            )
        for group, counted in zip(layout.groups, row.groups or (), strict=True):
            if group.kind in STATE_KIND_NAMES:
                rule = f"state: min(1, ({sweep.prompt_tokens:,} - 1) // {row.chunk_tokens:,})"
            elif group.window_tokens is not None:
                chunks = window_chunks(group.window_tokens, row.chunk_tokens)
                rule = f"window {group.window_tokens:,}: min({chunks:,}, ({sweep.prompt_tokens:,} - 1) // {row.chunk_tokens:,})"
            else:
                rule = f"{sweep.prompt_tokens:,} // {row.chunk_tokens:,}"
            workers = f" x {layout.writers} workers" if per_worker else ""
            lines.append(f"  {group.kind} ({len(group.layers)} layers): {rule}{workers} -> {counted.objects:,} objects")
        lines.append(f"  total {row.objects:,} objects of {row.object_bytes:,} B = {row.total_bytes:,} B")
    return lines


def _explain_timing(sweep: Sweep, plan: StoragePlan) -> list[str]:
    """The load time of every row, rendered from the terms the time model recorded (no second calculation)."""
    profile = plan.backend
    lines = [f"Load on {profile.name}: t_op = r x L + s / b; load = max(ceil(n_w / C) x t_op, N x bytes / B, N x wire / R)"]
    for field, label in profile.figures.items():
        lines.append(f"  {field}: {label}")
    for field, why in profile.missing.items():
        lines.append(f"  {field}: {why}")
    for timing in plan.timings:
        t = timing.terms
        parts = [
            f"waves {t.waves} x ({t.round_trips} x {t.latency_s:g} s + {t.object_bytes:,} B / {t.stream_bytes_per_s:,.0f} B/s) "
            f"= {t.waves_seconds:.3f} s"
        ]
        if t.aggregate_bytes_per_s:
            parts.append(f"bandwidth {t.prompts} x {t.stored_bytes:,} B / {t.aggregate_bytes_per_s:,.0f} B/s")
        if t.max_requests_per_s:
            parts.append(f"rate {t.prompts} x {t.wire_requests:,} / {t.max_requests_per_s:,.0f}/s")
        lines.append(
            f"  chunk {timing.chunk_tokens:,}: n_w = {t.objects_per_writer:,}; "
            + "; ".join(parts)
            + f" -> {timing.load_seconds:.3f} s ({timing.load_bound})"
        )
    return lines


def assumptions(sweep: Sweep) -> list[str]:
    """What a capacity number rests on, with sources: for a planning document."""
    spec, layout = sweep.spec, sweep.layout
    connector = layout.connector
    if layout.engine != "lmcache":
        from kvsize.engines.registry import engine_for

        info = engine_for(layout.engine).info
        groups = (
            f"KV-cache groups ({len(layout.groups)}): "
            + ", ".join(f"{g.kind} x {len(g.layers)}" for g in layout.groups)
            + f"; GPU block {layout.block_tokens} tokens."
            if layout.groups
            else f"TP {layout.options.tp} x PP {layout.options.pp}: {layout.writers} writers, each storing its own objects."
        )
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{info.stack}: {info.object_rule} ({info.source}; confidence {info.confidence}).",
            groups,
            "Chunks: only full chunks are stored; the tail is recomputed.",
            f"Tier {connector.name}: {connector.layout} ({connector.source}).",
            "Prompts sharing a prefix share its whole chunks (chained block hashes), stored once.",
            "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
        ]
    return [
        f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
        f"{format_count(layout.bytes_per_token)} B of KV per token: {spec.kv_layers} stored layers "
        f"(LMCache's in-process connector stores every attention layer for every token).",
        f"TP {layout.options.tp} x PP {layout.options.pp}: {layout.writers} writers, each storing its own object per chunk "
        "(LMCache kv_shape; vLLM get_num_kv_heads, get_pp_indices).",
        "Chunks: the tail past the last whole chunk is "
        + (
            "stored (save_unfull_chunk on)."
            if layout.options.save_unfull_chunk and connector.stores_partial_chunks
            else "not stored (save_unfull_chunk off, LMCache >= 0.3.11 default) and recomputed."
        ),
        f"Connector {connector.name}: {connector.layout} ({connector.source}).",
        "Prompts sharing a prefix share its whole chunks (LMCache's chained prefix keys), stored once.",
        "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
    ]
