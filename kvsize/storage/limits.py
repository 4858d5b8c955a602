"""The CI guard: does one serving configuration stay inside its limits?

Limits are the user's (objects, object size, bytes, load time), the engine's (``Engine.limits``: a load
timeout, buffers, header lengths) and the backend's (its largest value), plus two verdicts: loading must
beat recomputing, and the deployment's own config must be one the engine can use (it would store nothing).
Engine limits that need storage timing are checked when a backend is given. Every broken limit is a ``Limit``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kvsize.engines.base import Layout, Limit, SweepRow
from kvsize.errors import finite, whole
from kvsize.plan import Sweep
from kvsize.results import RowView
from kvsize.storage.risks import engine_risks
from kvsize.storage.timing import RowTiming


class Limits(BaseModel):
    """The user's own limits (None: not checked)."""

    model_config = ConfigDict(frozen=True)

    max_objects: int | None = None
    max_object_bytes: int | None = None
    max_total_bytes: int | None = None
    max_load_seconds: float | None = None

    def __init__(self, **data: Any) -> None:
        # Named as the argument (and flag) that sets each: a limit is a whole count or size of at least 1, or
        # seconds more than 0, never a bool (a limit of 0 or less would fail every configuration).
        for field, name, high in (
            ("max_objects", "max_objects", 10**15),
            ("max_object_bytes", "max_object_size", 2**60),
            ("max_total_bytes", "max_total_bytes", 2**70),
        ):
            if data.get(field) is not None:
                whole(data[field], name, 1, high)
        if data.get("max_load_seconds") is not None:
            finite(data["max_load_seconds"], "`max_load_seconds`", low=0, low_open=True, high=10**7)
        super().__init__(**data)


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    violations: tuple[Limit, ...]
    row: SweepRow
    timing: RowTiming | None


def _user_limits(row: SweepRow, layout: Layout, limits: Limits, timing: RowTiming | None) -> list[Limit]:
    stored_object = row.object_bytes + layout.connector.inline_header_bytes
    candidates: list[tuple[str, int | float, int | float | None, str, str]] = [
        ("max_objects", row.objects, limits.max_objects, "objects", f"{row.objects:,} objects per prompt > --max-objects"),
        (
            "max_object_size",
            stored_object,
            limits.max_object_bytes,
            "B",
            f"one object of {stored_object:,} B > --max-object-size",
        ),
        (
            "max_total_bytes",
            row.stored_bytes,
            limits.max_total_bytes,
            "B",
            f"{row.stored_bytes:,} B per prompt > --max-total-bytes",
        ),
    ]
    if timing is not None:
        load = timing.load_seconds
        candidates.append(("max_load_seconds", load, limits.max_load_seconds, "s", f"load {load:.3f} s > --max-load-seconds"))
    return [
        Limit(limit=name, value=value, threshold=threshold, unit=unit, detail=f"{detail} {threshold}")
        for name, value, threshold, unit, detail in candidates
        if threshold is not None and value > threshold
    ]


def check_row(
    row: SweepRow,
    layout: Layout,
    limits: Limits,
    timing: RowTiming | None = None,
    *,
    full_recompute_s: float | None = None,
    remote_url_problem: str | None = None,
) -> CheckResult:
    """Every limit against one chunk size's row (and its timing, when a backend was given).

    With a timing and a prefill rate, loading must beat recomputing the prompts of one instance
    (``slower_than_recompute``); a ``remote_url`` LMCache 0.5.6 cannot parse stores nothing (``remote_url``).
    """
    found = _user_limits(row, layout, limits, timing)
    cost = timing.cost_seconds if timing is not None else None
    if cost is not None and full_recompute_s is not None and cost >= full_recompute_s:
        found.append(
            Limit(
                limit="slower_than_recompute",
                value=cost,
                threshold=full_recompute_s,
                unit="s",
                detail=(
                    f"load + tail recompute {cost:.3f} s >= recomputing the prompts of one instance "
                    f"{full_recompute_s:.3f} s: offloading does not pay"
                ),
            )
        )
    if remote_url_problem is not None:
        found.append(Limit(limit="remote_url", value=0, threshold=0, unit="objects", detail=remote_url_problem))
    found.extend(timing.breaches if timing is not None else engine_risks(row, layout))
    return CheckResult(ok=not found, violations=tuple(found), row=row, timing=timing)


class EngineSettingsView(BaseModel):
    """The LMCache settings a check ran against (file, environment and flags merged)."""

    model_config = ConfigDict(frozen=True)

    blocking_timeout_secs: float
    max_local_cpu_size_bytes: int
    pinned_memory_bytes: int | None
    save_unfull_chunk: bool
    use_layerwise: bool


class CheckReport(BaseModel):
    """``kvsize.check()`` / ``kvsize check --format json``: ``ok`` and the broken limits."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    ok: bool
    violations: list[Limit]
    model: str
    tp: int
    pp: int
    prompt_tokens: int
    chunk_tokens: int
    connector: str
    kv_dtype: str
    limits: dict[str, Any]
    engine: EngineSettingsView
    lmcache_sources: dict[str, str]
    row: RowView
    load_seconds: float | None
    backend: str | None
    full_recompute_seconds: float | None
    instances: int
    warnings: list[str]
    offload_engine: str
    """The offloading stack checked (``kvsize engines``); ``engine`` keeps the default engine's settings view (its
    timeout and buffers) whatever engine is checked."""
    engine_options: dict[str, Any] = {}
    sweep: Sweep = Field(exclude=True, repr=False)
