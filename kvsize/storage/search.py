"""``--search``: the best chunk size among the multiples of the GPU block between the candidates."""

from __future__ import annotations

import math

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
) -> int | None:
    """The best chunk size among the multiples of the vLLM block size in [low, high] (``--search``); past
    ``MAX_SEARCH_CANDIDATES`` multiples, among every n-th of them, with a sentence saying so appended to ``notes``."""
    from kvsize.plan import plan_row

    start, step, multiples = search_step(low, high, block)
    if step > block and notes is not None:
        note = (
            f"`search` timed chunk sizes {step:,} tokens apart between {start:,} and {high:,}, not every multiple of "
            f"the {block}-token block ({multiples:,} are too many to time; at most {MAX_SEARCH_CANDIDATES:,}): give "
            "`chunk_sizes` closer together for a finer search"
        )
        if note not in notes:
            notes.append(note)
    timings = [
        time_row(plan_row(layout, prompt_tokens, chunk), layout, profile, options) for chunk in range(start, high + 1, step)
    ]
    best = recommend(timings)
    return best.chunk_tokens if best else None
