"""The first tier, GPU memory: what vLLM 0.33 gives the KV cache on each GPU, the tokens that fit, and the
"Maximum concurrency" it logs, from the engine's GPU layout (``Engine.gpu_pages``).

- KV memory per GPU: ``--kv-cache-memory-bytes`` when given (exact, ``gpu_worker.py`` ``determine_available_memory``);
  else ``ceil(memory x gpu_memory_utilization)`` (``v1/worker/utils.py`` ``request_memory``) less the weights on
  the GPU and the runtime overhead (activation peak, non-torch memory, CUDA graphs): an estimate.
- ``num_blocks = kv_bytes // bytes_per_block``, with ``bytes_per_block`` the widest group's layers x one layer's page
  (``v1/core/kv_cache_planning.py`` ``_get_kv_cache_bytes_per_block``); every group draws from that one pool, and
  each group holds ``num_blocks x block`` tokens.
- Maximum concurrency = ``num_blocks / blocks one request needs``, summed over groups
  (``kv_cache_utils.py`` ``get_max_concurrency_for_kv_cache_config``): ``cdiv(L, block)`` for full and MLA,
  ``cdiv(min(w - 1 + in_flight, L), block) + 1`` for a sliding window, ``cdiv(min(c + in_flight, L), block)`` for
  a local chunk, with ``in_flight = max_concurrent_batches x max_num_batched_tokens``; vLLM logs
  ``int(concurrency x L)`` tokens.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict

from kvsize.engines.base import GpuPages, Layout
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError
from kvsize.gpu import GIB, Gpu, default_batched_tokens
from kvsize.model.spec import ModelSpec
from kvsize.units import format_iec

OVERHEAD_GIB = {"activation peak": 0.32, "non-torch memory": 0.09, "CUDA graphs": 0.21}
"""The smallest published of each piece of vLLM's runtime memory inside the budget (an estimate at the favourable end,
as the storage presets take theirs): vLLM start-up logs (vllm-project/vllm#14452, #15340, #11251: activation peak
0.32 to 2.53 GiB, non-torch 0.09 to 1.39 GiB) and PR #11349 (CUDA graphs 0.21 GiB; up to 0.62 GiB in PR #5515)."""
OVERHEAD_BYTES = round(sum(OVERHEAD_GIB.values()) * GIB)
OVERHEAD_SOURCE = (
    "vLLM's runtime memory inside the budget, estimated at the smallest published figures (activation peak 0.32, "
    "non-torch 0.09, CUDA graphs 0.21 GiB; up to 4.5 GiB in published logs): give --kv-cache-memory-bytes for vLLM's own "
    "figure (its log line 'Available KV cache memory')"
)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class GpuReport(BaseModel):
    """The GPU tier: vLLM's KV memory on each GPU, the tokens that fit, and the concurrency it logs (the JSON's ``gpu``)."""

    model_config = ConfigDict(frozen=True)

    gpu: str | None
    """The GPU's name in kvsize's table; null for ``gpu_memory`` or ``kv_cache_memory_bytes`` alone."""
    gpu_memory_bytes: int | None
    """The GPU's memory as CUDA reports it (``mem_get_info`` total); null when only ``kv_cache_memory_bytes`` is given."""
    gpu_memory_utilization: float | None
    requested_bytes: int | None
    """``ceil(memory x utilization)``: what vLLM may use on each GPU."""
    weights_bytes_per_gpu: int | None
    weights_parameters: int | None
    weights_rule: str | None
    overhead_bytes: int | None
    kv_cache_bytes: int
    """KV memory per GPU (vLLM's ``available_memory``)."""
    kv_cache_bytes_exact: bool
    """True when given (``kv_cache_memory_bytes``), false when estimated."""
    block_tokens: int
    bytes_per_block: int
    num_blocks: int
    kv_cache_groups: int
    tokens_that_fit: int
    """``num_blocks x block``: the tokens each group holds."""
    max_model_len: int
    blocks_per_request: int
    max_concurrency: float
    kv_cache_size_tokens: int
    """vLLM's "GPU KV cache size: N tokens": ``int(max_concurrency x max_model_len)``."""
    max_num_batched_tokens: int
    prefix_cache_blocks: int
    """Blocks a replay's GPU tier holds prefixes in: ``(num_blocks - 1) // groups`` (block 0 is vLLM's null block)."""
    rule: str
    notes: list[str]


def _request_blocks(pages: GpuPages, max_model_len: int, in_flight: int) -> int:
    block, total = pages.block_tokens, 0
    for group in pages.groups:
        if group.kind == "sliding_attention" and group.window_tokens:
            total += _cdiv(min(group.window_tokens - 1 + in_flight, max_model_len), block) + 1
        elif group.kind == "chunked_attention" and group.window_tokens:
            total += _cdiv(min(group.window_tokens + in_flight, max_model_len), block)
        else:
            total += _cdiv(max_model_len, block)
    return total


