"""vLLM 0.33's native offloading (``OffloadingConnector``) and llm-d's fs connector (``llmd-fs-connector`` <= 0.22).

vLLM native (``distributed/kv_transfer/kv_connector/v1/offloading/config.py``, ``v1/kv_offload/cpu/spec.py``):

- the chunk is ``block_size`` tokens of ``kv_connector_extra_config`` (default one GPU block,
  ``blocks_per_chunk = 1``), an exact multiple of the GPU block (``build_offloading_config``);
- one object per (chunk, KV-cache group), the key ``block_hash + group_idx`` (``v1/kv_offload/base.py``),
  holding every worker's slice: ``round_up(num_copies x worker_kv_bytes_per_block x blocks_per_chunk,
  mmap.PAGESIZE)``; ``num_copies`` is the world size, or 1 under the replicated layout (MLA, TP > 1,
  TP only, one node, the ``mp`` executor);
- only full chunks are stored; the scheduler process does all the I/O (FS tier: 16 read and 16
  write threads, O_DIRECT reads, ``tiering/fs/manager.py``; OBJ tier: 4 NIXL I/O threads,
  ``tiering/obj/manager.py``).

llm-d's fs connector (``llmd_fs_backend/spec.py``): one file per (chunk, group, worker rank),
``block_size`` default 256, each worker writing its own slice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from kvsize.engines.base import (
    Connector,
    Engine,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Flag,
    GpuGroup,
    GpuPages,
    GroupObjects,
    KvGroup,
    Layout,
    Limit,
    Share,
    Stage,
    StageObjects,
    StoredChunks,
    StoredGroup,
    SweepRow,
    whole_chunk_row,
)
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers
from kvsize.engines.vllm_groups import STATE_KIND_NAMES, STATE_KINDS, kv_cache_groups, slot_layers, stored_chunks, window_chunks
from kvsize.engines.vllm_state import aligned_block, state_page_bytes
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.plan import Sweep

GIB = 2**30
HOST_PAGE_BYTES = 4096
"""``mmap.PAGESIZE`` on x86-64 and most aarch64 servers: what vLLM rounds every object up to."""
STATEFUL = (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV)


def _io_note(tier: str, threads: int, source: str) -> str:
    return (
        f"{threads} requests in flight: vLLM's {tier} tier uses {threads} I/O threads ({source}), whatever the "
        "profile's concurrency; one scheduler-side process does all the I/O"
    )


TIER_CONNECTORS: dict[str, Connector] = {
    "fs": Connector(
        name="fs",
        url="root_dir",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one file per (chunk, group) holding every worker's slice, rounded up to the host page; "
        "temp file + os.replace; O_DIRECT reads",
        source="vllm/v1/kv_offload/tiering/fs/manager.py, fs/io.py",
        io_threads=16,
        io_note=_io_note("fs", 16, "vllm/v1/kv_offload/tiering/fs/manager.py, fs/io.py"),
        transport="file",
    ),
    "obj": Connector(
        name="obj",
        url="store_config",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one object per (chunk, group) through NIXL's OBJ plugin (S3), the FS tier's names as keys",
        source="vllm/v1/kv_offload/tiering/obj/manager.py",
        io_threads=4,
        io_note=_io_note("obj", 4, "vllm/v1/kv_offload/tiering/obj/manager.py"),
        transport="object",
    ),
    "cpu": Connector(
        name="cpu",
        url="cpu_bytes_to_use",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one CPU slot per (chunk, group) in a shared mmap region",
        source="vllm/v1/kv_offload/cpu/spec.py",
        transport="memory",
    ),
}
LLMD_FS_CONNECTOR = Connector(
    name="fs",
    url="root_dir",
    header_bytes=0,
    requests_per_object=1,
    stores_partial_chunks=False,
    int32_header=False,
    layout="one file per (chunk, group, worker rank), each worker writing its own slice",
    source="llmd_fs_backend/spec.py (llmd-fs-connector <= 0.22)",
)


TierName = Literal["cpu", "fs", "obj"]
TRANSPORT_TIERS: dict[str, TierName] = {"object": "obj", "file": "fs", "memory": "cpu"}
GpuBlock = Field(default=None, ge=1, le=65_536)


class Vllm(EngineSettings):
    """vLLM's native offloading as the engine: ``kvsize.size(model, engine=kvsize.engines.Vllm(tier="obj"))``."""

    ENGINE: ClassVar[str] = "vllm"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "tier": Flag("--tier", "The tier objects go to: cpu, fs (default), obj."),
        "gpu_block_size": Flag(
            "--gpu-block-size",
            "vLLM's GPU block in tokens (default 16; say 32 or 64 for a backend that forces it).",
            "int",
        ),
        "kv_offloading_size": Flag(
            "--kv-offloading-size", "vLLM's --kv-offloading-size in GiB (its CPU tier); one prompt's objects must fit.", "float"
        ),
    }

    tier: TierName = "fs"
    """The secondary tier: cpu (``--kv-offloading-size`` alone), fs or obj."""
    gpu_block_size: int | None = GpuBlock
    """vLLM's GPU KV-cache block in tokens (``--block-size``); None: ``CacheConfig.DEFAULT_BLOCK_SIZE`` 16, or the
    block a state model forces."""
    kv_offloading_size: float | None = Field(default=None, gt=0, le=2**30)
    """``--kv-offloading-size`` in GiB: the CPU tier, ``cpu_bytes_to_use`` = GiB x 2**30 (``config/vllm.py``)."""

    @property
    def cpu_bytes_to_use(self) -> int | None:
        return None if self.kv_offloading_size is None else int(self.kv_offloading_size * GIB)


