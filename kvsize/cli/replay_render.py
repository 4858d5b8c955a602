"""Rendering a replay: tables for a terminal, Markdown for a capacity document. Every number comes from the
``ReplayResult``; here it is only formatted."""

from __future__ import annotations

from typing import Any

from kvsize.cli.render import gpu_lines
from kvsize.traces.result import Rate, ReplayResult, ReplayRow
from kvsize.units import format_count, format_iec

HITS = ("chunk", "hit rate", "GPU hits", "CPU hits", "storage hits", "objects stored", "stored", "objects loaded", "loaded")
RATES = (
    "chunk",
    "stores/s mean, p99",
    "loads/s mean, p99",
    "peak reads/s",
    "peak writes/s",
    "storage needed",
    "for 90%",
    "for 99%",
)
TIMES = ("chunk", "load median", "load p99", "past timeout", "loads", "recompute", "total", "risks")


def _tokens(value: int, total: int) -> str:
    return f"{format_count(value)} ({value / total:.1%})" if total else format_count(value)


def _rate(rate: Rate, bytes_: bool = False) -> str:
    show = format_iec if bytes_ else (lambda v: f"{v:,.1f}")
    return f"{show(rate.mean)}, {show(rate.p99)}"


def _peak(rate: Rate, limit: float | None) -> str:
    over = " over" if limit is not None and rate.peak > limit else ""
    cap = f" / {limit:,.0f}" if limit is not None else ""
    return f"{rate.peak:,.0f}{cap}{over}"


def _bytes(value: int | None) -> str:
    return "-" if value is None else format_iec(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.2f} s"


def title(result: ReplayResult) -> str:
    trace = result.trace
    return (
        f"{result.model}: {format_count(trace.requests)} requests over {trace.duration_seconds:,.0f} s ({trace.source}), "
        f"TP {result.tp} x PP {result.pp}, engine {result.offload_engine}, connector {result.connector}"
    )


def tiers_line(result: ReplayResult) -> str:
    cpu = f"CPU tier {format_iec(result.cpu_tier_bytes)}" if result.cpu_tier_bytes else "no CPU tier"
    storage = (
        f"storage {format_iec(result.storage_capacity_bytes)} (LRU)" if result.storage_capacity_bytes else "storage unlimited"
    )
    gpu = "GPU prefix cache" if result.gpu else "no GPU tier"
    return f"Tiers: {gpu}, {cpu}, {storage}; {format_count(result.trace.input_tokens)} prompt tokens in all."


def hit_cells(row: ReplayRow) -> list[str]:
    total = row.input_tokens
    return [
        format_count(row.chunk_tokens),
        f"{row.hit_rate:.1%}",
        _tokens(row.gpu_hit_tokens, total),
        _tokens(row.cpu_hit_tokens, total),
        _tokens(row.storage_hit_tokens, total),
        format_count(row.objects_stored),
        format_iec(row.bytes_stored),
        format_count(row.objects_loaded),
        format_iec(row.bytes_loaded),
    ]


def rate_cells(row: ReplayRow) -> list[str]:
    return [
        format_count(row.chunk_tokens),
        _rate(row.stored_objects_per_s),
        _rate(row.loaded_objects_per_s),
        _peak(row.read_requests_per_s, row.read_request_limit),
        _peak(row.write_requests_per_s, row.write_request_limit),
        format_iec(row.storage_needed_bytes),
        _bytes(row.capacity_90_bytes),
        _bytes(row.capacity_99_bytes),
    ]


def time_cells(row: ReplayRow, picked: int | None) -> list[str]:
    share = "-" if row.past_timeout_share is None else f"{row.past_timeout_share:.2%}"
    return [
        f"{format_count(row.chunk_tokens)}{' *' if row.chunk_tokens == picked else ''}",
        _seconds(row.load_seconds_median),
        _seconds(row.load_seconds_p99),
        share,
        _seconds(row.load_seconds_total),
        _seconds(row.recompute_seconds),
        _seconds(row.cost_seconds),
        ", ".join(row.risks) or "-",
    ]


def footnotes(result: ReplayResult) -> list[str]:
    lines = [
        "hits: tokens not prefilled, by the tier that held them; objects and bytes: storage's, every writer's; stored: new "
        "chunks only. Per second: 1 s windows of the trace's clock (p99 counts empty windows). Storage for 90% / 99%: "
        "the least LRU storage that keeps that share of unlimited storage's hits."
    ]
    if result.recommendation:
        risk = ", at risk" if result.recommended_at_risk else ""
        lines.append(f"* recommended{risk}: {result.recommendation} (loads plus recompute over the trace).")
    if result.prefill:
        lines.append(result.prefill + ".")
    for row in result.rows:
        lines += [f"risk at chunk {row.chunk_tokens:,}: {detail}." for detail in row.risk_details]
    return [*lines, *result.notes]


def _tables(result: ReplayResult) -> list[tuple[str, tuple[str, ...], list[list[str]]]]:
    tables = [
        ("Hits and storage traffic", HITS, [hit_cells(row) for row in result.rows]),
        ("Per second and capacity", RATES, [rate_cells(row) for row in result.rows]),
    ]
    if result.backend is not None:
        name = result.backend.get("name", "the backend")
        cells = [time_cells(row, result.recommended_chunk_tokens) for row in result.rows]
        tables.append((f"Loads on {name} (each request's load, the time model of kvsize MODEL --backend)", TIMES, cells))
    return tables


def print_replay(result: ReplayResult) -> None:
    from rich.table import Table

    from kvsize.cli.output import Output

    console = Output()
    console.print("\n".join([title(result), *(gpu_lines(result.gpu) if result.gpu else []), tiers_line(result)]), markup=False)
    for name, headers, rows in _tables(result):
        table = Table(title=name, title_justify="left")
        for header in headers:
            table.add_column(header, justify="left" if header == "risks" else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print(table)
    for line in footnotes(result):
        console.print(line, markup=False)
    console.close()


def replay_markdown(result: ReplayResult) -> str:
    """A section for a capacity-planning document: the tables, the notes, the assumptions and their sources."""
    lines: list[Any] = [f"## Trace replay: {result.model}", "", title(result) + ".", ""]
    lines += [f"{line}." for line in (gpu_lines(result.gpu) if result.gpu else [])]
    lines += [tiers_line(result), ""]
    for name, headers, rows in _tables(result):
        lines += [f"### {name}", "", "| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        lines.append("")
    lines += [f"- {line}" for line in footnotes(result)]
    lines += ["", "### Assumptions and sources", ""]
    lines += [f"- {line}" for line in result.assumptions]
    return "\n".join(lines) + "\n"
