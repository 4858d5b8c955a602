"""Storage: backends and profiles, the time model, engine limits, the prefill estimate, capacity, the probe."""

from kvsize.storage.backends import FIGURE_NAMES, PRESETS, BackendProfile, connector_mismatch
from kvsize.storage.prefill import GPUS, PrefillEstimate, estimate_prefill
from kvsize.storage.profiles import load_profile, resolve_backend
from kvsize.storage.risks import Limit, TimeOptions, engine_risks, per_writer_bytes, pinned_bytes_needed
from kvsize.storage.search import search_chunk
from kvsize.storage.timing import (
    LoadTerms,
    Recommendation,
    RowTiming,
    StoragePlan,
    full_recompute_seconds,
    load_terms,
    plan_storage,
    prompts_per_instance,
    recommend,
    time_row,
)

__all__ = [
    "FIGURE_NAMES",
    "GPUS",
    "PRESETS",
    "BackendProfile",
    "Limit",
    "LoadTerms",
    "PrefillEstimate",
    "Recommendation",
    "RowTiming",
    "StoragePlan",
    "TimeOptions",
    "connector_mismatch",
    "engine_risks",
    "estimate_prefill",
    "full_recompute_seconds",
    "load_profile",
    "load_terms",
    "per_writer_bytes",
    "pinned_bytes_needed",
    "plan_storage",
    "prompts_per_instance",
    "recommend",
    "resolve_backend",
    "search_chunk",
    "time_row",
]
