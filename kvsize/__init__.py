"""kvsize: size KV-cache offloading for LLM serving.

One call per command, each returning a pydantic result whose ``model_dump(mode="json")`` is the
command's ``--format json`` output:

>>> import kvsize
>>> result = kvsize.size("Qwen/Qwen3-4B-Instruct-2507", tp=4, prompt=100_000, chunk_sizes=[256, 2048])
>>> [(row.chunk_tokens, row.objects) for row in result.rows]
[(256, 1560), (2048, 192)]

``kvsize.check`` (the CI guard), ``kvsize.capacity`` and ``kvsize.probe`` do the same for their
commands; the building blocks (``resolve_model``, ``plan_sweep``, ``plan_storage``, ...) are here too.
Errors are ``KvsizeError`` subclasses, one per kind, naming the parameter at fault.
"""

from __future__ import annotations

from kvsize.errors import (
    BackendError,
    ConfigError,
    HubError,
    KvsizeError,
    ParallelismError,
    ProbeError,
    UnsupportedModelError,
)

# Everything else loads on first use (PEP 562): `import kvsize` stays cheap (no `typing` either; mypy reads this
# name as typing.TYPE_CHECKING), so that the `kvsize` command takes Ctrl-C in hand before the heavy imports run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvsize.api import kvbm_config, lmcache_config, sglang_config, size, vllm_config
    from kvsize.compare import EnginesReport, compare_engines
    from kvsize.emit import settings_for
    from kvsize.engines.connectors import CONNECTORS, Connector
    from kvsize.engines.lmcache import EngineOptions, Layout, Stage, plan_layout
    from kvsize.engines.lmcache_settings import read_settings
    from kvsize.engines.serving import pp_split
    from kvsize.guard import capacity, check
    from kvsize.measure import clean_probe_leftovers, probe, probe_leftovers
    from kvsize.model.catalog import Catalog, CatalogEntry
    from kvsize.model.normalize import spec_from_config
    from kvsize.model.sources import resolve_model, spec_from_path
    from kvsize.model.spec import LayerKind, ModelSpec
    from kvsize.plan import DEFAULT_CHUNK_SIZES, Sweep, SweepRow, plan_row, plan_sweep
    from kvsize.results import SizeResult
    from kvsize.storage import (
        PRESETS,
        BackendProfile,
        Limit,
        StoragePlan,
        TimeOptions,
        plan_storage,
        resolve_backend,
        time_row,
    )
    from kvsize.storage.capacity import CapacityReport, plan_capacity
    from kvsize.storage.limits import CheckReport, Limits, check_row
    from kvsize.storage.probe import ProbeReport, open_target, run_probe
    from kvsize.units import format_iec, parse_count, parse_duration, parse_rate, parse_size

__version__ = "0.1.0"

_LAZY = {
    "kvbm_config": "kvsize.api",
    "lmcache_config": "kvsize.api",
    "sglang_config": "kvsize.api",
    "size": "kvsize.api",
    "vllm_config": "kvsize.api",
    "CONNECTORS": "kvsize.engines.connectors",
    "Connector": "kvsize.engines.connectors",
    "EngineOptions": "kvsize.engines.lmcache",
    "Layout": "kvsize.engines.lmcache",
    "Stage": "kvsize.engines.lmcache",
    "plan_layout": "kvsize.engines.lmcache",
    "pp_split": "kvsize.engines.serving",
    "capacity": "kvsize.guard",
    "check": "kvsize.guard",
    "clean_probe_leftovers": "kvsize.measure",
    "probe": "kvsize.measure",
    "probe_leftovers": "kvsize.measure",
    "Catalog": "kvsize.model.catalog",
    "CatalogEntry": "kvsize.model.catalog",
    "spec_from_config": "kvsize.model.normalize",
    "resolve_model": "kvsize.model.sources",
    "spec_from_path": "kvsize.model.sources",
    "LayerKind": "kvsize.model.spec",
    "ModelSpec": "kvsize.model.spec",
    "DEFAULT_CHUNK_SIZES": "kvsize.plan",
    "Sweep": "kvsize.plan",
    "SweepRow": "kvsize.plan",
    "plan_row": "kvsize.plan",
    "plan_sweep": "kvsize.plan",
    "SizeResult": "kvsize.results",
    "format_iec": "kvsize.units",
    "parse_count": "kvsize.units",
    "parse_duration": "kvsize.units",
    "parse_rate": "kvsize.units",
    "parse_size": "kvsize.units",
    "EnginesReport": "kvsize.compare",
    "compare_engines": "kvsize.compare",
    "BackendProfile": "kvsize.storage",
    "Limit": "kvsize.storage",
    "PRESETS": "kvsize.storage",
    "StoragePlan": "kvsize.storage",
    "TimeOptions": "kvsize.storage",
    "plan_storage": "kvsize.storage",
    "resolve_backend": "kvsize.storage",
    "time_row": "kvsize.storage",
    "CheckReport": "kvsize.storage.limits",
    "Limits": "kvsize.storage.limits",
    "check_row": "kvsize.storage.limits",
    "CapacityReport": "kvsize.storage.capacity",
    "plan_capacity": "kvsize.storage.capacity",
    "read_settings": "kvsize.engines.lmcache_settings",
    "settings_for": "kvsize.emit",
    "ProbeReport": "kvsize.storage.probe",
    "run_probe": "kvsize.storage.probe",
    "open_target": "kvsize.storage.probe",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kvsize' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CONNECTORS",
    "DEFAULT_CHUNK_SIZES",
    "PRESETS",
    "BackendError",
    "BackendProfile",
    "CapacityReport",
    "Catalog",
    "CatalogEntry",
    "CheckReport",
    "ConfigError",
    "Connector",
    "EngineOptions",
    "EnginesReport",
    "HubError",
    "KvsizeError",
    "LayerKind",
    "Layout",
    "Limit",
    "Limits",
    "ModelSpec",
    "ParallelismError",
    "ProbeError",
    "ProbeReport",
    "SizeResult",
    "Stage",
    "StoragePlan",
    "Sweep",
    "SweepRow",
    "TimeOptions",
    "UnsupportedModelError",
    "__version__",
    "capacity",
    "check",
    "check_row",
    "clean_probe_leftovers",
    "compare_engines",
    "format_iec",
    "kvbm_config",
    "lmcache_config",
    "open_target",
    "parse_count",
    "parse_duration",
    "parse_rate",
    "parse_size",
    "plan_capacity",
    "plan_layout",
    "plan_row",
    "plan_storage",
    "plan_sweep",
    "pp_split",
    "probe",
    "probe_leftovers",
    "read_settings",
    "resolve_backend",
    "resolve_model",
    "run_probe",
    "settings_for",
    "sglang_config",
    "size",
    "spec_from_config",
    "spec_from_path",
    "time_row",
    "vllm_config",
]
