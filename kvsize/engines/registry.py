"""Every engine kvsize sizes, by name (``--engine``): one line each, the module and class that answer for it.

An engine module is imported the first time its engine is asked for, so a run loads only the engine it sizes
(``kvsize engines`` loads them all).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from kvsize.errors import KvsizeError, shown

if TYPE_CHECKING:
    from kvsize.engines.base import Engine, EngineSettings

_ENGINES: dict[str, str] = {
    "lmcache": "kvsize.engines.lmcache:LMCacheEngine",
    "vllm": "kvsize.engines.vllm_native:VllmNativeEngine",
    "llmd-fs": "kvsize.engines.vllm_native:LlmdFsEngine",
    "sglang": "kvsize.engines.sglang:SglangEngine",
    "kvbm": "kvsize.engines.kvbm:KvbmEngine",
    "aibrix": "kvsize.engines.aibrix:AibrixEngine",
}
DEFAULT_ENGINE = next(iter(_ENGINES))
ENGINE_NAMES: tuple[str, ...] = tuple(_ENGINES)
_LOADED: dict[str, Engine] = {}


def engine_for(name: str) -> Engine:
    """The engine called ``name`` (its module loaded now), or one line naming the choices."""
    if not isinstance(name, str) or name not in _ENGINES:
        raise KvsizeError(f"unknown `engine` {shown(name)}: use one of {', '.join(_ENGINES)}", field="engine")
    if name not in _LOADED:
        module, cls = _ENGINES[name].split(":")
        engine: Engine = getattr(importlib.import_module(module), cls)()
        assert engine.name == name and engine.info.name == name, f"{_ENGINES[name]} is registered as {name}"
        _LOADED[name] = engine
    return _LOADED[name]


def modules() -> list[str]:
    """The engine modules, in registry order (each once)."""
    return list(dict.fromkeys(path.split(":")[0] for path in _ENGINES.values()))


class _Engines(Mapping[str, "Engine"]):
    """The engines by name, each loaded when it is first looked up."""

    def __getitem__(self, name: str) -> Engine:
        if name not in _ENGINES:
            raise KeyError(name)
        return engine_for(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_ENGINES)

    def __len__(self) -> int:
        return len(_ENGINES)


ENGINES: Mapping[str, Engine] = _Engines()


def settings_for(engine: str | EngineSettings | None, **given: Any) -> EngineSettings:
    """An engine's settings: ``engine`` itself when it is a settings object (with no more options given), else the
    named engine's (default: the first registered) from the options ``given`` (None = not given; False is not
    given either for an option of another engine). An option that belongs
    to another engine is refused, naming the engines that take it."""
    if engine is not None and not isinstance(engine, str):
        if not hasattr(type(engine), "engine_name"):
            raise KvsizeError(f"`engine` must be an engine name or its settings, got {shown(engine)}", field="engine")
        extra = [name for name, value in given.items() if value is not None and value is not False]
        if extra:
            raise KvsizeError(
                f"give `{extra[0]}` inside the engine settings ({type(engine).__name__}), not beside them", field=extra[0]
            )
        return engine
    name = DEFAULT_ENGINE if engine is None else engine
    settings_type = engine_for(name).Settings
    options = {}
    aliases: dict[str, str] = {}
    for key, value in given.items():
        if key in settings_type.ALIASES:
            aliases[settings_type.ALIASES[key]] = key
        key = settings_type.ALIASES.get(key, key)
        if key in settings_type.model_fields:
            if value is not None:
                options[key] = value
        elif value is not None and value is not False:
            owners = [other for other in _ENGINES if _takes(engine_for(other).Settings, key)]
            if owners:
                raise KvsizeError(f"`{key}` applies to `engine` {' or '.join(owners)}, not {name}", field=key)
            raise KvsizeError(f"unknown engine option `{key}`", field=key)
    try:
        return settings_type(**options)
    except KvsizeError as error:
        if error.field not in aliases:
            raise
        alias = aliases[error.field]
        raise type(error)(str(error).replace(f"`{error.field}`", f"`{alias}`"), field=alias) from None


def _takes(settings_type: type[EngineSettings], key: str) -> bool:
    return key in settings_type.model_fields or key in settings_type.ALIASES
