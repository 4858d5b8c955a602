"""State layers (Mamba, Gated DeltaNet) under vLLM 0.33's native offloading: their page, the GPU block it forces, and
the states a prompt stores.

**The page and the block.** The state page per layer and rank is the sum of its ``MambaSpec`` shapes times their
dtypes (``MambaStateShapeCalculator``, ``MambaStateDtypeCalculator`` in ``model_executor/layers/mamba/mamba_utils.py``;
the shapes are read by ``kvsize.model.state``). ``Platform._align_hybrid_block_size`` (``vllm/platforms/interface.py``)
then raises the attention block until an attention page holds a state page, and pads the state page to it::

    align = lcm(max(kernel block of the attention backend, --block-size), checkpoint alignment)
    block = max(--block-size, align x cdiv(state_page, align x attention_page_per_token))

The kernel block is 16 (FlashAttention ``MultipleOf(16)``, FlashInfer ``[16, 32, 64]``). The checkpoint alignment
counts in ``mamba_cache_mode`` "align", which is on whenever prefix caching is (vLLM's default for hybrids;
``MambaModelConfig.verify_and_update_config``), and the native connector refuses a hybrid without it
(``build_offloading_config``). Only the Gated DeltaNet layer declares one: 64 tokens
(``FLASHINFER_GDN_CHECKPOINT_ALIGNMENT``, ``v1/attention/backends/gdn_attn.py``) when its prefill runs FlashInfer,
which ``_resolve_gdn_prefill_backend`` (``model_executor/layers/mamba/gdn/qwen_gdn_linear_attn.py``) picks on Hopper,
and on Blackwell when ``linear_key_head_dim`` is 128 (with the CUDA 13 runtime the PyPI wheel pins); Ampere and Ada
run Triton, with no alignment. Qwen3-Next is 576 / 320 tokens at TP 1 / 4 on Hopper and Blackwell, 544 / 272 on
Ampere and Ada.

**The states a prompt stores** (``stored_states``): see its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd, lcm
from typing import Literal

from kvsize.engines.layout import SweepRow
from kvsize.engines.options import EngineOptions
from kvsize.engines.serving import DTYPE_BYTES
from kvsize.engines.vllm_groups import STATE_KINDS
from kvsize.errors import ParallelismError
from kvsize.model.spec import ModelSpec
from kvsize.model.state import StateShape

KERNEL_BLOCK = 16
"""FlashAttention's smallest kernel block (``get_supported_kernel_block_sizes``: MultipleOf(16))."""
STATE_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
GpuArch = Literal["ampere", "ada", "hopper", "blackwell"]
DEFAULT_ARCH: GpuArch = "hopper"
BATCHED_TOKENS: dict[str, int] = {"ampere": 2_048, "ada": 2_048, "hopper": 8_192, "blackwell": 16_384}
"""``vllm serve``'s default ``max_num_batched_tokens`` (``EngineArgs.get_batch_defaults``, ``engine/arg_utils.py``):
16,384 on a GPU of 160 GiB or more (B200, B300), 8,192 on one of 70 GiB or more whose name has no "a100" (H100,
H200), else 2,048 (A100, L40S)."""
ARCH_GPUS = {"ampere": "A100", "ada": "L40S", "hopper": "H100, H200", "blackwell": "B200, B300"}
FLASHINFER_GDN_ALIGNMENT = 64
MAX_BATCHED_TOKENS = 1_000_000_000


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


def flashinfer_gdn(state: StateShape, arch: str) -> bool:
    """True when a Gated DeltaNet layer's prefill runs FlashInfer (``_resolve_gdn_prefill_backend`` with
    ``gdn_prefill_backend`` "auto"): Hopper, or Blackwell with ``linear_key_head_dim`` 128."""
    return state.kind == "gated_delta_net" and (arch == "hopper" or (arch == "blackwell" and state.dims["k_dim"] == 128))


