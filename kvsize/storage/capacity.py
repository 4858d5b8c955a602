"""Capacity planning: how many prompts fit in a storage tier, or how much a number of prompts needs.

A prompt stores its chunks once per writer (the sweep row). Prompts that share a prefix
of S tokens share its first ``floor(S / chunk)`` chunks (chained prefix keys), which are stored
once; every prompt adds the rest. What one shared chunk stores is the engine's answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from kvsize.engines.base import Layout, Share, SweepRow, per_writer_bytes
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError, whole
from kvsize.results import SweepReport

__all__ = ["Capacity", "CapacityReport", "Share", "plan_capacity"]


class Capacity(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    per_prompt: Share
    shared_prefix_tokens: int
    shared_chunks: int
    shared: Share
    """Stored once for all prompts: the shared prefix's whole chunks."""
    unique_per_prompt: Share
    storage_bytes: int | None
    prompts_that_fit: int | None
    at_capacity: Share | None
    prompts: int | None
    needed: Share | None


def _scale(share: Share, n: int) -> Share:
    return Share(
        objects=share.objects * n,
        stored_bytes=share.stored_bytes * n,
        objects_per_writer=share.objects_per_writer * n,
        stored_bytes_per_writer=share.stored_bytes_per_writer * n,
    )


def _add(a: Share, b: Share) -> Share:
    return Share(
        objects=a.objects + b.objects,
        stored_bytes=a.stored_bytes + b.stored_bytes,
        objects_per_writer=a.objects_per_writer + b.objects_per_writer,
        stored_bytes_per_writer=a.stored_bytes_per_writer + b.stored_bytes_per_writer,
    )


def _chunk_share(row: SweepRow, layout: Layout) -> Share:
    """What one whole shared chunk stores: the engine's answer (``Engine.shared_chunk``)."""
    return engine_for(layout.engine).shared_chunk(layout, row)


def plan_capacity(
    row: SweepRow,
    layout: Layout,
    *,
    storage_bytes: int | None = None,
    prompts: int | None = None,
    shared_prefix_tokens: int = 0,
) -> Capacity:
    if storage_bytes is None and prompts is None:
        raise KvsizeError("capacity needs `storage` SIZE (how many prompts fit) or `prompts` N (the storage needed)")
    if storage_bytes is not None:
        whole(storage_bytes, "storage", 1, 2**80)
    if prompts is not None:
        whole(prompts, "prompts", 1, 10**12)
    whole(shared_prefix_tokens, "shared_prefix", 0, 10**9)
    header = layout.connector.header_bytes
    writer_objects = row.objects_per_writer
    per_prompt = Share(
        objects=row.objects,
        stored_bytes=row.stored_bytes,
        objects_per_writer=writer_objects,
        stored_bytes_per_writer=per_writer_bytes(row, layout) + writer_objects * header,
    )
    shared_chunks = min(shared_prefix_tokens // row.chunk_tokens, row.full_chunks)
    shared = _scale(_chunk_share(row, layout), shared_chunks)
    unique = Share(
        objects=per_prompt.objects - shared.objects,
        stored_bytes=per_prompt.stored_bytes - shared.stored_bytes,
        objects_per_writer=per_prompt.objects_per_writer - shared.objects_per_writer,
        stored_bytes_per_writer=per_prompt.stored_bytes_per_writer - shared.stored_bytes_per_writer,
    )
    fit = at_capacity = None
    if storage_bytes is not None:
        if unique.stored_bytes == 0:
            raise KvsizeError(
                "each prompt stores nothing beyond the shared prefix (or nothing at all), so any number fits; "
                "check `prompt`, `shared_prefix` and the chunk size"
            )
        fit = max(0, (storage_bytes - shared.stored_bytes) // unique.stored_bytes) if storage_bytes >= shared.stored_bytes else 0
        at_capacity = _add(shared, _scale(unique, fit)) if fit else _scale(unique, 0)
    needed = _add(shared, _scale(unique, prompts)) if prompts is not None else None
    return Capacity(
        chunk_tokens=row.chunk_tokens,
        per_prompt=per_prompt,
        shared_prefix_tokens=shared_prefix_tokens,
        shared_chunks=shared_chunks,
        shared=shared,
        unique_per_prompt=unique,
        storage_bytes=storage_bytes,
        prompts_that_fit=fit,
        at_capacity=at_capacity,
        prompts=prompts,
        needed=needed,
    )


class CapacityReport(SweepReport):
    """``kvsize.capacity()`` / ``kvsize capacity --format json``: the sweep, the capacity, the assumptions."""

    capacity: Capacity
    assumptions: list[str]
