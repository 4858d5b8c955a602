"""The defaults table (kvsize/model/defaults.json) against the live transformers config classes."""

from __future__ import annotations

import os
import warnings
from typing import Any

import pytest

from kvsize.model.config import transformers_defaults
from kvsize.model.defaults import derive_layer_types, table, table_defaults
from kvsize.model.normalize import spec_from_config
from tests.conftest import reference_config, reference_models


@pytest.fixture(scope="module")
def classes() -> Any:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    transformers.logging.set_verbosity(transformers.logging.CRITICAL)
    if transformers.__version__ != table()["transformers"]:
        pytest.skip(f"the table was built from transformers {table()['transformers']}, {transformers.__version__} is installed")
    return CONFIG_MAPPING


def test_every_constant_and_derivation_matches_the_live_class(classes):
    types = table()["types"]
    assert len(types) > 500
    wrong = []
    for model_type, entry in types.items():
        live = classes[model_type]().to_dict()
        for field, value in entry["defaults"].items():
            if live.get(field) != value:
                wrong.append(f"{model_type}.{field}: table {value!r}, class {live.get(field)!r}")
        rule = entry["derived"].get("layer_types")
        if rule is not None:
            for change in ({}, {"num_hidden_layers": 9}, {"num_hidden_layers": 7, "sliding_window_pattern": 3}):
                out = classes[model_type].from_dict({"model_type": model_type, **change}).to_dict()
                derived = derive_layer_types(rule, {"model_type": model_type, **change}, entry["defaults"])
                if derived != out.get("layer_types"):
                    wrong.append(f"{model_type}.layer_types with {change}")
    assert wrong == []


@pytest.mark.parametrize("name", reference_models())
def test_every_reference_config_gets_the_same_defaults_either_way(classes, name):
    raw = reference_config(name)
    through_table = table_defaults(raw)
    through_transformers, _ = transformers_defaults(raw, name)
    if through_table is None:  # a field the table does not port: transformers fills it, and says why
        entry = table()["types"][raw["model_type"]]
        assert entry["needs_transformers"] or raw.get("text_config") is not None
        return
    # head size and KV heads the class derives as hidden / heads and heads kvsize derives itself: the specs agree
    numbers = ("layer_kinds", "num_attention_heads", "num_kv_heads", "head_size", "config_dtype", "draft_layers", "active_params")
    table_spec = spec_from_config(raw, name=name, origin="table", defaults=through_table)
    class_spec = spec_from_config(raw, name=name, origin="class", defaults=through_transformers)
    assert {key: getattr(table_spec, key) for key in numbers} == {key: getattr(class_spec, key) for key in numbers}
    assert {key: value for key, value in through_transformers.items() if key not in ("head_dim", "num_key_value_heads")} == {
        key: value for key, value in through_table.items() if key not in ("head_dim", "num_key_value_heads")
    }


def test_most_reference_configs_need_no_transformers():
    covered = [name for name in reference_models() if table_defaults(reference_config(name)) is not None]
    assert len(covered) >= 30, sorted(set(reference_models()) - set(covered))


def test_derivations_by_hand():
    # Gemma 3: every 6th layer full (the class's sliding_window_pattern default), the rest sliding
    pattern = {"rule": "pattern", "field": "sliding_window_pattern", "default": 6}
    assert derive_layer_types(pattern, {"num_hidden_layers": 7}, {}) == ["sliding_attention"] * 5 + [
        "full_attention",
        "sliding_attention",
    ]
    assert derive_layer_types(pattern, {"num_hidden_layers": 3, "sliding_window_pattern": 2}, {}) == [
        "sliding_attention",
        "full_attention",
        "sliding_attention",
    ]
    # Qwen2/3: sliding from max_window_layers on, only with use_sliding_window and a window
    qwen = {"rule": "qwen"}
    raw = {"num_hidden_layers": 4, "use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 2}
    assert derive_layer_types(qwen, raw, {}) == ["full_attention", "full_attention", "sliding_attention", "sliding_attention"]
    assert derive_layer_types(qwen, {**raw, "use_sliding_window": False}, {}) == ["full_attention"] * 4
    # Qwen3-Next: every 4th layer full attention, the rest linear
    interval = {"rule": "pattern", "field": "full_attention_interval", "default": 4, "other": "linear_attention"}
    assert derive_layer_types(interval, {"num_hidden_layers": 4}, {}) == ["linear_attention"] * 3 + ["full_attention"]
    assert derive_layer_types(pattern, {"num_hidden_layers": "12"}, {}) is None
