"""Rendering a sweep: rich table, JSON, CSV, Markdown and the --explain derivation.

Nothing here computes a size: every number comes from the ``Sweep`` objects that
``kvsize.plan`` built, and is only formatted (IEC units for people, exact bytes
in JSON, CSV and --explain).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from kvsize.layout import Layout
from kvsize.plan import LMCACHE_DEFAULT_CHUNK, Sweep, SweepRow
from kvsize.spec import ModelSpec
from kvsize.units import format_count, format_iec

ROW_FIELDS = (
    "chunk_tokens",
    "full_chunks",
    "tail_tokens",
    "tail_saved",
    "object_bytes",
    "tail_object_bytes",
    "objects",
    "objects_per_writer",
    "total_bytes",
    "header_bytes",
    "stored_bytes",
    "reduction_vs_256",
)


def sweep_dict(sweep: Sweep, explain: bool = False) -> dict[str, Any]:
    """The JSON contract (README, "JSON output"): extend it, never break it."""
    layout = sweep.layout
    spec = sweep.spec
    out: dict[str, Any] = {
        "model": spec.name,
        "tp": layout.options.tp,
        "pp": layout.options.pp,
        "prompt_tokens": sweep.prompt_tokens,
        "kv_dtype": layout.kv_dtype,
        "dtype_bytes": layout.dtype_bytes,
        "bytes_per_token": layout.bytes_per_token,
        "bytes_per_token_per_rank": layout.bytes_per_token_per_rank,
        "writers": layout.writers,
        "warnings": list(sweep.warnings),
        "rows": [{field: getattr(row, field) for field in ROW_FIELDS} for row in sweep.rows],
        "notes": list(sweep.notes),
        "connector": layout.connector.name,
        "layerwise": layout.options.layerwise,
        "save_unfull_chunk": layout.options.save_unfull_chunk,
        "source": spec.source,
        "model_type": spec.model_type,
        "layers": spec.num_layers,
        "kv_layers": spec.kv_layers,
        "draft_layers": layout.options.draft_layers,
        "kv_heads": spec.num_kv_heads,
        "kv_heads_per_rank": layout.heads_per_rank,
        "head_size": spec.head_size,
        "use_mla": spec.use_mla,
        "stages": [
            {
                "stage": s.index,
                "first_layer": s.first_layer,
                "layers": s.layers,
                "stored_layers": s.stored_layers,
                "writers": s.writers,
                "bytes_per_token_per_rank": s.bytes_per_token_per_rank,
            }
            for s in layout.stages
        ],
    }
    if explain:
        out["explain"] = explain_lines(sweep)
    return out


def render_json(sweep: Sweep, explain: bool = False) -> str:
    return json.dumps(sweep_dict(sweep, explain), indent=2) + "\n"


def render_csv(sweep: Sweep) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "model",
            "tp",
            "pp",
            "prompt_tokens",
            "kv_dtype",
            "bytes_per_token",
            "bytes_per_token_per_rank",
            "writers",
            *ROW_FIELDS,
        ]
    )
    layout = sweep.layout
    head = [
        sweep.spec.name,
        layout.options.tp,
        layout.options.pp,
        sweep.prompt_tokens,
        layout.kv_dtype,
        layout.bytes_per_token,
        layout.bytes_per_token_per_rank,
        layout.writers,
    ]
    for row in sweep.rows:
        values = [getattr(row, field) for field in ROW_FIELDS]
        writer.writerow([*head, *["" if v is None else v for v in values]])
    return buffer.getvalue()


def headline(sweep: Sweep, sep: str = "\n") -> str:
    """The model, then bytes/token, parallelism, writers and the resolved prompt."""
    layout = sweep.layout
    return (
        f"{sweep.spec.name}{sep}{format_count(layout.bytes_per_token)} B/token ({format_iec(layout.bytes_per_token)}), "
        f"TP {layout.options.tp} x PP {layout.options.pp}, {layout.writers} writer{'s' if layout.writers != 1 else ''}, "
        f"prompt {format_count(sweep.prompt_tokens)} tokens"
    )


def subtitle(sweep: Sweep) -> str:
    layout = sweep.layout
    per_rank = layout.bytes_per_token_per_rank
    mode = ", layerwise" if layout.options.layerwise else ""
    return (
        f"{format_count(per_rank)} B/token per writer ({format_iec(per_rank)}); {layout.kv_dtype} KV; "
        f"connector {layout.connector.name}{mode}"
    )


def _tail_cell(row: SweepRow) -> str:
    if row.tail_tokens == 0:
        return "0"
    return f"{format_count(row.tail_tokens)} {'saved' if row.tail_saved else 'dropped'}"


def _reduction(row: SweepRow) -> str:
    return "-" if row.reduction_vs_256 is None else f"{row.reduction_vs_256:.1f}x"


def table_cells(row: SweepRow) -> list[str]:
    return [
        format_count(row.chunk_tokens),
        format_count(row.full_chunks),
        _tail_cell(row),
        format_iec(row.object_bytes),
        format_count(row.objects),
        format_iec(row.stored_bytes),
        _reduction(row),
    ]


TABLE_HEADERS = ("chunk", "chunks", "tail", "object", "objects", "stored", f"vs {LMCACHE_DEFAULT_CHUNK}")


def footnotes(sweep: Sweep) -> list[str]:
    """Plain-language notes under the table: the dropped tail, headers, notes."""
    lines = []
    dropped = [row for row in sweep.rows if row.tail_tokens and not row.tail_saved]
    if dropped:
        parts = ", ".join(f"{format_count(r.tail_tokens)} at {format_count(r.chunk_tokens)}" for r in dropped)
        lines.append(
            f"Tail not stored (save_unfull_chunk off): {parts} tokens past the last whole chunk are recomputed by prefill."
        )
    saved = [row for row in sweep.rows if row.tail_saved]
    if saved:
        lines.append("Tail stored as one partial object per writer (save_unfull_chunk on); counted in objects.")
    connector = sweep.layout.connector
    if connector.header_bytes:
        lines.append(
            f"stored = KV payload + {connector.header_bytes:,} B of {connector.name} metadata per object ({connector.layout})."
        )
    lines.append("object = one writer's object of one full chunk; objects = all writers and stages.")
    lines.extend(sweep.notes)
    return lines


def render_markdown(sweep: Sweep) -> str:
    lines = [f"### {sweep.spec.name}", "", headline(sweep).split("\n", 1)[1] + ".", subtitle(sweep) + ".", ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "|".join("---:" for _ in TABLE_HEADERS) + "|")
    for row in sweep.rows:
        lines.append("| " + " | ".join(table_cells(row)) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in footnotes(sweep))
    lines.extend(f"- **warning**: {w}" for w in sweep.warnings)
    return "\n".join(lines) + "\n"


def explain_lines(sweep: Sweep) -> list[str]:
    """The derivation of every number, from the objects that computed the table."""
    spec, layout = sweep.spec, sweep.layout
    lines = [f"Model {spec.name} ({spec.source})"]
    for name, field in spec.fields.items():
        lines.append(f"  {name}: {field.value}  <- {field.field}")
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
    return lines


def catalog_rows(specs: list[tuple[ModelSpec, Layout]]) -> list[dict[str, Any]]:
    """One row per catalog model: the normalised architecture and its bytes per token at TP 1."""
    return [
        {
            "model": spec.name,
            "model_type": spec.model_type,
            "layers": spec.num_layers,
            "kv_layers": spec.kv_layers,
            "kv_heads": spec.num_kv_heads,
            "head_size": spec.head_size,
            "use_mla": spec.use_mla,
            "kv_dtype": layout.kv_dtype,
            "bytes_per_token": layout.bytes_per_token,
        }
        for spec, layout in specs
    ]


def render_rows(rows: list[dict[str, Any]], output: str) -> str:
    """JSON, CSV or Markdown for a list of flat rows."""
    if output == "json":
        return json.dumps(rows, indent=2) + "\n"
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    headers = list(rows[0]) if rows else []
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def spec_dict(spec: ModelSpec) -> dict[str, Any]:
    """The normalised spec, each value beside the config field it came from."""
    return {
        "model": spec.name,
        "source": spec.source,
        "revision": spec.revision,
        "model_type": spec.model_type,
        "layers": spec.num_layers,
        "layer_kinds": {kind.value: count for kind, count in spec.kind_counts().items()},
        "kv_layers": spec.kv_layers,
        "num_attention_heads": spec.num_attention_heads,
        "kv_heads": spec.num_kv_heads,
        "head_size": spec.head_size,
        "use_mla": spec.use_mla,
        "config_dtype": spec.config_dtype,
        "kv_cache_quant": spec.kv_cache_quant,
        "draft_layers": spec.draft_layers,
        "fields": {name: source.model_dump() for name, source in spec.fields.items()},
        "warnings": list(spec.warnings),
        "notes": list(spec.notes),
    }
