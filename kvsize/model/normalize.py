"""Raw ``config.json`` → ``ModelSpec``. Every model-family quirk lives here.

The rules follow vLLM's ``ModelConfig`` (``get_total_num_kv_heads``,
``get_head_size``, ``is_deepseek_mla``) and the layer-kind rules of the model
families it serves; the numbered references are to ENGINE-FACTS §4.

``defaults`` holds what the model's transformers config class fills in for keys
the published file omits (vLLM sees the config object, defaults included). Raw
fields always win over defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvsize.errors import ConfigError, UnsupportedModelError, shown
from kvsize.model.spec import FieldSource, LayerKind, ModelSpec

# vLLM ModelConfig.is_deepseek_mla: these model types use MLA when kv_lora_rank is set.
MLA_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "deepseek_mtp", "kimi_k2", "longcat_flash"})

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

LAYER_TYPE_NAMES = {
    "full_attention": LayerKind.FULL,
    "attention": LayerKind.FULL,
    "sliding_attention": LayerKind.SLIDING,
    "chunked_attention": LayerKind.CHUNKED,
    "linear_attention": LayerKind.LINEAR,
    "mamba": LayerKind.MAMBA,
    "conv": LayerKind.CONV,
}
# Nemotron-H hybrid_override_pattern: '*' attention, 'M' Mamba, '-' MLP, 'E' MoE.
NEMOTRON_PATTERN = {"*": LayerKind.FULL, "M": LayerKind.MAMBA, "-": LayerKind.MLP, "E": LayerKind.MLP}

# Features whose per-token cache kvsize cannot size: fail closed, naming the field.
UNSIZED_FIELDS = {
    "index_topk": "DeepSeek sparse attention keeps an extra indexer key cache",
    "num_kv_shared_layers": "layers that share another layer's KV cache",
    "cross_attention_layers": "cross-attention layers cache encoder states, not prompt tokens",
    "kv_lora_rank_per_layer": "per-layer latent sizes",
}

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


class _Reader:
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


def _int_field(
    reader: _Reader,
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


def spec_from_config(
    raw: Mapping[str, Any],
    *,
    name: str,
    origin: str,
    defaults: Mapping[str, Any] | None = None,
    revision: str | None = None,
    warnings: tuple[str, ...] = (),
) -> ModelSpec:
    """Normalize a model's raw ``config.json`` dict into a ``ModelSpec``.

    Raises ``KvsizeError`` naming the config fields when the model cannot be
    sized exactly (fail closed: no guesses).
    """
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{origin}: the config is empty or not a JSON object; point kvsize at a model's config.json")
    reader = _Reader(raw, defaults or {}, origin)
    model_type = reader.model_type()
    reader.note("model_type", model_type, reader.path("model_type") if reader.text_key else "model_type")

    for field, why in UNSIZED_FIELDS.items():
        if reader.value(field) is not None:
            raise UnsupportedModelError(
                f"{origin}: {reader.path(field)} is set ({why}); kvsize does not size this cache kind yet and will not guess"
            )
    if raw.get("is_encoder_decoder") is True:
        raise UnsupportedModelError(
            f"{origin}: is_encoder_decoder is true; LMCache's chunk layout covers decoder-only models, "
            "so kvsize does not size encoder-decoder models"
        )

    # The layer count must be published: a config that leaves even that to class
    # defaults is not a model's config (transformers would size a default model).
    num_layers = _int_field(reader, "layers", LAYER_FIELDS, low=1, high=MAX_LAYERS, defaults=False)
    num_heads = _int_field(reader, "attention heads", HEAD_FIELDS, low=1, high=MAX_HEADS)
    assert num_layers is not None and num_heads is not None

    use_mla = _is_mla(reader, model_type)
    kinds = _layer_kinds(reader, model_type, num_layers, use_mla)
    if not any(kind.keeps_kv for kind in kinds):
        raise UnsupportedModelError(
            f"{origin}: no layer of {model_type} keeps a per-token KV cache ({_describe_kinds(kinds)}); "
            "LMCache has nothing to store for it"
        )

    if use_mla:
        kv_heads = 1
        reader.note("kv heads", 1, "MLA: one latent per token (vLLM get_num_kv_heads)")
        rank = _int_field(reader, "kv_lora_rank", ("kv_lora_rank",), low=1, high=MAX_HEAD_SIZE)
        rope = _int_field(reader, "qk_rope_head_dim", ("qk_rope_head_dim",), low=0, high=MAX_HEAD_SIZE)
        assert rank is not None and rope is not None
        head_size = rank + rope
        reader.note(
            "head size",
            head_size,
            f"{reader.path('kv_lora_rank')} + {reader.path('qk_rope_head_dim')} = {rank} + {rope}",
        )
    else:
        kv_heads = _kv_heads(reader, model_type, num_heads)
        head_size = _head_size(reader, num_heads)

    config_dtype = _config_dtype(reader)
    kv_quant = _kv_cache_quant(reader)
    draft = reader.get("num_nextn_predict_layers")
    draft_layers = 0
    if draft is not None:
        if isinstance(draft[1], bool) or not isinstance(draft[1], int) or not 0 <= draft[1] <= MAX_LAYERS:
            raise ConfigError(f"{origin}: {draft[0]} = {shown(draft[1])} is not a layer count; fix the config")
        draft_layers = draft[1]
        if draft_layers:
            reader.note("draft layers", draft_layers, draft[0])

    active_params = _active_params(reader, model_type, kinds, num_heads, kv_heads, head_size)

    reader.note("layers", f"{num_layers} ({_describe_kinds(kinds)})", reader.fields["layers"].field)
    context = reader.get("max_position_embeddings", defaults=False)
    max_context = None
    if context is not None and isinstance(context[1], int) and not isinstance(context[1], bool) and context[1] > 0:
        max_context = context[1]
        reader.note("context", f"{max_context:,} tokens", context[0])
    architectures = raw.get("architectures")
    return ModelSpec(
        name=name,
        model_type=model_type,
        source=origin,
        layer_kinds=tuple(kinds),
        num_attention_heads=num_heads,
        num_kv_heads=kv_heads,
        head_size=head_size,
        config_dtype=config_dtype,
        kv_cache_quant=kv_quant,
        draft_layers=draft_layers,
        active_params=active_params,
        revision=revision,
        architectures=tuple(a for a in architectures if isinstance(a, str))[:16] if isinstance(architectures, list) else (),
        max_position_embeddings=max_context,
        fields=reader.fields,
        warnings=(*warnings, *reader.warnings),
        notes=tuple(_notes(kinds)),
    )


def _describe_kinds(kinds: list[LayerKind] | tuple[LayerKind, ...]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind.value] = counts.get(kind.value, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def _notes(kinds: list[LayerKind]) -> list[str]:
    promoted = sum(1 for kind in kinds if kind in (LayerKind.SLIDING, LayerKind.CHUNKED))
    if not promoted:
        return []
    return [
        f"{promoted} sliding-window or chunked-local layers are stored in full for every token: with LMCache's "
        "in-process connector vLLM turns its hybrid KV-cache manager off and promotes them to full attention "
        "(vllm/config/vllm.py)"
    ]


def _is_mla(reader: _Reader, model_type: str) -> bool:
    rank = reader.get("kv_lora_rank")
    if rank is None:
        return False
    if model_type == "deepseek_v32":
        raise UnsupportedModelError(
            f"{reader.origin}: model_type deepseek_v32 keeps an indexer key cache beside the MLA latent; "
            "kvsize does not size it yet and will not guess"
        )
    if model_type not in MLA_MODEL_TYPES:
        raise UnsupportedModelError(
            f"{reader.origin}: {rank[0]} is set but model_type {shown(model_type)} is not one vLLM serves with MLA "
            f"({', '.join(sorted(MLA_MODEL_TYPES))}); kvsize cannot tell whether its cache is the latent or full heads"
        )
    return True


def _layer_kinds(reader: _Reader, model_type: str, num_layers: int, use_mla: bool) -> list[LayerKind]:
    """Per-layer kinds, by the first rule that the config speaks to (ENGINE-FACTS §4).

    The published fields are tried first, through every rule; class defaults only
    after: a default ``layer_types`` must not outrank a published ``attn_type_list``
    (transformers' MiniMaxConfig fills a layer_types of its own; vLLM reads attn_type_list).
    """
    if use_mla:
        reader.note("layer kinds", f"{num_layers} MLA", reader.path("kv_lora_rank"))
        return [LayerKind.MLA] * num_layers
    kinds = _layer_rules(reader, num_layers, defaults=False)
    if kinds is None:
        kinds = _layer_rules(reader, num_layers, defaults=True)
    if kinds is None:
        kinds = _sliding_rule(reader, model_type, num_layers)
    return _chunked_layers(reader, kinds)


def _layer_rules(reader: _Reader, num_layers: int, *, defaults: bool) -> list[LayerKind] | None:
    origin = reader.origin

    def check_length(field: str, length: int) -> None:
        if length != num_layers:
            raise ConfigError(
                f"{origin}: {field} describes {length} layers but {reader.fields['layers'].field} = {num_layers}; "
                "fix the config so they agree"
            )

    found = reader.get("hybrid_override_pattern", defaults=defaults)
    if found is not None:
        field, pattern = found
        if not isinstance(pattern, str):
            raise ConfigError(f"{origin}: {field} must be a string like 'M*M-'; fix the config")
        check_length(field, len(pattern))
        kinds = []
        for index, char in enumerate(pattern):
            if char not in NEMOTRON_PATTERN:
                raise UnsupportedModelError(
                    f"{origin}: {field}[{index}] = {shown(char)} is not a layer kind kvsize knows "
                    "('*' attention, 'M' Mamba, '-' MLP, 'E' MoE); it will not guess"
                )
            kinds.append(NEMOTRON_PATTERN[char])
        reader.note("layer kinds", _describe_kinds(kinds), field)
        return kinds

    found = reader.get("layer_types", defaults=defaults)
    if found is not None:
        field, names = found
        if not isinstance(names, list):
            raise ConfigError(f"{origin}: {field} must be a list of layer kinds; fix the config")
        check_length(field, len(names))
        kinds = []
        for index, layer_name in enumerate(names):
            kind = LAYER_TYPE_NAMES.get(layer_name) if isinstance(layer_name, str) else None
            if kind is None:
                raise UnsupportedModelError(
                    f"{origin}: {field}[{index}] = {shown(layer_name)} is not a layer kind kvsize knows "
                    f"({', '.join(sorted(LAYER_TYPE_NAMES))}); it will not guess its cache"
                )
            kinds.append(kind)
        reader.note("layer kinds", _describe_kinds(kinds), field)
        return kinds

    found = reader.get("layers_block_type", defaults=defaults)
    if found is not None:
        field, names = found
        if not isinstance(names, list):
            raise ConfigError(f"{origin}: {field} must be a list of layer kinds; fix the config")
        check_length(field, len(names))
        block_kinds = {"attention": LayerKind.FULL, "mamba": LayerKind.MAMBA}
        kinds = []
        for index, layer_name in enumerate(names):
            if layer_name not in block_kinds:
                raise UnsupportedModelError(
                    f"{origin}: {field}[{index}] = {shown(layer_name)} is not 'attention' or 'mamba'; kvsize will not guess"
                )
            kinds.append(block_kinds[layer_name])
        reader.note("layer kinds", _describe_kinds(kinds), field)
        return kinds

    period = reader.get("attn_layer_period", defaults=defaults)
    if period is not None:
        offset = reader.get("attn_layer_offset", defaults=defaults)
        if offset is None:
            raise ConfigError(f"{origin}: {period[0]} is set without attn_layer_offset; kvsize cannot place the attention layers")
        p, o = period[1], offset[1]
        if not (isinstance(p, int) and isinstance(o, int)) or p <= 0 or not 0 <= o < p:
            raise ConfigError(
                f"{origin}: {period[0]} = {shown(p)}, {offset[0]} = {shown(o)} do not place attention layers; fix the config"
            )
        # Jamba: layer i is attention when i % period == offset, else Mamba.
        kinds = [LayerKind.FULL if i % p == o else LayerKind.MAMBA for i in range(num_layers)]
        reader.note("layer kinds", _describe_kinds(kinds), f"{period[0]} = {p}, {offset[0]} = {o} (i % {p} == {o})")
        return kinds

    found = reader.get("attn_type_list", defaults=defaults)
    if found is not None:
        field, values = found
        if not isinstance(values, list):
            raise ConfigError(f"{origin}: {field} must be a list of 0/1; fix the config")
        check_length(field, len(values))
        kinds = []
        for index, value in enumerate(values):
            if value not in (0, 1) or isinstance(value, bool):
                raise UnsupportedModelError(
                    f"{origin}: {field}[{index}] = {shown(value)} is not 0 (linear) or 1 (attention); kvsize will not guess"
                )
            kinds.append(LayerKind.FULL if value == 1 else LayerKind.LINEAR)
        reader.note("layer kinds", _describe_kinds(kinds), f"{field} (1 = attention, 0 = linear)")
        return kinds

    found = reader.get("full_attention_interval", defaults=defaults)
    if found is not None:
        field, interval = found
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise ConfigError(f"{origin}: {field} = {shown(interval)} is not a positive interval; fix the config")
        # Qwen3-Next: every interval-th layer is full attention, the rest Gated DeltaNet.
        kinds = [LayerKind.FULL if (i + 1) % interval == 0 else LayerKind.LINEAR for i in range(num_layers)]
        reader.note("layer kinds", _describe_kinds(kinds), f"{field} = {interval} ((i + 1) % {interval} == 0)")
        return kinds

    return None


def _sliding_rule(reader: _Reader, model_type: str, num_layers: int) -> list[LayerKind]:
    """A model-wide ``sliding_window`` when there are no ``layer_types``."""
    window = reader.get("sliding_window")
    if window is None:
        reader.note("layer kinds", f"{num_layers} full_attention", "no layer_types, no sliding_window")
        return [LayerKind.FULL] * num_layers
    if model_type.startswith("qwen2") or model_type.startswith("qwen3"):
        # Qwen2/3 apply the window only with use_sliding_window, from max_window_layers on.
        if not reader.value("use_sliding_window"):
            reader.note("layer kinds", f"{num_layers} full_attention", f"{window[0]} ignored: use_sliding_window is false")
            return [LayerKind.FULL] * num_layers
        first = reader.value("max_window_layers") or 0
        kinds = [LayerKind.SLIDING if i >= first else LayerKind.FULL for i in range(num_layers)]
        reader.note("layer kinds", _describe_kinds(kinds), f"use_sliding_window, max_window_layers = {first}")
        return kinds
    reader.note("layer kinds", f"{num_layers} sliding_attention", window[0])
    return [LayerKind.SLIDING] * num_layers


def _chunked_layers(reader: _Reader, kinds: list[LayerKind]) -> list[LayerKind]:
    """Llama 4: RoPE layers (``no_rope_layers[i] == 1``) use chunked local attention."""
    chunk = reader.get("attention_chunk_size")
    rope_flags = reader.get("no_rope_layers")
    if chunk is None or rope_flags is None:
        return kinds
    field, flags = rope_flags
    if not isinstance(flags, list) or len(flags) != len(kinds):
        raise ConfigError(f"{reader.origin}: {field} must list one flag per layer; fix the config")
    out = [LayerKind.CHUNKED if flag == 1 and kind is LayerKind.FULL else kind for kind, flag in zip(kinds, flags, strict=True)]
    reader.note("layer kinds", _describe_kinds(out), f"{field} == 1 with {chunk[0]} = {chunk[1]}")
    return out


def _kv_heads(reader: _Reader, model_type: str, num_heads: int) -> int:
    root_type = reader.root.get("model_type") if isinstance(reader.root.get("model_type"), str) else None
    new_arch = bool(reader.value("new_decoder_architecture"))
    falcon_new = (model_type in FALCON_TYPES or root_type in FALCON_TYPES) and new_arch
    multi_query = reader.get("multi_query")
    if not falcon_new and multi_query is not None and multi_query[1] is True:
        # vLLM get_total_num_kv_heads: multi-query attention has one KV head whatever
        # num_kv_heads says (Falcon without new_decoder_architecture, GPT-BigCode).
        reader.note("kv heads", 1, f"{multi_query[0]} = true")
        return 1
    found = reader.get(*KV_HEAD_FIELDS)
    if found is None:
        reader.note("kv heads", num_heads, f"{reader.fields['attention heads'].field} (no KV-head field: multi-head attention)")
        return num_heads
    kv = _int_field(reader, "kv heads", KV_HEAD_FIELDS, low=1, high=MAX_HEADS)
    assert kv is not None
    if kv > num_heads or num_heads % kv:
        raise ConfigError(
            f"{reader.origin}: {found[0]} = {kv} does not divide {reader.fields['attention heads'].field} = {num_heads}; "
            "grouped-query attention needs it to; fix the config"
        )
    return kv


def _head_size(reader: _Reader, num_heads: int) -> int:
    found = reader.get(*HEAD_SIZE_FIELDS)
    if found is not None and isinstance(found[1], int) and not isinstance(found[1], bool) and found[1] <= 0:
        # vLLM's get_head_size ignores a head_dim that is not positive and derives hidden / heads.
        reader.warnings.append(
            f"{found[0]} = {found[1]} is ignored, as vLLM ignores it: the head size is hidden size / attention heads"
        )
    elif found is not None:
        size = _int_field(reader, "head size", HEAD_SIZE_FIELDS, low=1, high=MAX_HEAD_SIZE)
        assert size is not None
        return size
    hidden = _int_field(reader, "hidden size", HIDDEN_FIELDS, low=1, high=MAX_HEADS * MAX_HEAD_SIZE)
    assert hidden is not None
    if hidden % num_heads:
        raise ConfigError(
            f"{reader.origin}: no head_dim, and {reader.fields['hidden size'].field} = {hidden} is not a multiple of "
            f"{reader.fields['attention heads'].field} = {num_heads}; add head_dim to the config"
        )
    size = hidden // num_heads
    reader.note(
        "head size",
        size,
        f"{reader.fields['hidden size'].field} / {reader.fields['attention heads'].field} = {hidden} / {num_heads}",
    )
    return size


def _config_dtype(reader: _Reader) -> str | None:
    """The model dtype: root ``dtype``/``torch_dtype``, then the text config's (ENGINE-FACTS §2)."""
    candidates = [(key, reader.root.get(key)) for key in ("dtype", "torch_dtype")]
    if reader.text_key:
        candidates += [(reader.path(key), reader.text.get(key)) for key in ("dtype", "torch_dtype")]
    for field, value in candidates:
        if value is None:
            continue
        name = DTYPE_NAMES.get(str(value).removeprefix("torch."))
        if name is None:
            raise UnsupportedModelError(
                f"{reader.origin}: {field} = {shown(value)} is not a dtype kvsize knows (bfloat16, float16, float32); "
                "fix the config or pass `kv_dtype`"
            )
        reader.note("dtype", name, field)
        return name
    return None


def _kv_cache_quant(reader: _Reader) -> str | None:
    """A checkpoint that declares a KV-cache scheme turns ``auto`` into fp8 (ENGINE-FACTS §2)."""
    quant = reader.root.get("quantization_config")
    if not isinstance(quant, Mapping):
        quant = {}
    scheme = quant.get("kv_cache_scheme")
    if scheme:
        bits = scheme.get("num_bits") if isinstance(scheme, Mapping) else None
        kind = scheme.get("type") if isinstance(scheme, Mapping) else None
        if bits not in (None, 8) or kind not in (None, "float"):
            raise UnsupportedModelError(
                f"{reader.origin}: quantization_config.kv_cache_scheme = {shown(scheme)} is not an 8-bit float KV cache; "
                "kvsize sizes only fp8 KV schemes; pass `kv_dtype` to choose one"
            )
        reader.note("kv cache quant", "fp8", "quantization_config.kv_cache_scheme (compressed-tensors)")
        return "fp8"
    for field, algo in (
        ("quantization_config.kv_cache_quant_algo", quant.get("kv_cache_quant_algo")),
        ("kv_cache_quant_algo", reader.root.get("kv_cache_quant_algo")),
    ):
        if algo:
            if "FP8" not in str(algo).upper():
                raise UnsupportedModelError(
                    f"{reader.origin}: {field} = {shown(algo)} is not an FP8 KV cache; kvsize sizes only fp8 KV schemes; "
                    "pass `kv_dtype` to choose one"
                )
            reader.note("kv cache quant", "fp8", f"{field} (ModelOpt)")
            return "fp8"
    return None


# Families whose MLP has two projections (up, down: relu² or GELU), not three (gate, up, down).
UNGATED_MLP_TYPES = frozenset(
    {"nemotron_h", "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "phi", "falcon", "starcoder2", "bloom", "opt", "mpt"}
)
EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")


def _published_int(reader: _Reader, *keys: str) -> int | None:
    found = reader.get(*keys, defaults=False)
    if found is None or isinstance(found[1], bool) or not isinstance(found[1], int) or found[1] < 0:
        return None
    return int(found[1])


def _active_params(
    reader: _Reader, model_type: str, kinds: list[LayerKind], heads: int, kv_heads: int, head_size: int
) -> int | None:
    """Parameters one token passes through, from published fields only (no class defaults).

    Per layer: its mixer (attention q, k, v, o; MLA's low-rank projections; a Mamba or linear-attention
    mixer's in/out projections) + its MLP (dense, or the top-k routed experts + shared experts + router),
    + the LM head. None when a field is missing: the time model then asks for --prefill-tps instead of guessing.
    This feeds the prefill estimate only (an estimate, labelled as one), never a byte count.
    """
    hidden = _published_int(reader, *HIDDEN_FIELDS)
    vocab = _published_int(reader, "vocab_size")
    if not hidden or not vocab:
        return None
    mlp_width = 2 if model_type in UNGATED_MLP_TYPES else 3
    mixers = _mixer_params(reader, hidden, heads, kv_heads, head_size)
    if mixers is None:
        return None
    mlp = _mlp_params(reader, model_type, len(kinds), hidden, mlp_width)
    if mlp is None:
        return None
    total = 0
    for index, kind in enumerate(kinds):
        if model_type == "nemotron_h":  # one block per layer: a mixer or an MLP, never both
            total += mixers[kind] if kind in mixers else mlp[index]
            continue
        if kind not in mixers:
            return None
        total += mixers[kind] + mlp[index]
    total += hidden * vocab
    reader.note(
        "active params",
        f"{total:,}",
        f"{len(kinds)} layers x (mixer + MLP width {mlp_width} x {hidden} x intermediate, routed experts top-k) "
        f"+ LM head {hidden} x vocab_size {vocab} (published fields; an estimate for prefill only)",
    )
    return total


def _mixer_params(reader: _Reader, hidden: int, heads: int, kv_heads: int, head_size: int) -> dict[LayerKind, int] | None:
    """Parameters of each layer kind's token mixer that this config can give."""
    attention = hidden * heads * head_size * 2 + hidden * kv_heads * head_size * 2
    out: dict[LayerKind, int] = {kind: attention for kind in (LayerKind.FULL, LayerKind.SLIDING, LayerKind.CHUNKED)}
    rank = _published_int(reader, "kv_lora_rank")
    if rank:
        nope, rope = _published_int(reader, "qk_nope_head_dim"), _published_int(reader, "qk_rope_head_dim")
        value = _published_int(reader, "v_head_dim")
        if nope is None or rope is None or value is None:
            return None
        q_rank = _published_int(reader, "q_lora_rank")
        query = hidden * q_rank + q_rank * heads * (nope + rope) if q_rank else hidden * heads * (nope + rope)
        out[LayerKind.MLA] = query + hidden * (rank + rope) + rank * heads * (nope + value) + heads * value * hidden
    mamba_heads, mamba_dim = _published_int(reader, "mamba_num_heads"), _published_int(reader, "mamba_head_dim")
    expand = _published_int(reader, "mamba_expand", "expand")
    inner = mamba_heads * mamba_dim if mamba_heads and mamba_dim else (expand * hidden if expand else None)
    if inner:
        state = _published_int(reader, "ssm_state_size", "mamba_d_state") or 0
        groups = _published_int(reader, "n_groups") or 1
        out[LayerKind.MAMBA] = 3 * hidden * inner + 2 * hidden * groups * state
    key_heads, key_dim = _published_int(reader, "linear_num_key_heads"), _published_int(reader, "linear_key_head_dim")
    value_heads, value_dim = _published_int(reader, "linear_num_value_heads"), _published_int(reader, "linear_value_head_dim")
    if key_heads and key_dim and value_heads and value_dim:
        out[LayerKind.LINEAR] = hidden * (2 * key_heads * key_dim + 2 * value_heads * value_dim + 2 * value_heads) + (
            value_heads * value_dim * hidden
        )
    return out


def _mlp_params(reader: _Reader, model_type: str, layers: int, hidden: int, width: int) -> list[int] | None:
    """The MLP parameters a token passes through in each layer (dense, or routed top-k + shared + router)."""
    dense_inter = _published_int(reader, "intermediate_size")
    experts = _published_int(reader, *EXPERT_FIELDS)
    top_k = _published_int(reader, "num_experts_per_tok")
    dense = width * hidden * dense_inter if dense_inter else None
    if not experts or not top_k:
        return None if dense is None else [dense] * layers
    expert_inter = _published_int(reader, "moe_intermediate_size") or dense_inter
    if not expert_inter:
        return None
    shared = (_published_int(reader, "n_shared_experts") or 0) * width * hidden * expert_inter
    for field in ("shared_expert_intermediate_size", "moe_shared_expert_intermediate_size"):
        shared_inter = _published_int(reader, field)
        if shared_inter:
            shared = max(1, _published_int(reader, "n_shared_experts") or 1) * width * hidden * shared_inter
    routed = top_k * width * hidden * expert_inter + shared + hidden * experts
    pattern = reader.value("hybrid_override_pattern")
    first_dense = _published_int(reader, "first_k_dense_replace") or 0
    dense_only = reader.value("mlp_only_layers") or []
    step = _published_int(reader, "decoder_sparse_step") or 1
    period, offset = _published_int(reader, "expert_layer_period"), _published_int(reader, "expert_layer_offset")
    out: list[int] = []
    for index in range(layers):
        if isinstance(pattern, str) and model_type == "nemotron_h":
            is_moe = pattern[index] == "E"
        elif period:
            is_moe = index % period == (offset or 0)
        else:
            is_moe = index >= first_dense and index not in dense_only and (index + 1) % step == 0
        if not is_moe and dense is None:
            return None
        out.append(routed if is_moe else dense or 0)
    return out
