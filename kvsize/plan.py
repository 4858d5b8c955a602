"""The chunk-size sweep: for a prompt and candidate chunk sizes, what LMCache stores.

The token database cuts a prompt into chunks (``lmcache/v1/token_database.py``,
``ChunkedTokenDatabase._chunk_tokens``)::

    end = len(tokens) if save_unfull_chunk else len(tokens) - len(tokens) % chunk_size

so the tail past the last whole chunk is dropped unless ``save_unfull_chunk`` is on
(default off since LMCache 0.3.11). Every writer stores its own object per chunk
(per layer in layerwise mode).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.engines.lmcache import DEFAULT_CHUNK_TOKENS, EngineOptions, Layout, plan_layout
from kvsize.errors import KvsizeError, shown
from kvsize.model.spec import ModelSpec

DEFAULT_CHUNK_SIZES: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
LMCACHE_DEFAULT_CHUNK = DEFAULT_CHUNK_TOKENS
MAX_TOKENS = 1_000_000_000
MAX_CHUNK_CANDIDATES = 64
"""Most candidate chunk sizes in one sweep: ``search`` does the fine search between them."""


class StageObjects(BaseModel):
    """One stage's share of a row: how many objects its writers store, and their bytes."""

    model_config = ConfigDict(frozen=True)

    stage: int
    objects: int
    object_bytes: int
    tail_object_bytes: int
    total_bytes: int


class SweepRow(BaseModel):
    """What loading (or storing) one prompt costs at one chunk size."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    full_chunks: int
    tail_tokens: int
    tail_saved: bool
    object_bytes: int
    """KV payload of one full-chunk object of the largest stage (one layer's when layerwise)."""
    tail_object_bytes: int
    """KV payload of one tail object of the largest stage (0 when the tail is not saved)."""
    objects: int
    """Objects stored for the prompt: all writers and stages (x layers when layerwise)."""
    objects_per_writer: int
    """Objects of the busiest writer (the largest stage's)."""
    total_bytes: int
    header_bytes: int
    stored_bytes: int
    reduction_vs_256: float | None
    """LMCache-default (256-token) objects divided by this row's; None when either stores nothing."""
    stages: tuple[StageObjects, ...]


class Sweep(BaseModel):
    """A model, its layout and the sweep rows: everything the renderers show."""

    model_config = ConfigDict(frozen=True)

    spec: ModelSpec
    layout: Layout
    prompt_tokens: int
    rows: tuple[SweepRow, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def plan_row(layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
    """One chunk size: chunks, tail, objects and bytes, exactly as LMCache stores them."""
    if chunk_tokens < 1:
        raise KvsizeError(f"chunk size must be at least 1 token, got {chunk_tokens}")
    options = layout.options
    full_chunks, tail_tokens = divmod(prompt_tokens, chunk_tokens)
    tail_saved = options.save_unfull_chunk and layout.connector.stores_partial_chunks and tail_tokens > 0
    saved_tail = tail_tokens if tail_saved else 0
    chunks = full_chunks + (1 if tail_saved else 0)

    stages = []
    for stage in layout.stages:
        per_object = stage.stored_layers if options.layerwise else 1
        objects = stage.writers * chunks * per_object
        bytes_per_token = stage.bytes_per_token_per_rank
        layer_share = stage.stored_layers if options.layerwise else 1
        stages.append(
            StageObjects(
                stage=stage.index,
                objects=objects,
                object_bytes=chunk_tokens * bytes_per_token // layer_share if stage.stored_layers else 0,
                tail_object_bytes=saved_tail * bytes_per_token // layer_share if stage.stored_layers else 0,
                total_bytes=stage.writers * (full_chunks * chunk_tokens + saved_tail) * bytes_per_token,
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


def plan_sweep(
    spec: ModelSpec,
    options: EngineOptions,
    prompt_tokens: int,
    chunk_sizes: tuple[int, ...] | list[int] = DEFAULT_CHUNK_SIZES,
) -> Sweep:
    """Plan every candidate chunk size for one prompt."""
    if not 1 <= prompt_tokens <= MAX_TOKENS:
        raise KvsizeError(f"`prompt` must be 1 to {MAX_TOKENS:,} tokens, got {shown(prompt_tokens)}", field="prompt")
    if not chunk_sizes:
        raise KvsizeError("no chunk sizes to plan: give `chunk_sizes` like 256,2048", field="chunk_sizes")
    if len(set(chunk_sizes)) > 2 * MAX_CHUNK_CANDIDATES:  # the candidates and what a search adds between them
        raise KvsizeError(
            f"`chunk_sizes` has {len(set(chunk_sizes)):,} sizes; give at most {MAX_CHUNK_CANDIDATES}", field="chunk_sizes"
        )
    for chunk in chunk_sizes:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_TOKENS:
            raise KvsizeError(f"chunk size must be 1 to {MAX_TOKENS:,} tokens, got {shown(chunk)}", field="chunk_sizes")
    layout = plan_layout(spec, options)
    baseline = plan_row(layout, prompt_tokens, LMCACHE_DEFAULT_CHUNK).objects
    rows = []
    for chunk in sorted(set(chunk_sizes)):
        row = plan_row(layout, prompt_tokens, chunk)
        reduction = baseline / row.objects if row.objects and baseline else None
        rows.append(row.model_copy(update={"reduction_vs_256": reduction}))

    warnings = [*spec.warnings, *layout.warnings]
    if options.save_unfull_chunk and not layout.connector.stores_partial_chunks:
        warnings.append(
            f"--save-unfull-chunk has no effect with --connector {layout.connector.name}: it never stores a "
            "partial chunk, so the tail stays unsaved"
        )
    context = spec.max_position_embeddings
    if context is not None and prompt_tokens > context:
        field = spec.fields["context"].field if "context" in spec.fields else "max_position_embeddings"
        warnings.append(
            f"the {prompt_tokens:,}-token prompt is longer than the model's context ({field} = {context:,}): sized "
            "anyway; serving it needs a longer max_model_len (and a model that supports it)"
        )
    if any(row.objects == 0 for row in rows):
        short = [f"{row.chunk_tokens:,}" for row in rows if row.objects == 0]
        warnings.append(
            f"the {prompt_tokens:,}-token prompt is shorter than chunk {', '.join(short)}: nothing is stored at "
            "that size (save_unfull_chunk is off)"
        )
    return Sweep(
        spec=spec,
        layout=layout,
        prompt_tokens=prompt_tokens,
        rows=tuple(rows),
        warnings=tuple(warnings),
        notes=(*spec.notes, *layout.notes),
    )
