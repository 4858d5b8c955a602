"""Rebuild kvsize/model/defaults.json: what each transformers config class fills for the KV fields a config omits.

    python tools/build_defaults.py

For every model type the installed transformers knows, the class is instantiated with its defaults and then
with one input changed at a time (layers, hidden size, heads, KV heads, sliding-window fields). A field whose
default never moves is a constant and goes into the table. A field the class derives from other inputs is
classified: one kvsize derives the same way itself (head size = hidden / heads; KV heads = heads) is left out;
``layer_types`` is matched against the derivations kvsize ports (``kvsize.model.defaults``) and recorded by
name; anything else is listed under ``needs_transformers``, so a config that omits it still goes through
transformers. tests/test_defaults.py holds the table to the live classes.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from kvsize.model.defaults import TABLE_PATH, derive_layer_types
from kvsize.model.reader import ALIAS_GROUPS, FILL_FIELDS

EXTRA_INPUTS = ("sliding_window_pattern", "no_rope_layer_interval")
CANDIDATES: list[dict[str, Any]] = [
    {"rule": "uniform", "kind": "full_attention"},
    {"rule": "uniform", "kind": "sliding_attention"},
    {"rule": "qwen"},
    *({"rule": "pattern", "period": period} for period in range(2, 9)),
    *({"rule": "pattern", "field": "sliding_window_pattern", "default": period} for period in range(2, 9)),
    *(
        {"rule": "pattern", "field": "full_attention_interval", "default": period, "other": "linear_attention"}
        for period in range(2, 9)
    ),
]


def _build(cls: Any, model_type: str, change: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(cls.from_dict({"model_type": model_type, **change}).to_dict())
    except Exception:
        return None


def _perturbations(base: dict[str, Any]) -> list[dict[str, Any]]:
    def number(field: str, fallback: int) -> int:
        value = base.get(field)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else fallback

    layers, hidden, heads = number("num_hidden_layers", 6), number("hidden_size", 512), number("num_attention_heads", 8)
    changes: list[dict[str, Any]] = [
        {"num_hidden_layers": layers + 5},
        {"num_hidden_layers": 7},
        {"hidden_size": hidden * 2},
        {"num_attention_heads": heads * 2, "hidden_size": hidden * 2},
        {"num_key_value_heads": 1},
        {"sliding_window": 77},
        {"sliding_window": 77, "use_sliding_window": True, "max_window_layers": 2, "num_hidden_layers": 6},
        {"sliding_window_pattern": 3, "num_hidden_layers": 9},
        {"no_rope_layer_interval": 3},
        {"full_attention_interval": 3, "num_hidden_layers": 9},
    ]
    return changes


def _alias(field: str) -> tuple[str, ...]:
    return next((group for group in ALIAS_GROUPS if field in group), (field,))


def classify(model_type: str, cls: Any) -> dict[str, Any] | None:
    base = _build(cls, model_type, {})
    if base is None:
        return None
    probes = [(change, out) for change in _perturbations(base) if (out := _build(cls, model_type, change)) is not None]
    entry: dict[str, Any] = {"defaults": {}, "derived": {}, "needs_transformers": []}
    for field in FILL_FIELDS:
        value = base.get(field)
        moved = [(change, out) for change, out in probes if out.get(field) != value and not set(change) & set(_alias(field))]
        if not moved:
            if value is not None:
                entry["defaults"][field] = value
                nulled = _build(cls, model_type, {field: None})
                if nulled is not None and nulled.get(field) == value:
                    entry.setdefault("fills_null", []).append(field)  # the class replaces an explicit null too
            continue
        if _native(field, [(c, o) for c, o in probes if not set(c) & set(_alias(field))]):
            continue
        if field == "layer_types":
            rule = next((r for r in CANDIDATES if all(_matches(r, base, c, o) for c, o in [({}, base), *probes])), None)
            if rule is not None:
                entry["derived"]["layer_types"] = rule
                continue
        entry["needs_transformers"].append(field)
    text = _text_type(cls)
    if text and text != model_type:
        entry["text_config"] = text
    return entry


def _native(field: str, probes: list[tuple[dict[str, Any], dict[str, Any]]]) -> bool:
    """kvsize derives this field the same way when it is absent: head size = hidden / heads; KV heads = heads."""
    if field == "head_dim":
        return all(o.get(field) == (o.get("hidden_size") or 0) // max(1, o.get("num_attention_heads") or 1) for _, o in probes)
    if field == "num_key_value_heads":
        return all(o.get(field) == o.get("num_attention_heads") for _, o in probes)
    return False


def _matches(rule: dict[str, Any], base: dict[str, Any], change: dict[str, Any], out: dict[str, Any]) -> bool:
    raw = {"model_type": "probe", **change}
    defaults = {key: value for key, value in base.items() if key not in raw}
    return derive_layer_types(rule, raw, defaults) == out.get("layer_types")


def _text_type(cls: Any) -> str | None:
    try:
        return str(cls().get_text_config().model_type)
    except Exception:
        return None


def main() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    transformers.logging.set_verbosity(transformers.logging.CRITICAL)  # probing invalid inputs is expected to fail

    types: dict[str, Any] = {}
    for model_type in sorted(CONFIG_MAPPING.keys()):
        entry = classify(model_type, CONFIG_MAPPING[model_type])
        if entry is not None:
            types[model_type] = entry
    table = {"transformers": transformers.__version__, "types": types}
    Path(TABLE_PATH).write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    needing = sum(1 for entry in types.values() if entry["needs_transformers"])
    print(f"wrote {len(types)} model types to {TABLE_PATH} ({needing} need transformers for some omitted field)")


if __name__ == "__main__":
    main()
