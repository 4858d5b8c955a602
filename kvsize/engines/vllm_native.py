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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from kvsize.engines.base import (
    Connector,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Flag,
    GroupObjects,
    KvGroup,
    Layout,
    Limit,
    Share,
    Stage,
    StageObjects,
    SweepRow,
    whole_chunk_row,
)
from kvsize.engines.serving import DTYPE_BYTES, check_served, check_tp, resolve_kv_dtype, stage_layers
from kvsize.engines.vllm_groups import STATE_KIND_NAMES, STATE_KINDS, kv_cache_groups, slot_layers, stored_chunks, window_chunks
from kvsize.engines.vllm_state import (
    DEFAULT_ARCH,
    MAX_BATCHED_TOKENS,
    GpuArch,
    StoredStates,
    prefill_budget,
    prefill_checkpoints,
    resend_notes,
    state_block,
    state_rule,
    stored_states,
)
from kvsize.engines.vllm_tiers import VllmTiers
from kvsize.errors import UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
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
BatchedTokens = Field(default=None, ge=1, le=MAX_BATCHED_TOKENS)
ARCH_FLAG = Flag(
    "--gpu-arch",
    "The GPU generation vLLM runs on: ampere, ada, hopper (default), blackwell. A state model's GPU block (Gated "
    "DeltaNet) and the default --max-num-batched-tokens follow it, and with them the states it stores.",
)
BATCHED_FLAG = Flag(
    "--max-num-batched-tokens",
    "vLLM's per-step token budget (default by --gpu-arch: 2,048 ampere and ada, 8,192 hopper, 16,384 blackwell): "
    "a state model stores a state at each prefill chunk end.",
    "int",
)


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
        "gpu_arch": ARCH_FLAG,
        "max_num_batched_tokens": BATCHED_FLAG,
    }

    tier: TierName = "fs"
    """The secondary tier: cpu (``--kv-offloading-size`` alone), fs or obj."""
    gpu_block_size: int | None = GpuBlock
    """vLLM's GPU KV-cache block in tokens (``--block-size``); None: ``CacheConfig.DEFAULT_BLOCK_SIZE`` 16, or the
    block a state model forces."""
    kv_offloading_size: float | None = Field(default=None, gt=0, le=2**30)
    """``--kv-offloading-size`` in GiB: the CPU tier, ``cpu_bytes_to_use`` = GiB x 2**30 (``config/vllm.py``)."""
    gpu_arch: GpuArch = DEFAULT_ARCH
    """The GPU generation: it picks the Gated DeltaNet prefill kernel (the GPU block of Qwen3-Next) and the default
    ``max_num_batched_tokens``."""
    max_num_batched_tokens: int | None = BatchedTokens
    """vLLM's ``--max-num-batched-tokens``; None: ``vllm serve``'s default for ``gpu_arch`` (``BATCHED_TOKENS``)."""

    @property
    def cpu_bytes_to_use(self) -> int | None:
        return None if self.kv_offloading_size is None else int(self.kv_offloading_size * GIB)


class LlmdFs(EngineSettings):
    """llm-d's fs connector as the engine: ``kvsize.size(model, engine=kvsize.engines.LlmdFs())``."""

    ENGINE: ClassVar[str] = "llmd-fs"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "tier": Flag("--tier", "llm-d writes files only: fs."),
        "gpu_block_size": Vllm.FLAGS["gpu_block_size"],
        "gpu_arch": ARCH_FLAG,
        "max_num_batched_tokens": BATCHED_FLAG,
    }

    tier: Literal["fs"] = "fs"
    gpu_block_size: int | None = GpuBlock
    gpu_arch: GpuArch = DEFAULT_ARCH
    """As ``Vllm.gpu_arch``: the GPU block and the chunk ends are vLLM's, whatever connector stores them."""
    max_num_batched_tokens: int | None = BatchedTokens


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
    gpu_arch: str
    batched_tokens: int
    """The per-step token budget prefill chunks are cut from (``max_num_batched_tokens``)."""
    prefill_checkpoints: bool
    """The state groups take a prefill checkpoint one block before each chunk end (Mamba2, FlashInfer's GDN)."""


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


