"""Raw ``config.json`` → ``ModelSpec``. Every model-family quirk lives here.

The rules follow vLLM's ``ModelConfig`` (``get_total_num_kv_heads``,
``get_head_size``, ``is_deepseek_mla``) and the layer-kind rules of the model
families it serves; the numbered references are to docs/rules.md.

``defaults`` holds what the model's transformers config class fills in for keys
the published file omits (vLLM sees the config object, defaults included). Raw
fields always win over defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvsize.errors import ConfigError, UnsupportedModelError, shown
from kvsize.model.layers import describe_kinds, is_mla, layer_kinds, promotion_notes
from kvsize.model.params import active_params
from kvsize.model.reader import (
    ALIAS_GROUPS,
    DTYPE_NAMES,
    FALCON_TYPES,
    FILL_FIELDS,
    HEAD_FIELDS,
    HEAD_SIZE_FIELDS,
    HIDDEN_FIELDS,
    KV_HEAD_FIELDS,
    LAYER_FIELDS,
    MAX_HEAD_SIZE,
    MAX_HEADS,
    MAX_LAYERS,
    TEXT_CONFIG_KEYS,
    Reader,
    int_field,
)
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.model.state import read_state
from kvsize.model.weights import weights as count_weights

__all__ = ["ALIAS_GROUPS", "FILL_FIELDS", "TEXT_CONFIG_KEYS", "spec_from_config"]

# Features whose per-token cache kvsize cannot size: fail closed, naming the field.
UNSIZED_FIELDS = {
    "index_topk": "DeepSeek sparse attention keeps an extra indexer key cache",
    "num_kv_shared_layers": "layers that share another layer's KV cache",
    "cross_attention_layers": "cross-attention layers cache encoder states, not prompt tokens",
    "kv_lora_rank_per_layer": "per-layer latent sizes",
}


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
    reader = Reader(raw, defaults or {}, origin)
    model_type = reader.model_type()
    reader.note("model_type", model_type, reader.path("model_type") if reader.text_key else "model_type")

    _refuse_unsized(reader)

    # The layer count must be published: a config that leaves even that to class
    # defaults is not a model's config (transformers would size a default model).
    num_layers = int_field(reader, "layers", LAYER_FIELDS, low=1, high=MAX_LAYERS, defaults=False)
    num_heads = int_field(reader, "attention heads", HEAD_FIELDS, low=1, high=MAX_HEADS)
    assert num_layers is not None and num_heads is not None

    use_mla = is_mla(reader, model_type)
    kinds = layer_kinds(reader, model_type, num_layers, use_mla)
    if not any(kind.keeps_kv for kind in kinds):
        raise UnsupportedModelError(
            f"{origin}: no layer of {model_type} keeps a per-token KV cache ({describe_kinds(kinds)}); "
            "LMCache has nothing to store for it"
        )

    kv_heads, head_size = (
        _latent(reader) if use_mla else (_kv_heads(reader, model_type, num_heads), _head_size(reader, num_heads))
    )

    config_dtype = _config_dtype(reader)
    kv_quant = _kv_cache_quant(reader)
    draft_layers = _draft_layers(reader)

    parameters = active_params(reader, model_type, kinds, num_heads, kv_heads, head_size)
    loaded = count_weights(reader, model_type, kinds, num_heads, kv_heads, head_size)

    reader.note("layers", f"{num_layers} ({describe_kinds(kinds)})", reader.fields["layers"].field)
    max_context = _context(reader)
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
        active_params=parameters,
        weights=loaded if not isinstance(loaded, str) else None,
        weights_problem=loaded if isinstance(loaded, str) else None,
        revision=revision,
        architectures=tuple(a for a in architectures if isinstance(a, str))[:16] if isinstance(architectures, list) else (),
        max_position_embeddings=max_context,
        sliding_window=_window(reader, "sliding_window") if LayerKind.SLIDING in kinds else None,
        attention_chunk_size=_window(reader, "attention_chunk_size") if LayerKind.CHUNKED in kinds else None,
        **_state(reader, model_type, kinds),
        fields=reader.fields,
        warnings=(*warnings, *reader.warnings),
        notes=tuple(promotion_notes(kinds)),
    )


def _state(reader: Reader, model_type: str, kinds: list[LayerKind]) -> dict[str, Any]:
    """``state`` and ``state_problem`` for a model with state layers (only the engines that store state refuse)."""
    if not any(kind in (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV) for kind in kinds):
        return {}
    found = read_state(reader, model_type)
    return {"state": None, "state_problem": found} if isinstance(found, str) else {"state": found}


def _window(reader: Reader, key: str) -> int | None:
    """A window or local chunk in tokens; None when absent or unusable (only the engines that need it refuse)."""
    found = reader.get(key)
    if found is None:
        return None
    value = found[1]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**12:
        return None
    return value


def _refuse_unsized(reader: Reader) -> None:
    """Fail closed on a cache kind kvsize does not size, naming the field."""
    for field, why in UNSIZED_FIELDS.items():
        if reader.value(field) is not None:
            raise UnsupportedModelError(
                f"{reader.origin}: {reader.path(field)} is set ({why}); "
                "kvsize does not size this cache kind yet and will not guess"
            )
    if reader.root.get("is_encoder_decoder") is True:
        raise UnsupportedModelError(
            f"{reader.origin}: is_encoder_decoder is true; LMCache's chunk layout covers decoder-only models, "
            "so kvsize does not size encoder-decoder models"
        )


def _latent(reader: Reader) -> tuple[int, int]:
    """MLA: one latent of kv_lora_rank + qk_rope_head_dim per token (vLLM get_num_kv_heads: 1)."""
    reader.note("kv heads", 1, "MLA: one latent per token (vLLM get_num_kv_heads)")
    rank = int_field(reader, "kv_lora_rank", ("kv_lora_rank",), low=1, high=MAX_HEAD_SIZE)
    rope = int_field(reader, "qk_rope_head_dim", ("qk_rope_head_dim",), low=0, high=MAX_HEAD_SIZE)
    assert rank is not None and rope is not None
    reader.note("head size", rank + rope, f"{reader.path('kv_lora_rank')} + {reader.path('qk_rope_head_dim')} = {rank} + {rope}")
    return 1, rank + rope


def _draft_layers(reader: Reader) -> int:
    """MTP draft layers the config declares (stored only with speculative decoding on)."""
    draft = reader.get("num_nextn_predict_layers")
    if draft is None:
        return 0
    if isinstance(draft[1], bool) or not isinstance(draft[1], int) or not 0 <= draft[1] <= MAX_LAYERS:
        raise ConfigError(f"{reader.origin}: {draft[0]} = {shown(draft[1])} is not a layer count; fix the config")
    if draft[1]:
        reader.note("draft layers", draft[1], draft[0])
    return int(draft[1])


def _context(reader: Reader) -> int | None:
    """The model's context length, when the config publishes one (a prompt past it gets a warning)."""
    context = reader.get("max_position_embeddings", defaults=False)
    if context is None or not isinstance(context[1], int) or isinstance(context[1], bool) or context[1] <= 0:
        return None
    reader.note("context", f"{context[1]:,} tokens", context[0])
    return context[1]


