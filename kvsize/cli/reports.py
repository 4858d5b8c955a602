"""Rendering the other commands' results: the catalog, a spec, a capacity plan, a check, a probe."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.cli.render import render_markdown
from kvsize.engines.base import Layout
from kvsize.model.spec import ModelSpec
from kvsize.plan import Sweep
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:  # the storage side loads only for the commands that need it
    from kvsize.storage import Limit
    from kvsize.storage.capacity import Capacity, CapacityReport, Share
    from kvsize.storage.limits import CheckReport
    from kvsize.storage.probe import ProbeReport


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
        from kvsize.cli.output import json_text

        return json_text(rows)
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


CAPACITY_HEADERS = ("", "objects", "stored", "objects/writer", "stored/writer")


def _share_cells(label: str, share: Share) -> list[str]:
    return [
        label,
        format_count(share.objects),
        format_iec(share.stored_bytes),
        format_count(share.objects_per_writer),
        format_iec(share.stored_bytes_per_writer),
    ]


def capacity_title(sweep: Sweep, plan: Capacity) -> str:
    layout = sweep.layout
    return (
        f"{sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, {format_count(sweep.prompt_tokens)}-token "
        f"prompts, chunk {format_count(plan.chunk_tokens)}, connector {layout.connector.name}"
    )


def capacity_cells(plan: Capacity) -> list[list[str]]:
    rows = [_share_cells("one prompt", plan.per_prompt)]
    if plan.shared_chunks:
        rows.append(_share_cells(f"shared {format_count(plan.shared_chunks)} chunks", plan.shared))
        rows.append(_share_cells("each more prompt", plan.unique_per_prompt))
    if plan.prompts_that_fit is not None and plan.at_capacity is not None:
        rows.append(_share_cells(f"{format_count(plan.prompts_that_fit)} prompts (fit)", plan.at_capacity))
    if plan.needed is not None and plan.prompts is not None:
        rows.append(_share_cells(f"{format_count(plan.prompts)} prompts (needed)", plan.needed))
    return rows


def capacity_notes(sweep: Sweep, plan: Capacity) -> list[str]:
    lines = []
    if plan.prompts_that_fit is not None and plan.at_capacity is not None and plan.storage_bytes is not None:
        lines.append(
            f"{format_count(plan.prompts_that_fit)} such prompts fit in {format_iec(plan.storage_bytes)} "
            f"({plan.storage_bytes:,} B); {format_iec(plan.storage_bytes - plan.at_capacity.stored_bytes)} left."
        )
    if plan.needed is not None and plan.prompts is not None:
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


def capacity_markdown(sweep: Sweep, plan: Capacity, assumptions: list[str]) -> str:
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
    lines += [f"- {line}" for line in assumptions]
    return "\n".join(lines) + "\n"


def _limit_cells(violation: Limit) -> list[str]:
    def show(value: float) -> str:
        if violation.unit == "B":
            return f"{format_iec(value)} ({int(value):,} B)"
        if violation.unit == "s":
            return f"{value:.3f} s"
        return format_count(int(value))

    return [violation.limit, show(violation.value), show(violation.threshold), show(violation.over_by)]


def print_check(report: CheckReport, *, markdown: bool) -> None:
    """The guard's verdict: OK, or the violated limits as a table (or Markdown, for a PR comment)."""
    title = (
        f"{report.model}, TP {report.tp} x PP {report.pp}, {report.prompt_tokens:,}-token prompt, "
        f"chunk {report.chunk_tokens:,}, connector {report.connector}"
    )
    if markdown:
        lines = [f"### kvsize check: {'OK' if report.ok else 'FAILED'}", "", title + ".", ""]
        if report.violations:
            lines += ["| limit | value | threshold | over by |", "|---|---:|---:|---:|"]
            lines += ["| " + " | ".join(_limit_cells(v)) + " |" for v in report.violations]
        else:
            lines.append("Every limit holds.")
        sys.stdout.write("\n".join(lines) + "\n")
        return
    from rich.table import Table

    from kvsize.cli.output import Output

    console = Output()
    if report.ok:
        console.print(f"OK: {title}: every limit holds.", markup=False)
    else:
        table = Table(title=f"FAILED: {title}", title_justify="left")
        for header in ("limit", "value", "threshold", "over by"):
            table.add_column(header, justify="left" if header == "limit" else "right", overflow="fold")
        for violation in report.violations:
            table.add_row(*_limit_cells(violation))
        console.print(table)
        for violation in report.violations:
            console.print(f"{violation.limit}: {violation.detail}", markup=False)
    console.close()


def print_capacity(report: CapacityReport, *, markdown: bool) -> None:
    """The capacity plan as a table, or as a section for a capacity-planning document."""
    sweep, plan = report.sweep, report.capacity
    if markdown:
        sys.stdout.write(capacity_markdown(sweep, plan, report.assumptions))
        return
    from rich.table import Table

    from kvsize.cli.output import Output

    console = Output()
    table = Table(title=capacity_title(sweep, plan), title_justify="left")
    for header in CAPACITY_HEADERS:
        table.add_column(header, justify="left" if header == "" else "right")
    for cells in capacity_cells(plan):
        table.add_row(*cells)
    console.print(table)
    for line in capacity_notes(sweep, plan):
        console.print(line, markup=False)
    console.close()


