"""SGLang 0.5.23 HiCache's L3 storage (``--enable-hierarchical-cache --hicache-storage-backend``).

From the sglang 0.5.23 wheel (``pip download --no-deps sglang==0.5.23``):

- the unit is the page, ``--page-size`` (default 1 on CUDA), which is also the GPU radix/attention page;
  only whole pages are stored (``RadixKey.page_aligned``);
- ``file`` (``srt/mem_cache/hicache_storage.py`` ``HiCacheFile``): one file per page per TP rank,
  ``<hash>_<model>_<tp_rank>_<tp_size>[_<pp_size>_<pp_rank>].bin``, holding the stage's K and V
  (``MHATokenToKVPoolHost.get_data_page``: ``2 x L x P x heads/rank x head x dtype``); ``batch_get`` is one
  ``get`` per key in a Python loop;
- ``mooncake``, ``nixl``, ``hf3fs`` (zero-copy, ``cache_controller.py`` ``_page_set_zero_copy``): with the
  page-first layouts ``get_page_buffer_meta`` gives a K and a V buffer per page, each ``L x P x heads/rank x
  head x dtype``: two objects per page per rank, batched 128 pages per call (``STORAGE_BATCH_SIZE``);
- MLA: one object per page, written by one rank (``is_storage_writer``), its key without the TP rank;
- no L3 lookup below ``max(256, page)`` tokens (``prefetch_threshold``, ``managers/cache_controller.py``);
- PP: ``get_pp_indices`` (``srt/distributed/utils.py``) gives the last ``n % pp`` stages one extra layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from kvsize.engines.base import (
    Connector,
    EngineInfo,
    EngineOptions,
    EngineSettings,
    EngineText,
    Flag,
    GpuPages,
    Layout,
    StoredChunks,
    StoredGroup,
    SweepRow,
)
from kvsize.engines.per_rank import PerRankEngine, per_rank_row, refuse_beyond_attention, stages
from kvsize.engines.serving import DTYPE_BYTES, check_tp, resolve_kv_dtype, stage_layers
from kvsize.errors import ParallelismError, UnsupportedModelError
from kvsize.model.spec import LayerKind, ModelSpec
from kvsize.units import format_count, format_iec

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.plan import Sweep

PREFETCH_THRESHOLD = 256
STORAGE_BATCH_SIZE = 128
_SOURCE = "sglang/srt/mem_cache/hicache_storage.py, managers/cache_controller.py (sglang 0.5.23)"

BACKENDS: dict[str, Connector] = {
    "file": Connector(
        name="file",
        url="--hicache-storage-backend file",
        header_bytes=0,
        requests_per_object=1,
        stores_partial_chunks=False,
        int32_header=False,
        layout="one file per page per TP rank holding K and V (<hash>_<model>_<tp_rank>_<tp_size>.bin); one get per "
        "page in a Python loop",
        source="sglang/srt/mem_cache/hicache_storage.py HiCacheFile",
        io_threads=1,
        io_note="1 request in flight per rank: SGLang's file backend gets one page at a time in a Python loop "
        "(sglang/srt/mem_cache/hicache_storage.py HiCacheFile), whatever the profile's concurrency",
        transport="file",
    ),
    **{
        name: Connector(
            name=name,
            url=f"--hicache-storage-backend {name}",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=False,
            int32_header=False,
            layout="K and V as separate objects per page per TP rank (<hash>_<tp_rank>_k / _v), batched "
            f"{STORAGE_BATCH_SIZE} pages per call"
            + ("; slots of one large file per rank (offset I/O)" if name == "hf3fs" else ""),
            source="sglang/srt/managers/cache_controller.py _page_set_zero_copy; mem_cache/pool_host/mha.py",
            transport="other",
        )
        for name in ("mooncake", "nixl", "hf3fs")
    },
}


def sglang_pp_split(num_layers: int, pp: int) -> list[int]:
    """SGLang's ``get_pp_indices``: ``n // pp`` each, the last ``n % pp`` stages one more (61 at PP 4: 15, 15, 15, 16)."""
    base, remainder = divmod(num_layers, pp)
    return [base + (1 if index >= pp - remainder else 0) for index in range(pp)]


class Sglang(EngineSettings):
    """SGLang HiCache as the engine: ``kvsize.size(model, engine=kvsize.engines.Sglang(backend="mooncake"))``."""

    ENGINE: ClassVar[str] = "sglang"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "backend": Flag("--sglang-backend", "HiCache's L3 backend: file (default), mooncake, nixl, hf3fs."),
    }
    ALIASES: ClassVar[Mapping[str, str]] = {"sglang_backend": "backend"}

    backend: Literal["file", "mooncake", "nixl", "hf3fs"] = "file"
    """HiCache's L3 backend (``--hicache-storage-backend``)."""


