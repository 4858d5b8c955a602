"""Class defaults without transformers: a table of what each config class fills for omitted KV fields.

``defaults.json`` (built by ``tools/build_defaults.py`` from the installed transformers, and held to the live
classes by tests/test_defaults.py) gives, per model type, the constant defaults, the ``layer_types``
derivation the class applies (ported here), the text sub-config's type, and the fields whose derivation is
not ported. A config of a type in the table whose omitted fields are all covered is filled from it; any other
goes through transformers (``kvsize.model.config.transformers_defaults``), so the numbers are the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from kvsize.model.reader import ALIAS_GROUPS, FILL_FIELDS, TEXT_CONFIG_KEYS

TABLE_PATH = Path(__file__).with_name("defaults.json")
SLIDING, FULL = "sliding_attention", "full_attention"


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    return data


def _effective(raw: Mapping[str, Any], defaults: Mapping[str, Any], field: str) -> Any:
    value = raw.get(field)
    return defaults.get(field) if value is None else value


def derive_layer_types(rule: Mapping[str, Any], raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str] | None:
    """``layer_types`` as the config class derives it when the file omits it (None when it cannot be derived).

    Rules, each the form of a transformers config class's ``__init__``:
    ``uniform`` (every layer one kind); ``qwen`` (sliding from ``max_window_layers`` on when
    ``use_sliding_window`` and a ``sliding_window``: Qwen2/3); ``pattern`` (every ``P``-th layer full, the rest
    sliding, or linear attention, ``P`` a constant or the config's ``sliding_window_pattern`` /
    ``full_attention_interval`` with the class's default: Gemma 2/3, Qwen3-Next and kin).
    """
    layers = _effective(raw, defaults, "num_hidden_layers")
    if isinstance(layers, bool) or not isinstance(layers, int) or not 0 < layers <= 100_000:
        return None
    kind = rule.get("rule")
    if kind == "uniform":
        return [str(rule["kind"])] * layers
    if kind == "qwen":
        window = _effective(raw, defaults, "sliding_window")
        first = _effective(raw, defaults, "max_window_layers")
        use = bool(_effective(raw, defaults, "use_sliding_window")) and window is not None and isinstance(first, int)
        return [SLIDING if use and i >= first else FULL for i in range(layers)]
    if kind == "pattern":
        period = rule.get("period") or raw.get(str(rule.get("field"))) or rule.get("default")
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            return None
        other = str(rule.get("other", SLIDING))
        return [other if (i + 1) % period else FULL for i in range(layers)]
    return None


def table_defaults(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The class defaults for ``raw``'s omitted KV fields, from the table; None when transformers must fill them."""
    model_type = raw.get("model_type")
    types = table()["types"]
    entry = types.get(model_type) if isinstance(model_type, str) else None
    if entry is None:
        return None
    text_key = next((key for key in TEXT_CONFIG_KEYS if isinstance(raw.get(key), Mapping)), None)
    if text_key is None:
        return _filled(raw, entry)
    sub = raw[text_key]
    text_type = sub.get("model_type") if isinstance(sub.get("model_type"), str) else entry.get("text_config", model_type)
    text_entry = types.get(text_type)
    if text_entry is None:
        return None
    filled = _filled(sub, text_entry)
    if filled is None:
        return None
    return {text_key: filled} if filled else {}


def _filled(raw: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any] | None:
    if any(raw.get(field) is None for field in entry.get("needs_transformers", ())):
        return None
    # A class keeps an explicit null (``"sliding_window": null``) unless it replaces nulls too ("fills_null").
    nulls = set(entry.get("fills_null", ()))
    filled = {key: value for key, value in entry.get("defaults", {}).items() if key not in raw or key in nulls}
    rule = entry.get("derived", {}).get("layer_types")
    if rule is not None and raw.get("layer_types") is None:
        layer_types = derive_layer_types(rule, raw, filled)
        if layer_types is None:
            return None
        filled["layer_types"] = layer_types
    return missing(raw, filled)


def missing(raw: Mapping[str, Any], filled: Mapping[str, Any]) -> dict[str, Any]:
    """The KV fields of ``filled`` that ``raw`` omits (a default never outranks a published alias)."""
    out: dict[str, Any] = {}
    grouped = {field: group for group in ALIAS_GROUPS for field in group}
    for key in FILL_FIELDS:
        if raw.get(key) is not None or filled.get(key) is None:
            continue
        group = grouped.get(key)
        if group and any(raw.get(alias) is not None or alias in out for alias in group):
            continue
        out[key] = filled[key]
    return out