def _kv_bytes(spec: ModelSpec, layout: Layout, gpu: Gpu) -> tuple[int, dict[str, object], list[str]]:
    """KV bytes per GPU, the figures behind them, and notes."""
    if gpu.kv_cache_memory_bytes is not None:
        figures: dict[str, object] = {"requested_bytes": None, "weights_bytes_per_gpu": None, "overhead_bytes": None}
        return gpu.kv_cache_memory_bytes, figures, ["KV cache per GPU given (--kv-cache-memory-bytes): exact"]
    memory = gpu.memory_bytes
    assert memory is not None
    if spec.weights is None:
        raise KvsizeError(
            f"`gpu`: {spec.name}'s weights cannot be counted ({spec.weights_problem}); give `kv_cache_memory_bytes` instead",
            field="gpu",
        )
    gpus = layout.options.tp * layout.options.pp
    weights = _cdiv(spec.weights.bytes, gpus)
    requested = math.ceil(memory * gpu.gpu_memory_utilization)  # as vLLM computes it, in floating point
    kv = requested - weights - OVERHEAD_BYTES
    if kv <= 0:
        raise KvsizeError(
            f"`gpu`: {spec.name} does not fit on {gpu.label} at TP {layout.options.tp} x PP {layout.options.pp}: "
            f"{format_iec(weights)} of weights per GPU + {format_iec(OVERHEAD_BYTES)} of runtime memory leave nothing of "
            f"{gpu.gpu_memory_utilization:g} x {format_iec(memory)} for the KV cache; raise `tp` or `pp`",
            field="gpu",
        )
    figures = {"requested_bytes": requested, "weights_bytes_per_gpu": weights, "overhead_bytes": OVERHEAD_BYTES}
    notes = [
        f"KV cache per GPU estimated: ceil({gpu.gpu_memory_utilization:g} x {memory:,} B) - {weights:,} B of weights "
        f"({spec.weights.parameters:,} parameters, {spec.weights.rule}, split over {gpus} GPU{'s' if gpus != 1 else ''}) - "
        f"{OVERHEAD_BYTES:,} B of {OVERHEAD_SOURCE}",
    ]
    if gpu.gpu_memory_utilization == 0.92 and "gpu_memory_utilization" not in gpu.model_fields_set:
        notes.append("gpu_memory_utilization 0.92: vLLM 0.33's default (vllm/config/cache.py; releases before it used 0.9)")
    return kv, figures, notes


def plan_gpu(spec: ModelSpec, layout: Layout, gpu: Gpu, max_model_len: int) -> GpuReport:
    """vLLM's GPU KV cache for ``layout``'s engine on ``gpu``: blocks, tokens that fit, concurrency at ``max_model_len``."""
    pages = engine_for(layout.engine).gpu_pages(layout, spec)
    kv, figures, notes = _kv_bytes(spec, layout, gpu)
    per_block = pages.bytes_per_block
    blocks = kv // per_block
    if blocks < 2:
        raise KvsizeError(
            f"`gpu`: {format_iec(kv)} of KV memory per GPU holds {blocks} block{'s' if blocks != 1 else ''} of "
            f"{format_iec(per_block)}; vLLM needs more to start: raise `kv_cache_memory_bytes` or `tp`",
            field="kv_cache_memory_bytes" if gpu.kv_cache_memory_bytes is not None else "gpu",
        )
    memory = gpu.memory_bytes
    batched = default_batched_tokens(memory or 0, gpu.gpu)
    batches = 2 if layout.options.pp == 1 else layout.options.pp
    per_request = _request_blocks(pages, max_model_len, batches * batched)
    concurrency = blocks / per_request
    if concurrency < 1:
        notes.append(
            f"one {max_model_len:,}-token request needs {per_request:,} blocks and {blocks:,} fit: vLLM refuses to start "
            "at this max_model_len (_check_enough_kv_cache_memory)"
        )
    if any(group.window_tokens for group in pages.groups):
        notes.append(
            f"windowed groups reserve for {batches} x {batched:,} tokens in flight (max_concurrent_batches x "
            "max_num_batched_tokens, vLLM serve's default for this GPU's memory)"
        )
    return GpuReport(
        gpu=gpu.gpu.lower() if gpu.gpu else None,
        gpu_memory_bytes=memory,
        gpu_memory_utilization=None if gpu.kv_cache_memory_bytes is not None else gpu.gpu_memory_utilization,
        weights_parameters=spec.weights.parameters if spec.weights and gpu.kv_cache_memory_bytes is None else None,
        weights_rule=spec.weights.rule if spec.weights and gpu.kv_cache_memory_bytes is None else None,
        kv_cache_bytes=kv,
        kv_cache_bytes_exact=gpu.kv_cache_memory_bytes is not None,
        block_tokens=pages.block_tokens,
        bytes_per_block=per_block,
        num_blocks=blocks,
        kv_cache_groups=len(pages.groups),
        tokens_that_fit=blocks * pages.block_tokens,
        max_model_len=max_model_len,
        blocks_per_request=per_request,
        max_concurrency=concurrency,
        kv_cache_size_tokens=int(concurrency * max_model_len),
        max_num_batched_tokens=batched,
        prefix_cache_blocks=(blocks - 1) // len(pages.groups),
        rule=pages.rule,
        notes=notes,
        **figures,  # type: ignore[arg-type]
    )
