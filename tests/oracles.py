"""Each engine's object rule, written again from its documentation, never from kvsize's code: the oracles the engine
contract test and the property tests hold every registered engine to.

An oracle reads only a model's public fields (``ModelSpec``), how it is served (``kvsize.Serving``) and the engine's
settings, and answers three questions: does the engine refuse this model and serving (``refuses``), which chunk sizes
does it take (``takes``), and what does one prompt store at one chunk size (``row``). The sources are docs/rules.md
(LMCache), docs/engines.md and each engine module's docstring (vLLM native, llm-d fs, SGLang HiCache, Dynamo KVBM).

A new engine brings its oracle here: ``tests/test_engines_contract.py`` fails for a registered engine without one.
``check_row`` holds what every engine's rows keep, whatever its rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvsize.engines.base import Layout, SweepRow
from kvsize.model.spec import ModelSpec

KV_KINDS = frozenset({"full_attention", "sliding_attention", "chunked_attention", "mla"})
"""Layer kinds whose KV cache grows with every token."""
STATE_KINDS = frozenset({"mamba", "linear_attention", "conv"})
PAGE = 4096
"""vLLM rounds each object up to ``mmap.PAGESIZE`` (docs/engines.md)."""
LMCACHE_HEADERS = {"fs": 28, "mooncakestore": 28, "redis": 28, "gds": 8192, "weka": 8192}
"""Header bytes per object (docs/rules.md, ``save_chunk_meta``); every other connector stores none."""


@dataclass(frozen=True)
class Case:
    """One model, served one way, under one engine's settings."""

    spec: ModelSpec
    serving: Any
    """A ``kvsize.Serving``: tp, pp, kv_dtype, draft_layers, pp_partition."""
    settings: Any
    """The engine's settings object (its fields are read by name)."""


