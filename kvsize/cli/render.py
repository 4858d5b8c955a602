"""Rendering a sweep: rich table, JSON, CSV, Markdown and the --explain derivation.

Nothing here computes a size: every number comes from the ``Sweep`` objects that
``kvsize.plan`` built, and is only formatted (IEC units for people, exact bytes
in JSON, CSV and --explain).
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from kvsize.engines.registry import engine_for
from kvsize.plan import BASELINE_CHUNK, Sweep, SweepRow
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:  # the time model loads only when a backend is given
    from kvsize.calls.gpu_memory import GpuReport
    from kvsize.storage import StoragePlan

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
        f"prompt {format_count(sweep.prompt_tokens)} tokens" + engine_for(layout.engine).text(layout).headline_suffix
    )


def gpu_lines(report: GpuReport) -> list[str]:
    """The GPU tier in words: the memory, the weights, the KV cache per GPU, the tokens that fit, the concurrency."""
    lines = []
    if report.requested_bytes is not None and report.gpu_memory_bytes is not None:
        name = report.gpu or "GPU"
        lines.append(
            f"GPU {name}: {format_iec(report.gpu_memory_bytes)} as CUDA reports it, {report.gpu_memory_utilization:g} of it "
            f"for vLLM = {format_iec(report.requested_bytes)}; weights {format_iec(report.weights_bytes_per_gpu or 0)} per "
            f"GPU ({format_count(report.weights_parameters or 0)} parameters, {report.weights_rule}); runtime "
            f"{format_iec(report.overhead_bytes or 0)} (an estimate)"
        )
    how = "given, exact" if report.kv_cache_bytes_exact else "estimated"
    lines.append(
        f"KV cache {format_iec(report.kv_cache_bytes)} per GPU ({how}): {format_count(report.num_blocks)} blocks of "
        f"{report.block_tokens} tokens ({format_iec(report.bytes_per_block)} each) = {format_count(report.tokens_that_fit)} "
        f"tokens fit; maximum concurrency {report.max_concurrency:.2f}x for {format_count(report.max_model_len)}-token "
        f"requests (vLLM logs {format_count(report.kv_cache_size_tokens)} tokens)"
    )
    return lines


def subtitle(sweep: Sweep) -> str:
    return engine_for(sweep.layout.engine).text(sweep.layout).subtitle


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


TABLE_HEADERS = ("chunk", "chunks", "tail", "object", "objects", "stored", f"vs {BASELINE_CHUNK}")


def footnotes(sweep: Sweep) -> list[str]:
    """Plain-language notes under the table: the dropped tail, headers, notes."""
    lines = []
    text = engine_for(sweep.layout.engine).text(sweep.layout)
    dropped = [row for row in sweep.rows if row.tail_tokens and not row.tail_saved]
    if dropped:
        parts = ", ".join(f"{format_count(r.tail_tokens)} at {format_count(r.chunk_tokens)}" for r in dropped)
        why = text.tail_reason
        lines.append(f"Tail not stored ({why}): {parts} tokens past the last whole chunk are recomputed by prefill.")
    saved = [row for row in sweep.rows if row.tail_saved]
    if saved:
        lines.append("Tail stored as one partial object per writer (save_unfull_chunk on); counted in objects.")
    connector = sweep.layout.connector
    if connector.header_bytes:
        lines.append(
            f"stored = KV payload + {connector.header_bytes:,} B of {connector.name} metadata per object ({connector.layout})."
        )
    lines.append(text.object_note)
    if sweep.rows and len(sweep.rows[0].groups or ()) > 1:
        lines.append("Objects per KV-cache group: " + "; ".join(_group_cell(row) for row in sweep.rows) + ".")
    lines.extend(sweep.notes)
    return lines


def _group_cell(row: SweepRow) -> str:
    """``chunk 16: 6 x sliding_attention 64 + full_attention 6,250`` (alike groups counted together)."""
    counts: dict[tuple[str, int], int] = {}
    for group in row.groups or ():
        counts[(group.kind, group.objects)] = counts.get((group.kind, group.objects), 0) + 1
    parts = [
        f"{n} x {kind} {format_count(objects)}" if n > 1 else f"{kind} {format_count(objects)}"
        for (kind, objects), n in counts.items()
    ]
    return f"chunk {format_count(row.chunk_tokens)}: " + " + ".join(parts)


def render_markdown(sweep: Sweep, plans: list[StoragePlan] | None = None, gpu: GpuReport | None = None) -> str:
    lines = [f"### {sweep.spec.name}", "", headline(sweep).split("\n", 1)[1] + ".", subtitle(sweep) + "."]
    lines += [f"{line}." for line in (gpu_lines(gpu) if gpu else [])]
    lines.append("")
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
    if plan.timeout_seconds is None:
        return f"Load on {plan.backend.name}, {prompts}, engine {plan.engine}"
    return f"Load on {plan.backend.name}, {prompts}, blocking timeout {plan.timeout_seconds:g} s"


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

    if plan.timeout_seconds is None:
        lines = [plan.no_timeout_note]
    else:
        lines = [f"prompts = how many such prompts can load at once within {plan.timeout_seconds:g} s."]
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


def print_size(sweep: Sweep, plans: list[StoragePlan], explain: list[str] | None, gpu: GpuReport | None = None) -> None:
    """The size command's table(s), footnotes, timing tables and derivation (with a GPU, its tier in the header)."""
    from rich.table import Table

    from kvsize.cli.output import Output

    console = Output()
    title = "\n".join([headline(sweep), *(gpu_lines(gpu) if gpu else [])])
    table = Table(title=title, caption=subtitle(sweep), title_justify="left", caption_justify="left")
    for header in TABLE_HEADERS:
        table.add_column(header, justify="right", no_wrap=header not in ("tail",))
    for row in sweep.rows:
        table.add_row(*table_cells(row))
    console.print(table)
    for note in footnotes(sweep):
        console.print(note, markup=False)
    for plan in plans:
        console.print()
        timing = Table(title=timing_title(plan), title_justify="left")
        for header in TIMING_HEADERS:
            timing.add_column(header, justify="left" if header in ("load", "risks") else "right", no_wrap=header != "risks")
        for cells in timing_cells(plan):
            timing.add_row(*cells)
        console.print(timing)
        for line in timing_footnotes(plan):
            console.print(line, markup=False)
    if explain:
        console.print()
        for line in explain:
            console.print(line, markup=False)
    console.close()
