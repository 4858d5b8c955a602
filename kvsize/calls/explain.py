"""Every number, explained: the derivation behind a sweep and its timing, rendered from the objects that computed
them, never recomputed. The engine explains its layout and rows (``Engine.explain``); the time model's terms are
rendered here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.engines.registry import engine_for
from kvsize.plan import Sweep

if TYPE_CHECKING:  # the time model loads only when a backend is given
    from kvsize.storage import StoragePlan


def explain_lines(sweep: Sweep, plans: list[StoragePlan] | None = None) -> list[str]:
    """The derivation of every number, from the objects that computed the table."""
    spec = sweep.spec
    lines = [f"Model {spec.name} ({spec.source})"]
    for name, field in spec.fields.items():
        lines.append(f"  {name}: {field.value}  <- {field.field}")
    lines.extend(engine_for(sweep.layout.engine).explain(sweep))
    for plan in plans or []:
        lines.extend(_explain_timing(sweep, plan))
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
