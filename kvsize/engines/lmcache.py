"""LMCache 0.5.6's in-process connector under vLLM 0.33 (``LMCacheConnectorV1``): what it stores, and its limits.

Rules (docs/rules.md):

- ``kv_shape = (num_layer, 1 if use_mla else 2, chunk_size, num_kv_head, head_size)``
  (``lmcache/integration/vllm/vllm_service_factory.py``, ``get_or_create_metadata``);
- per-rank KV heads ``max(1, H_kv // TP)`` (vLLM ``ModelConfig.get_num_kv_heads``), so
  heads are replicated, and every copy stored, when TP > H_kv;
- MLA: ``save_only_first_rank`` defaults to ``use_mla``: one writer whatever TP is;
- PP: each stage stores its own layers, split as vLLM's ``get_pp_indices`` does;
- the token database stores whole chunks (``save_unfull_chunk`` off since 0.3.11), one object per writer
  (per layer when ``use_layerwise``), with its connector's headers;
- a load fails past ``blocking_timeout_secs``; it passes through ``max_local_cpu_size`` of CPU buffer per
  worker; S3's pinned-memory rule; an int32 header length.

With LMCache's in-process connector vLLM turns its hybrid KV-cache manager off and promotes sliding-window and
chunked layers to full attention (``vllm/config/vllm.py``: the connector lacks ``SupportsHMA``): the model's
notes saying so apply here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from kvsize.engines.base import (
    HOST_ALIGN_BYTES,
    Connector,
    Deployment,
    Engine,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Layout,
    Limit,
    Stage,
    StageObjects,
    StoredChunks,
    StoredGroup,
    SweepRow,
    per_writer_bytes,
)
from kvsize.engines.lmcache_requirements import S3_ALIGN
from kvsize.engines.lmcache_settings import CONNECTORS, DEFAULT_CHUNK_TOKENS, LMCache, deployment
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers
from kvsize.errors import KvsizeError, UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.plan import Sweep

GIB = 2**30
INT32_MAX_BYTES = 2**31  # a length field of int32 cannot describe 2 GiB or more

TRANSPORT_CONNECTORS = {"object": "s3", "file": "fs", "kv": "redis", "memory": "cpu"}
"""The connector that reaches each kind of storage, when the user names none that does."""


class _Writers(BaseModel):
    """Who stores: KV heads per rank, how many ranks hold each head, writers per stage (LMCache, docs/rules.md)."""

    heads_per_rank: int
    replication: int
    writers_per_stage: int
    warnings: list[str]
    notes: list[str]


def _settings(layout: Layout) -> LMCache:
    settings = layout.options.settings
    assert isinstance(settings, LMCache)
    return settings


def _writers(spec: ModelSpec, options: EngineOptions, settings: LMCache) -> _Writers:
    tp, heads = options.tp, spec.num_kv_heads
    if not spec.use_mla:
        replication = max(1, tp // heads)
        notes = []
        if replication > 1:
            notes.append(
                f"TP {tp} > {heads} KV heads: each head is replicated on {replication} ranks and every copy is "
                f"stored, so stored bytes are {replication}x the model's KV"
            )
        return _Writers(
            heads_per_rank=max(1, heads // tp), replication=replication, writers_per_stage=tp, warnings=[], notes=notes
        )
    if options.pp > 1:
        raise UnsupportedModelError(
            f"{spec.name} uses MLA and PP is {options.pp}: LMCache stores MLA from global rank 0 only, so later "
            "stages' layers may never be stored (docs/rules.md); kvsize will not guess: use `pp` 1"
        )
    if settings.layerwise:
        warning = "layerwise MLA has no first-rank check in LMCache: every TP rank stores its own copy of the latent"
        return _Writers(heads_per_rank=1, replication=1, writers_per_stage=tp, warnings=[warning], notes=[])
    note = (
        f"MLA: only TP rank 0 stores (save_only_first_rank defaults to use_mla) and broadcasts on load: "
        f"one object per chunk at TP {tp}"
    )
    return _Writers(heads_per_rank=1, replication=1, writers_per_stage=1, warnings=[], notes=[note] if tp > 1 else [])


def _refusals(spec: ModelSpec, options: EngineOptions, settings: LMCache, connector: Connector) -> list[str]:
    """What LMCache cannot store for this model and these options (errors), and what it stores differently (warnings)."""
    if settings.layerwise and connector.name == "s3":  # valkey and resp refuse only save_unfull_chunk
        raise KvsizeError(
            "`layerwise` with `connector` s3 stores nothing: LMCache's S3 connector only uploads objects of exactly "
            "one full chunk; pick another `connector` or drop `layerwise`",
            field="layerwise",
        )
    if options.draft_layers and options.pp > 1:
        raise UnsupportedModelError(
            "draft layers with `pp` > 1: kvsize does not know which stage stores them and will not guess; use `pp` 1",
            field="draft_layers",
        )
    warnings = []
    if spec.is_hybrid:
        counts = spec.kind_counts()
        stateful = ", ".join(
            f"{counts[kind]} {kind.value}" for kind in (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV) if kind in counts
        )
        warnings.append(
            f"{spec.name} is a hybrid ({stateful} layers keep state, not per-token KV): vLLM's in-process LMCache "
            "connector cannot serve it (LMCacheConnectorV1 lacks SupportsHMA, so vLLM turns the hybrid KV-cache "
            "manager off and the engine fails at start); LMCache's multiprocess connector (LMCacheMPConnector) can, "
            f"packing all layer groups into one object per chunk per rank. Sized: the {spec.kv_layers} attention layers"
        )
    return warnings


def _stages(spec: ModelSpec, options: EngineOptions, writers: _Writers, dtype_bytes: int) -> tuple[list[Stage], int]:
    """Each stage's layers, stored layers, writers and bytes per token per writer; and the model's bytes per token."""
    # Each layer kind knows its byte rule (kvsize.model.spec.LayerKind); draft layers are of the model's attention kind.
    draft_kind = LayerKind.MLA if spec.use_mla else LayerKind.FULL

    def per_token(kinds: tuple[LayerKind, ...], drafts: int, kv_heads: int) -> int:
        layers = sum(kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes) for kind in kinds)
        return layers + drafts * draft_kind.bytes_per_token(kv_heads, spec.head_size, dtype_bytes)

    partition = stage_layers(spec, options.pp, options.pp_partition)
    stages: list[Stage] = []
    first = 0
    for index, count in enumerate(partition):
        kinds = spec.layer_kinds[first : first + count]
        kv_layers = sum(1 for kind in kinds if kind.keeps_kv)
        draft = options.draft_layers if index == len(partition) - 1 else 0
        stages.append(
            Stage(
                index=index,
                first_layer=first,
                layers=count,
                kv_layers=kv_layers,
                draft_layers=draft,
                # A stage with no attention layer (a hybrid's Mamba-only stage) has nothing to store.
                writers=writers.writers_per_stage if kv_layers + draft else 0,
                bytes_per_token_per_rank=per_token(kinds, draft, writers.heads_per_rank),
            )
        )
        first += count
    return stages, per_token(spec.layer_kinds, options.draft_layers, spec.num_kv_heads)


def plan_layout(spec: ModelSpec, options: EngineOptions) -> Layout:
    """Apply vLLM's parallelism and LMCache's object rules to a model spec."""
    settings = options.settings
    assert isinstance(settings, LMCache)
    check_served(spec, options.vllm_version)
    connector = CONNECTORS[settings.connector]
    check_tp(spec, options.tp)
    writers = _writers(spec, options, settings)
    hybrid = _refusals(spec, options, settings, connector)
    kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
    dtype_bytes = DTYPE_BYTES[kv_dtype]
    stages, bytes_per_token = _stages(spec, options, writers, dtype_bytes)
    unfull = []
    if settings.save_unfull_chunk and not connector.stores_partial_chunks:
        unfull.append(
            f"--save-unfull-chunk has no effect with --connector {connector.name}: it never stores a "
            "partial chunk, so the tail stays unsaved"
        )
    return Layout(
        options=options,
        connector=connector,
        kv_dtype=kv_dtype,
        dtype_bytes=dtype_bytes,
        kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
        heads_per_rank=writers.heads_per_rank,
        head_size=spec.head_size,
        replication=writers.replication,
        stages=tuple(stages),
        bytes_per_token=bytes_per_token,
        warnings=(*writers.warnings, *hybrid, *dtype_warnings, *unfull),
        # The model's notes say how LMCache's in-process connector treats its layers (sliding layers promoted).
        notes=(*spec.notes, *writers.notes),
        dtype_field=dtype_field,
    )


def s3_never_uploads(layout: Layout, chunk_tokens: int) -> str | None:
    """Why LMCache 0.5.6's S3 connector would upload none of this chunk's objects, or None.

    ``S3Connector._put`` (``connector/s3_connector.py``) uploads an object only when
    ``memory_obj.get_physical_size() == full_chunk_size_bytes``: the physical size is the CPU allocation rounded up
    to 4,096 bytes (``memory_management.py`` ``ALIGN_BYTES``), the other the chunk's raw bytes; so a chunk whose
    bytes are not a multiple of 4,096 is never uploaded (``Cannot upload ...: chunk size ... does not match S3 part
    size``), and the stage's every chunk with it."""
    if layout.connector.name != "s3":
        return None
    steps, sizes = [], []
    for stage in layout.stages:
        per_token = stage.bytes_per_token_per_rank
        if stage.writers and (chunk_tokens * per_token) % S3_ALIGN:
            sizes.append(chunk_tokens * per_token)
        if stage.writers and per_token:
            steps.append(S3_ALIGN // math.gcd(per_token, S3_ALIGN))
    if not sizes:
        return None
    step = math.lcm(*steps)
    better = -(-chunk_tokens // step) * step
    return (
        f"objects of {sizes[0]:,} B are not a multiple of 4,096 B, and LMCache 0.5.6's S3 connector uploads a chunk "
        f"only when its bytes are (s3_connector.py S3Connector._put): use chunk_size {better:,} (a multiple of {step:,})"
    )


def plan_row(layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
    """One chunk size: chunks, tail, objects and bytes, exactly as LMCache stores them.

    The token database cuts a prompt into chunks (``lmcache/v1/token_database.py``,
    ``ChunkedTokenDatabase._chunk_tokens``): ``end = len(tokens) if save_unfull_chunk else
    len(tokens) - len(tokens) % chunk_size``. Every writer stores its own object per chunk
    (per layer in layerwise mode).
    """
    settings = _settings(layout)
    full_chunks, tail_tokens = divmod(prompt_tokens, chunk_tokens)
    tail_saved = settings.save_unfull_chunk and layout.connector.stores_partial_chunks and tail_tokens > 0
    saved_tail = tail_tokens if tail_saved else 0
    stored = 0 if s3_never_uploads(layout, chunk_tokens) else full_chunks  # whole chunks that reach the storage
    chunks = stored + (1 if tail_saved else 0)

    stages = []
    for stage in layout.stages:
        per_object = stage.stored_layers if settings.layerwise else 1
        objects = stage.writers * chunks * per_object
        bytes_per_token = stage.bytes_per_token_per_rank
        layer_share = stage.stored_layers if settings.layerwise else 1
        stages.append(
            StageObjects(
                stage=stage.index,
                objects=objects,
                object_bytes=chunk_tokens * bytes_per_token // layer_share if stage.stored_layers else 0,
                tail_object_bytes=saved_tail * bytes_per_token // layer_share if stage.stored_layers else 0,
                total_bytes=stage.writers * (stored * chunk_tokens + saved_tail) * bytes_per_token,
            )
        )
    largest = stages[layout.largest_stage.index]
    objects = sum(s.objects for s in stages)
    total_bytes = sum(s.total_bytes for s in stages)
    header_bytes = objects * layout.connector.header_bytes
    return SweepRow(
        chunk_tokens=chunk_tokens,
        full_chunks=full_chunks,
        tail_tokens=tail_tokens,
        tail_saved=tail_saved,
        object_bytes=largest.object_bytes,
        tail_object_bytes=largest.tail_object_bytes,
        objects=objects,
        objects_per_writer=largest.objects // layout.largest_stage.writers,
        total_bytes=total_bytes,
        header_bytes=header_bytes,
        stored_bytes=total_bytes + header_bytes,
        reduction_vs_256=None,
        stages=tuple(stages),
    )


def pinned_bytes_needed(row: SweepRow, layout: Layout) -> int | None:
    """LMCache's S3 pinned-memory rule: ``(bytes/token) x chunk_size x s3_max_inflight_reqs +
    max_local_cpu_size x num_tp_workers``; None on other connectors."""
    if not layout.connector.pinned_memory_rule:
        return None
    settings = _settings(layout)
    return row.object_bytes * settings.s3_max_inflight_reqs + settings.cpu_buffer_bytes * layout.options.tp


def _limits(row: SweepRow, layout: Layout, load_seconds: float | None) -> list[Limit]:
    """LMCache's blocking timeout (when the load was timed), CPU buffer, S3 pinned memory and int32 header length;
    S3's 4,096-byte rule and the GDS buffer."""
    settings = _settings(layout)
    found = _storage_limits(row, layout, settings)
    if load_seconds is not None and load_seconds > settings.blocking_timeout_s:
        found.append(
            Limit(
                limit="blocking_timeout",
                value=load_seconds,
                threshold=settings.blocking_timeout_s,
                unit="s",
                detail=f"load {load_seconds:.2f} s > blocking_timeout_secs {settings.blocking_timeout_s:g} s",
            )
        )
    per_writer = per_writer_bytes(row, layout)
    if per_writer > settings.cpu_buffer_bytes:
        found.append(
            Limit(
                limit="cpu_buffer",
                value=per_writer,
                threshold=settings.cpu_buffer_bytes,
                unit="B",
                detail=f"one writer's {format_iec(per_writer)} > max_local_cpu_size {format_iec(settings.cpu_buffer_bytes)}",
            )
        )
    pinned = pinned_bytes_needed(row, layout)
    if pinned is not None and settings.pinned_memory_bytes is not None and pinned > settings.pinned_memory_bytes:
        found.append(
            Limit(
                limit="pinned_memory",
                value=pinned,
                threshold=settings.pinned_memory_bytes,
                unit="B",
                detail=f"S3 pinned memory {format_iec(pinned)} > available {format_iec(settings.pinned_memory_bytes)}",
            )
        )
    connector = layout.connector
    if connector.int32_header and row.object_bytes >= INT32_MAX_BYTES:
        found.append(
            Limit(
                limit="int32_header",
                value=row.object_bytes,
                threshold=INT32_MAX_BYTES - 1,
                unit="B",
                detail=f"object {format_iec(row.object_bytes)} >= 2 GiB: {connector.name}'s int32 header length overflows",
            )
        )
    return found


def _storage_limits(row: SweepRow, layout: Layout, settings: LMCache) -> list[Limit]:
    """What the connector would not store: S3's chunks that are no multiple of 4,096 bytes, and GDS stores past its
    GPU buffer (``GdsBackend``: every object of a batch is copied into the ``gds_buffer_size`` buffer, 4,096-aligned,
    and the batch stops at the first that does not fit)."""
    found = []
    if row.full_chunks and (why := s3_never_uploads(layout, row.chunk_tokens)):
        # By how many bytes the chunk's object is past a multiple of 4,096 (the worst stage's).
        remainder = max(row.chunk_tokens * stage.bytes_per_token_per_rank % S3_ALIGN for stage in layout.stages if stage.writers)
        found.append(Limit(limit="chunk_size", value=remainder, threshold=0, unit="B", detail=f"nothing is stored: {why}"))
    buffer = settings.gds_buffer_bytes
    if buffer is not None and layout.connector.name in ("gds", "weka") and row.objects:
        aligned = -(-row.object_bytes // S3_ALIGN) * S3_ALIGN
        needed = row.objects_per_writer * aligned
        if needed > buffer:
            found.append(
                Limit(
                    limit="gds_buffer_size",
                    value=needed,
                    threshold=buffer,
                    unit="B",
                    detail=f"one writer's {row.objects_per_writer:,} objects of {format_iec(aligned)} (4,096-aligned) "
                    f"> gds_buffer_size {format_iec(buffer)}: GDS stores only what fits its GPU buffer",
                )
            )
    return found


def _explain(sweep: Sweep) -> list[str]:
    """LMCache's layout and every row, from the layout and rows that computed them."""
    spec, layout = sweep.spec, sweep.layout
    opts, layerwise = layout.options, _settings(layout).layerwise
    lines = ["Layout (LMCache kv_shape = (layers, 1 if MLA else 2, chunk, heads/rank, head size))"]
    lines.append(f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}")
    if spec.use_mla:
        lines.append(f"  heads/rank: 1 (MLA latent of {spec.head_size}), kv_factor 1")
    else:
        lines.append(
            f"  heads/rank: max(1, {spec.num_kv_heads} // TP {opts.tp}) = {layout.heads_per_rank}, kv_factor 2 (K and V)"
        )
    draft = f" + {opts.draft_layers} draft" if opts.draft_layers else ""
    lines.append(
        f"  B/token (model) = ({spec.kv_layers} KV layers{draft}) x {layout.kv_factor} x {spec.num_kv_heads} heads x "
        f"{spec.head_size} x {layout.dtype_bytes} B = {layout.bytes_per_token:,}"
    )
    for stage in layout.stages:
        lines.append(
            f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, "
            f"{stage.stored_layers} stored x {layout.kv_factor} x {layout.heads_per_rank} x {spec.head_size} x "
            f"{layout.dtype_bytes} B = {stage.bytes_per_token_per_rank:,} B/token per writer, {stage.writers} writers"
        )
    for row in sweep.rows:
        lines.append(f"Chunk {row.chunk_tokens:,}")
        lines.append(
            f"  chunks = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; "
            f"tail = {sweep.prompt_tokens:,} % {row.chunk_tokens:,} = {row.tail_tokens:,} "
            f"({'saved' if row.tail_saved else 'not stored'})"
        )
        tail = 1 if row.tail_saved else 0
        for stage, objs in zip(layout.stages, row.stages, strict=True):
            per_object = f" x {stage.stored_layers} layers" if layerwise else ""
            lines.append(
                f"  stage {stage.index}: object = {row.chunk_tokens:,} x {stage.bytes_per_token_per_rank:,}"
                f"{' / ' + str(stage.stored_layers) + ' layers' if layerwise else ''} = {objs.object_bytes:,} B; "
                f"objects = {stage.writers} writers x {row.full_chunks + tail:,} chunks{per_object} = {objs.objects:,}; "
                f"bytes = {stage.writers} x ({row.full_chunks:,} x {row.chunk_tokens:,}"
                f"{' + ' + format(row.tail_tokens, ',') if row.tail_saved else ''}) x "
                f"{stage.bytes_per_token_per_rank:,} = {objs.total_bytes:,}"
            )
        lines.append(
            f"  total {row.total_bytes:,} B + headers {row.objects:,} x {layout.connector.header_bytes} B = "
            f"{row.stored_bytes:,} B stored"
        )
    return lines


class LMCacheEngine(Engine):
    """LMCache 0.5.6's in-process connector under vLLM 0.33 (``LMCacheConnectorV1``)."""

    name = "lmcache"
    Settings = LMCache
    emits = True
    info = EngineInfo(
        name="lmcache",
        stack="LMCache 0.5.6 in-process connector (vLLM 0.33)",
        setting="chunk_size",
        knob="chunk_size (LMCACHE_CHUNK_SIZE)",
        default_chunk=DEFAULT_CHUNK_TOKENS,
        candidates=(256, 512, 1024, 2048, 4096),
        object_rule="one object per (chunk, TP rank, PP stage): chunk x layers x (2|1) x heads/rank x head x dtype",
        writers="every TP rank of every stage (MLA: rank 0 only)",
        source="lmcache/v1/token_database.py, lmcache/integration/vllm/vllm_service_factory.py",
    )

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        return plan_layout(spec, options)

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return plan_row(layout, prompt_tokens, chunk_tokens)

    def stores_nothing(self, layout: Layout, chunk_tokens: int) -> str | None:
        return s3_never_uploads(layout, chunk_tokens)

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        """Whole chunks, and the tail as a partial chunk when ``save_unfull_chunk`` is on and the connector stores
        one (``ChunkedTokenDatabase._chunk_tokens``); a load covers all N tokens (on a full hit LMCache's adapter
        recomputes the last token, ``vllm_v1_adapter.py`` ``get_num_new_matched_tokens``: one token, not counted)."""
        settings = _settings(layout)
        full, tail = divmod(prompt_tokens, chunk_tokens)
        if s3_never_uploads(layout, chunk_tokens):
            full = 0  # no whole chunk of these bytes reaches S3 (S3Connector._put)
        if not (settings.save_unfull_chunk and layout.connector.stores_partial_chunks):
            tail = 0
        return StoredChunks(groups=(StoredGroup(start=0, stop=full, tail_tokens=tail),), max_hit_tokens=prompt_tokens)

    def cpu_tier_chunks(self, layout: Layout, chunk_row: SweepRow, cpu_bytes: int) -> tuple[int, str]:
        """``max_local_cpu_size`` is per rank (``LocalCPUBackend.initialize_allocator``): the busiest writer's objects
        of a chunk, each rounded up to 4,096 B (``ALIGN_BYTES``)."""
        stage = layout.largest_stage
        objects = chunk_row.stages[stage.index]
        per_writer = objects.objects // max(1, stage.writers)
        aligned = -(-objects.object_bytes // HOST_ALIGN_BYTES) * HOST_ALIGN_BYTES
        per_chunk = max(1, per_writer * aligned)
        return cpu_bytes // per_chunk, (
            f"max_local_cpu_size {cpu_bytes:,} B per rank / {per_chunk:,} B per chunk on the busiest writer "
            f"({per_writer} object{'s' if per_writer != 1 else ''} rounded up to {HOST_ALIGN_BYTES:,} B)"
        )

    def replay_notes(self, layout: Layout) -> list[str]:
        return [
            "LMCache evicts least-recently-used chunks (cache_policy LRU, the default: storage_backend/cache_policy/"
            "lru.py); a request's hits are touched with its prefix most recent (touch_cache), so its tail goes first"
        ]

    def search_step(self, layout: Layout, spec: ModelSpec) -> int:
        # LMCache takes any chunk; the search steps by vLLM's default block (MLA backends use 64 or more).
        return 64 if spec.use_mla else 16

    def requests_in_flight(self, layout: Layout, host_cpus: int | None) -> int | None:
        """The connector's own count (redis: 4); given the serving host's CPUs, the fs connector's asyncio default
        thread pool, ``min(32, CPUs + 4)`` (``FSConnector`` reads through aiofiles)."""
        if layout.connector.io_threads is not None:
            return layout.connector.io_threads
        if host_cpus is not None and layout.connector.name == "fs":
            return min(32, host_cpus + 4)
        return None

    def timeout_seconds(self, layout: Layout) -> float | None:
        return _settings(layout).blocking_timeout_s

    def pinned_bytes_needed(self, row: SweepRow, layout: Layout) -> int | None:
        return pinned_bytes_needed(row, layout)

    def time_option_values(self, layout: Layout) -> dict[str, Any]:
        settings = _settings(layout)
        return {
            "blocking_timeout_s": settings.blocking_timeout_s,
            "cpu_buffer_bytes": settings.cpu_buffer_bytes,
            "pinned_memory_bytes": settings.pinned_memory_bytes,
            "s3_max_inflight_reqs": settings.s3_max_inflight_reqs,
        }

    def limits(self, row: SweepRow, layout: Layout, load_seconds: float | None) -> list[Limit]:
        return _limits(row, layout, load_seconds)

    def timing_notes(self, layout: Layout, host_cpus: int | None) -> list[str]:
        notes = []
        threads = self.requests_in_flight(layout, host_cpus)
        if threads is not None and layout.connector.io_threads is None:  # set by host_cpus
            notes.append(
                f"{threads} requests in flight per writer: LMCache's fs connector reads through asyncio's default "
                f"thread pool, min(32, CPUs + 4) on a host of {host_cpus} CPUs (--host-cpus)"
            )
        return notes

    def shared_chunk(self, layout: Layout, row: SweepRow) -> Any:
        if not _settings(layout).layerwise or not row.objects:
            return super().shared_chunk(layout, row)
        from kvsize.engines.base import Share

        header = layout.connector.header_bytes
        largest = layout.largest_stage
        objects = sum(s.writers * s.stored_layers for s in layout.stages)
        return Share(
            objects=objects,
            stored_bytes=sum(s.writers * row.chunk_tokens * s.bytes_per_token_per_rank for s in layout.stages) + objects * header,
            objects_per_writer=largest.stored_layers,
            stored_bytes_per_writer=row.chunk_tokens * largest.bytes_per_token_per_rank + largest.stored_layers * header,
        )

    def engine_options(self, layout: Layout) -> dict[str, Any]:
        settings = _settings(layout)
        return {
            "connector": layout.connector.name,
            "layerwise": settings.layerwise,
            "save_unfull_chunk": settings.save_unfull_chunk,
            "stores_partial_chunks": layout.connector.stores_partial_chunks,
            "io_threads": layout.connector.io_threads,
        }

    def text(self, layout: Layout) -> EngineText:
        per_rank = layout.bytes_per_token_per_rank
        mode = ", layerwise" if _settings(layout).layerwise else ""
        return EngineText(
            subtitle=f"{format_count(per_rank)} B/token per writer ({format_iec(per_rank)}); {layout.kv_dtype} KV; "
            f"connector {layout.connector.name}{mode}",
            object_note="object = one writer's object of one full chunk; objects = all writers and stages.",
            tail_reason="save_unfull_chunk off",
        )

    def explain(self, sweep: Sweep) -> list[str]:
        return _explain(sweep)

    def assumptions(self, sweep: Sweep) -> list[str]:
        spec, layout = sweep.spec, sweep.layout
        connector = layout.connector
        settings = _settings(layout)
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{format_count(layout.bytes_per_token)} B of KV per token: {spec.kv_layers} stored layers "
            f"(LMCache's in-process connector stores every attention layer for every token).",
            f"TP {layout.options.tp} x PP {layout.options.pp}: {layout.writers} writers, each storing its own object per "
            "chunk (LMCache kv_shape; vLLM get_num_kv_heads, get_pp_indices).",
            "Chunks: the tail past the last whole chunk is "
            + (
                "stored (save_unfull_chunk on)."
                if settings.save_unfull_chunk and connector.stores_partial_chunks
                else "not stored (save_unfull_chunk off, LMCache >= 0.3.11 default) and recomputed."
            ),
            f"Connector {connector.name}: {connector.layout} ({connector.source}).",
            "Prompts sharing a prefix share its whole chunks (LMCache's chained prefix keys), stored once.",
            "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
        ]

    def emit(
        self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: EmitOptions | None = None
    ) -> tuple[str, list[str]]:
        from kvsize.engines.lmcache_emit import settings_for

        return settings_for(sweep, plan, row.chunk_tokens, margin, emit_options)

    def deployment(
        self, config: Path | None, environ: Mapping[str, str] | None, given: EngineSettings, chunk_tokens: int | None
    ) -> Deployment:
        assert isinstance(given, LMCache)
        return deployment(config, environ, given, chunk_tokens)

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        assert isinstance(given, LMCache)
        if "connector" in given.model_fields_set or CONNECTORS[given.connector].transport == transport:
            return given
        connector = TRANSPORT_CONNECTORS.get(transport)
        return None if connector is None else given.model_copy(update={"connector": connector})