def _kv_heads(reader: Reader, model_type: str, num_heads: int) -> int:
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
    kv = int_field(reader, "kv heads", KV_HEAD_FIELDS, low=1, high=MAX_HEADS)
    assert kv is not None
    if kv > num_heads or num_heads % kv:
        raise ConfigError(
            f"{reader.origin}: {found[0]} = {kv} does not divide {reader.fields['attention heads'].field} = {num_heads}; "
            "grouped-query attention needs it to; fix the config"
        )
    return kv


def _head_size(reader: Reader, num_heads: int) -> int:
    found = reader.get(*HEAD_SIZE_FIELDS)
    if found is not None and isinstance(found[1], int) and not isinstance(found[1], bool) and found[1] <= 0:
        # vLLM's get_head_size ignores a head_dim that is not positive and derives hidden / heads.
        reader.warnings.append(
            f"{found[0]} = {found[1]} is ignored, as vLLM ignores it: the head size is hidden size / attention heads"
        )
    elif found is not None:
        size = int_field(reader, "head size", HEAD_SIZE_FIELDS, low=1, high=MAX_HEAD_SIZE)
        assert size is not None
        return size
    hidden = int_field(reader, "hidden size", HIDDEN_FIELDS, low=1, high=MAX_HEADS * MAX_HEAD_SIZE)
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


def _config_dtype(reader: Reader) -> str | None:
    """The model dtype: root ``dtype``/``torch_dtype``, then the text config's (docs/rules.md)."""
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


def _kv_cache_quant(reader: Reader) -> str | None:
    """A checkpoint that declares a KV-cache scheme turns ``auto`` into fp8 (docs/rules.md)."""
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
