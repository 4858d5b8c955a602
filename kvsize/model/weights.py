"""The model's weights in GPU memory: every parameter from the config's published fields, times the bytes vLLM
keeps it in (the checkpoint's dtype, or its ``quantization_config``).

The parameter count is the one the prefill estimate uses (``kvsize.model.params``) with every expert counted and
the input embedding added (once, when ``tie_word_embeddings`` ties it to the LM head); norms and biases are left
out (well under 0.1% of any model here), and so are draft (MTP) layers and a vision tower. Bytes per parameter:

- no ``quantization_config``: 2 (bfloat16 or float16; vLLM serves a float32 checkpoint in bfloat16 with
  ``--dtype auto``, ``vllm/config/model.py`` ``_resolve_auto_dtype``);
- ``fp8`` (``fbgemm_fp8``): 1 for every linear layer of the decoder (attention, MLP, experts), 2 for the
  embedding, the LM head and the router (vLLM's ``Fp8LinearMethod`` / ``Fp8MoEMethod`` quantize ``LinearBase``
  and ``FusedMoE`` only); the block scales are left out (4 B per 128 x 128 block);
- ``mxfp4`` (gpt-oss): 4.25 bits for the experts (4-bit values plus an 8-bit scale per 32,
  ``Mxfp4MoEMethod``), 2 for the rest (``modules_to_not_convert``: attention, router, embedding, LM head);
- ``awq``, ``gptq`` (and their ``_marlin`` kernels), ``compressed-tensors``: ``bits / 8`` per linear weight of the
  decoder plus an fp16 scale and a packed zero point per ``group_size`` weights; 2 for the rest.

Any other method is refused by name: give ``kv_cache_memory_bytes`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from kvsize.model.params import UNGATED_MLP_TYPES, expert_sizes, mixer_params, moe_layers, published_int
from kvsize.model.reader import HIDDEN_FIELDS, Reader
from kvsize.model.spec import LayerKind, Weights

DENSE_BYTES = 2
MXFP4_BYTES = Fraction(17, 32)  # 4 bits + one 8-bit scale per 32 values = 4.25 bits
LOW_BIT_METHODS = ("awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors")
FP8_METHODS = ("fp8", "fbgemm_fp8")


def _parts(
    reader: Reader, model_type: str, kinds: list[LayerKind], heads: int, kv_heads: int, head_size: int
) -> dict[str, int] | None:
    """Parameters by part: attention (every mixer), dense MLPs, routed experts, shared experts, routers, embeddings."""
    hidden = published_int(reader, *HIDDEN_FIELDS)
    vocab = published_int(reader, "vocab_size")
    inter = published_int(reader, "intermediate_size")
    mixers = mixer_params(reader, hidden, heads, kv_heads, head_size) if hidden and vocab else None
    if not hidden or not vocab or mixers is None:
        return None
    width = 2 if model_type in UNGATED_MLP_TYPES else 3
    moe = expert_sizes(reader, hidden, width)
    routed = moe_layers(reader, model_type, len(kinds)) if moe else [False] * len(kinds)
    parts = dict.fromkeys(("attention", "dense_mlp", "experts", "shared_experts", "routers"), 0)
    for kind, is_moe in zip(kinds, routed, strict=True):
        if kind not in mixers and kind is not LayerKind.MLP:
            return None
        parts["attention"] += mixers.get(kind, 0)
        if model_type == "nemotron_h" and kind is not LayerKind.MLP:
            continue  # one block per layer: a mixer or an MLP, never both
        if is_moe and moe:
            experts, _, one, shared = moe
            parts["experts"] += experts * one
            parts["shared_experts"] += shared
            parts["routers"] += hidden * experts
        elif inter:
            parts["dense_mlp"] += width * hidden * inter
        else:
            return None
    tied = reader.value("tie_word_embeddings")
    parts["embedding"] = vocab * hidden * (1 if tied is True else 2)
    return parts


def _quantization(reader: Reader) -> Mapping[str, Any] | None:
    quant = reader.root.get("quantization_config")
    if quant is None and reader.text_key:
        quant = reader.text.get("quantization_config")
    return quant if isinstance(quant, Mapping) else None


def _low_bits(quant: Mapping[str, Any]) -> tuple[int, int | None] | None:
    """``(bits, group_size)`` of an AWQ/GPTQ/compressed-tensors config, None when it does not say."""
    bits, group = quant.get("bits") or quant.get("w_bit"), quant.get("group_size") or quant.get("q_group_size")
    groups = quant.get("config_groups")
    if isinstance(groups, Mapping) and groups:
        first = next(iter(groups.values()))
        weights = first.get("weights") if isinstance(first, Mapping) else None
        if isinstance(weights, Mapping):
            bits, group = weights.get("num_bits"), weights.get("group_size")
    if isinstance(bits, bool) or bits not in (2, 3, 4, 8):
        return None
    if group is not None and (isinstance(group, bool) or not isinstance(group, int) or group < 1):
        group = None
    return bits, group


def weights(reader: Reader, model_type: str, kinds: list[LayerKind], heads: int, kv_heads: int, head_size: int) -> Weights | str:
    """The model's weights, or why they cannot be counted (a sentence naming the field)."""
    parts = _parts(reader, model_type, kinds, heads, kv_heads, head_size)
    if parts is None:
        return "the config does not publish every size kvsize counts weights from (hidden, vocabulary, MLP and expert sizes)"
    total = sum(parts.values())
    linear = parts["attention"] + parts["dense_mlp"] + parts["experts"] + parts["shared_experts"]
    quant = _quantization(reader)
    method = str(quant.get("quant_method", "")).lower() if quant else ""
    if not method:
        return Weights(parameters=total, bytes=total * DENSE_BYTES, rule="2 B per parameter, the checkpoint's 16-bit dtype")
    if method in FP8_METHODS:
        size = linear + (total - linear) * DENSE_BYTES
        return Weights(parameters=total, bytes=size, rule=f"{method}: 1 B per linear weight, 2 B for embeddings and routers")
    if method == "mxfp4":
        size = int(parts["experts"] * MXFP4_BYTES) + (total - parts["experts"]) * DENSE_BYTES
        return Weights(parameters=total, bytes=size, rule="mxfp4: 4.25 bits per expert weight, 2 B for the rest")
    if method in LOW_BIT_METHODS and quant is not None and (found := _low_bits(quant)) is not None:
        bits, group = found
        per_weight = Fraction(bits, 8) + (Fraction(2 * 8 + bits, 8 * group) if group else 0)
        size = int(linear * per_weight) + (total - linear) * DENSE_BYTES
        grouping = f", an fp16 scale and a zero point per {group}" if group else ""
        return Weights(parameters=total, bytes=size, rule=f"{method}: {bits} bits per linear weight{grouping}, 2 B for the rest")
    return f"quantization_config.quant_method {method!r} is not one kvsize counts weights for (fp8, mxfp4, awq, gptq)"
