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
    from kvsize import engines
    from kvsize.calls.args import Storage, Workload
    from kvsize.calls.compare import EnginesReport, compare_engines
    from kvsize.calls.guard import capacity, check
    from kvsize.calls.measure import clean_probe_leftovers, probe, probe_leftovers
    from kvsize.calls.replaying import Replay, replay
    from kvsize.calls.sizing import size
    from kvsize.engines.base import Connector, EngineOptions, EngineSettings, Layout, Serving, Stage
    from kvsize.engines.emit import emit_config, kvbm_config, lmcache_config, sglang_config, vllm_config
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.engines.lmcache_emit import settings_for
    from kvsize.engines.lmcache_settings import CONNECTORS, read_settings
    from kvsize.engines.serving import pp_split
    from kvsize.gpu import Gpu
    from kvsize.model.catalog import Catalog, CatalogEntry
    from kvsize.model.normalize import spec_from_config
    from kvsize.model.sources import resolve_model, spec_from_path
    from kvsize.model.spec import LayerKind, ModelSpec
    from kvsize.plan import DEFAULT_CHUNK_SIZES, Sweep, SweepRow, plan_layout, plan_row, plan_sweep
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
    from kvsize.traces.result import ReplayResult
    from kvsize.traces.synthetic import SyntheticTrace
    from kvsize.units import format_iec, parse_count, parse_duration, parse_rate, parse_size

__version__ = "0.1.0"

_LAZY = {
    "Storage": "kvsize.calls.args",
    "Workload": "kvsize.calls.args",
    "EmitOptions": "kvsize.engines.emit_options",
    "EnginesReport": "kvsize.calls.compare",
    "compare_engines": "kvsize.calls.compare",
    "capacity": "kvsize.calls.guard",
    "check": "kvsize.calls.guard",
    "clean_probe_leftovers": "kvsize.calls.measure",
    "probe": "kvsize.calls.measure",
    "probe_leftovers": "kvsize.calls.measure",
    "Replay": "kvsize.calls.replaying",
    "replay": "kvsize.calls.replaying",
    "size": "kvsize.calls.sizing",
    "Connector": "kvsize.engines.base",
    "EngineOptions": "kvsize.engines.base",
    "EngineSettings": "kvsize.engines.base",
    "Layout": "kvsize.engines.base",
    "Serving": "kvsize.engines.base",
    "Stage": "kvsize.engines.base",
    "emit_config": "kvsize.engines.emit",
    "kvbm_config": "kvsize.engines.emit",
    "lmcache_config": "kvsize.engines.emit",
    "sglang_config": "kvsize.engines.emit",
    "vllm_config": "kvsize.engines.emit",
    "CONNECTORS": "kvsize.engines.lmcache_settings",
    "read_settings": "kvsize.engines.lmcache_settings",
    "settings_for": "kvsize.engines.lmcache_emit",
    "pp_split": "kvsize.engines.serving",
    "Gpu": "kvsize.gpu",
    "ReplayResult": "kvsize.traces.result",
    "SyntheticTrace": "kvsize.traces.synthetic",
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
    "plan_layout": "kvsize.plan",
    "plan_row": "kvsize.plan",
    "plan_sweep": "kvsize.plan",
    "SizeResult": "kvsize.results",
    "PRESETS": "kvsize.storage",
    "BackendProfile": "kvsize.storage",
    "Limit": "kvsize.storage",
    "StoragePlan": "kvsize.storage",
    "TimeOptions": "kvsize.storage",
    "plan_storage": "kvsize.storage",
    "resolve_backend": "kvsize.storage",
    "time_row": "kvsize.storage",
    "CapacityReport": "kvsize.storage.capacity",
    "plan_capacity": "kvsize.storage.capacity",
    "CheckReport": "kvsize.storage.limits",
    "Limits": "kvsize.storage.limits",
    "check_row": "kvsize.storage.limits",
    "ProbeReport": "kvsize.storage.probe",
    "open_target": "kvsize.storage.probe",
    "run_probe": "kvsize.storage.probe",
    "format_iec": "kvsize.units",
    "parse_count": "kvsize.units",
    "parse_duration": "kvsize.units",
    "parse_rate": "kvsize.units",
    "parse_size": "kvsize.units",
}
_SUBPACKAGES = ("engines",)


def __getattr__(name: str) -> object:
    import importlib

    if name in _SUBPACKAGES:
        return importlib.import_module(f"kvsize.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kvsize' has no attribute {name!r}")
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
    "EmitOptions",
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
    "engines",
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
