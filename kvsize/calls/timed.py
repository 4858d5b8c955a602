"""What every timed call shares: the backends' profiles, the prefill rate, the time model's options."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.calls.args import Storage, Workload
from kvsize.engines.base import Layout
from kvsize.engines.registry import engine_for

if TYPE_CHECKING:
    from kvsize.model.spec import ModelSpec
    from kvsize.storage import BackendProfile, TimeOptions


def prefill_rate(spec: ModelSpec, gpus: int, workload: Workload) -> tuple[float | None, str | None, list[str]]:
    """Prefill tokens/s (given, or estimated from the config), the sentence saying which, and any warning."""
    from kvsize.storage import estimate_prefill

    if workload.prefill_tps is not None:
        return workload.prefill_tps, f"prefill {workload.prefill_tps:,.0f} tokens/s (given with --prefill-tps)", []
    attention = (spec.kv_layers, spec.num_attention_heads, spec.head_size)
    estimate = estimate_prefill(spec.active_params, attention, gpus, workload.gpu.lower(), workload.mfu, workload.prompt)
    if estimate is None:
        warning = (
            f"no recommendation: {spec.name}'s config does not give a parameter count kvsize can derive, so the "
            "recompute cost is unknown; give --prefill-tps (measured prefill tokens/s)"
        )
        return None, None, [warning]
    return estimate.tokens_per_s, estimate.assumption, []


def backend_profiles(storage: Storage) -> list[BackendProfile]:
    """Each backend's profile (a preset, a file, or an object), with the figures given explicitly on top."""
    from kvsize.storage import BackendProfile, resolve_backend

    names: list[str | BackendProfile | None] = list(storage.backend) if storage.backend else [None]
    overrides = storage.overrides
    return [name if isinstance(name, BackendProfile) else resolve_backend(name, overrides) for name in names]


def time_options(layout: Layout, workload: Workload, rate: float | None) -> TimeOptions:
    """The time model's options: the workload, and the engine's limits as the JSON shows them."""
    from kvsize.storage import TimeOptions

    return TimeOptions(
        concurrent_prompts=workload.concurrent_prompts,
        instances=workload.instances,
        shared_prefix_tokens=workload.shared_prefix,
        prefill_tokens_per_s=rate,
        host_cpus=workload.host_cpus,
        **engine_for(layout.engine).time_option_values(layout),
    )


def mismatches(storage: Storage, layout: Layout) -> list[str]:
    """A warning for each preset timed through a connector or tier that does not reach it."""
    from kvsize.storage import connector_mismatch

    names = [name for name in storage.backend if isinstance(name, str)]
    return [warning for name in names if (warning := connector_mismatch(name, layout))]
