"""Which kind each decoder layer is (docs/rules.md): the first rule the config speaks to, published
fields before class defaults. Each rule names the field it read; an unknown kind fails closed.
"""

from __future__ import annotations

from collections.abc import Callable

from kvsize.errors import ConfigError, UnsupportedModelError, shown
from kvsize.model.reader import Reader
from kvsize.model.spec import LayerKind

# vLLM ModelConfig.is_deepseek_mla: these model types use MLA when kv_lora_rank is set.
MLA_MODEL_TYPES = frozenset({"deepseek_v2", "deepseek_v3", "deepseek_mtp", "kimi_k2", "longcat_flash"})

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


def describe_kinds(kinds: list[LayerKind] | tuple[LayerKind, ...]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind.value] = counts.get(kind.value, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in counts.items())


def promotion_notes(kinds: list[LayerKind]) -> list[str]:
    promoted = sum(1 for kind in kinds if kind in (LayerKind.SLIDING, LayerKind.CHUNKED))
    if not promoted:
        return []
    return [
        f"{promoted} sliding-window or chunked-local layers are stored in full for every token: with LMCache's "
        "in-process connector vLLM turns its hybrid KV-cache manager off and promotes them to full attention "
        "(vllm/config/vllm.py)"
    ]


def is_mla(reader: Reader, model_type: str) -> bool:
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


