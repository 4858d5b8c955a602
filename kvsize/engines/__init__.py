"""The offloading engines kvsize sizes, one module each behind ``kvsize.engines.base.Engine``.

Each engine's settings are here by name, loaded with their engine on first use:
``kvsize.size(model, engine=kvsize.engines.Vllm(tier="obj"))``.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """An engine's settings class (or anything else its module offers), looked up through the registry."""
    import importlib

    from kvsize.engines.registry import modules

    if not name[:1].isupper():
        raise AttributeError(f"module 'kvsize.engines' has no attribute {name!r}")
    for module in modules():
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            return found
    raise AttributeError(f"module 'kvsize.engines' has no attribute {name!r}")
