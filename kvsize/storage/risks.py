"""The engine's limits on a load, and the deployment and workload they are checked against.

One type, ``Limit``, carries every broken limit: the time model's risks and the CI guard's
violations are the same facts (name, value, threshold, unit, how far over, a sentence).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from kvsize.engines.lmcache import (
    DEFAULT_BLOCKING_TIMEOUT_S,
    DEFAULT_CPU_BUFFER_BYTES,
    DEFAULT_S3_MAX_INFLIGHT_REQS,
    Layout,
)
from kvsize.plan import SweepRow
from kvsize.units import format_iec

LMCACHE_BLOCKING_TIMEOUT_S = DEFAULT_BLOCKING_TIMEOUT_S
LMCACHE_CPU_BUFFER_BYTES = DEFAULT_CPU_BUFFER_BYTES
S3_MAX_INFLIGHT_REQS = DEFAULT_S3_MAX_INFLIGHT_REQS
INT32_MAX_BYTES = 2**31  # a length field of int32 cannot describe 2 GiB or more


class Limit(BaseModel):
    """One limit broken: its name, the value, the threshold, by how much, and a sentence."""

    model_config = ConfigDict(frozen=True)

    limit: str
    value: int | float
    """An integer for counts and bytes, seconds as a float (the JSON keeps the kind)."""
    threshold: int | float
    unit: str
    over_by: int | float = 0
    """``value - threshold``, always derived."""
    detail: str

    @model_validator(mode="before")
    @classmethod
    def _derive_over_by(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data and "threshold" in data:
            data = {**data, "over_by": data["value"] - data["threshold"]}
        return data


class TimeOptions(BaseModel):
    """The deployment limits and workload the time model checks against."""

    model_config = ConfigDict(frozen=True)

    concurrent_prompts: int = 1
    """Prompts loading at once from the same storage, over all serving instances."""
    instances: int = 1
    """Serving instances the concurrent prompts are spread over (each has its own GPUs and CPU buffers)."""
    blocking_timeout_s: float = LMCACHE_BLOCKING_TIMEOUT_S
    cpu_buffer_bytes: int = LMCACHE_CPU_BUFFER_BYTES
    pinned_memory_bytes: int | None = None
    shared_prefix_tokens: int | None = None
    prefill_tokens_per_s: float | None = None
    s3_max_inflight_reqs: int = S3_MAX_INFLIGHT_REQS
    host_cpus: int | None = None
    """The serving host's CPUs (``--host-cpus``): LMCache's fs connector keeps ``min(32, CPUs + 4)`` reads in flight per
    writer; None = the profile's concurrency."""
    offload_cpu_bytes: int | None = None
    """vLLM native offloading's CPU tier, ``cpu_bytes_to_use`` (``--kv-offloading-size``); None when not given."""


def per_writer_bytes(row: SweepRow, layout: Layout) -> int:
    """KV bytes one writer of the largest stage loads for the prompt (what its CPU buffer must hold)."""
    largest = layout.largest_stage
    return row.stages[largest.index].total_bytes // largest.writers


def pinned_bytes_needed(row: SweepRow, layout: Layout, options: TimeOptions) -> int | None:
    """LMCache's S3 pinned-memory rule: ``(bytes/token) x chunk_size x s3_max_inflight_reqs +
    max_local_cpu_size x num_tp_workers``; None on other connectors."""
    if not layout.connector.pinned_memory_rule:
        return None
    return row.object_bytes * options.s3_max_inflight_reqs + options.cpu_buffer_bytes * layout.options.tp


def _vllm_cpu(row: SweepRow, layout: Layout, options: TimeOptions) -> list[Limit]:
    """vLLM's CPU tier holds ``cpu_bytes_to_use // object`` chunk slots (``v1/kv_offload/cpu/spec.py``); a load
    stages the prompt's objects there, so one prompt's objects must fit."""
    if layout.engine != "vllm" or options.offload_cpu_bytes is None or not row.objects:
        return []
    slots = options.offload_cpu_bytes // row.object_bytes
    if row.objects <= slots:
        return []
    return [
        Limit(
            limit="cpu_bytes_to_use",
            value=row.objects,
            threshold=slots,
            unit="objects",
            detail=f"{row.objects:,} objects > the {slots:,} slots of cpu_bytes_to_use "
            f"{format_iec(options.offload_cpu_bytes)} ({format_iec(row.object_bytes)} each)",
        )
    ]


def engine_risks(row: SweepRow, layout: Layout, options: TimeOptions) -> list[Limit]:
    """The engine limits that need no storage timing: CPU buffer, S3 pinned memory, int32 header length
    (LMCache's), and vLLM's CPU tier slots."""
    if layout.engine != "lmcache":
        return _vllm_cpu(row, layout, options)
    found = []
    per_writer = per_writer_bytes(row, layout)
    if per_writer > options.cpu_buffer_bytes:
        found.append(
            Limit(
                limit="cpu_buffer",
                value=per_writer,
                threshold=options.cpu_buffer_bytes,
                unit="B",
                detail=f"one writer's {format_iec(per_writer)} > max_local_cpu_size {format_iec(options.cpu_buffer_bytes)}",
            )
        )
    pinned = pinned_bytes_needed(row, layout, options)
    if pinned is not None and options.pinned_memory_bytes is not None and pinned > options.pinned_memory_bytes:
        found.append(
            Limit(
                limit="pinned_memory",
                value=pinned,
                threshold=options.pinned_memory_bytes,
                unit="B",
                detail=f"S3 pinned memory {format_iec(pinned)} > available {format_iec(options.pinned_memory_bytes)}",
            )
        )
    connector = layout.connector
    if connector.int32_header and row.object_bytes >= INT32_MAX_BYTES:
        found.append(
            Limit(
                limit="int32_header",
                value=row.object_bytes,
                threshold=INT32_MAX_BYTES - 1,
                unit="B",
                detail=f"object {format_iec(row.object_bytes)} >= 2 GiB: {connector.name}'s int32 header length overflows",
            )
        )
    return found
