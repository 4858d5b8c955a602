"""The CI guard: does one serving configuration stay inside its limits?

Limits are the user's (objects, object size, bytes, load time) and the engine's
(LMCache's blocking timeout, CPU buffer, S3 pinned memory, a backend's largest
value, an int32 header length). Engine limits that need storage timing are checked
when a backend is given.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.engines.lmcache import Layout
from kvsize.plan import SweepRow
from kvsize.storage.timing import RowTiming, TimeOptions, engine_risks


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_objects: int | None = None
    max_object_bytes: int | None = None
    max_total_bytes: int | None = None
    max_load_seconds: float | None = None


class Violation(BaseModel):
    """One limit broken: its name, the value, the threshold, by how much (value - threshold)."""

    model_config = ConfigDict(frozen=True)

    limit: str
    value: int | float
    """An integer for counts and bytes, seconds as a float (the JSON keeps the kind)."""
    threshold: int | float
    unit: str
    over_by: int | float
    detail: str


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    violations: tuple[Violation, ...]
    row: SweepRow
    timing: RowTiming | None


def check_row(
    row: SweepRow,
    layout: Layout,
    limits: Limits,
    options: TimeOptions,
    timing: RowTiming | None = None,
    *,
    full_recompute_s: float | None = None,
    remote_url_problem: str | None = None,
) -> CheckResult:
    """Every limit against one chunk size's row (and its timing, when a backend was given).

    With a timing and a prefill rate, loading must beat recomputing the prompts of one instance
    (``slower_than_recompute``); a ``remote_url`` LMCache 0.5.6 cannot parse stores nothing (``remote_url``).
    """
    found: list[Violation] = []

    def over(limit: str, value: float, threshold: float | None, unit: str, detail: str) -> None:
        if threshold is not None and value > threshold:
            found.append(
                Violation(limit=limit, value=value, threshold=threshold, unit=unit, over_by=value - threshold, detail=detail)
            )

    connector = layout.connector
    stored_object = row.object_bytes + (connector.header_bytes if connector.requests_per_object == 1 else 0)
    over(
        "max_objects",
        row.objects,
        limits.max_objects,
        "objects",
        f"{row.objects:,} objects per prompt > --max-objects {limits.max_objects}",
    )
    over(
        "max_object_size",
        stored_object,
        limits.max_object_bytes,
        "B",
        f"one object of {stored_object:,} B > --max-object-size {limits.max_object_bytes}",
    )
    over(
        "max_total_bytes",
        row.stored_bytes,
        limits.max_total_bytes,
        "B",
        f"{row.stored_bytes:,} B per prompt > --max-total-bytes {limits.max_total_bytes}",
    )
    if timing is not None:
        over(
            "max_load_seconds",
            timing.load_seconds,
            limits.max_load_seconds,
            "s",
            f"load {timing.load_seconds:.3f} s > --max-load-seconds {limits.max_load_seconds}",
        )
        risks = list(timing.risk_list)
    else:
        risks = engine_risks(row, layout, options)
    cost = timing.cost_seconds if timing is not None else None
    if cost is not None and full_recompute_s is not None and cost >= full_recompute_s:
        found.append(
            Violation(
                limit="slower_than_recompute",
                value=cost,
                threshold=full_recompute_s,
                unit="s",
                over_by=cost - full_recompute_s,
                detail=(
                    f"load + tail recompute {cost:.3f} s >= recomputing the prompts of one instance "
                    f"{full_recompute_s:.3f} s: offloading does not pay"
                ),
            )
        )
    if remote_url_problem is not None:
        found.append(Violation(limit="remote_url", value=0, threshold=0, unit="objects", over_by=0, detail=remote_url_problem))
    for risk in risks:
        found.append(
            Violation(
                limit=risk.name,
                value=risk.value,
                threshold=risk.threshold,
                unit=risk.unit,
                over_by=risk.value - risk.threshold,
                detail=risk.detail,
            )
        )
    return CheckResult(ok=not found, violations=tuple(found), row=row, timing=timing)