def layer_kinds(reader: Reader, model_type: str, num_layers: int, use_mla: bool) -> list[LayerKind]:
    """Per-layer kinds, by the first rule that the config speaks to (docs/rules.md).

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


def _check_length(reader: Reader, field: str, length: int, num_layers: int) -> None:
    if length != num_layers:
        raise ConfigError(
            f"{reader.origin}: {field} describes {length} layers but {reader.fields['layers'].field} = {num_layers}; "
            "fix the config so they agree"
        )


def _pattern_rule(reader: Reader, num_layers: int, defaults: bool) -> list[LayerKind] | None:
    """Nemotron-H ``hybrid_override_pattern``: one character per layer."""
    found = reader.get("hybrid_override_pattern", defaults=defaults)
    if found is None:
        return None
    field, pattern = found
    if not isinstance(pattern, str):
        raise ConfigError(f"{reader.origin}: {field} must be a string like 'M*M-'; fix the config")
    _check_length(reader, field, len(pattern), num_layers)
    for index, char in enumerate(pattern):
        if char not in NEMOTRON_PATTERN:
            raise UnsupportedModelError(
                f"{reader.origin}: {field}[{index}] = {shown(char)} is not a layer kind kvsize knows "
                "('*' attention, 'M' Mamba, '-' MLP, 'E' MoE); it will not guess"
            )
    kinds = [NEMOTRON_PATTERN[char] for char in pattern]
    reader.note("layer kinds", describe_kinds(kinds), field)
    return kinds


def _named_rule(reader: Reader, num_layers: int, defaults: bool, key: str, names: dict[str, LayerKind]) -> list[LayerKind] | None:
    """A list naming each layer's kind: ``layer_types`` (transformers) or Jamba's ``layers_block_type``."""
    found = reader.get(key, defaults=defaults)
    if found is None:
        return None
    field, values = found
    if not isinstance(values, list):
        raise ConfigError(f"{reader.origin}: {field} must be a list of layer kinds; fix the config")
    _check_length(reader, field, len(values), num_layers)
    kinds = []
    for index, layer_name in enumerate(values):
        kind = names.get(layer_name) if isinstance(layer_name, str) else None
        if kind is None:
            raise UnsupportedModelError(
                f"{reader.origin}: {field}[{index}] = {shown(layer_name)} is not a layer kind kvsize knows "
                f"({', '.join(sorted(names))}); it will not guess its cache"
            )
        kinds.append(kind)
    reader.note("layer kinds", describe_kinds(kinds), field)
    return kinds


def _period_rule(reader: Reader, num_layers: int, defaults: bool) -> list[LayerKind] | None:
    """Jamba: layer i is attention when i % attn_layer_period == attn_layer_offset, else Mamba."""
    period = reader.get("attn_layer_period", defaults=defaults)
    if period is None:
        return None
    offset = reader.get("attn_layer_offset", defaults=defaults)
    if offset is None:
        raise ConfigError(
            f"{reader.origin}: {period[0]} is set without attn_layer_offset; kvsize cannot place the attention layers"
        )
    p, o = period[1], offset[1]
    if not (isinstance(p, int) and isinstance(o, int)) or p <= 0 or not 0 <= o < p:
        raise ConfigError(
            f"{reader.origin}: {period[0]} = {shown(p)}, {offset[0]} = {shown(o)} do not place attention layers; fix the config"
        )
    kinds = [LayerKind.FULL if i % p == o else LayerKind.MAMBA for i in range(num_layers)]
    reader.note("layer kinds", describe_kinds(kinds), f"{period[0]} = {p}, {offset[0]} = {o} (i % {p} == {o})")
    return kinds


def _type_list_rule(reader: Reader, num_layers: int, defaults: bool) -> list[LayerKind] | None:
    """MiniMax ``attn_type_list``: 1 = attention, 0 = linear attention."""
    found = reader.get("attn_type_list", defaults=defaults)
    if found is None:
        return None
    field, values = found
    if not isinstance(values, list):
        raise ConfigError(f"{reader.origin}: {field} must be a list of 0/1; fix the config")
    _check_length(reader, field, len(values), num_layers)
    for index, value in enumerate(values):
        if value not in (0, 1) or isinstance(value, bool):
            raise UnsupportedModelError(
                f"{reader.origin}: {field}[{index}] = {shown(value)} is not 0 (linear) or 1 (attention); kvsize will not guess"
            )
    kinds = [LayerKind.FULL if value == 1 else LayerKind.LINEAR for value in values]
    reader.note("layer kinds", describe_kinds(kinds), f"{field} (1 = attention, 0 = linear)")
    return kinds


def _interval_rule(reader: Reader, num_layers: int, defaults: bool) -> list[LayerKind] | None:
    """Qwen3-Next: every ``full_attention_interval``-th layer is full attention, the rest Gated DeltaNet."""
    found = reader.get("full_attention_interval", defaults=defaults)
    if found is None:
        return None
    field, interval = found
    if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
        raise ConfigError(f"{reader.origin}: {field} = {shown(interval)} is not a positive interval; fix the config")
    kinds = [LayerKind.FULL if (i + 1) % interval == 0 else LayerKind.LINEAR for i in range(num_layers)]
    reader.note("layer kinds", describe_kinds(kinds), f"{field} = {interval} ((i + 1) % {interval} == 0)")
    return kinds


BLOCK_KINDS = {"attention": LayerKind.FULL, "mamba": LayerKind.MAMBA}


def _layer_rules(reader: Reader, num_layers: int, *, defaults: bool) -> list[LayerKind] | None:
    """The first per-layer rule the config speaks to, in vLLM's order of precedence; None when none does."""
    rules: tuple[Callable[[], list[LayerKind] | None], ...] = (
        lambda: _pattern_rule(reader, num_layers, defaults),
        lambda: _named_rule(reader, num_layers, defaults, "layer_types", LAYER_TYPE_NAMES),
        lambda: _named_rule(reader, num_layers, defaults, "layers_block_type", BLOCK_KINDS),
        lambda: _period_rule(reader, num_layers, defaults),
        lambda: _type_list_rule(reader, num_layers, defaults),
        lambda: _interval_rule(reader, num_layers, defaults),
    )
    for rule in rules:
        kinds = rule()
        if kinds is not None:
            return kinds
    return None


def _sliding_rule(reader: Reader, model_type: str, num_layers: int) -> list[LayerKind]:
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
        reader.note("layer kinds", describe_kinds(kinds), f"use_sliding_window, max_window_layers = {first}")
        return kinds
    reader.note("layer kinds", f"{num_layers} sliding_attention", window[0])
    return [LayerKind.SLIDING] * num_layers


def _chunked_layers(reader: Reader, kinds: list[LayerKind]) -> list[LayerKind]:
    """Llama 4: RoPE layers (``no_rope_layers[i] == 1``) use chunked local attention."""
    chunk = reader.get("attention_chunk_size")
    rope_flags = reader.get("no_rope_layers")
    if chunk is None or rope_flags is None:
        return kinds
    field, flags = rope_flags
    if not isinstance(flags, list) or len(flags) != len(kinds):
        raise ConfigError(f"{reader.origin}: {field} must list one flag per layer; fix the config")
    out = [LayerKind.CHUNKED if flag == 1 and kind is LayerKind.FULL else kind for kind, flag in zip(kinds, flags, strict=True)]
    reader.note("layer kinds", describe_kinds(out), f"{field} == 1 with {chunk[0]} = {chunk[1]}")
    return out
