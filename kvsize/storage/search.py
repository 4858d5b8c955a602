"""``--search``: the best chunk size among the multiples of the GPU block between the candidates."""

from __future__ import annotations

import math
from collections.abc import Sequence

from kvsize.engines.base import Layout
from kvsize.storage.backends import BackendProfile
from kvsize.storage.risks import TimeOptions
from kvsize.storage.timing import recommend, time_row

MAX_SEARCH_CANDIDATES = 2048
"""Most chunk sizes one search times (~0.1 s): a wider range is searched at a coarser step, and says so."""


def search_step(low: int, high: int, block: int) -> tuple[int, int, int]:
    """``(start, step, multiples)``: the first multiple of ``block`` at or above ``low`` (and ``block``), the step
    that keeps the search to ``MAX_SEARCH_CANDIDATES`` sizes (a multiple of ``block``), and how many multiples of
    ``block`` lie in [start, high]."""
    start = max(block, math.ceil(low / block) * block)
    multiples = max(0, (high - start) // block + 1)
    return start, block * max(1, math.ceil(multiples / MAX_SEARCH_CANDIDATES)), multiples


def search_chunk(
    layout: Layout,
    prompt_tokens: int,
    profile: BackendProfile,
    options: TimeOptions,
    low: int,
    high: int,
    block: int,
    *,
    notes: list[str] | None = None,
    sizes: Sequence[int] | None = None,
) -> int | None:
    """The best chunk size among ``sizes`` (the engine's ``search_sizes``), else the multiples of ``block`` in [low,
    high] (``--search``); past ``MAX_SEARCH_CANDIDATES`` of them, among every n-th, with a sentence saying so
    appended to ``notes``."""
    from kvsize.plan import plan_row

    if sizes is None:
        start, _, _ = search_step(low, high, block)
        sizes = range(start, high + 1, block)
    every = max(1, math.ceil(len(sizes) / MAX_SEARCH_CANDIDATES))
    if every > 1 and notes is not None:
        if isinstance(sizes, range):
            note = (
                f"`search` timed chunk sizes {sizes.step * every:,} tokens apart between {sizes.start:,} and {high:,}, "
                f"not every multiple of the {sizes.step}-token block ({len(sizes):,} are too many to time; at most "
                f"{MAX_SEARCH_CANDIDATES:,}): give `chunk_sizes` closer together for a finer search"
            )
        else:
            note = (
                f"`search` timed every {every:,}th of the {len(sizes):,} chunk sizes the engine takes between {low:,} "
                f"and {high:,} (at most {MAX_SEARCH_CANDIDATES:,}): give `chunk_sizes` closer together for a finer search"
            )
        if note not in notes:
            notes.append(note)
    timings = [time_row(plan_row(layout, prompt_tokens, chunk), layout, profile, options) for chunk in sizes[::every]]
    best = recommend(timings)
    return best.chunk_tokens if best else None