class LlmdFs(EngineSettings):
    """llm-d's fs connector as the engine: ``kvsize.size(model, engine=kvsize.engines.LlmdFs())``."""

    ENGINE: ClassVar[str] = "llmd-fs"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "tier": Flag("--tier", "llm-d writes files only: fs."),
        "gpu_block_size": Vllm.FLAGS["gpu_block_size"],
    }

    tier: Literal["fs"] = "fs"
    gpu_block_size: int | None = GpuBlock


class VllmLayout(Layout):
    """vLLM's KV-cache groups and the shared slot every group's object holds."""

    groups: tuple[KvGroup, ...]
    """The KV-cache groups stored apart (vLLM's hybrid allocator)."""
    worker_block_bytes: int
    """One GPU block of one worker's KV-cache slot (vLLM's ``worker_kv_bytes_per_block``)."""
    copies: int | None
    """Workers' slices in one object (vLLM's ``num_copies``: the world size, 1 under the replicated layout); None for
    llm-d, whose files hold one worker's slice."""
    host_page_bytes: int | None
    """What vLLM rounds each object up to (``mmap.PAGESIZE``); None for llm-d."""


def _refuse(spec: ModelSpec, options: EngineOptions) -> None:
    """What kvsize does not size under the vLLM family (fail closed, naming the layers, fields or option)."""
    stateful = [kind for kind in STATEFUL if kind in spec.layer_kinds]
    if stateful:
        counts = spec.kind_counts()
        named = ", ".join(f"{counts[kind]} {kind.value}" for kind in stateful)
        why = None
        if LayerKind.CONV in stateful:
            why = "kvsize has no rule for short-conv state"
        elif spec.use_mla:
            why = "kvsize has no rule for MLA beside state layers"
        elif spec.state is None:
            why = f"their state cannot be sized: {spec.state_problem}"
        if why:
            raise UnsupportedModelError(
                f"{spec.name} has state layers ({named}) that vLLM stores under `engine` {options.engine}, and {why}; "
                "use `engine` lmcache for the attention layers alone",
                field="engine",
            )
    if options.draft_layers:
        raise UnsupportedModelError(
            f"draft layers under `engine` {options.engine}: vLLM stores them as a group of their own (EAGLE "
            "group) that kvsize does not size yet; drop `draft_layers`/`mtp`",
            field="draft_layers",
        )
    if LayerKind.SLIDING in spec.layer_kinds and spec.sliding_window is None:
        raise UnsupportedModelError(
            f"{spec.name} has sliding-window layers but no usable sliding_window in its config: vLLM stores a "
            "sliding-window group's last window only, so kvsize needs it; add sliding_window to the config",
            field="sliding_window",
        )


