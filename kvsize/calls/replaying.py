"""``kvsize.replay``: a request trace replayed over the tiers, from GPU memory down, at every candidate chunk size.

Arguments come in groups as for ``kvsize.size``: ``Serving``, the engine's settings, ``Workload`` (the prefill rate
and the prompts loading at once; the trace gives the prompts), ``Storage`` (one backend to time the loads on),
``Gpu`` (the first tier) and ``Replay`` (the trace's block, a CPU tier, a storage capacity). The result's
``model_dump(mode="json")`` is ``kvsize replay --format json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from kvsize.calls.args import Storage, Workload, draft_layers, grouped, resolve_spec
from kvsize.calls.sizing import candidate_sizes, gpu_group, prefill_gpu
from kvsize.engines.base import Checked, EngineOptions, EngineSettings, Layout, Serving
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError, shown
from kvsize.gpu import Gpu
from kvsize.model.spec import ModelSpec
from kvsize.plan import plan_sweep
from kvsize.traces.reader import Request, read_trace
from kvsize.traces.result import ReplayResult
from kvsize.traces.session import Tiers, prepare, run
from kvsize.traces.synthetic import SyntheticTrace

MAX_BYTES = 2**60
RULE = (
    "Reuse rule: a request stores its engine's chunks (whole chunks 0 .. floor(N / C) - 1 unless the engine stores "
    "otherwise); chunk j's key is (hash_ids[0 .. ceil((j + 1) C / B) - 1], j mod max(1, B / C)); a request loads, from "
    "the first chunk its GPU hit leaves, its leading run of stored chunks (stopping at the first miss), and stores those "
    "of the rest not stored yet; then all it stored or loaded becomes the most recent, its head last (LRU)."
)


class Replay(Checked):
    """A replay's own arguments: ``kvsize.Replay(cpu_tier=64 * 2**30, storage_capacity=10 * 2**40)``."""

    trace_block: int = Field(default=512, ge=1, le=2**20, json_schema_extra={"unit": "tokens"})
    """Tokens per block of the trace's ``hash_ids`` (Mooncake's: 512)."""
    cpu_tier: int | None = Field(default=None, ge=1, le=MAX_BYTES)
    """A CPU tier in bytes between the GPU and storage (LMCache ``max_local_cpu_size``, per rank; vLLM
    ``cpu_bytes_to_use``); None: no CPU tier."""
    storage_capacity: int | None = Field(default=None, ge=1, le=MAX_BYTES)
    """The storage tier's capacity in bytes, least recently used evicted; None: unlimited."""


def _requests(trace: Any, block: int, progress: Callable[[int, int], None] | None) -> tuple[str, Iterator[Request], Any]:
    """The trace's source name, its requests (streamed), and the generator's arguments when generated."""
    if isinstance(trace, SyntheticTrace):
        total = trace.requests

        def generated() -> Iterator[Request]:
            for request in trace.generate(block):
                if progress is not None and request.line % 256 == 0:
                    progress(request.line, total)
                yield request

        return "generated", generated(), trace.model_dump(mode="json")
    if isinstance(trace, (str, Path)) and str(trace).strip():
        return str(trace), read_trace(Path(trace), block, progress), None
    raise KvsizeError(f"`trace` must be a JSONL file or a kvsize.SyntheticTrace, got {shown(trace)}", field="trace")


def _check(workload: Workload, storage: Storage, options: Any) -> Replay:
    for name in ("prompt", "shared_prefix"):
        if name in workload.model_fields_set:
            raise KvsizeError(f"`{name}` does not apply to a replay: the trace gives each request's prompt", field=name)
    if len(storage.backend) > 1 or storage.search:
        raise KvsizeError("a replay times its loads on one `backend`, without `search`; give one", field="backend")
    if options is None:
        return Replay()
    if not isinstance(options, Replay):
        raise KvsizeError(f"`options` must be kvsize.Replay, got {shown(options)}", field="options")
    return options


def _tiers(spec: ModelSpec, layout: Layout, gpu: Gpu, options: Replay) -> Tiers:
    tiers = Tiers(cpu_bytes=options.cpu_tier, storage_bytes=options.storage_capacity)
    if gpu.given:
        from kvsize.calls.gpu_memory import plan_gpu

        report = plan_gpu(spec, layout, gpu, layout.block_tokens or 16)
        tiers.gpu_blocks, tiers.gpu_block_tokens = report.prefix_cache_blocks, report.block_tokens
    return tiers


def replay(
    model: str,
    trace: str | Path | SyntheticTrace,
    *,
    serving: Serving | None = None,
    engine: str | EngineSettings | None = None,
    workload: Workload | None = None,
    storage: Storage | None = None,
    gpu: Gpu | None = None,
    options: Replay | None = None,
    chunk_sizes: Sequence[int] | None = None,
    mtp: bool = False,
    catalog: str | Path | None = None,
    revision: str | None = None,
    offline: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay ``trace`` (a Mooncake-format JSONL file, streamed, or a ``kvsize.SyntheticTrace``) under the engine at
    each candidate chunk size: hits per tier, objects and bytes stored and loaded, rates per second, the storage a hit
    rate needs, and with ``storage`` the loads timed and a pick. ``progress(done, total)`` is called as it goes."""
    serving, settings, workload, storage = grouped(
        {}, serving=serving, engine=engine, workload=workload, storage=storage, call="replay"
    )
    gpu = gpu_group(gpu)
    workload, replay_options = prefill_gpu(workload, gpu), _check(workload, storage, options)
    source, requests, generated = _requests(trace, replay_options.trace_block, progress)
    sizes = candidate_sizes(chunk_sizes, None)
    spec = resolve_spec(model, catalog, revision, offline)
    engine_options = EngineOptions(serving=draft_layers(spec, serving, mtp), settings=settings, engine=settings.engine_name())
    layout = plan_sweep(spec, engine_options, replay_options.trace_block, sizes).layout
    chunks = sizes or engine_for(layout.engine).default_candidates(layout)
    tiers = _tiers(spec, layout, gpu, replay_options)
    replays, state = prepare(layout, tuple(sorted(set(chunks))), replay_options.trace_block, tiers)
    run(requests, replays, state, tiers, replay_options.trace_block)
    from kvsize.traces.report import Context, assemble

    context = Context(spec, layout, source, replay_options.trace_block, generated, gpu, workload, storage, tiers)
    return assemble(context, replays, state, RULE)
