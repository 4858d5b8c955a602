"""Which engine serves the model, and its own options: each engine takes some, any other is refused by name."""

from __future__ import annotations

from typing import Any

from kvsize.errors import KvsizeError, finite, shown, whole

GIB = 2**30


# The options each engine takes (beyond TP, PP, dtype): any other engine's option is refused, naming its engine.
ENGINE_OPTIONS = {
    "lmcache": ("connector", "layerwise", "save_unfull_chunk"),
    "vllm": ("tier", "gpu_block_size"),
    "llmd-fs": ("tier", "gpu_block_size"),
    "sglang": ("sglang_backend",),
    "kvbm": ("kvbm_engine", "kvbm_tier"),
}


def engine_choice(engine: str, **given: Any) -> dict[str, Any]:
    """The ``EngineOptions`` fields of one engine from the options given (None or False = not given); an option of
    another engine is refused, naming the engines that take it."""
    from kvsize.engines.registry import engine_for

    engine_for(engine)
    for name, value in given.items():
        if value is not None and value is not False and name not in ENGINE_OPTIONS[engine]:
            owners = " or ".join(e for e, names in ENGINE_OPTIONS.items() if name in names)
            raise KvsizeError(f"`{name}` applies to `engine` {owners}, not {engine}", field=name)
    if engine == "llmd-fs" and given.get("tier") not in (None, "fs"):
        raise KvsizeError(f"`engine` llmd-fs writes files only: drop `tier` {shown(given.get('tier'))}", field="tier")
    out: dict[str, Any] = {"engine": engine}
    out |= {name: given[name] for name in ENGINE_OPTIONS[engine] if given.get(name) is not None}
    if out.get("gpu_block_size") is not None:
        out["gpu_block_size"] = whole(out["gpu_block_size"], "gpu_block_size", 1, 65_536)
    return out


def offloading_bytes(kv_offloading_size: float | None, engine: str) -> int | None:
    """vLLM's ``cpu_bytes_to_use``: ``--kv-offloading-size`` GiB x 2**30 (``config/vllm.py``), for `engine` vllm."""
    if kv_offloading_size is None:
        return None
    if engine != "vllm":
        raise KvsizeError(
            "`kv_offloading_size` is vLLM native offloading's CPU tier: give it with `engine` vllm", field="kv_offloading_size"
        )
    return int(finite(kv_offloading_size, "`kv_offloading_size`", low=0, low_open=True, high=2**30) * GIB)
