"""The workload and deployment limits a load is timed against, and the engine limits a row breaks.

One type, ``Limit`` (``kvsize.engines.base``), carries every broken limit: the time model's risks and the CI
guard's violations are the same facts (name, value, threshold, unit, how far over, a sentence). Which limits
exist is the engine's to say (``Engine.limits``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.engines.base import Layout, Limit, SweepRow, per_writer_bytes
from kvsize.engines.registry import engine_for

__all__ = ["Limit", "TimeOptions", "engine_risks", "per_writer_bytes", "pinned_bytes_needed"]


class TimeOptions(BaseModel):
    """The workload a load is timed for, and the engine limits as the JSON's ``time_options`` shows them.

    The engine fields (``blocking_timeout_s`` ... ``offload_cpu_bytes``) are filled from the engine's settings
    (``Engine.time_option_values``); an engine without such a setting shows the defaults below, as the JSON
    contract always has.
    """

    model_config = ConfigDict(frozen=True)

    concurrent_prompts: int = 1
    """Prompts loading at once from the same storage, over all serving instances."""
    instances: int = 1
    """Serving instances the concurrent prompts are spread over (each has its own GPUs and CPU buffers)."""
    blocking_timeout_s: float = 10.0
    cpu_buffer_bytes: int = 5 * 2**30
    pinned_memory_bytes: int | None = None
    shared_prefix_tokens: int | None = None
    prefill_tokens_per_s: float | None = None
    s3_max_inflight_reqs: int = 64
    host_cpus: int | None = None
    """The serving host's CPUs (``--host-cpus``): an engine whose client's threads follow the CPUs reads it; None =
    the profile's concurrency."""
    offload_cpu_bytes: int | None = None
    """An engine's CPU tier in bytes (vLLM native's ``cpu_bytes_to_use``); None when not given."""


def pinned_bytes_needed(row: SweepRow, layout: Layout) -> int | None:
    """The pinned memory the engine's rule asks for one prompt's load (LMCache's S3 rule), or None."""
    return engine_for(layout.engine).pinned_bytes_needed(row, layout)


def engine_risks(row: SweepRow, layout: Layout, load_seconds: float | None = None) -> list[Limit]:
    """The limits of the layout's engine that ``row`` breaks (with ``load_seconds``, its timeouts too)."""
    return engine_for(layout.engine).limits(row, layout, load_seconds)
