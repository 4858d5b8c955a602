"""vLLM native and llm-d under a replay and in GPU memory: what a prompt stores per KV-cache group, how the groups
share GPU blocks, and vLLM's CPU tier; ``VllmTiers`` gives the engines of ``kvsize.engines.vllm_native`` these
answers, and their rows (``plan_row``, and ``chunk_row``: one chunk of one group) from their own ``_row``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from kvsize.engines.base import Engine, GpuGroup, GpuPages, KvGroup, Layout, StoredChunks, StoredGroup, SweepRow
from kvsize.engines.vllm_groups import STATE_KIND_NAMES, window_chunks
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind

if TYPE_CHECKING:
    from kvsize.model.spec import ModelSpec

CPU_TIER_NOTE = (
    "vLLM's CPU tier evicts least-recently-used chunks (eviction_policy lru: v1/kv_offload/cpu/policies/lru.py), an "
    "older request's first and a request's tail before its head; its fs and obj tiers never evict "
    "(tiering/fs/manager.py), so storage is unlimited unless `storage_capacity` is given"
)


def stored_chunks(groups: tuple[KvGroup, ...], engine: str, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
    """Per group, as ``vllm_groups.stored_chunks`` counts them: a full or chunked-local group every whole chunk; a
    sliding-window group the ``window_chunks`` before the last reachable boundary, N - 1. With a sliding-window group a
    load covers at most N - 1 tokens (``OffloadingConnectorScheduler._lookup_complete_chunks``: "the last prompt token
    has to be recomputed"), and that group needs its window's chunks before the hit (``_sliding_window_lookup``)."""
    stored = []
    for group in groups:
        if group.kind in STATE_KIND_NAMES:
            raise UnsupportedModelError(
                f"a replay under `engine` {engine} of a model with state layers ({group.kind}): kvsize does not yet "
                "replay which states vLLM stores per request; use `engine` lmcache for the attention layers",
                field="engine",
            )
        if group.window_tokens is None:
            stored.append(StoredGroup(start=0, stop=prompt_tokens // chunk_tokens))
            continue
        reachable = (prompt_tokens - 1) // chunk_tokens
        window = window_chunks(group.window_tokens, chunk_tokens)
        stored.append(StoredGroup(start=max(0, reachable - window), stop=reachable, window=window))
    windowed = any(group.window_tokens is not None for group in groups)
    return StoredChunks(groups=tuple(stored), max_hit_tokens=prompt_tokens - 1 if windowed else prompt_tokens)


def gpu_pages(groups: tuple[KvGroup, ...], engine: str, layout: Layout, spec: ModelSpec) -> GpuPages:
    """vLLM keeps its KV-cache groups (the connector supports the hybrid allocator): a block is the widest group's
    layers on the busiest worker times one layer's page (``_get_kv_cache_bytes_per_block``)."""
    if any(group.kind in STATE_KIND_NAMES for group in groups):
        raise UnsupportedModelError(
            f"`gpu`: {spec.name} has state layers, whose GPU pages kvsize does not size under `engine` {engine} yet; "
            "drop `gpu`, or use `engine` lmcache",
            field="gpu",
        )
    kind = LayerKind.MLA if spec.use_mla else LayerKind.FULL
    per_layer = kind.bytes_per_token(layout.heads_per_rank, layout.head_size, layout.dtype_bytes)
    block = layout.block_tokens or 16
    windows = {"sliding_attention": spec.sliding_window, "chunked_attention": spec.attention_chunk_size}
    return GpuPages(
        block_tokens=block,
        page_bytes_per_layer=block * per_layer,
        layers_per_block=max(stage.bytes_per_token_per_rank for stage in layout.stages) // per_layer,
        groups=tuple(GpuGroup(kind=group.kind, window_tokens=windows.get(group.kind)) for group in groups),
        rule=f"vLLM's {len(groups)} KV-cache group{'s' if len(groups) != 1 else ''} share one pool of blocks (the "
        "native connector supports the hybrid allocator; kv_cache_planning.py get_kv_cache_groups)",
    )


def cpu_tier_chunks(per_worker_files: bool, chunk_row: SweepRow, cpu_bytes: int) -> tuple[int, str]:
    """vLLM's CPU tier: ``cpu_bytes_to_use // object`` slots of one (chunk, group) each (``v1/kv_offload/cpu/spec.py``)."""
    if per_worker_files:
        raise UnsupportedModelError("`cpu_tier`: llm-d's fs connector has no CPU tier; drop it", field="cpu_tier")
    slots = cpu_bytes // max(1, chunk_row.object_bytes)
    return slots, f"cpu_bytes_to_use {cpu_bytes:,} B / {chunk_row.object_bytes:,} B per (chunk, group) slot"


def _groups(layout: Layout) -> tuple[KvGroup, ...]:
    groups: tuple[KvGroup, ...] = getattr(layout, "groups")  # noqa: B009 - a VllmLayout's, read without importing it
    return groups


class VllmTiers(Engine):
    """The vLLM family's rows and its answers for the GPU tier and a replay."""

    per_worker_files: ClassVar[bool]

    def _row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int, counted: list[tuple[KvGroup, int]]) -> SweepRow:
        raise NotImplementedError

    def _group_rows(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> list[tuple[KvGroup, int]]:
        raise NotImplementedError

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return self._row(layout, prompt_tokens, chunk_tokens, self._group_rows(layout, prompt_tokens, chunk_tokens))

    def chunk_row(self, layout: Layout, chunk_tokens: int) -> SweepRow:
        """One (chunk, group) object (vLLM native), or one per worker (llm-d)."""
        return self._row(layout, chunk_tokens, chunk_tokens, [(_groups(layout)[0], 1)])

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        return stored_chunks(_groups(layout), self.name, prompt_tokens, chunk_tokens)

    def gpu_pages(self, layout: Layout, spec: ModelSpec) -> GpuPages:
        return gpu_pages(_groups(layout), self.name, layout, spec)

    def cpu_tier_chunks(self, layout: Layout, chunk_row: SweepRow, cpu_bytes: int) -> tuple[int, str]:
        return cpu_tier_chunks(self.per_worker_files, chunk_row, cpu_bytes)

    def replay_notes(self, layout: Layout) -> list[str]:
        return [CPU_TIER_NOTE]