def print_probe(report: ProbeReport, save_profile: Path | None) -> None:
    """The probe's sets and the fitted profile."""
    from rich.table import Table

    from kvsize.cli.output import Output

    console = Output()
    fleet = report.fleet
    scope = f", {fleet.clients_measured} clients at once (fleet-wide)" if fleet else ""
    table = Table(title=f"Probe of {report.target}{' (O_DIRECT)' if report.direct else ''}{scope}", title_justify="left")
    for header in ("object", "conc", "objects", "write/s", "read/s", "read p50", "read p99"):
        table.add_column(header, justify="right")
    for r in report.results:
        table.add_row(
            format_iec(r.object_bytes),
            str(r.concurrency),
            str(r.objects),
            format_iec(r.write_bytes_per_s),
            format_iec(r.read_bytes_per_s),
            f"{r.read_latency_p50_s * 1000:.2f} ms",
            f"{r.read_latency_p99_s * 1000:.2f} ms",
        )
    console.print(table)
    fitted = report.profile
    latency = "not fitted" if fitted.latency_s is None else f"{fitted.latency_s * 1e6:,.0f} us"
    stream = "not fitted" if fitted.stream_bytes_per_s is None else f"{format_iec(fitted.stream_bytes_per_s)}/s"
    console.print(
        f"Fitted: latency {latency}, stream bandwidth {stream}, aggregate "
        f"{format_iec(fitted.aggregate_bytes_per_s)}/s at up to {fitted.concurrency} in flight.",
        markup=False,
    )
    if fitted.max_requests_per_s is not None:
        console.print(
            f"Request rate R >= {fitted.max_requests_per_s:,.0f} reads/s fleet-wide; B and R measured by "
            f"{fitted.clients_measured} clients.",
            markup=False,
        )
    for note in fitted.notes:
        console.print(note, markup=False)
    if report.clients:
        _print_clients(console, report)
    if save_profile is not None:
        console.print(f"Profile written to {save_profile}: kvsize MODEL --backend {save_profile}", markup=False)
    console.close()


def _print_clients(console: Any, report: ProbeReport) -> None:
    """Each client's own read throughput on the fleet's last set, and how it ended."""
    from rich.table import Table

    table = Table(title="Clients (their own figures; the fleet's are above)", title_justify="left")
    for header in ("client", "worker", "host", "sets", "read/s (last set)", "ended"):
        table.add_column(header, justify="right" if header in ("client", "sets", "read/s (last set)") else "left")
    for client in report.clients or []:
        last = client.results[-1] if client.results else None
        table.add_row(
            str(client.client),
            client.worker,
            client.host or "-",
            str(len(client.results)),
            format_iec(last.read_bytes_per_s) if last else "-",
            "ok, removed what it wrote" if client.removed and not client.error else (client.error or "not removed"),
        )
    console.print(table)


def engine_cells(report: Any) -> tuple[list[str], list[list[str]]]:
    """The side-by-side table of one prompt under each engine: headers and rows."""
    headers = ["engine", "setting", "objects", "bytes each", "stored"]
    knobs = {info.name: info.setting for info in report.engines}
    rows = [
        [
            row.engine,
            f"{knobs[row.engine]} {row.chunk_tokens:,}" + (" (default)" if row.default else ""),
            f"{row.objects:,}",
            f"{row.object_bytes:,}",
            format_iec(row.total_bytes),
        ]
        for row in report.rows
    ]
    return headers, rows


def engines_markdown(report: Any) -> str:
    lines = ["| engine | stack | knob | default | object rule | source |", "|---|---|---|---:|---|---|"]
    for info in report.engines:
        cells = (info.name, info.stack, info.knob, f"{info.default_chunk:,}", info.object_rule, info.source)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if report.model:
        headers, rows = engine_cells(report)
        lines += ["", f"{report.model}, TP {report.tp} x PP {report.pp}, {report.prompt_tokens:,}-token prompt:", ""]
        lines.append("| " + " | ".join(headers) + " |")
        lines.append("|---|---|---:|---:|---:|")
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def print_engines(report: Any) -> None:
    from rich.table import Table

    from kvsize.cli.output import Output

    out = Output()
    for info in report.engines:
        out.print(f"{info.name}: {info.stack}", markup=False)
        out.print(f"  knob {info.knob}, default {info.default_chunk:,} tokens", markup=False)
        out.print(f"  objects: {info.object_rule}", markup=False)
        out.print(f"  writers: {info.writers}; source: {info.source}", markup=False)
    if report.model:
        headers, rows = engine_cells(report)
        title = f"{report.model}, TP {report.tp} x PP {report.pp}, {report.prompt_tokens:,}-token prompt"
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, justify="left" if header in ("engine", "setting") else "right")
        for cells in rows:
            table.add_row(*cells)
        out.print()
        out.print(table)
    out.close()
