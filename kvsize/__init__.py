"""kvsize: size KV-cache offloading for LLM serving.

One call per command, each returning a pydantic result whose ``model_dump(mode="json")`` is the
command's ``--format json`` output:

>>> import kvsize
>>> result = kvsize.size("Qwen/Qwen3-4B-Instruct-2507", serving=kvsize.Serving(tp=4), chunk_sizes=[256, 2048])
>>> [(row.chunk_tokens, row.objects) for row in result.rows]
[(256, 1560), (2048, 192)]

Arguments come in typed groups: ``kvsize.Serving`` (TP, PP, dtype), the engine and its settings
(``engine="vllm"`` or ``engine=kvsize.engines.Vllm(tier="obj")``), ``kvsize.Workload`` (the prompt, prompts at
once) and ``kvsize.Storage`` (backends and figures). ``kvsize.check`` (the CI guard), ``kvsize.capacity`` and
``kvsize.probe`` do the same for their commands, and ``kvsize.replay`` replays a request trace over the tiers
(``kvsize.Gpu``, ``kvsize.Replay``, ``kvsize.SyntheticTrace``); the building blocks (``resolve_model``, ``plan_sweep``,
``plan_storage``, ...) are here too. Errors are ``KvsizeError`` subclasses, one per kind, naming the parameter at
fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.calls.args import Storage, Workload
from kvsize.calls.guard import capacity, check
from kvsize.calls.measure import clean_probe_leftovers, probe, probe_leftovers
from kvsize.calls.sizing import size
from kvsize.engines.base import Connector, EngineOptions, EngineSettings, Layout, Serving, Stage
from kvsize.engines.emit import emit_config, kvbm_config, lmcache_config, sglang_config, vllm_config
from kvsize.engines.serving import pp_split
from kvsize.errors import (
    BackendError,
    ConfigError,
    HubError,
    KvsizeError,
    ParallelismError,
    ProbeError,
    UnsupportedModelError,
)
from kvsize.model.catalog import Catalog, CatalogEntry
from kvsize.model.normalize import spec_from_config
from kvsize.model.sources import resolve_model, spec_from_path
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.plan import DEFAULT_CHUNK_SIZES, Sweep, SweepRow, plan_layout, plan_row, plan_sweep
from kvsize.results import SizeResult
from kvsize.units import format_iec, parse_count, parse_duration, parse_rate, parse_size

if TYPE_CHECKING:  # loaded on first use (PEP 562), so that sizing a catalog model imports only what it needs
    from kvsize.calls.compare import EnginesReport, compare_engines
    from kvsize.calls.replaying import Replay, replay
    from kvsize.engines.lmcache import CONNECTORS
    from kvsize.engines.lmcache_settings import read_settings, settings_for
    from kvsize.gpu import Gpu
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
    from kvsize.traces.result import ReplayResult
    from kvsize.traces.synthetic import SyntheticTrace

__version__ = "0.1.0"

_LAZY = {
    "CONNECTORS": "kvsize.engines.lmcache",
    "EnginesReport": "kvsize.calls.compare",
    "compare_engines": "kvsize.calls.compare",
    "Gpu": "kvsize.gpu",
    "Replay": "kvsize.calls.replaying",
    "ReplayResult": "kvsize.traces.result",
    "SyntheticTrace": "kvsize.traces.synthetic",
    "replay": "kvsize.calls.replaying",
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
    "settings_for": "kvsize.engines.lmcache_settings",
    "ProbeReport": "kvsize.storage.probe",
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
    "EngineSettings",
    "EnginesReport",
    "Gpu",
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
    "Replay",
    "ReplayResult",
    "Serving",
    "SizeResult",
    "Stage",
    "Storage",
    "StoragePlan",
    "Sweep",
    "SweepRow",
    "SyntheticTrace",
    "TimeOptions",
    "UnsupportedModelError",
    "Workload",
    "__version__",
    "capacity",
    "check",
    "check_row",
    "clean_probe_leftovers",
    "compare_engines",
    "emit_config",
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
    "replay",
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
