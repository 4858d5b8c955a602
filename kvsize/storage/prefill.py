"""The prefill estimate: how fast recomputed tokens come back, from the model's parameter count."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.errors import BackendError, shown
from kvsize.gpu import GPUS as GPU_TABLE

GPUS = {name: (gpu.bf16_flops, gpu.flops_source) for name, gpu in GPU_TABLE.items()}
"""Dense BF16 Tensor Core peak per GPU, from vendor datasheets (``kvsize.gpu.GPUS``, with the GPUs' memory)."""
DEFAULT_MFU = 0.4


class PrefillEstimate(BaseModel):
    """Prefill throughput for recomputed tokens, and the assumption behind it."""

    model_config = ConfigDict(frozen=True)

    tokens_per_s: float
    assumption: str


def estimate_prefill(
    active_params: int | None, attention: tuple[int, int, int] | None, gpus: int, gpu: str, mfu: float, context_tokens: int
) -> PrefillEstimate | None:
    """Tokens/s from FLOPs: ``2 x active params + 4 x attention layers x heads x head size x context`` per token
    (the recomputed tokens sit at the end of the prompt, so each attends to about the whole context).

    None when the config does not give a parameter count.
    """
    if active_params is None or attention is None:
        return None
    if gpu not in GPUS:
        raise BackendError(f"unknown `gpu` {shown(gpu)}: use one of {', '.join(GPUS)}, or give `prefill_tps`")
    peak, source = GPUS[gpu]
    layers, heads, head_size = attention
    flops_per_token = 2 * active_params + 4 * layers * heads * head_size * context_tokens
    tokens_per_s = gpus * peak * mfu / flops_per_token
    return PrefillEstimate(
        tokens_per_s=tokens_per_s,
        assumption=(
            f"prefill ~{tokens_per_s:,.0f} tokens/s estimated: {gpus} x {gpu} ({source}) at {mfu:.0%} utilisation, "
            f"{flops_per_token / 1e9:,.1f} GFLOP/token (2 x {active_params / 1e9:.2f} B active parameters + attention "
            f"over {context_tokens:,} tokens); give --prefill-tps for a measured figure"
        ),
    )