@dataclass(frozen=True)
class Expected:
    """What one prompt stores at one chunk size."""

    objects: int
    object_bytes: int
    """The largest object."""
    total_bytes: int
    stored_bytes: int
    objects_per_writer: int
    """The busiest writer's objects."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def kinds(spec: ModelSpec) -> list[str]:
    return [kind.value for kind in spec.layer_kinds]


def mla(spec: ModelSpec) -> bool:
    return "mla" in kinds(spec)


def dtype_bytes(case: Case) -> int:
    """vLLM's KV dtype: the one given; auto: a checkpoint's KV scheme (fp8), else the config's dtype (16-bit, and float32
    or none is served as bf16) (docs/rules.md)."""
    dtype = case.serving.kv_dtype
    if dtype == "auto":
        return 1 if case.spec.kv_cache_quant else 2
    return 1 if dtype.startswith("fp8") else 2


def heads_per_rank(case: Case) -> int:
    """``max(1, H_kv // TP)``; MLA keeps one latent."""
    return 1 if mla(case.spec) else max(1, case.spec.num_kv_heads // case.serving.tp)


def per_layer_bytes(case: Case) -> int:
    """One layer's KV per token on one rank: (2 for K and V, 1 for MLA) x heads per rank x head x dtype."""
    return (1 if mla(case.spec) else 2) * heads_per_rank(case) * case.spec.head_size * dtype_bytes(case)


def vllm_split(layers: int, pp: int) -> list[int]:
    """vLLM ``get_pp_indices``: ``n // pp`` each, the remainder one each to the stages before the last, counting back."""
    split = [layers // pp] * pp
    for back in range(2, layers % pp + 2):
        split[-back] += 1
    return split


def sglang_split(layers: int, pp: int) -> list[int]:
    """SGLang ``get_pp_indices``: ``n // pp`` each, the last ``n % pp`` stages one more."""
    return [layers // pp + (1 if index >= pp - layers % pp else 0) for index in range(pp)]


def stage_ranges(case: Case, split: Any = vllm_split) -> list[range]:
    """Each stage's layers: ``pp_partition`` when given, else the engine's split."""
    partition = case.serving.pp_partition or split(len(case.spec.layer_kinds), case.serving.pp)
    ranges, first = [], 0
    for count in partition:
        ranges.append(range(first, first + count))
        first += count
    return ranges


def vllm_refuses(case: Case) -> bool:
    """What vLLM itself rejects, whatever the engine: a TP that does not divide the attention heads, or that neither
    divides nor is a multiple of the KV heads; a PP longer than the layers; a partition that does not add up."""
    spec, tp, pp = case.spec, case.serving.tp, case.serving.pp
    if spec.num_attention_heads % tp:
        return True
    kv = spec.num_kv_heads
    if not mla(spec) and ((tp >= kv and tp % kv) or (tp < kv and kv % tp)):
        return True
    partition = case.serving.pp_partition
    return pp > len(spec.layer_kinds) or (partition is not None and sum(partition) != len(spec.layer_kinds))


def largest(per_token: list[int], writers: list[int]) -> int:
    """The stage whose writers store the most per token (the first of equals)."""
    return max(range(len(per_token)), key=lambda index: (per_token[index], writers[index]))


def check_row(layout: Layout, row: SweepRow, prompt: int) -> None:
    """What every row of every engine keeps: its stages sum to it, its bytes add up, its busiest writer is counted."""
    assert row.full_chunks * row.chunk_tokens + row.tail_tokens == prompt and 0 <= row.tail_tokens < row.chunk_tokens
    assert len(row.stages) == len(layout.stages)
    assert sum(stage.objects for stage in row.stages) == row.objects
    assert sum(stage.total_bytes for stage in row.stages) == row.total_bytes
    assert row.stored_bytes == row.total_bytes + row.header_bytes
    assert row.header_bytes == row.objects * layout.connector.header_bytes
    for stage, share in zip(layout.stages, row.stages, strict=True):
        assert share.objects % stage.writers == 0 if stage.writers else share.objects == 0, (stage, share)
    busiest = [share.objects // stage.writers for stage, share in zip(layout.stages, row.stages, strict=True) if stage.writers]
    assert row.objects_per_writer == max(busiest, default=0)
    if row.objects:
        assert row.object_bytes == max(share.object_bytes for share in row.stages if share.objects)
        assert row.total_bytes <= row.objects * row.object_bytes  # object_bytes is the largest object
    if row.groups is not None:
        assert sum(group.objects for group in row.groups) == row.objects
    if row.tail_saved:
        assert row.tail_tokens > 0 and layout.connector.stores_partial_chunks
    values = [row.objects, row.object_bytes, row.total_bytes, row.header_bytes, row.stored_bytes, row.objects_per_writer]
    assert all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in values)


# --- LMCache 0.5.6 (docs/rules.md) --------------------------------------------------------------------------------


class LMCacheOracle:
    """One object per (chunk, TP rank, PP stage) (per layer when layerwise) of ``chunk x stage layers x (2|1) x
    heads/rank x head x dtype``; MLA: rank 0 alone (every rank when layerwise); sliding and chunked layers are stored
    in full; whole chunks only, unless ``save_unfull_chunk`` on a connector that stores partial chunks (not S3); the
    connector's header on every object."""

    def refuses(self, case: Case) -> bool:
        settings, serving = case.settings, case.serving
        return (
            vllm_refuses(case)
            or (mla(case.spec) and serving.pp > 1)
            or (settings.layerwise and settings.connector == "s3")
            or (serving.draft_layers > 0 and serving.pp > 1)
        )

    def takes(self, case: Case, chunk: int) -> bool:
        return chunk >= 1

    def row(self, case: Case, prompt: int, chunk: int) -> Expected:
        settings, serving = case.settings, case.serving
        layer_kinds, ranges = kinds(case.spec), stage_ranges(case)
        stored = [sum(1 for i in stage if layer_kinds[i] in KV_KINDS) for stage in ranges]
        stored[-1] += serving.draft_layers  # draft layers sit on the last stage
        per_rank = serving.tp if not mla(case.spec) or settings.layerwise else 1
        writers = [per_rank if layers else 0 for layers in stored]
        per_token = [layers * per_layer_bytes(case) for layers in stored]
        full, tail = divmod(prompt, chunk)
        tail_saved = settings.save_unfull_chunk and settings.connector != "s3" and tail > 0
        chunks, tokens = full + tail_saved, full * chunk + (tail if tail_saved else 0)
        per_chunk = [layers if settings.layerwise else 1 for layers in stored]
        objects = [w * chunks * n for w, n in zip(writers, per_chunk, strict=True)]
        big = largest(per_token, writers)
        total = sum(w * tokens * b for w, b in zip(writers, per_token, strict=True))
        headers = sum(objects) * LMCACHE_HEADERS.get(settings.connector, 0)
        return Expected(
            objects=sum(objects),
            object_bytes=chunk * per_token[big] // per_chunk[big],
            total_bytes=total,
            stored_bytes=total + headers,
            objects_per_writer=objects[big] // writers[big],
        )


# --- vLLM 0.33 native offloading and llm-d's fs connector (docs/engines.md, engines/vllm_native.py) ---------------


@dataclass(frozen=True)
class Group:
    kind: str
    layers: tuple[int, ...]


def kv_cache_groups(spec: ModelSpec) -> list[Group]:
    """vLLM's hybrid allocator: layers bucketed by kind in order of first appearance; the group size is the smallest
    bucket's count (the largest's when max < 1.5 x min); a bucket of n layers is ``cdiv(n, size)`` groups holding
    ``layers[i::groups]`` (docs/engines.md)."""
    buckets: dict[str, list[int]] = {}
    for index, kind in enumerate(kinds(spec)):
        if kind in KV_KINDS or kind in STATE_KINDS:
            buckets.setdefault(kind, []).append(index)
    sizes = [len(layers) for layers in buckets.values()]
    size = max(sizes) if max(sizes) < 1.5 * min(sizes) else min(sizes)
    groups = []
    for kind, layers in buckets.items():
        count = _cdiv(len(layers), size)
        groups += [Group(kind, tuple(layers[i::count])) for i in range(count)]
    return groups


def group_chunks(group: Group, spec: ModelSpec, prompt: int, chunk: int) -> int:
    """Full and chunked-local groups store every full chunk; a sliding-window group only its window's last chunks,
    never the chunk ending at the prompt's last token: ``min(max(cdiv(w, C), cdiv(w - 1, C)), floor((N - 1) / C))``."""
    if group.kind != "sliding_attention":
        return prompt // chunk
    window = spec.sliding_window
    assert window is not None
    return min(max(_cdiv(window, chunk), _cdiv(window - 1, chunk)), (prompt - 1) // chunk)


def slot_layers(groups: list[Group], stage: range) -> int:
    """One block's shared slot on a worker: the layers of its largest group there."""
    return max(sum(1 for layer in group.layers if layer in stage) for group in groups)


def gpu_block(case: Case) -> int:
    return case.settings.gpu_block_size or 16  # vLLM CacheConfig.DEFAULT_BLOCK_SIZE


class VllmFamilyOracle:
    """What vLLM's native offloading and llm-d share: what they refuse, the chunk rule, the groups."""

    def refuses(self, case: Case) -> bool:
        spec = case.spec
        state = [kind for kind in kinds(spec) if kind in STATE_KINDS]
        assert not state or "conv" in state or mla(spec) or spec.state is None, "these oracles do not size state layers"
        return (
            vllm_refuses(case)
            or bool(state)
            or case.serving.draft_layers > 0
            or ("sliding_attention" in kinds(spec) and spec.sliding_window is None)
        )

    def takes(self, case: Case, chunk: int) -> bool:
        """Every chunk is a whole number of GPU blocks."""
        return chunk >= 1 and chunk % gpu_block(case) == 0


class VllmOracle(VllmFamilyOracle):
    """One object per (chunk, KV-cache group) holding every worker's slice of the first stage's slot:
    ``round_up(copies x slot layers x per-layer bytes x chunk, page)``, copies the world size, 1 under the replicated
    layout (MLA, TP > 1, PP 1); one writer, the scheduler process; no headers."""

    def row(self, case: Case, prompt: int, chunk: int) -> Expected:
        spec, tp, pp = case.spec, case.serving.tp, case.serving.pp
        groups = kv_cache_groups(spec)
        copies = 1 if mla(spec) and tp > 1 and pp == 1 else tp * pp
        raw = copies * slot_layers(groups, stage_ranges(case)[0]) * per_layer_bytes(case) * chunk
        object_bytes = _cdiv(raw, PAGE) * PAGE
        objects = sum(group_chunks(group, spec, prompt, chunk) for group in groups)
        total = objects * object_bytes
        return Expected(objects, object_bytes if objects else 0, total, total, objects)


class LlmdFsOracle(VllmFamilyOracle):
    """One file per (chunk, KV-cache group, worker rank) of ``chunk x that worker's slot bytes per token``; every
    worker of a stage that stores a layer writes; no headers."""

    def row(self, case: Case, prompt: int, chunk: int) -> Expected:
        spec = case.spec
        groups, ranges = kv_cache_groups(spec), stage_ranges(case)
        chunks = sum(group_chunks(group, spec, prompt, chunk) for group in groups)
        writers = [case.serving.tp if any(kinds(spec)[i] in KV_KINDS for i in stage) else 0 for stage in ranges]
        per_token = [slot_layers(groups, stage) * per_layer_bytes(case) for stage in ranges]
        total = sum(w * chunks * chunk * b for w, b in zip(writers, per_token, strict=True))
        big = largest(per_token, writers)
        objects = sum(writers) * chunks
        return Expected(objects, chunk * per_token[big] if objects else 0, total, total, chunks)


# --- SGLang HiCache and Dynamo KVBM (engines/sglang.py, engines/kvbm.py) --------------------------------------------


class PerRankOracle:
    """Every rank of every stage stores its stage's attention layers for its KV heads, whole chunks only, no headers;
    models beyond full attention and MLA, and draft layers, are refused."""

    split: Any = staticmethod(vllm_split)

    def refuses(self, case: Case) -> bool:
        extra = [kind for kind in kinds(case.spec) if kind not in ("full_attention", "mla", "mlp")]
        return vllm_refuses(case) or bool(extra) or case.serving.draft_layers > 0

    def takes(self, case: Case, chunk: int) -> bool:
        return chunk >= 1

    def writers_per_stage(self, case: Case) -> int:
        return case.serving.tp

    def parts(self, case: Case) -> int:
        """Objects per chunk per writer."""
        return 1

    def row(self, case: Case, prompt: int, chunk: int) -> Expected:
        layer_kinds, parts = kinds(case.spec), self.parts(case)
        ranges = stage_ranges(case, self.split)
        stored = [sum(1 for i in stage if layer_kinds[i] in KV_KINDS) for stage in ranges]
        writers = [self.writers_per_stage(case) if layers else 0 for layers in stored]
        per_token = [layers * per_layer_bytes(case) for layers in stored]
        full = prompt // chunk
        object_bytes = [chunk * b // parts for b in per_token]
        total = sum(w * full * parts * size for w, size in zip(writers, object_bytes, strict=True))
        objects = sum(writers) * full * parts
        return Expected(
            objects=objects,
            object_bytes=object_bytes[largest(per_token, writers)] if objects else 0,
            total_bytes=total,
            stored_bytes=total,
            objects_per_writer=full * parts,
        )


class SglangOracle(PerRankOracle):
    """SGLang 0.5.23 HiCache: one file per (page, TP rank) holding K and V on ``file``; K and V apart, two objects per
    (page, rank), on the zero-copy backends (mooncake, nixl, hf3fs); MLA: one object per page from one rank per
    stage; PP split with the extra layers on the last stages. A PP partition must add up to the layers."""

    split = staticmethod(sglang_split)

    def writers_per_stage(self, case: Case) -> int:
        return 1 if mla(case.spec) else case.serving.tp

    def parts(self, case: Case) -> int:
        return 1 if mla(case.spec) or case.settings.backend == "file" else 2


class KvbmOracle(PerRankOracle):
    """Dynamo KVBM: one transfer per (block, worker) of all the worker's layers, ``L x (2|1) x B x heads/rank x head x
    dtype`` (alignment 1), every worker of every stage (MLA too: no de-duplication); vLLM's PP split."""


class AibrixOracle(PerRankOracle):
    """AIBrix KV cache offloading (aibrix-kvcache 0.8.0): one object per (block, TP rank, PP stage) of that stage's
    layers for the rank's KV heads, ``2 x B x L x heads/rank x head x dtype``, no header, whole blocks only; the block
    is a power of two (or vLLM's own block); MLA, any layer without attention and draft layers are refused."""

    def refuses(self, case: Case) -> bool:
        extra = [kind for kind in kinds(case.spec) if kind != "full_attention"]
        return vllm_refuses(case) or bool(extra) or case.serving.draft_layers > 0

    def takes(self, case: Case, chunk: int) -> bool:
        return chunk > 0 and (chunk & (chunk - 1) == 0 or chunk == (case.settings.gpu_block_size or 16))


ORACLES: dict[str, Any] = {
    "lmcache": LMCacheOracle(),
    "vllm": VllmOracle(),
    "llmd-fs": LlmdFsOracle(),
    "sglang": SglangOracle(),
    "kvbm": KvbmOracle(),
    "aibrix": AibrixOracle(),
}
"""Each registered engine's oracle, by the engine's registry name."""