def _replicated(spec: ModelSpec, options: EngineOptions) -> bool:
    """``build_offloading_config``'s replicated layout: MLA, TP > 1, TP only (one node, the mp executor)."""
    return spec.use_mla and options.tp > 1 and options.pp == 1


def _notes(spec: ModelSpec, options: EngineOptions, groups: tuple[KvGroup, ...], replicated: bool) -> list[str]:
    notes = []
    if len(groups) > 1:
        kinds = ", ".join(f"{g.kind} x {len(g.layers)}" for g in groups)
        notes.append(
            f"vLLM's hybrid allocator keeps {len(groups)} KV-cache groups ({kinds}); each has its own objects, all "
            "of one size (the groups share one slot of the largest group's layers)"
        )
    if replicated:
        notes.append(
            f"MLA at TP {options.tp}: the replicated layout applies (TP only, one node, the mp executor), so each "
            "object holds one copy of the latent; with PP, several nodes or Ray it would hold one per worker"
        )
    elif spec.use_mla and options.tp > 1:
        notes.append(f"MLA with PP {options.pp}: no replicated layout, so each object holds every worker's copy")
    if options.pp > 1 and options.engine == VllmNativeEngine.name:
        notes.append(
            "PP: every worker's slice is sized as the first stage's (the scheduler's KV-cache config is worker 0's, "
            "generate_scheduler_kv_cache_config)"
        )
    return notes


def _gpu_block(options: EngineOptions) -> int:
    """The GPU block given, else vLLM's default (``CacheConfig.DEFAULT_BLOCK_SIZE`` 16)."""
    return options.settings.gpu_block_size or 16  # type: ignore[attr-defined]


def _state_block(spec: ModelSpec, options: EngineOptions, page_per_token: int) -> tuple[int, list[str]]:
    """The GPU block a state model forces (``_align_hybrid_block_size``), and the notes saying it is approximate."""
    assert spec.state is not None
    model_bytes = DTYPE_BYTES.get(spec.config_dtype or "", 2)  # the conv state is in the model's dtype (bf16 if unsure)
    state_page = state_page_bytes(spec.state, options.tp, model_bytes)
    block = aligned_block(_gpu_block(options), state_page, page_per_token)
    state_layers = sum(1 for kind in spec.layer_kinds if kind in STATE_KINDS)
    notes = [
        f"{state_layers} state layers ({spec.state.kind}, {spec.state.source}): {state_page:,} B of state per layer "
        f"and rank, padded to the attention page; each state group stores one state per prompt",
        f"approximate: vLLM raises the GPU block to fit that state, here to {block} tokens assuming a 16-token "
        "attention kernel block and no Mamba prefill-checkpoint alignment (mamba_cache_mode 'align' may raise it "
        "further); if vLLM logs 'Setting attention block size to N tokens', give --gpu-block-size N",
    ]
    return block, notes


def _layout(layout: Layout) -> VllmLayout:
    assert isinstance(layout, VllmLayout)
    return layout


