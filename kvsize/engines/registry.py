"""Every engine kvsize sizes, by name (``--engine``): each one module behind ``kvsize.engines.base.Engine``."""

from __future__ import annotations

from kvsize.engines.base import ENGINE_NAMES, Engine
from kvsize.engines.kvbm import KVBM
from kvsize.engines.lmcache import LMCACHE
from kvsize.engines.sglang import SGLANG
from kvsize.engines.vllm_native import LLMD_FS, VLLM_NATIVE
from kvsize.errors import KvsizeError, shown

ENGINES: dict[str, Engine] = {engine.info.name: engine for engine in (LMCACHE, VLLM_NATIVE, LLMD_FS, SGLANG, KVBM)}
assert tuple(ENGINES) == ENGINE_NAMES


def engine_for(name: str) -> Engine:
    """The engine called ``name``, or one line naming the choices."""
    if name not in ENGINES:
        raise KvsizeError(f"unknown `engine` {shown(name)}: use one of {', '.join(ENGINES)}", field="engine")
    return ENGINES[name]
