"""vLLM 0.33's KV-cache groups for attention layers, ported from ``vllm/v1/core/kv_cache_planning.py``.

``get_kv_cache_groups``: a model whose layers share one spec is one group; otherwise (the hybrid
allocator, on under the native offloading connector) ``_get_kv_cache_groups_uniform_page_size``:

1. bucket the layers by spec, in order of first appearance (full, sliding with its window, chunked
   local with its chunk; specs of different types never merge);
2. ``group_size`` is the smallest bucket's layer count, or the largest's when
   ``max < 1.5 x min`` (gpt-oss-20b + EAGLE: 12 sliding + 13 full pad to 13 each);
3. a bucket of ``n`` layers becomes ``cdiv(n, group_size)`` groups, the i-th holding
   ``layers[i::num_groups]``.

Every group's block is one shared slot: the per-layer page times the layers of the largest
group on the worker (the groups share the backing KV tensors), which is why every group's
object has the same size. State layers (Mamba, Gated DeltaNet: ``MambaSpec``) form groups of their own
the same way, their page padded to the attention page (``kvsize.engines.vllm_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from kvsize.engines.base import KvGroup
from kvsize.model.spec import LayerKind, ModelSpec

if TYPE_CHECKING:
    from kvsize.engines.vllm_state import StoredStates

STATE_KIND_NAMES = frozenset({"mamba", "linear_attention"})
GROUP_SIZE_SLACK = 1.5
"""``max_num_layers < min_num_layers * 1.5``: use the largest bucket's count as the group size."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


STATE_KINDS = frozenset({LayerKind.MAMBA, LayerKind.LINEAR})
"""Layer kinds vLLM stores as ``MambaSpec`` state (one state per sequence, not per token)."""


def _buckets(spec: ModelSpec) -> list[tuple[LayerKind, list[int]]]:
    """Layers bucketed by spec, in order of first appearance (``same_type_layers``)."""
    buckets: dict[LayerKind, list[int]] = {}
    for index, kind in enumerate(spec.layer_kinds):
        if kind.keeps_kv or kind in STATE_KINDS:
            buckets.setdefault(kind, []).append(index)
    return list(buckets.items())


def kv_cache_groups(spec: ModelSpec) -> tuple[KvGroup, ...]:
    """The model's KV-cache groups, as vLLM 0.33 forms them for its attention layers."""
    buckets = _buckets(spec)
    window = spec.sliding_window

    def group(kind: LayerKind, layers: Sequence[int]) -> KvGroup:
        return KvGroup(kind=kind.value, layers=tuple(layers), window_tokens=window if kind is LayerKind.SLIDING else None)

    if len(buckets) == 1:
        kind, layers = buckets[0]
        return (group(kind, layers),)
    sizes = [len(layers) for _, layers in buckets]
    group_size = min(sizes)
    if max(sizes) < min(sizes) * GROUP_SIZE_SLACK:
        group_size = max(sizes)
    groups: list[KvGroup] = []
    for kind, layers in buckets:
        count = _cdiv(len(layers), group_size)
        groups.extend(group(kind, layers[i::count]) for i in range(count))
    return tuple(groups)


def slot_layers(groups: Sequence[KvGroup], first: int, count: int) -> int:
    """Layers in one block's shared slot on a worker holding layers [first, first + count): the largest group's."""
    return max(sum(1 for layer in g.layers if first <= layer < first + count) for g in groups)


def window_chunks(window_tokens: int, chunk_tokens: int) -> int:
    """``get_sliding_window_size_in_chunks`` (``offloading/config.py``) with ``extra_retained_tokens`` 0:
    ``max(cdiv(w, C), cdiv(w - 1, C))``."""
    return max(_cdiv(window_tokens, chunk_tokens), _cdiv(window_tokens - 1, chunk_tokens))


def stored_chunks(group: KvGroup, prompt_tokens: int, chunk_tokens: int, states: StoredStates | None = None) -> int:
    """Chunks a group stores for one prompt.

    Full and chunked-local groups store every full chunk, ``floor(N / C)`` (no store filter; the
    local chunk matters only for loads). A sliding-window group stores only the last
    ``window_chunks`` chunks the load path can reach, and never the chunk ending at the prompt's
    last token: the scheduler's reachable boundary is ``num_prompt_tokens - 1``
    (``offloading/scheduler.py`` ``_build_store_jobs``; ``SlidingWindowManager.reachable_block_mask``),
    so ``min(window_chunks, floor((N - 1) / C))``. A state group stores the states ``states`` counts
    (``kvsize.engines.vllm_state.stored_states``: the block-aligned prefill chunk ends that a chunk ends at).
    """
    if group.kind in STATE_KIND_NAMES:
        if states is None:
            raise ValueError("a state group's chunks need the prompt's states (vllm_state.stored_states)")
        return states.stored
    if group.window_tokens is None:
        return prompt_tokens // chunk_tokens
    return min(window_chunks(group.window_tokens, chunk_tokens), (prompt_tokens - 1) // chunk_tokens)
