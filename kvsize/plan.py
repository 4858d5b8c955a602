"""The chunk-size sweep: for a prompt and candidate chunk sizes, what the engine stores.

Each engine (``kvsize.engines.registry``) gives the layout and one row per chunk size;
the sweep checks the candidates, refuses the sizes the engine refuses, and adds the
warnings every engine shares (a prompt past the context, a chunk longer than the prompt).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.engines.base import EngineOptions, GroupObjects, Layout, StageObjects, SweepRow
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError, shown
from kvsize.model.spec import ModelSpec

DEFAULT_CHUNK_SIZES: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
"""The sizes ``plan_sweep`` plans when given none (the default engine's candidates)."""
BASELINE_CHUNK = 256
"""The chunk size every row's ``reduction_vs_256`` compares against (the default engine's default chunk)."""
MAX_TOKENS = 1_000_000_000
__all__ = ["GroupObjects", "StageObjects", "Sweep", "SweepRow", "plan_layout", "plan_row", "plan_sweep"]
MAX_CHUNK_CANDIDATES = 64
"""Most candidate chunk sizes in one sweep: ``search`` does the fine search between them."""


class Sweep(BaseModel):
    """A model, its layout and the sweep rows: everything the renderers show."""

    model_config = ConfigDict(frozen=True)

    spec: ModelSpec
    layout: Layout
    prompt_tokens: int
    rows: tuple[SweepRow, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def plan_layout(spec: ModelSpec, options: EngineOptions) -> Layout:
    """The layout ``options.engine`` gives the model: which layers it stores, by whom, in objects of what size."""
    if not isinstance(options, EngineOptions):
        raise KvsizeError(f"`options` must be kvsize.EngineOptions, got {type(options).__name__}", field="options")
    return engine_for(options.engine).plan_layout(spec, options)


def plan_row(layout: Layout, prompt_tokens: int, chunk_tokens: int) -> SweepRow:
    """One chunk size: chunks, tail, objects and bytes, exactly as the layout's engine stores them."""
    if chunk_tokens < 1:
        raise KvsizeError(f"chunk size must be at least 1 token, got {chunk_tokens}")
    return engine_for(layout.engine).plan_row(layout, prompt_tokens, chunk_tokens)


def _check_sizes(chunk_sizes: tuple[int, ...] | list[int]) -> None:
    if not chunk_sizes:
        raise KvsizeError("no chunk sizes to plan: give `chunk_sizes` like 256,2048", field="chunk_sizes")
    for chunk in chunk_sizes:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_TOKENS:
            raise KvsizeError(f"chunk size must be 1 to {MAX_TOKENS:,} tokens, got {shown(chunk)}", field="chunk_sizes")
    if len(set(chunk_sizes)) > 2 * MAX_CHUNK_CANDIDATES:  # the candidates and what a search adds between them
        raise KvsizeError(
            f"`chunk_sizes` has {len(set(chunk_sizes)):,} sizes; give at most {MAX_CHUNK_CANDIDATES}", field="chunk_sizes"
        )


def plan_sweep(
    spec: ModelSpec,
    options: EngineOptions,
    prompt_tokens: int,
    chunk_sizes: tuple[int, ...] | list[int] | None = DEFAULT_CHUNK_SIZES,
) -> Sweep:
    """Plan every candidate chunk size for one prompt (None: the engine's defaults for the model's layout)."""
    if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or not 1 <= prompt_tokens <= MAX_TOKENS:
        raise KvsizeError(f"`prompt` must be 1 to {MAX_TOKENS:,} tokens, got {shown(prompt_tokens)}", field="prompt")
    if chunk_sizes is not None:
        _check_sizes(chunk_sizes)
    engine = engine_for(options.engine)
    layout = engine.plan_layout(spec, options)
    if chunk_sizes is None:
        chunk_sizes = engine.default_candidates(layout)
    for chunk in sorted(set(chunk_sizes)):
        problem = engine.chunk_problem(layout, chunk)
        if problem:
            raise KvsizeError(problem, field="chunk_sizes")
    # "vs 256": against the engine's own objects at 256 tokens, when the engine takes that size.
    usable = engine.chunk_problem(layout, BASELINE_CHUNK) is None
    baseline = plan_row(layout, prompt_tokens, BASELINE_CHUNK).objects if usable else 0
    rows = []
    for chunk in sorted(set(chunk_sizes)):
        row = plan_row(layout, prompt_tokens, chunk)
        reduction = baseline / row.objects if row.objects and baseline else None
        rows.append(row.model_copy(update={"reduction_vs_256": reduction}))

    warnings = [*spec.warnings, *layout.warnings]
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
        notes=(*layout.notes, *engine.row_notes(layout, prompt_tokens, rows)),
    )
