"""``--search``: the best chunk size among the multiples of the GPU block between the candidates."""

from __future__ import annotations

import math

from kvsize.engines.base import Layout
from kvsize.storage.backends import BackendProfile
from kvsize.storage.risks import TimeOptions
from kvsize.storage.timing import recommend, time_row


def search_chunk(
    layout: Layout, prompt_tokens: int, profile: BackendProfile, options: TimeOptions, low: int, high: int, block: int
) -> int | None:
    """The best chunk size among the multiples of the vLLM block size in [low, high] (``--search``)."""
    from kvsize.plan import plan_row

    start = max(block, math.ceil(low / block) * block)
    timings = [
        time_row(plan_row(layout, prompt_tokens, chunk), layout, profile, options) for chunk in range(start, high + 1, block)
    ]
    best = recommend(timings)
    return best.chunk_tokens if best else None
