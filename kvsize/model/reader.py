"""Reading a raw config's fields: aliases, the text sub-config of wrappers, transformers defaults, and
where each value came from. Shared by the normaliser's rules (``normalize``, ``layers``, ``params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvsize.errors import ConfigError, UnsupportedModelError, shown
from kvsize.model.spec import FieldSource

# Head-count aliases, first present wins (vLLM get_total_num_kv_heads).
KV_HEAD_FIELDS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num", "num_attention_groups")
HEAD_FIELDS = ("num_attention_heads", "n_head", "num_heads", "n_heads")
LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
HIDDEN_FIELDS = ("hidden_size", "n_embd", "d_model")
HEAD_SIZE_FIELDS = ("head_dim", "attention_head_dim", "hidden_size_per_head")
FALCON_TYPES = frozenset({"falcon", "RefinedWeb", "RefinedWebModel"})
TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config")

# Keys whose defaults the loader may fill from transformers (kvsize.model.sources).
FILL_FIELDS = (
    *LAYER_FIELDS,
    *HEAD_FIELDS,
    *KV_HEAD_FIELDS,
    *HIDDEN_FIELDS,
    *HEAD_SIZE_FIELDS,
    "layer_types",
    "sliding_window",
    "use_sliding_window",
    "max_window_layers",
    "no_rope_layers",
    "attention_chunk_size",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "num_nextn_predict_layers",
    "multi_query",
    "new_decoder_architecture",
    "full_attention_interval",
    "attn_layer_period",
    "attn_layer_offset",
    "attn_type_list",
    "hybrid_override_pattern",
)
# Fields that are aliases of one another: a default is filled only when the raw
# config has none of its group, so a default never outranks a published alias.
ALIAS_GROUPS = (LAYER_FIELDS, HEAD_FIELDS, KV_HEAD_FIELDS, HIDDEN_FIELDS)

DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}
MAX_LAYERS = 10_000
MAX_HEADS = 100_000
MAX_HEAD_SIZE = 65_536


class Reader:
    """Reads fields from the text config, falling back to the root and to defaults."""

    def __init__(self, raw: Mapping[str, Any], defaults: Mapping[str, Any], origin: str) -> None:
        self.root = raw
        self.root_defaults = defaults
        self.text_key: str | None = None
        self.text: Mapping[str, Any] = raw
        self.text_defaults: Mapping[str, Any] = defaults
        for key in TEXT_CONFIG_KEYS:
            nested = raw.get(key)
            if isinstance(nested, Mapping):
                self.text_key = key
                self.text = nested
                nested_defaults = defaults.get(key)
                self.text_defaults = nested_defaults if isinstance(nested_defaults, Mapping) else {}
                break
        self.origin = origin
        self.fields: dict[str, FieldSource] = {}
        self.warnings: list[str] = []

    def path(self, key: str) -> str:
        return f"{self.text_key}.{key}" if self.text_key else key

    def get(self, *keys: str, defaults: bool = True) -> tuple[str, Any] | None:
        """First key present (and not null) in the text config, then (if asked) its defaults."""
        for key in keys:
            if self.text.get(key) is not None:
                return self.path(key), self.text[key]
        if not defaults:
            return None
        for key in keys:
            if self.text_defaults.get(key) is not None:
                return self.path(key) + " (transformers default)", self.text_defaults[key]
        return None

    def value(self, *keys: str) -> Any:
        found = self.get(*keys)
        return None if found is None else found[1]

    def note(self, name: str, value: object, field: str, origin: str | None = None) -> None:
        self.fields[name] = FieldSource(value=str(value), field=field, origin=origin or self.origin)

    def model_type(self) -> str:
        text_type = self.text.get("model_type") if self.text_key else None
        root_type = self.root.get("model_type")
        chosen = text_type if isinstance(text_type, str) and text_type else root_type
        if not isinstance(chosen, str) or not chosen:
            raise UnsupportedModelError(
                f"{self.origin}: config has no model_type: kvsize needs it to choose the layer rules; "
                "add the model's model_type to the config"
            )
        return chosen


def int_field(
    reader: Reader,
    name: str,
    keys: tuple[str, ...],
    *,
    low: int,
    high: int,
    required: bool = True,
    defaults: bool = True,
) -> int | None:
    found = reader.get(*keys, defaults=defaults)
    if found is None:
        if not required:
            return None
        raise ConfigError(
            f"{reader.origin}: config has none of {', '.join(reader.path(k) for k in keys)}: "
            f"kvsize cannot tell the {name}; add the field to the config"
        )
    field, value = found
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, list):
            raise ConfigError(
                f"{reader.origin}: {field} is a per-layer list; kvsize sizes one {name} for all layers "
                "as LMCache's kv_shape does, so this model cannot be sized"
            )
        raise ConfigError(f"{reader.origin}: {field} = {shown(value)} is not a whole number; fix the config")
    if not low <= value <= high:
        raise ConfigError(f"{reader.origin}: {field} = {shown(value)} is out of range ({low:,} to {high:,}); fix the config")
    reader.note(name, value, field)
    return value