def checkpoint_alignment(state: StateShape, arch: str) -> int:
    """``get_mamba_prefill_checkpoint_alignment(...) or 1`` in align mode: 64 for FlashInfer's Gated DeltaNet, else 1
    (Mamba1 and Mamba2 layers do not override ``get_prefill_checkpoint_alignment``)."""
    return FLASHINFER_GDN_ALIGNMENT if flashinfer_gdn(state, arch) else 1


def prefill_checkpoints(state: StateShape, arch: str) -> bool:
    """True when the state spec has ``num_prefill_checkpoint_blocks`` 1: Mamba2 (``MambaMixer2.get_kv_cache_spec``)
    and FlashInfer's Gated DeltaNet (``QwenGatedDeltaNetAttention.get_kv_cache_spec``); Mamba1 and Triton's have none."""
    return state.kind == "mamba2" or flashinfer_gdn(state, arch)


def aligned_block(block: int, state_page: int, attention_page_per_token: int, alignment: int = 1) -> int:
    """The attention block ``_align_hybrid_block_size`` picks (kernel block 16), with the checkpoint ``alignment``."""
    align = lcm(max(KERNEL_BLOCK, block), alignment)
    need = align * -(-state_page // (align * attention_page_per_token))
    return max(block, need)


@dataclass(frozen=True)
class StoredStates:
    """What one state group stores for a prompt, and what an identical resend reloads."""

    handed_over: int
    """States the scheduler hands the connector (every one a block boundary of the prompt)."""
    stored: int
    """Those at a multiple of the chunk: the objects the group stores."""
    resend_hit_tokens: int
    """Tokens an identical prompt reloads: the last stored state below the prompt's end, or 0 (nothing loads)."""
    step: int
    """Tokens between two non-final prefill chunk ends."""
    prompt: int
    block: int
    chunk: int


def _grid(prompt: int, block: int, budget: int) -> tuple[int, int]:
    """``(S, J)``: the non-final prefill chunks end at ``j x S`` for ``1 <= j <= J``.

    ``_mamba_block_aligned_split`` cuts a non-final chunk down to a block multiple (``aligned_end``), so a budget of
    at least a block gives ``S = B x floor(T / B)`` and ``J = cdiv(N - T, S)``; a block larger than the budget
    advances in sub-block steps and stops at every block boundary (``next_block_boundary``), up to the last one."""
    if block > budget:
        return block, (prompt - 1) // block
    step = block * (budget // block)
    return step, -(-(prompt - budget) // step) if prompt > budget else 0


def _residue_run(count: int, step: int, chunk: int, offset: int) -> tuple[int, int]:
    """How many ``j`` in ``[1, count]`` make ``j x step - offset`` a multiple of ``chunk``, and the largest such
    value (0 when none); ``step``, ``chunk`` and ``offset`` are multiples of the block ``offset`` or 0."""
    unit = gcd(step, chunk)
    if offset % unit:
        return 0, 0
    period = chunk // unit
    first = (offset // unit) * pow(step // unit, -1, period) % period if period > 1 else 0
    first = first or period
    if count < first:
        return 0, 0
    runs = (count - first) // period + 1
    return runs, (first + (runs - 1) * period) * step - offset


def stored_states(prompt: int, block: int, budget: int, chunk: int, checkpoints: bool) -> StoredStates:
    """The states one state group stores for a prompt of ``prompt`` tokens prefilled alone from token 0 (vLLM 0.33,
    ``mamba_cache_mode`` "align", dense retention, no EAGLE/MTP, ``prefix_match_unit`` unset).

    The scheduler ends prefill chunks on block multiples (``_mamba_block_aligned_split``,
    ``v1/core/sched/scheduler.py``) and ``MambaManager.cache_blocks`` (``v1/core/single_type_kv_cache_manager.py``)
    hands the connector the state at each block-aligned boundary reached:

    - every non-final chunk end ``j x S`` (``_grid``);
    - the prompt's last cacheable boundary ``lcp = floor((N - 1) / B) x B`` (``get_mamba_prefill_checkpoint_position``,
      ``v1/kv_cache_interface.py``), where the final chunk is split, or exported from inside it;
    - ``N`` itself when ``B`` divides it;
    - with prefill checkpoint blocks (Mamba2, FlashInfer's Gated DeltaNet), ``j x S - B`` of every chunk of at
      least ``2B`` (``is_mamba_prefill_checkpoint_valid``; under dense retention every chunk reserves one,
      ``KVCacheCoordinator.get_num_blocks_to_allocate``).

    The connector stores a state only at a multiple of the chunk ``C`` (``_build_aligned_boundary_store_jobs``,
    ``distributed/kv_transfer/kv_connector/v1/offloading/scheduler.py``), one object per group. A load treats a state
    group as a window of one chunk (``get_sliding_window_size_in_chunks`` is 1 for ``MambaSpec``,
    ``offloading/config.py``) and caps the hit at ``round_down(N - 1, C)`` (``_lookup_complete_chunks``), so an
    identical resend reloads up to the last stored state below ``N``, and nothing when there is none: the prompt's
    attention chunks are then stored but never loaded.
    """
    step, chunks = _grid(prompt, block, budget)
    last = (prompt - 1) // block * block
    ends, last_end = _residue_run(chunks, step, chunk, 0)
    handed, stored, hit = chunks, ends, last_end
    if checkpoints and step >= 2 * block:
        inner, last_inner = _residue_run(chunks, step, chunk, block)
        handed, stored, hit = handed + chunks, stored + inner, max(hit, last_inner)
    if last > chunks * step:
        handed += 1
        if last % chunk == 0:
            stored, hit = stored + 1, last
    if prompt % block == 0:
        handed += 1
        stored += prompt % chunk == 0
    return StoredStates(
        handed_over=handed, stored=stored, resend_hit_tokens=hit, step=step, prompt=prompt, block=block, chunk=chunk
    )


def state_block(spec: ModelSpec, options: EngineOptions, page_per_token: int) -> tuple[int, list[str]]:
    """The GPU block a state model forces (``_align_hybrid_block_size``), and the notes saying what its states are,
    what the counts assume, and, unless the block given is kept, that the block is derived."""
    assert spec.state is not None
    settings = options.settings
    arch: str = settings.gpu_arch  # type: ignore[attr-defined]
    model_bytes = DTYPE_BYTES.get(spec.config_dtype or "", 2)  # the conv state is in the model's dtype (bf16 if unsure)
    state_page = state_page_bytes(spec.state, options.tp, model_bytes)
    alignment = checkpoint_alignment(spec.state, arch)
    given: int | None = settings.gpu_block_size  # type: ignore[attr-defined]
    block = aligned_block(given or KERNEL_BLOCK, state_page, page_per_token, alignment)
    state_layers = sum(1 for kind in spec.layer_kinds if kind in STATE_KINDS)
    checkpoints = prefill_checkpoints(spec.state, arch)
    notes = [
        f"{state_layers} state layers ({spec.state.kind}, {spec.state.source}): {state_page:,} B of state per layer "
        "and rank, padded to the attention page; each state group stores the state at the prompt's block-aligned "
        f"prefill chunk ends{' and one block before each (a prefill checkpoint)' if checkpoints else ''}, at its last "
        "block boundary and at its end when a block divides it, each stored only at a multiple of the chunk (vLLM's "
        "mamba_cache_mode 'align', on with prefix caching, its default for hybrids)",
        _budget_note(spec, options, block),
    ]
    if given is None or block != given:
        aligned = " and FlashInfer's 64-token Gated DeltaNet checkpoint alignment" if alignment > 1 else ""
        notes.append(
            f"approximate: vLLM raises the GPU block to fit that state, here to {block} tokens assuming a 16-token "
            f"attention kernel block{aligned}; if vLLM logs 'Setting attention block size to N tokens', give "
            "--gpu-block-size N"
        )
    return block, notes


def prefill_budget(options: EngineOptions) -> int:
    """``max_num_batched_tokens`` given, else ``vllm serve``'s default for the GPU generation."""
    settings = options.settings
    given: int | None = settings.max_num_batched_tokens  # type: ignore[attr-defined]
    return given or BATCHED_TOKENS[settings.gpu_arch]  # type: ignore[attr-defined]


def _budget_note(spec: ModelSpec, options: EngineOptions, block: int) -> str:
    """The GPU generation and the prefill budget the state counts rest on."""
    assert spec.state is not None
    settings = options.settings
    arch: str = settings.gpu_arch  # type: ignore[attr-defined]
    budget = prefill_budget(options)
    named = "" if "gpu_arch" in settings.model_fields_set else " (the default; --gpu-arch)"
    source = (
        "given"
        if settings.max_num_batched_tokens is not None  # type: ignore[attr-defined]
        else f"vllm serve's default on {ARCH_GPUS[arch]}, engine/arg_utils.py get_batch_defaults"
    )
    ends = (
        f"non-final chunks end every {block * (budget // block):,} tokens"
        if block <= budget
        else f"a {block:,}-token block is more than that, so chunks stop at every block boundary"
    )
    kernel = ""
    if spec.state.kind == "gated_delta_net":
        kernel = "; Gated DeltaNet prefill runs " + (
            "FlashInfer (64-token checkpoint alignment)" if flashinfer_gdn(spec.state, arch) else "Triton"
        )
    return (
        f"GPU {arch}{named}: prefill chunks of at most {budget:,} tokens (max_num_batched_tokens, {source}), cut to "
        f"multiples of the {block:,}-token block (scheduler.py _mamba_block_aligned_split): {ends}{kernel}; the state "
        "counts assume the prompt is prefilled alone from token 0 (other requests in the same steps move the chunk ends)"
    )


def state_rule(states: StoredStates | None, checkpoints: bool) -> str:
    """How a state group's count comes about, for ``--explain``."""
    assert states is not None
    checkpoint = " and one block before each" if checkpoints and states.step >= 2 * states.block else ""
    end = f", the end {states.prompt:,}" if states.prompt % states.block == 0 else ""
    return (
        f"states at the chunk ends every {states.step:,} tokens{checkpoint}, the last block boundary "
        f"{(states.prompt - 1) // states.block * states.block:,}{end}: {states.handed_over:,} handed over, those at a "
        f"multiple of {states.chunk:,} stored"
    )


def resend_notes(hits: Sequence[tuple[SweepRow, StoredStates]], state_objects_per_state: int) -> list[str]:
    """What an identical resend reloads at each chunk, and the chunks at which no state is stored where a reload could
    use it, so the prompt's attention objects there are never loaded (``state_objects_per_state``: the objects one
    stored state makes, all state groups and writers)."""
    notes = [
        "An identical resend reloads up to the last stored state below the prompt's end (offloading/scheduler.py "
        "_lookup_complete_chunks: a state group is a window of one chunk): "
        + "; ".join(f"chunk {row.chunk_tokens:,}: {states.resend_hit_tokens:,} tokens" for row, states in hits)
    ]
    lost = [(row, states) for row, states in hits if states.resend_hit_tokens == 0 and row.objects]
    if lost:
        attention = [row.objects - states.stored * state_objects_per_state for row, states in lost]
        notes.append(
            f"chunk {', '.join(f'{row.chunk_tokens:,}' for row, _ in lost)}: no state is stored at a boundary a reload "
            "can use (states are stored only at multiples of the chunk), so the prompt's attention objects there ("
            + ", ".join(f"{count:,}" for count in attention)
            + ") are stored but never loaded: a resend reloads 0 tokens"
        )
    return notes
