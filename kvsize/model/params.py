"""Active parameters from a config's published fields: what the prefill estimate divides FLOP/s by."""

from __future__ import annotations

from kvsize.model.reader import HIDDEN_FIELDS, Reader
from kvsize.model.spec import LayerKind

# Families whose MLP has two projections (up, down: relu² or GELU), not three (gate, up, down).
UNGATED_MLP_TYPES = frozenset(
    {"nemotron_h", "gpt2", "gpt_bigcode", "gpt_neox", "gptj", "phi", "falcon", "starcoder2", "bloom", "opt", "mpt"}
)
EXPERT_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts")


def published_int(reader: Reader, *keys: str) -> int | None:
    found = reader.get(*keys, defaults=False)
    if found is None or isinstance(found[1], bool) or not isinstance(found[1], int) or found[1] < 0:
        return None
    return int(found[1])


def active_params(
    reader: Reader, model_type: str, kinds: list[LayerKind], heads: int, kv_heads: int, head_size: int
) -> int | None:
    """Parameters one token passes through, from published fields only (no class defaults).

    Per layer: its mixer (attention q, k, v, o; MLA's low-rank projections; a Mamba or linear-attention
    mixer's in/out projections) + its MLP (dense, or the top-k routed experts + shared experts + router),
    + the LM head. None when a field is missing: the time model then asks for --prefill-tps instead of guessing.
    This feeds the prefill estimate only (an estimate, labelled as one), never a byte count.
    """
    hidden = published_int(reader, *HIDDEN_FIELDS)
    vocab = published_int(reader, "vocab_size")
    if not hidden or not vocab:
        return None
    mlp_width = 2 if model_type in UNGATED_MLP_TYPES else 3
    mixers = mixer_params(reader, hidden, heads, kv_heads, head_size)
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


def mixer_params(reader: Reader, hidden: int, heads: int, kv_heads: int, head_size: int) -> dict[LayerKind, int] | None:
    """Parameters of each layer kind's token mixer that this config can give."""
    attention = hidden * heads * head_size * 2 + hidden * kv_heads * head_size * 2
    out: dict[LayerKind, int] = {kind: attention for kind in (LayerKind.FULL, LayerKind.SLIDING, LayerKind.CHUNKED)}
    rank = published_int(reader, "kv_lora_rank")
    if rank:
        nope, rope = published_int(reader, "qk_nope_head_dim"), published_int(reader, "qk_rope_head_dim")
        value = published_int(reader, "v_head_dim")
        if nope is None or rope is None or value is None:
            return None
        q_rank = published_int(reader, "q_lora_rank")
        query = hidden * q_rank + q_rank * heads * (nope + rope) if q_rank else hidden * heads * (nope + rope)
        out[LayerKind.MLA] = query + hidden * (rank + rope) + rank * heads * (nope + value) + heads * value * hidden
    mamba_heads, mamba_dim = published_int(reader, "mamba_num_heads"), published_int(reader, "mamba_head_dim")
    expand = published_int(reader, "mamba_expand", "expand")
    inner = mamba_heads * mamba_dim if mamba_heads and mamba_dim else (expand * hidden if expand else None)
    if inner:
        state = published_int(reader, "ssm_state_size", "mamba_d_state") or 0
        groups = published_int(reader, "n_groups") or 1
        out[LayerKind.MAMBA] = 3 * hidden * inner + 2 * hidden * groups * state
    key_heads, key_dim = published_int(reader, "linear_num_key_heads"), published_int(reader, "linear_key_head_dim")
    value_heads, value_dim = published_int(reader, "linear_num_value_heads"), published_int(reader, "linear_value_head_dim")
    if key_heads and key_dim and value_heads and value_dim:
        out[LayerKind.LINEAR] = hidden * (2 * key_heads * key_dim + 2 * value_heads * value_dim + 2 * value_heads) + (
            value_heads * value_dim * hidden
        )
    return out


def moe_layers(reader: Reader, model_type: str, layers: int) -> list[bool]:
    """Which layers route their tokens through experts (the rest have a dense MLP), from the config's pattern fields."""
    pattern = reader.value("hybrid_override_pattern")
    first_dense = published_int(reader, "first_k_dense_replace") or 0
    dense_only = reader.value("mlp_only_layers") or []
    step = published_int(reader, "decoder_sparse_step") or 1
    period, offset = published_int(reader, "expert_layer_period"), published_int(reader, "expert_layer_offset")
    out: list[bool] = []
    for index in range(layers):
        if isinstance(pattern, str) and model_type == "nemotron_h":
            out.append(pattern[index] == "E")
        elif period:
            out.append(index % period == (offset or 0))
        else:
            out.append(index >= first_dense and index not in dense_only and (index + 1) % step == 0)
    return out


def expert_sizes(reader: Reader, hidden: int, width: int) -> tuple[int, int, int, int] | None:
    """``(experts, top_k, one expert's parameters, shared experts' parameters)`` of a MoE config; None for a dense
    one, or when the expert width is not published."""
    experts = published_int(reader, *EXPERT_FIELDS)
    top_k = published_int(reader, "num_experts_per_tok")
    if not experts or not top_k:
        return None
    expert_inter = published_int(reader, "moe_intermediate_size") or published_int(reader, "intermediate_size")
    if not expert_inter:
        return None
    shared = (published_int(reader, "n_shared_experts") or 0) * width * hidden * expert_inter
    for field in ("shared_expert_intermediate_size", "moe_shared_expert_intermediate_size"):
        shared_inter = published_int(reader, field)
        if shared_inter:
            shared = max(1, published_int(reader, "n_shared_experts") or 1) * width * hidden * shared_inter
    return experts, top_k, width * hidden * expert_inter, shared


def _mlp_params(reader: Reader, model_type: str, layers: int, hidden: int, width: int) -> list[int] | None:
    """The MLP parameters a token passes through in each layer (dense, or routed top-k + shared + router)."""
    dense_inter = published_int(reader, "intermediate_size")
    dense = width * hidden * dense_inter if dense_inter else None
    moe = expert_sizes(reader, hidden, width)
    if moe is None:
        if published_int(reader, *EXPERT_FIELDS) and published_int(reader, "num_experts_per_tok"):
            return None  # a MoE config without its expert width
        return None if dense is None else [dense] * layers
    experts, top_k, one, shared = moe
    routed = top_k * one + shared + hidden * experts
    out: list[int] = []
    for is_moe in moe_layers(reader, model_type, layers):
        if not is_moe and dense is None:
            return None
        out.append(routed if is_moe else dense or 0)
    return out
