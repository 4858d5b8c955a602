"""State layers (Mamba, Gated DeltaNet) under vLLM 0.33's native offloading: their page, and the GPU block it forces.

The state page per layer and rank is the sum of its ``MambaSpec`` shapes times their dtypes
(``MambaStateShapeCalculator``, ``MambaStateDtypeCalculator`` in ``model_executor/layers/mamba/mamba_utils.py``;
the shapes are read by ``kvsize.model.state``). ``Platform._align_hybrid_block_size``
(``vllm/platforms/interface.py``) then raises the attention block until an attention page holds a state page,
and pads the state page to it::

    align = max(kernel block of the attention backend, --block-size)
    block = align x cdiv(state_page, align x attention_page_per_token)

The kernel block is the attention backend's (16 for FlashAttention on Hopper); with prefix caching on,
``mamba_cache_mode`` "align" also aligns it to the Mamba layers' prefill checkpoint. kvsize takes the kernel
block as 16 and no checkpoint alignment: an approximation the output states, with the way to correct it
(``--gpu-block-size`` N, the block vLLM logs as "Setting attention block size to N tokens").
"""

from __future__ import annotations

from kvsize.errors import ParallelismError
from kvsize.model.state import StateShape

KERNEL_BLOCK = 16
"""FlashAttention's smallest kernel block (``get_supported_kernel_block_sizes``: MultipleOf(16))."""
STATE_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def _divide(value: int, tp: int, what: str) -> int:
    """vLLM's ``divide``: the shard size, or the error vLLM raises when ``tp`` does not divide it."""
    if value % tp:
        raise ParallelismError(f"`tp` {tp} does not divide the state's {what} ({value:,}): vLLM refuses it", field="tp")
    return value // tp


def state_page_bytes(state: StateShape, tp: int, model_dtype_bytes: int) -> int:
    """One state layer's page on one rank: conv state in the model's dtype, SSM state in ``ssm_dtype``."""
    d = state.dims
    ssm_bytes = STATE_DTYPE_BYTES.get(state.ssm_dtype or "", model_dtype_bytes)
    taps = d["conv_kernel"] - 1
    if state.kind == "mamba1":
        inner = _divide(d["expand"] * d["hidden"], tp, "intermediate size (mamba_expand x hidden_size)")
        return inner * taps * model_dtype_bytes + inner * d["state"] * ssm_bytes
    if state.kind == "mamba2":
        intermediate = d["expand"] * d["hidden"] if "expand" in d else d["heads"] * d["head_dim"]
        groups = d["groups"] + (0 if d["groups"] % tp == 0 else tp - d["groups"])  # extra_groups_for_head_shards
        conv = _divide(intermediate + 2 * groups * d["state"], tp, "conv dimension") * taps
        ssm = _divide(d["heads"], tp, "Mamba heads") * d["head_dim"] * d["state"]
        return conv * model_dtype_bytes + ssm * ssm_bytes
    conv_dim = d["k_dim"] * d["k_heads"] * 2 + d["v_dim"] * d["v_heads"]
    conv = _divide(conv_dim, tp, "conv dimension") * taps
    ssm = _divide(d["v_heads"], tp, "value heads") * d["v_dim"] * d["k_dim"]
    return conv * model_dtype_bytes + ssm * ssm_bytes


def aligned_block(block: int, state_page: int, attention_page_per_token: int) -> int:
    """The attention block ``_align_hybrid_block_size`` picks (kernel block taken as 16, no checkpoint alignment)."""
    align = max(KERNEL_BLOCK, block)
    need = align * -(-state_page // (align * attention_page_per_token))
    return max(block, need)
