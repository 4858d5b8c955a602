"""The tiers' bookkeeping, kept fast for a whole trace (integer keys, dicts, a Fenwick tree, an OrderedDict).

``Depths`` follows one LRU order over every chunk ever stored: a chunk's depth is how many other chunks were touched
since it was (Mattson's stack distance). A tier of S chunks that evicts the least recently used holds exactly the
chunks of depth below S, so one pass answers every capacity at once: the configured one, and the capacity a hit
rate needs. ``GpuPrefixCache`` is vLLM's prefix cache in GPU memory (one capacity, blocks of the GPU's size);
``Sightings`` is a frequency filter that admits a chunk only on its n-th offer (KVBM's disk tier).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence


class Depths:
    """Stack distances of one LRU order: ``depth(key)`` is 0 for the chunk touched last, None for one never touched.

    Each touch takes the next time; a key's previous time is marked removed in a Fenwick tree, so the depth of a key
    last touched at ``t`` is ``(clock - t) - (removed marks after t)``.
    """

    __slots__ = ("clock", "last", "removed", "size", "tree")

    def __init__(self) -> None:
        self.last: dict[Hashable, int] = {}
        self.size = 1 << 16
        self.tree = [0] * (self.size + 1)
        self.clock = 0
        self.removed = 0

    def depth(self, key: Hashable) -> int | None:
        when = self.last.get(key)
        if when is None:
            return None
        return self.depth_at(when)

    def depth_at(self, when: int) -> int:
        tree, index, before = self.tree, when, 0
        while index:
            before += tree[index]
            index &= index - 1
        return self.clock - when - (self.removed - before)

    def touch(self, key: Hashable) -> None:
        """Make ``key`` the most recent."""
        when = self.last.get(key)
        if when is not None:
            tree, size, index = self.tree, self.size, when
            while index <= size:
                tree[index] += 1
                index += index & -index
            self.removed += 1
        self.clock += 1
        if self.clock > self.size:
            self._grow()
        self.last[key] = self.clock

    def touch_all(self, keys: list[Hashable], capacity: int | None) -> tuple[int, int]:
        """Touch ``keys`` in order (the last becomes the most recent); returns how many were never touched before, and
        how many a tier of ``capacity`` keys (None: unlimited) did not hold before this call."""
        last, tree = self.last, self.tree
        evicted = 0
        if capacity is not None:
            for key in keys:
                depth = self.depth(key)
                evicted += depth is not None and depth >= capacity
        size, clock, removed, unseen = self.size, self.clock, self.removed, 0
        for key in keys:
            when = last.get(key)
            if when is None:
                unseen += 1
            else:
                index = when
                while index <= size:
                    tree[index] += 1
                    index += index & -index
                removed += 1
            clock += 1
            if clock > size:
                self.clock, self.removed = clock, removed
                self._grow()
                tree, size = self.tree, self.size
            last[key] = clock
        self.clock, self.removed = clock, removed
        return unseen, unseen + evicted

    def _grow(self) -> None:
        """Double the tree: the new root covers every time so far, so it holds every removed mark."""
        self.tree.extend([0] * self.size)
        self.size *= 2
        self.tree[self.size] = self.removed


class GpuPrefixCache:
    """vLLM's prefix cache in GPU memory: blocks of ``block_tokens``, least recently used evicted first, a request's
    tail before its head (``FreeKVCacheBlockQueue``); a hit covers at most N - 1 tokens (``get_computed_blocks``).

    Blocks inside one trace block are kept as a count of its leading blocks (they are always touched together)."""

    __slots__ = ("block", "cache", "capacity", "span", "sub", "trace_block", "used")

    def __init__(self, capacity_blocks: int, block_tokens: int, trace_block: int) -> None:
        self.capacity, self.block, self.trace_block = capacity_blocks, block_tokens, trace_block
        self.sub = max(1, trace_block // block_tokens)
        self.span = max(1, block_tokens // trace_block)
        self.cache: OrderedDict[int, int] = OrderedDict()
        self.used = 0

    def _entries(self, hashes: Sequence[int], tokens: int) -> list[tuple[int, int]]:
        """``(key, blocks)`` of a prompt: per trace block its whole GPU blocks, or per GPU block its last trace block."""
        if self.span > 1:
            return [(key, 1) for key in hashes[self.span - 1 :: self.span][: tokens // self.block]]
        out, block, size = [], self.block, self.trace_block
        for index, key in enumerate(hashes):
            blocks = min(self.sub, (tokens - index * size) // block)
            if blocks <= 0:
                break
            out.append((key, blocks))
        return out

    def visit(self, hashes: Sequence[int], tokens: int) -> int:
        """The request's hit in tokens, then its blocks touched (head most recent) and the excess evicted."""
        entries = self._entries(hashes, tokens)
        cache, hit = self.cache, 0
        for key, blocks in entries:
            cached = min(cache.get(key, 0), blocks)
            hit += cached
            if cached < blocks:
                break
        for key, blocks in reversed(entries):
            old = cache.get(key)
            if old is None or blocks > old:
                cache[key] = blocks
                self.used += blocks - (old or 0)
            cache.move_to_end(key)
        while self.used > self.capacity:
            key, blocks = next(iter(cache.items()))
            over = self.used - self.capacity
            if blocks <= over:
                del cache[key]
                self.used -= blocks
            else:
                cache[key] = blocks - over
                self.used -= over
        return min(hit, (tokens - 1) // self.block) * self.block


MAX_FILTER_ENTRIES = 1_000_000
MAX_COUNT = 2**32


class Sightings:
    """A frequency filter: a key's count is 1 when first offered and doubles on each later offer (up to 2**32); it
    passes once the count reaches ``sightings``; every ``window_ms``, or past a million keys, all counts drop by one
    (zeros forgotten)."""

    __slots__ = ("counts", "next_sweep", "sightings", "window_ms")

    def __init__(self, sightings: int, window_seconds: float) -> None:
        self.sightings, self.window_ms = sightings, window_seconds * 1000
        self.counts: dict[Hashable, int] = {}
        self.next_sweep: float | None = None

    def offer(self, key: Hashable, now_ms: float) -> bool:
        if self.next_sweep is None:
            self.next_sweep = now_ms + self.window_ms
        sweeps = 0
        if now_ms >= self.next_sweep:
            sweeps = int((now_ms - self.next_sweep) // self.window_ms) + 1
            self.next_sweep += sweeps * self.window_ms
        elif len(self.counts) > MAX_FILTER_ENTRIES:
            sweeps = 1
        if sweeps:
            self.counts = {k: c - sweeps for k, c in self.counts.items() if c > sweeps}
        count = self.counts.get(key)
        count = 1 if count is None else min(count * 2, MAX_COUNT)
        self.counts[key] = count
        return count >= self.sightings
