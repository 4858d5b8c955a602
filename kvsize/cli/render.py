"""Rendering a sweep: rich table, JSON, CSV, Markdown and the --explain derivation.

Nothing here computes a size: every number comes from the ``Sweep`` objects that
``kvsize.plan`` built, and is only formatted (IEC units for people, exact bytes
in JSON, CSV and --explain).
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from kvsize.engines.lmcache import Layout
from kvsize.model.spec import ModelSpec
from kvsize.plan import LMCACHE_DEFAULT_CHUNK, Sweep, SweepRow
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:  # the time model loads only when a backend is given
    from kvsize.storage import RowTiming, StoragePlan

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


def sweep_dict(
    sweep: Sweep, explain: bool = False, plans: list[StoragePlan] | None = None, extra_warnings: list[str] | None = None
) -> dict[str, Any]:
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
        "warnings": [*sweep.warnings, *(extra_warnings or [])],
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
    if plans:
        # The first backend's figures extend the core contract; every backend is under "backends".
        first = plans[0]
        out["backend"] = backend_dict(first)
        out["recommended_chunk_tokens"] = first.recommendation.chunk_tokens if first.recommendation else None
        out["full_recompute_seconds"] = first.full_recompute_seconds
        out["offload_pays"] = first.offload_pays
        for row, timing in zip(out["rows"], first.timings, strict=True):
            row.update(timing_dict(timing))
        out["backends"] = [
            {
                "backend": backend_dict(plan),
                "recommended_chunk_tokens": plan.recommendation.chunk_tokens if plan.recommendation else None,
                "recommendation": plan.recommendation.reason if plan.recommendation else None,
                "recommended_at_risk": plan.recommendation.at_risk if plan.recommendation else None,
                "rows": [timing_dict(t) for t in plan.timings],
                "notes": list(plan.notes),
                "full_recompute_seconds": plan.full_recompute_seconds,
                "offload_pays": plan.offload_pays,
            }
            for plan in plans
        ]
        out["time_options"] = first.options.model_dump()
        out["prefill"] = first.prefill_assumption
    if explain:
        out["explain"] = explain_lines(sweep, plans)
    return out


def backend_dict(plan: StoragePlan) -> dict[str, Any]:
    profile = plan.backend
    out: dict[str, Any] = profile.model_dump(exclude={"figures", "missing"})
    out["figures"] = dict(profile.figures)
    out["missing"] = dict(profile.missing)
    return out


def timing_dict(timing: RowTiming) -> dict[str, Any]:
    data = timing.model_dump(exclude={"chunk_tokens", "breaches"})
    data["risks"] = list(timing.risks)
    data["risk_details"] = list(timing.risk_details)
    return data


def render_json(
    sweep: Sweep, explain: bool = False, plans: list[StoragePlan] | None = None, extra_warnings: list[str] | None = None
) -> str:
    return json.dumps(sweep_dict(sweep, explain, plans, extra_warnings), indent=2) + "\n"


TIMING_CSV_FIELDS = (
    "load_seconds",
    "load_bound",
    "store_seconds",
    "wire_requests",
    "max_concurrent_prompts",
    "recompute_tokens",
    "recompute_seconds",
    "cost_seconds",
    "risks",
)


def render_csv(sweep: Sweep, plans: list[StoragePlan] | None = None) -> str:
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
            *(["backend", *TIMING_CSV_FIELDS, "recommended"] if plans else []),
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
    plan_list: list[StoragePlan | None] = list(plans) if plans else [None]
    for plan in plan_list:
        for index, row in enumerate(sweep.rows):
            values = [getattr(row, field) for field in ROW_FIELDS]
            if plan is not None:
                timing = plan.timings[index]
                picked = plan.recommendation is not None and plan.recommendation.chunk_tokens == row.chunk_tokens
                values += [plan.backend.name, *(_csv_value(getattr(timing, f)) for f in TIMING_CSV_FIELDS), picked]
            writer.writerow([*head, *["" if v is None else v for v in values]])
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    return ";".join(value) if isinstance(value, tuple) else value


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


def render_markdown(sweep: Sweep, plans: list[StoragePlan] | None = None) -> str:
    lines = [f"### {sweep.spec.name}", "", headline(sweep).split("\n", 1)[1] + ".", subtitle(sweep) + ".", ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "|".join("---:" for _ in TABLE_HEADERS) + "|")
    for row in sweep.rows:
        lines.append("| " + " | ".join(table_cells(row)) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in footnotes(sweep))
    lines.extend(f"- **warning**: {w}" for w in sweep.warnings)
    for plan in plans or []:
        lines += ["", f"#### {timing_title(plan)}", ""]
        lines.append("| " + " | ".join(TIMING_HEADERS) + " |")
        lines.append("|" + "|".join("---" for _ in TIMING_HEADERS) + "|")
        lines += ["| " + " | ".join(cells) + " |" for cells in timing_cells(plan, bars=False)]
        lines.append("")
        lines += [f"- {line}" for line in timing_footnotes(plan)]
    return "\n".join(lines) + "\n"


def explain_lines(sweep: Sweep, plans: list[StoragePlan] | None = None) -> list[str]:
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
    for plan in plans or []:
        lines.extend(_explain_timing(sweep, plan))
    return lines


def _explain_timing(sweep: Sweep, plan: StoragePlan) -> list[str]:
    profile, layout, options = plan.backend, sweep.layout, plan.options
    connector = layout.connector
    lines = [f"Load on {profile.name}: t_op = r x L + s / b; load = max(ceil(n_w / C) x t_op, N x bytes / B, N x wire / R)"]
    for field, label in profile.figures.items():
        lines.append(f"  {field}: {label}")
    for field, why in profile.missing.items():
        lines.append(f"  {field}: {why}")
    latency, stream, concurrency = profile.latency_s or 0.0, profile.stream_bytes_per_s or 1.0, profile.concurrency or 1
    header = connector.header_bytes if connector.requests_per_object == 1 else 0
    for row, timing in zip(sweep.rows, plan.timings, strict=True):
        s = row.object_bytes + header
        t_op = connector.requests_per_object * latency + s / stream
        waves = -(-row.objects_per_writer // concurrency)
        parts = [
            f"waves {waves} x ({connector.requests_per_object} x {latency:g} s + {s:,} B / {stream:,.0f} B/s) "
            f"= {waves * t_op:.3f} s"
        ]
        if profile.aggregate_bytes_per_s:
            parts.append(
                f"bandwidth {options.concurrent_prompts} x {row.stored_bytes:,} B / {profile.aggregate_bytes_per_s:,.0f} B/s"
            )
        if profile.max_requests_per_s:
            parts.append(f"rate {options.concurrent_prompts} x {timing.wire_requests:,} / {profile.max_requests_per_s:,.0f}/s")
        lines.append(
            f"  chunk {row.chunk_tokens:,}: n_w = {row.objects_per_writer:,}; "
            + "; ".join(parts)
            + f" -> {timing.load_seconds:.3f} s ({timing.load_bound})"
        )
    return lines


RISK_LABELS = {
    "blocking_timeout": "timeout",
    "cpu_buffer": "CPU buffer",
    "pinned_memory": "pinned mem",
    "max_value_size": "max value",
    "int32_header": "int32 header",
}
TIMING_HEADERS = ("chunk", "load", "bound", "wire reqs", "prompts", "risks")
_BAR_WIDTH = 10
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(value: float, top: float) -> str:
    if top <= 0:
        return " " * _BAR_WIDTH
    eighths = round(value / top * _BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[part] if part else "")).ljust(_BAR_WIDTH)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def timing_title(plan: StoragePlan) -> str:
    options = plan.options
    prompts = f"{options.concurrent_prompts} prompt{'s' if options.concurrent_prompts != 1 else ''} at once"
    return f"Load on {plan.backend.name}, {prompts}, blocking timeout {options.blocking_timeout_s:g} s"


def timing_cells(plan: StoragePlan, bars: bool = True) -> list[list[str]]:
    top = max((t.load_seconds for t in plan.timings), default=0.0)
    picked = plan.recommendation.chunk_tokens if plan.recommendation else None
    rows = []
    for timing in plan.timings:
        load = _seconds(timing.load_seconds)
        prompts = "no cap" if timing.max_concurrent_prompts is None else format_count(timing.max_concurrent_prompts)
        mark = " *" if timing.chunk_tokens == picked else ""
        rows.append(
            [
                f"{format_count(timing.chunk_tokens)}{mark}",
                f"{_bar(timing.load_seconds, top)} {load}" if bars else load,
                timing.load_bound,
                format_count(timing.wire_requests),
                prompts,
                ", ".join(RISK_LABELS.get(risk, risk) for risk in timing.risks) or "-",
            ]
        )
    return rows


def timing_footnotes(plan: StoragePlan) -> list[str]:
    from kvsize.storage import FIGURE_NAMES

    options = plan.options
    lines = [f"prompts = how many such prompts can load at once within {options.blocking_timeout_s:g} s."]
    if plan.recommendation:
        flag = "at risk: " if plan.recommendation.at_risk else ""
        lines.append(f"* recommended, {flag}{plan.recommendation.reason}.")
    verdict = recompute_verdict(plan)
    if verdict:
        lines.append(verdict)
    if plan.prefill_assumption:
        lines.append(plan.prefill_assumption + ".")
    for timing in plan.timings:
        for detail in timing.risk_details:
            lines.append(f"risk at chunk {timing.chunk_tokens:,}: {detail}.")
    lines.append(f"Backend {plan.backend.name}, figures from {plan.backend.source}:")
    for field, label in plan.backend.figures.items():
        lines.append(f"  {FIGURE_NAMES.get(field, field)}: {label}")
    for field, why in plan.backend.missing.items():
        lines.append(f"  {FIGURE_NAMES.get(field, field)}: {why}")
    lines.extend(plan.notes)
    return lines


def recompute_verdict(plan: StoragePlan) -> str | None:
    """Whether loading from this backend beats recomputing the prompts, in words."""
    if plan.full_recompute_seconds is None or plan.recommendation is None or plan.offload_pays is None:
        return None
    from kvsize.storage import prompts_per_instance

    best = next(t for t in plan.timings if t.chunk_tokens == plan.recommendation.chunk_tokens)
    held = prompts_per_instance(plan.options)
    share = (
        f"the {held:,} prompt{'s' if held != 1 else ''} one instance holds"
        if plan.options.instances > 1 or held > 1
        else "the prompt"
    )
    if plan.offload_pays:
        return (
            f"Offloading pays: recomputing {share} would take {plan.full_recompute_seconds:.2f} s, against "
            f"{best.cost_seconds:.2f} s to load (+ tail recompute) at chunk {best.chunk_tokens:,}."
        )
    return (
        f"OFFLOADING DOES NOT PAY on {plan.backend.name}: recomputing {share} takes {plan.full_recompute_seconds:.2f} s, "
        f"less than the best load + tail recompute ({best.cost_seconds:.2f} s at chunk {best.chunk_tokens:,}); "
        "recompute instead, or use faster storage."
    )


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


def assumptions(sweep: Sweep) -> list[str]:
    """What a capacity number rests on, with sources: for a planning document."""
    spec, layout = sweep.spec, sweep.layout
    connector = layout.connector
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


CAPACITY_HEADERS = ("", "objects", "stored", "objects/writer", "stored/writer")


def _share_cells(label: str, share: Any) -> list[str]:
    return [
        label,
        format_count(share.objects),
        format_iec(share.stored_bytes),
        format_count(share.objects_per_writer),
        format_iec(share.stored_bytes_per_writer),
    ]


def capacity_title(sweep: Sweep, plan: Any) -> str:
    layout = sweep.layout
    return (
        f"{sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, {format_count(sweep.prompt_tokens)}-token "
        f"prompts, chunk {format_count(plan.chunk_tokens)}, connector {layout.connector.name}"
    )


def capacity_cells(plan: Any) -> list[list[str]]:
    rows = [_share_cells("one prompt", plan.per_prompt)]
    if plan.shared_chunks:
        rows.append(_share_cells(f"shared {format_count(plan.shared_chunks)} chunks", plan.shared))
        rows.append(_share_cells("each more prompt", plan.unique_per_prompt))
    if plan.prompts_that_fit is not None:
        rows.append(_share_cells(f"{format_count(plan.prompts_that_fit)} prompts (fit)", plan.at_capacity))
    if plan.needed is not None:
        rows.append(_share_cells(f"{format_count(plan.prompts)} prompts (needed)", plan.needed))
    return rows


def capacity_notes(sweep: Sweep, plan: Any) -> list[str]:
    lines = []
    if plan.prompts_that_fit is not None:
        lines.append(
            f"{format_count(plan.prompts_that_fit)} such prompts fit in {format_iec(plan.storage_bytes)} "
            f"({plan.storage_bytes:,} B); {format_iec(plan.storage_bytes - plan.at_capacity.stored_bytes)} left."
        )
    if plan.needed is not None:
        lines.append(
            f"{format_count(plan.prompts)} prompts need {format_iec(plan.needed.stored_bytes)} "
            f"({plan.needed.stored_bytes:,} B), {format_iec(plan.needed.stored_bytes_per_writer)} per writer."
        )
    if plan.shared_chunks:
        lines.append(
            f"The {format_count(plan.shared_prefix_tokens)}-token shared prefix's {format_count(plan.shared_chunks)} "
            "whole chunks are stored once; each more prompt adds the rest."
        )
    lines.append("stored = KV payload + connector metadata; /writer = the busiest writer's share.")
    return lines


def capacity_markdown(sweep: Sweep, plan: Any) -> str:
    """A section ready to paste into a capacity-planning document."""
    lines = [f"## KV-cache capacity: {sweep.spec.name}", "", capacity_title(sweep, plan) + ".", ""]
    lines.append("| " + " | ".join(h or "what" for h in CAPACITY_HEADERS) + " |")
    lines.append("|---|" + "|".join("---:" for _ in CAPACITY_HEADERS[1:]) + "|")
    lines += ["| " + " | ".join(cells) + " |" for cells in capacity_cells(plan)]
    lines.append("")
    lines += capacity_notes(sweep, plan)
    lines += ["", "### Chunk-size sweep", ""]
    lines += render_markdown(sweep).splitlines()[2:]
    lines += ["", "### Assumptions and sources", ""]
    lines += [f"- {line}" for line in assumptions(sweep)]
    return "\n".join(lines) + "\n"