def _layout(layout: Layout) -> VllmLayout:
    assert isinstance(layout, VllmLayout)
    return layout


def _state_groups(layout: VllmLayout) -> int:
    return sum(1 for g in layout.groups if g.kind in STATE_KIND_NAMES)


def _has_states(layout: VllmLayout) -> bool:
    return _state_groups(layout) > 0


def _states(layout: VllmLayout, prompt_tokens: int, chunk_tokens: int) -> StoredStates | None:
    """What each state group stores for the prompt at this chunk (None for a model without state layers)."""
    if not _has_states(layout):
        return None
    return stored_states(prompt_tokens, layout.block_tokens or 1, layout.batched_tokens, chunk_tokens, layout.prefill_checkpoints)


def _resend_hit(layout: VllmLayout, states: StoredStates | None) -> int | None:
    """Tokens an identical resend reloads, for a state model whose other groups keep every chunk; None otherwise (a
    sliding-window group beside the states would need its window's chunks at the state too: not derived here)."""
    if states is None or any(g.window_tokens is not None for g in layout.groups):
        return None
    return states.resend_hit_tokens


class _VllmFamily(VllmTiers):
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
            block, state_notes = state_block(spec, options, page_per_token)
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
            gpu_arch=options.settings.gpu_arch,  # type: ignore[attr-defined]
            batched_tokens=prefill_budget(options),
            prefill_checkpoints=spec.state is not None and prefill_checkpoints(spec.state, options.settings.gpu_arch),  # type: ignore[attr-defined]
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
        states = _states(_layout(layout), prompt_tokens, chunk_tokens)
        return [(group, stored_chunks(group, prompt_tokens, chunk_tokens, states)) for group in _layout(layout).groups]

    def recompute_tokens(self, row: SweepRow, layout: Layout) -> int:
        """A state model's resend reloads only up to its last stored state (``resend_hit_tokens``) and recomputes the
        rest, which can be the whole prompt; otherwise the tail."""
        hit = row.groups[0].resend_hit_tokens if row.groups else None
        if hit is None:
            return row.tail_tokens
        return row.full_chunks * row.chunk_tokens + row.tail_tokens - hit

    def row_notes(self, layout: Layout, prompt_tokens: int, rows: Sequence[SweepRow]) -> list[str]:
        """For a state model: what an identical resend reloads at each chunk, and the chunks at which no state is
        stored where a reload could use it (the prompt's attention objects are then never loaded)."""
        vllm = _layout(layout)
        hits = [(row, states) for row in rows if (states := _states(vllm, prompt_tokens, row.chunk_tokens))]
        if not hits or _resend_hit(vllm, hits[0][1]) is None:
            return []
        return resend_notes(hits, _state_groups(vllm) * self._writers(layout))

    def _writers(self, layout: Layout) -> int:
        """Objects per group per chunk: llm-d writes one per worker."""
        return layout.writers if self.per_worker_files else 1

    def _group_objects(
        self, layout: Layout, counted: list[tuple[KvGroup, int]], prompt_tokens: int, chunk_tokens: int, object_bytes: int
    ) -> tuple[GroupObjects, ...]:
        """Each group's objects; a state model's groups add the states handed over and what a resend reloads."""
        vllm = _layout(layout)
        states = _states(vllm, prompt_tokens, chunk_tokens)
        hit = _resend_hit(vllm, states)
        return tuple(
            GroupObjects(
                kind=g.kind,
                layers=len(g.layers),
                objects=count * self._writers(layout),
                object_bytes=object_bytes,
                states_handed_over=states.handed_over if states and g.kind in STATE_KIND_NAMES else None,
                resend_hit_tokens=hit,
            )
            for g, count in counted
        )

    def shared_chunk(self, layout: Layout, row: SweepRow) -> Share:
        """The objects of the groups that store every chunk (full and chunked-local attention), found again by their
        chained block hashes; a sliding-window group's objects sit at each prompt's end, and a state group's at the
        prompt's prefill chunk ends, so both are counted per prompt."""
        every_chunk = sum(1 for g in _layout(layout).groups if g.window_tokens is None and g.kind not in STATE_KIND_NAMES)
        objects = every_chunk * (layout.writers if self.per_worker_files else 1)
        stored = objects * row.object_bytes
        if self.per_worker_files:  # each worker's file is its own stage's slot (stages of unequal layers differ)
            stored = every_chunk * sum(s.writers * row.chunk_tokens * s.bytes_per_token_per_rank for s in layout.stages)
        return Share(
            objects=objects,
            stored_bytes=stored,
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
            "gpu_arch": vllm.gpu_arch,
            "max_num_batched_tokens": vllm.batched_tokens,
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
                    rule = state_rule(_states(layout, sweep.prompt_tokens, row.chunk_tokens), layout.prefill_checkpoints)
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
            hit = _resend_hit(layout, _states(layout, sweep.prompt_tokens, row.chunk_tokens))
            if hit is not None:
                lines.append(f"  an identical resend reloads {hit:,} tokens (the last stored state below the prompt's end)")
        return lines

    def assumptions(self, sweep: Sweep) -> list[str]:
        spec, layout = sweep.spec, _layout(sweep.layout)
        info, connector = self.info, layout.connector
        states = []
        if _has_states(layout):
            states.append(
                "State groups: a state at each block-aligned prefill chunk end, stored where the chunk divides it, for "
                f"a prompt prefilled alone on {layout.gpu_arch} with max_num_batched_tokens {layout.batched_tokens:,} "
                "(vllm/v1/core/sched/scheduler.py _mamba_block_aligned_split; offloading/scheduler.py "
                "_build_aligned_boundary_store_jobs); a resend reloads up to the last stored state."
            )
        return [
            f"Model fields from {spec.source}; KV dtype {layout.kv_dtype} ({layout.dtype_field}).",
            f"{info.stack}: {info.object_rule} ({info.source}; confidence {info.confidence}).",
            f"KV-cache groups ({len(layout.groups)}): "
            + ", ".join(f"{g.kind} x {len(g.layers)}" for g in layout.groups)
            + f"; GPU block {layout.block_tokens} tokens.",
            *states,
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
        groups = self._group_objects(layout, counted, prompt_tokens, chunk_tokens, object_bytes)
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

    def emit(
        self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: EmitOptions | None = None
    ) -> tuple[str, list[str]]:
        from kvsize.engines.vllm_settings import vllm_flags

        layout = _layout(sweep.layout)
        given = layout.options.settings.max_num_batched_tokens  # type: ignore[attr-defined]
        # A state model's stored states follow the prefill budget: serve it with the one sized.
        budget = layout.batched_tokens if given is not None or _has_states(layout) else None
        return vllm_flags(sweep, row, plan.options if plan else None, margin, emit_options, budget)


class LlmdFsEngine(_VllmFamily):
    """llm-d's fs connector (<= 0.22): one file per (chunk, group, worker rank)."""

    name = "llmd-fs"
    Settings = LlmdFs
    per_worker_files = True
    no_emit_reason = (
        "llm-d's fs connector stops at vLLM 0.22 (llmd-fs-connector 0.22 is its last release, and its spec imports "
        "vllm.v1.kv_offload.worker, which vLLM 0.33 no longer has); on vLLM 0.33 the same files come from `engine` vllm "
        "`tier` fs, which kvsize emits"
    )
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
        groups = self._group_objects(layout, counted, prompt_tokens, chunk_tokens, largest.object_bytes)
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