class _VllmFamily(Engine):
    """What vLLM native and llm-d's fs connector share: groups, pages, the chunk rule."""

    per_worker_files: ClassVar[bool]

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        check_served(spec, options.vllm_version)
        check_tp(spec, options.tp)
        _refuse(spec, options)
        kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
        dtype_bytes = DTYPE_BYTES[kv_dtype]
        groups = kv_cache_groups(spec)
        heads_per_rank = 1 if spec.use_mla else max(1, spec.num_kv_heads // options.tp)
        page_per_token = (LayerKind.MLA if spec.use_mla else LayerKind.FULL).bytes_per_token(
            heads_per_rank, spec.head_size, dtype_bytes
        )
        block, state_notes = _gpu_block(options), list[str]()
        if spec.state is not None:
            block, state_notes = _state_block(spec, options, page_per_token)
        partition = stage_layers(spec, options.pp, options.pp_partition)
        replicated = _replicated(spec, options) and not self.per_worker_files
        stages, first = [], 0
        for index, count in enumerate(partition):
            slot = slot_layers(groups, first, count)
            kinds = spec.layer_kinds[first : first + count]
            kv_layers = sum(1 for kind in kinds if kind.keeps_kv)
            stored = kv_layers + sum(1 for kind in kinds if kind in STATE_KINDS)
            writers = (options.tp if stored else 0) if self.per_worker_files else (1 if index == 0 else 0)
            stages.append(
                Stage(
                    index=index,
                    first_layer=first,
                    layers=count,
                    kv_layers=kv_layers,
                    draft_layers=0,
                    writers=writers,
                    bytes_per_token_per_rank=slot * page_per_token,
                )
            )
            first += count
        tier = options.settings.tier  # type: ignore[attr-defined]
        return VllmLayout(
            options=options,
            connector=LLMD_FS_CONNECTOR if self.per_worker_files else TIER_CONNECTORS[tier],
            kv_dtype=kv_dtype,
            dtype_bytes=dtype_bytes,
            kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
            heads_per_rank=heads_per_rank,
            head_size=spec.head_size,
            replication=1 if spec.use_mla else max(1, options.tp // spec.num_kv_heads),
            stages=tuple(stages),
            bytes_per_token=sum(k.bytes_per_token(spec.num_kv_heads, spec.head_size, dtype_bytes) for k in spec.layer_kinds),
            warnings=tuple(dtype_warnings),
            notes=(*_notes(spec, options, groups, replicated), *state_notes),
            dtype_field=dtype_field,
            groups=groups,
            block_tokens=block,
            worker_block_bytes=stages[0].bytes_per_token_per_rank * block,
            copies=None if self.per_worker_files else (1 if replicated else options.tp * options.pp),
            host_page_bytes=None if self.per_worker_files else HOST_PAGE_BYTES,
        )

    def default_candidates(self, layout: Layout) -> tuple[int, ...]:
        """The engine's candidates, each rounded up to a multiple of the GPU block (a state model's is larger)."""
        block = layout.block_tokens or 1
        if self.per_worker_files:
            return tuple(sorted({-(-chunk // block) * block for chunk in self.info.candidates}))
        return tuple(block * chunk // 16 for chunk in self.info.candidates)  # 1, 4, 16, 64 and 128 blocks

    def chunk_problem(self, layout: Layout, chunk_tokens: int) -> str | None:
        block = layout.block_tokens or 1
        if chunk_tokens % block == 0:
            return None
        return (
            f"chunk {chunk_tokens:,} is not a multiple of vLLM's GPU block of {block} tokens: vLLM refuses that "
            f"block_size (offloading/config.py); use {-(-chunk_tokens // block) * block:,}, or give the block with "
            "`gpu_block_size`"
        )

    def _group_rows(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> list[tuple[KvGroup, int]]:
        return [(group, stored_chunks(group, prompt_tokens, chunk_tokens)) for group in _layout(layout).groups]

    def _row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int, counted: list[tuple[KvGroup, int]]) -> SweepRow:
        raise NotImplementedError

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return self._row(layout, prompt_tokens, chunk_tokens, self._group_rows(layout, prompt_tokens, chunk_tokens))

    def chunk_row(self, layout: Layout, chunk_tokens: int) -> SweepRow:
        """One (chunk, group) object (vLLM native), or one per worker (llm-d)."""
        return self._row(layout, chunk_tokens, chunk_tokens, [(_layout(layout).groups[0], 1)])

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        """Per group, as ``stored_chunks`` counts them: a full or chunked-local group every whole chunk; a
        sliding-window group the ``window_chunks`` before the last reachable boundary, N - 1. With a sliding-window
        group a load covers at most N - 1 tokens (``OffloadingConnectorScheduler._lookup_complete_chunks``: "the last
        prompt token has to be recomputed"), and that group needs its window's chunks before the hit
        (``_sliding_window_lookup``)."""
        vllm = _layout(layout)
        groups = []
        for group in vllm.groups:
            if group.kind in STATE_KIND_NAMES:
                raise UnsupportedModelError(
                    f"a replay under `engine` {self.name} of a model with state layers ({group.kind}): kvsize does not "
                    "yet model which states vLLM stores per request; use `engine` lmcache for the attention layers",
                    field="engine",
                )
            if group.window_tokens is None:
                groups.append(StoredGroup(start=0, stop=prompt_tokens // chunk_tokens))
                continue
            reachable = (prompt_tokens - 1) // chunk_tokens
            window = window_chunks(group.window_tokens, chunk_tokens)
            groups.append(StoredGroup(start=max(0, reachable - window), stop=reachable, window=window))
        windowed = any(group.window_tokens is not None for group in vllm.groups)
        return StoredChunks(groups=tuple(groups), max_hit_tokens=prompt_tokens - 1 if windowed else prompt_tokens)

    def gpu_pages(self, layout: Layout, spec: ModelSpec) -> GpuPages:
        """vLLM keeps its KV-cache groups (the connector supports the hybrid allocator): a block is the widest group's
        layers on the busiest worker times one layer's page (``_get_kv_cache_bytes_per_block``)."""
        vllm = _layout(layout)
        if any(group.kind in STATE_KIND_NAMES for group in vllm.groups):
            raise UnsupportedModelError(
                f"`gpu`: {spec.name} has state layers, whose GPU pages kvsize does not size under `engine` {self.name} "
                "yet; drop `gpu`, or use `engine` lmcache",
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
            groups=tuple(GpuGroup(kind=group.kind, window_tokens=windows.get(group.kind)) for group in vllm.groups),
            rule=f"vLLM's {len(vllm.groups)} KV-cache group{'s' if len(vllm.groups) != 1 else ''} share one pool of "
            "blocks (the native connector supports the hybrid allocator; kv_cache_planning.py get_kv_cache_groups)",
        )

    def cpu_tier_chunks(self, layout: Layout, chunk_row: SweepRow, cpu_bytes: int) -> tuple[int, str]:
        """vLLM's CPU tier: ``cpu_bytes_to_use // object`` slots of one (chunk, group) each (``v1/kv_offload/cpu/spec.py``)."""
        if self.per_worker_files:
            raise UnsupportedModelError("`cpu_tier`: llm-d's fs connector has no CPU tier; drop it", field="cpu_tier")
        slots = cpu_bytes // max(1, chunk_row.object_bytes)
        return slots, f"cpu_bytes_to_use {cpu_bytes:,} B / {chunk_row.object_bytes:,} B per (chunk, group) slot"

    def replay_notes(self, layout: Layout) -> list[str]:
        return [
            "vLLM's CPU tier evicts least-recently-used chunks (eviction_policy lru: v1/kv_offload/cpu/policies/lru.py), an "
            "older request's first and a request's tail before its head; its fs and obj tiers never evict "
            "(tiering/fs/manager.py), so storage is unlimited unless `storage_capacity` is given"
        ]

    def shared_chunk(self, layout: Layout, row: SweepRow) -> Share:
        """The objects of the groups that store every chunk (full and chunked-local attention), found again by their
        chained block hashes; a sliding-window or state group's objects sit at each prompt's end, so they stay per
        prompt."""
        every_chunk = sum(1 for g in _layout(layout).groups if g.window_tokens is None and g.kind not in STATE_KIND_NAMES)
        objects = every_chunk * (layout.writers if self.per_worker_files else 1)
        return Share(
            objects=objects,
            stored_bytes=objects * row.object_bytes,
            objects_per_writer=every_chunk,
            stored_bytes_per_writer=every_chunk * row.object_bytes,
        )

    def engine_options(self, layout: Layout) -> dict[str, Any]:
        vllm = _layout(layout)
        return {
            "tier": layout.connector.name if not self.per_worker_files else "fs",
            "gpu_block_size": layout.block_tokens,
            "kv_cache_groups": len(vllm.groups),
            "worker_block_bytes": vllm.worker_block_bytes,
            "copies": vllm.copies,
            "host_page_bytes": vllm.host_page_bytes,
            "io_threads": layout.connector.io_threads,
            "source": layout.connector.source,
        }

    def explain(self, sweep: Sweep) -> list[str]:
        """The groups, the shared slot, the page rounding, each group's stored chunks."""
        layout = _layout(sweep.layout)
        per_worker = self.per_worker_files
        block, slot_bytes = layout.block_tokens or 1, layout.worker_block_bytes
        lines = [
            "Layout (llm-d fs: one file per (chunk, KV-cache group, worker rank))"
            if per_worker
            else "Layout (vLLM native: one object per (chunk, KV-cache group) = round_up(copies x worker block x "
            "blocks per chunk, host page))",
            f"  KV dtype: {layout.kv_dtype} = {layout.dtype_bytes} B  <- {layout.dtype_field}",
            f"  heads/rank: {layout.heads_per_rank}; GPU block {block} tokens",
            "  groups: " + ", ".join(f"{g.kind} x {len(g.layers)}" for g in layout.groups),
        ]
        for stage in layout.stages:
            lines.append(
                f"  stage {stage.index}: layers {stage.first_layer}-{stage.first_layer + stage.layers - 1}, a slot of "
                f"{stage.bytes_per_token_per_rank:,} B/token per worker (the largest group's layers there), "
                f"{stage.writers} writers"
            )
        if not per_worker:
            per_token = layout.stages[0].bytes_per_token_per_rank
            lines.append(f"  worker block = {block} x {per_token:,} = {slot_bytes:,} B; copies {layout.copies}")
        for row in sweep.rows:
            lines.append(f"Chunk {row.chunk_tokens:,} ({row.chunk_tokens // block} blocks)")
            lines.append(
                f"  chunks = {sweep.prompt_tokens:,} // {row.chunk_tokens:,} = {row.full_chunks:,}; tail = "
                f"{row.tail_tokens:,} (not stored: only full chunks)"
            )
            if not per_worker:
                raw = (layout.copies or 1) * slot_bytes * (row.chunk_tokens // block)
                lines.append(
                    f"  object = round_up({layout.copies} x {slot_bytes:,} x {row.chunk_tokens // block}, "
                    f"{layout.host_page_bytes}) = round_up({raw:,}) = {row.object_bytes:,} B"
                )
            for group, counted in zip(layout.groups, row.groups or (), strict=True):
                if group.kind in STATE_KIND_NAMES:
                    rule = f"state: min(1, ({sweep.prompt_tokens:,} - 1) // {row.chunk_tokens:,})"
                elif group.window_tokens is not None:
                    chunks = window_chunks(group.window_tokens, row.chunk_tokens)
                    rule = (
                        f"window {group.window_tokens:,}: min({chunks:,}, ({sweep.prompt_tokens:,} - 1) // {row.chunk_tokens:,})"
                    )
                else:
                    rule = f"{sweep.prompt_tokens:,} // {row.chunk_tokens:,}"
                workers = f" x {layout.writers} workers" if per_worker else ""
                lines.append(f"  {group.kind} ({len(group.layers)} layers): {rule}{workers} -> {counted.objects:,} objects")
            lines.append(f"  total {row.objects:,} objects of {row.object_bytes:,} B = {row.total_bytes:,} B")
        return lines

    def assumptions(self, sweep: Sweep) -> list[str]:
        spec, layout = sweep.spec, _layout(sweep.layout)
        info, connector = self.info, layout.connector
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{info.stack}: {info.object_rule} ({info.source}; confidence {info.confidence}).",
            f"KV-cache groups ({len(layout.groups)}): "
            + ", ".join(f"{g.kind} x {len(g.layers)}" for g in layout.groups)
            + f"; GPU block {layout.block_tokens} tokens.",
            "Chunks: only full chunks are stored; the tail is recomputed.",
            f"Tier {connector.name}: {connector.layout} ({connector.source}).",
            "Prompts sharing a prefix share its whole chunks (chained block hashes), stored once.",
            "Bytes are exact; IEC units (KiB, MiB, GiB, TiB) are powers of 1024.",
        ]

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        tier = TRANSPORT_TIERS.get(transport)
        current = given.tier  # type: ignore[attr-defined]
        if "tier" in given.model_fields_set or TIER_CONNECTORS[current].transport == transport:
            return given
        if tier is None or tier not in type(given).model_fields["tier"].annotation.__args__:  # type: ignore[union-attr]
            return None
        return given.model_copy(update={"tier": tier})


class VllmNativeEngine(_VllmFamily):
    """vLLM 0.33's ``OffloadingConnector``: one object per (chunk, group), every worker's slice inside."""

    name = "vllm"
    Settings = Vllm
    per_worker_files = False
    emits = True
    info = EngineInfo(
        name="vllm",
        stack="vLLM 0.33 native offloading (OffloadingConnector, TieringOffloadingSpec)",
        setting="block_size",
        knob="kv_connector_extra_config.block_size (tokens; a multiple of the GPU block)",
        default_chunk=16,
        candidates=(16, 64, 256, 1024, 2048),
        object_rule="one object per (chunk, KV-cache group): round_up(world x worker block x blocks per chunk, "
        "host page); sliding-window groups keep their window's chunks",
        writers="the scheduler process (FS tier: 16 read / 16 write threads; OBJ: 4)",
        source="vllm/distributed/kv_transfer/kv_connector/v1/offloading/config.py, v1/kv_offload/cpu/spec.py",
    )

    def _row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int, counted: list[tuple[KvGroup, int]]) -> SweepRow:
        vllm = _layout(layout)
        assert vllm.copies and vllm.host_page_bytes
        block = layout.block_tokens or 1
        page = vllm.host_page_bytes
        raw = vllm.copies * vllm.worker_block_bytes * chunk_tokens // block
        object_bytes = -(-raw // page) * page
        objects = sum(count for _, count in counted)
        total = objects * object_bytes
        stages = [
            StageObjects(
                stage=stage.index,
                objects=objects if stage.index == 0 else 0,
                object_bytes=object_bytes if stage.index == 0 else 0,
                tail_object_bytes=0,
                total_bytes=total if stage.index == 0 else 0,
            )
            for stage in layout.stages
        ]
        groups = tuple(
            GroupObjects(kind=g.kind, layers=len(g.layers), objects=count, object_bytes=object_bytes) for g, count in counted
        )
        return whole_chunk_row(prompt_tokens, chunk_tokens, stages, object_bytes, objects, groups)

    def limits(self, row: SweepRow, layout: Layout, load_seconds: float | None) -> list[Limit]:
        """vLLM's CPU tier holds ``cpu_bytes_to_use // object`` chunk slots (``v1/kv_offload/cpu/spec.py``); a load
        stages the prompt's objects there, so one prompt's objects must fit."""
        settings = layout.options.settings
        assert isinstance(settings, Vllm)
        cpu_bytes = settings.cpu_bytes_to_use
        if cpu_bytes is None or not row.objects:
            return []
        slots = cpu_bytes // row.object_bytes
        if row.objects <= slots:
            return []
        return [
            Limit(
                limit="cpu_bytes_to_use",
                value=row.objects,
                threshold=slots,
                unit="objects",
                detail=f"{row.objects:,} objects > the {slots:,} slots of cpu_bytes_to_use "
                f"{format_iec(cpu_bytes)} ({format_iec(row.object_bytes)} each)",
            )
        ]

    def time_option_values(self, layout: Layout) -> dict[str, Any]:
        settings = layout.options.settings
        assert isinstance(settings, Vllm)
        return {"offload_cpu_bytes": settings.cpu_bytes_to_use}

    def text(self, layout: Layout) -> EngineText:
        vllm = _layout(layout)
        copies = f"{vllm.copies} worker slice{'s' if vllm.copies != 1 else ''}"
        return EngineText(
            subtitle=f"vLLM native offloading, tier {layout.connector.name}, GPU block {layout.block_tokens}: {copies} per "
            f"object, rounded up to {vllm.host_page_bytes:,} B; {layout.kv_dtype} KV",
            object_note="object = one (chunk, KV-cache group), every worker's slice inside, as written; objects = all groups.",
            tail_reason="only full chunks are stored",
            headline_suffix=f", engine {self.name}",
            no_timeout_note=f"prompts: {self.name} has no blocking timeout, so no cap is shown.",
        )

    def emit(self, sweep: Sweep, row: SweepRow, plan: Any, margin: float) -> tuple[str, list[str]]:
        from kvsize.engines.stack_settings import vllm_flags

        return vllm_flags(sweep, row, plan.options if plan else None, margin)


class LlmdFsEngine(_VllmFamily):
    """llm-d's fs connector (<= 0.22): one file per (chunk, group, worker rank)."""

    name = "llmd-fs"
    Settings = LlmdFs
    per_worker_files = True
    info = EngineInfo(
        name="llmd-fs",
        stack="llm-d fs connector <= 0.22 (llmd-fs-connector, a vLLM offloading spec)",
        setting="block_size",
        knob="kv_connector_extra_config.block_size (tokens)",
        default_chunk=256,
        candidates=(256, 512, 1024, 2048, 4096),
        object_rule="one file per (chunk, KV-cache group, worker rank): chunk x that worker's slot bytes per token",
        writers="every worker (TP x PP)",
        source="llmd_fs_backend/spec.py (llm-d-kv-cache-manager)",
    )

    def _row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int, counted: list[tuple[KvGroup, int]]) -> SweepRow:
        chunks = sum(count for _, count in counted)
        stages = [
            StageObjects(
                stage=stage.index,
                objects=stage.writers * chunks,
                object_bytes=chunk_tokens * stage.bytes_per_token_per_rank if stage.writers else 0,
                tail_object_bytes=0,
                total_bytes=stage.writers * chunks * chunk_tokens * stage.bytes_per_token_per_rank,
            )
            for stage in layout.stages
        ]
        largest = stages[layout.largest_stage.index]
        groups = tuple(
            GroupObjects(kind=g.kind, layers=len(g.layers), objects=count * layout.writers, object_bytes=largest.object_bytes)
            for g, count in counted
        )
        return whole_chunk_row(prompt_tokens, chunk_tokens, stages, largest.object_bytes, chunks, groups)

    def text(self, layout: Layout) -> EngineText:
        per_worker = layout.bytes_per_token_per_rank
        return EngineText(
            subtitle=f"llm-d fs connector: {format_count(per_worker)} B/token per worker file ({format_iec(per_worker)}); "
            f"GPU block {layout.block_tokens}; {layout.kv_dtype} KV",
            object_note="object = one worker's file of one (chunk, KV-cache group); objects = all workers and groups.",
            tail_reason="only full chunks are stored",
            headline_suffix=f", engine {self.name}",
            no_timeout_note=f"prompts: {self.name} has no blocking timeout, so no cap is shown.",
        )
