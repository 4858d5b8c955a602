"""``kvsize engines``: every engine's facts, and one prompt sized under each of them side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from kvsize.api import MAX_PARALLEL, resolve_spec
from kvsize.engines.base import EngineInfo
from kvsize.engines.lmcache import EngineOptions
from kvsize.engines.registry import ENGINES
from kvsize.errors import KvsizeError, whole
from kvsize.plan import MAX_CHUNK_CANDIDATES, MAX_TOKENS, plan_row


class EngineRow(BaseModel):
    """One engine at one chunk size: what one prompt stores."""

    model_config = ConfigDict(frozen=True)

    engine: str
    chunk_tokens: int
    default: bool
    """True at the engine's default chunk."""
    objects: int
    object_bytes: int
    total_bytes: int


class EnginesReport(BaseModel):
    """``kvsize.compare_engines()`` / ``kvsize engines --format json``."""

    model_config = ConfigDict(frozen=True)

    engines: list[EngineInfo]
    model: str | None
    tp: int
    pp: int
    prompt_tokens: int
    rows: list[EngineRow]
    """Empty without a model."""
    warnings: list[str]


def compare_engines(
    model: str | None = None,
    *,
    tp: int = 1,
    pp: int = 1,
    prompt: int = 100_000,
    chunk_sizes: Sequence[int] = (256,),
    catalog: Path | str | None = None,
    offline: bool = False,
) -> EnginesReport:
    """Each engine's knob, default and object rule; with ``model``, its prompt under each engine at the engine's
    default chunk and at ``chunk_sizes`` (sizes an engine refuses are left out, with a warning)."""
    whole(tp, "tp", 1, MAX_PARALLEL)
    whole(pp, "pp", 1, MAX_PARALLEL)
    whole(prompt, "prompt", 1, MAX_TOKENS)
    if len(chunk_sizes) > MAX_CHUNK_CANDIDATES:
        raise KvsizeError(
            f"`chunk_sizes` has {len(chunk_sizes):,} entries; give at most {MAX_CHUNK_CANDIDATES}", field="chunk_sizes"
        )
    for chunk in chunk_sizes:
        whole(chunk, "chunk_sizes", 1, MAX_TOKENS)
    infos = [engine.info for engine in ENGINES.values()]
    rows: list[EngineRow] = []
    warnings: list[str] = []
    if model is not None:
        spec = resolve_spec(model, catalog, None, offline)
        warnings += spec.warnings
        for name, engine in ENGINES.items():
            try:
                layout = engine.plan_layout(spec, EngineOptions(tp=tp, pp=pp, engine=name))
            except KvsizeError as error:
                warnings.append(f"{name}: {error}")
                continue
            default = engine.default_candidates(layout)[0]  # the knob's default (a state model's larger block)
            for chunk in sorted({default, *chunk_sizes}):
                problem = engine.chunk_problem(layout, chunk)
                if problem:
                    warnings.append(f"{name}: {problem}")
                    continue
                row = plan_row(layout, prompt, chunk)
                rows.append(
                    EngineRow(
                        engine=name,
                        chunk_tokens=chunk,
                        default=chunk == default,
                        objects=row.objects,
                        object_bytes=row.object_bytes,
                        total_bytes=row.total_bytes,
                    )
                )
    return EnginesReport(engines=infos, model=model, tp=tp, pp=pp, prompt_tokens=prompt, rows=rows, warnings=warnings)