class SglangEngine(PerRankEngine):
    """SGLang HiCache: one object (file) or two (K and V) per page per TP rank."""

    name = "sglang"
    Settings = Sglang
    emits = True
    info = EngineInfo(
        name="sglang",
        stack="SGLang 0.5.23 HiCache L3 storage (--enable-hierarchical-cache)",
        setting="--page-size",
        knob="--page-size (tokens; also the GPU attention page)",
        default_chunk=1,
        candidates=(1, 16, 64, 256, 1024),
        object_rule="file: one file per (page, TP rank) of 2 x L x P x heads/rank x head x dtype; mooncake/nixl/hf3fs: "
        "K and V apart, two objects per (page, rank); MLA: one object per page from one rank",
        writers="every TP rank of every stage (MLA: one per stage)",
        source=_SOURCE,
    )

    def plan_layout(self, spec: ModelSpec, options: EngineOptions) -> Layout:
        check_tp(spec, options.tp)
        refuse_beyond_attention(spec, options, "SGLang keeps them in extra pools (SWA, Mamba) whose keys the facts do not size")
        if options.pp > spec.num_layers:
            raise ParallelismError(f"`pp` {options.pp} is more than the model's {spec.num_layers} layers", field="pp")
        kv_dtype, dtype_field, dtype_warnings = resolve_kv_dtype(spec, options.kv_dtype)
        dtype_bytes = DTYPE_BYTES[kv_dtype]
        heads = 1 if spec.use_mla else max(1, spec.num_kv_heads // options.tp)
        partition = (
            stage_layers(spec, options.pp, options.pp_partition)
            if options.pp_partition
            else sglang_pp_split(spec.num_layers, options.pp)
        )
        settings = options.settings
        assert isinstance(settings, Sglang)
        backend = BACKENDS[settings.backend]
        split = 1 if spec.use_mla or backend.name == "file" else 2
        notes = [
            "the page size is also SGLang's GPU radix/attention page: changing it changes the GPU cache, not only the I/O",
            f"SGLang looks up L3 only for prompts of at least max({PREFETCH_THRESHOLD}, page) tokens (prefetch_threshold)",
        ]
        if spec.use_mla:
            notes.append("MLA: one object per page, written by one rank per stage (is_storage_writer), key without the rank")
        return Layout(
            options=options,
            connector=backend,
            kv_dtype=kv_dtype,
            dtype_bytes=dtype_bytes,
            kv_factor=(LayerKind.MLA if spec.use_mla else LayerKind.FULL).kv_factor,
            heads_per_rank=heads,
            head_size=spec.head_size,
            replication=1 if spec.use_mla else max(1, options.tp // spec.num_kv_heads),
            stages=tuple(stages(spec, partition, 1 if spec.use_mla else options.tp, heads, dtype_bytes)),
            bytes_per_token=sum(k.bytes_per_token(spec.num_kv_heads, spec.head_size, dtype_bytes) for k in spec.layer_kinds),
            warnings=tuple(dtype_warnings),
            notes=tuple(notes),
            dtype_field=dtype_field,
            objects_per_chunk=split,
        )

    def plan_row(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
        return per_rank_row(layout, prompt_tokens, chunk_tokens)

    def gpu_pages(self, layout: Layout, spec: ModelSpec) -> GpuPages:
        raise UnsupportedModelError(
            "`gpu` under `engine` sglang: SGLang sizes its KV pool by --mem-fraction-static (its own allocator), not by "
            "vLLM's rule that kvsize models; drop `gpu`",
            field="gpu",
        )

    def stored_chunks(self, layout: Layout, prompt_tokens: int, chunk_tokens: int) -> StoredChunks:
        """Whole pages; a match covers at most N - 1 tokens (``Req._compute_max_prefix_len``: ``input_len - 1``,
        ``managers/schedule_batch.py``)."""
        return StoredChunks(groups=(StoredGroup(start=0, stop=prompt_tokens // chunk_tokens),), max_hit_tokens=prompt_tokens - 1)

    def replay_notes(self, layout: Layout) -> list[str]:
        return [
            "SGLang's host tier evicts least-recently-used pages (--radix-eviction-policy lru, mem_cache/evict_policy.py); "
            "its file backend never evicts unless given max_size (storage/file/lru_file_evictor.py: LRU then); an L3 "
            f"lookup needs max({PREFETCH_THRESHOLD}, page) tokens to fetch (prefetch_threshold), not modelled"
        ]

    def engine_options(self, layout: Layout) -> dict[str, Any]:
        return {
            "backend": layout.connector.name,
            "mem_layout": "page_first",
            "kv_split": layout.objects_per_chunk == 2,
            "page_is_attention_page": True,
            "prefetch_threshold_tokens": PREFETCH_THRESHOLD,
            "batch_pages": STORAGE_BATCH_SIZE,
            "io_threads": layout.connector.io_threads,
            "source": layout.connector.source,
        }

    def text(self, layout: Layout) -> EngineText:
        per_rank = layout.bytes_per_token_per_rank
        split = ", K and V apart" if layout.objects_per_chunk == 2 else ""
        return EngineText(
            subtitle=f"SGLang HiCache, backend {layout.connector.name}{split}: {format_count(per_rank)} B/token per rank "
            f"({format_iec(per_rank)}); {layout.kv_dtype} KV",
            object_note="chunk = SGLang's page; object = one rank's page (K or V alone when stored apart); objects = all ranks.",
            tail_reason="only full chunks are stored",
            headline_suffix=f", engine {self.name}",
            unit="page",
            no_timeout_note=f"prompts: {self.name} has no blocking timeout, so no cap is shown.",
        )

    def emit(
        self, sweep: Sweep, row: SweepRow, plan: Any, margin: float, emit_options: EmitOptions | None = None
    ) -> tuple[str, list[str]]:
        from kvsize.engines.sglang_settings import sglang_flags

        return sglang_flags(sweep, row, plan.options if plan else None, margin, emit_options)

    def settings_for_transport(self, transport: str, given: EngineSettings) -> EngineSettings | None:
        assert isinstance(given, Sglang)
        if "backend" in given.model_fields_set or BACKENDS[given.backend].transport == transport:
            return given
        return given.model_copy(update={"backend": "file"}) if transport == "file" else None
