"""kvsize: size LMCache KV-cache offloading for LLM serving.

Resolve a model to a spec, plan the objects LMCache stores for a prompt at each chunk size,
time them on a storage backend, and check a deployment's limits:

>>> import kvsize
>>> spec = kvsize.resolve_model("Qwen/Qwen3-4B-Instruct-2507")
>>> sweep = kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000, (256, 2048))
>>> [(row.chunk_tokens, row.objects) for row in sweep.rows]
[(256, 1560), (2048, 192)]
"""

from kvsize.engines.lmcache import CONNECTORS, Connector, EngineOptions, Layout, Stage, plan_layout, pp_split
from kvsize.errors import KvsizeError
from kvsize.model.catalog import Catalog, CatalogEntry
from kvsize.model.normalize import spec_from_config
from kvsize.model.sources import resolve_model, spec_from_path
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.plan import DEFAULT_CHUNK_SIZES, Sweep, SweepRow, plan_row, plan_sweep
from kvsize.units import format_iec, parse_count, parse_duration, parse_rate, parse_size

__version__ = "0.1.0"

# The time model, the CI guard, capacity planning, LMCache settings and the probe load on first
# use (PEP 562), so that sizing a catalog model imports only what it needs.
_LAZY = {
    "BackendProfile": "kvsize.storage",
    "PRESETS": "kvsize.storage",
    "StoragePlan": "kvsize.storage",
    "TimeOptions": "kvsize.storage",
    "plan_storage": "kvsize.storage",
    "resolve_backend": "kvsize.storage",
    "time_row": "kvsize.storage",
    "Limits": "kvsize.storage.limits",
    "check_row": "kvsize.storage.limits",
    "plan_capacity": "kvsize.storage.capacity",
    "read_settings": "kvsize.engines.lmcache_settings",
    "settings_for": "kvsize.engines.lmcache_settings",
    "run_probe": "kvsize.storage.probe",
    "open_target": "kvsize.storage.probe",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kvsize' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    *sorted(_LAZY),
    "CONNECTORS",
    "DEFAULT_CHUNK_SIZES",
    "Catalog",
    "CatalogEntry",
    "Connector",
    "EngineOptions",
    "KvsizeError",
    "LayerKind",
    "Layout",
    "ModelSpec",
    "Stage",
    "Sweep",
    "SweepRow",
    "__version__",
    "format_iec",
    "parse_count",
    "parse_duration",
    "parse_rate",
    "parse_size",
    "plan_layout",
    "plan_row",
    "plan_sweep",
    "pp_split",
    "resolve_model",
    "spec_from_config",
    "spec_from_path",
]
