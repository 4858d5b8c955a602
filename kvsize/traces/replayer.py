"""One chunk size's replay of a trace: which chunks each request loads and stores, through which tier.

The reuse rule (docs/replay.md):

- a request stores the chunks its engine stores (``Engine.stored_chunks``: whole chunks 0 .. floor(N / C) - 1, or the
  engine's own rule);
- chunk j's key is the hash of the last trace block it covers and its place inside that block,
  ``(hash_ids[ceil((j + 1) C / B) - 1], j mod max(1, B / C))``, plus its group: equal keys are equal prefixes, since
  the hashes are chained;
- a request loads, from the first chunk its GPU hit does not cover, its leading run of chunks whose keys are stored
  (a sliding-window group: the window before the hit), up to the engine's most tokens; it stores those of its chunks
  that are not stored yet;
- then every chunk it stored or loaded becomes the most recent, its head the most recent of all (each engine's LRU
  order: an older request's chunks first, a request's tail before its head).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Any

from kvsize.engines.base import Admission, Engine, Layout
from kvsize.traces.lru import Depths, Sightings
from kvsize.traces.reader import Request

_PLANS_CACHED = 1 << 16


class ChunkReplay:
    """The replay at chunk ``chunk``: the LRU order of its chunks, the outcome at the configured capacities (in chunks;
    None = unlimited), and what a capacity curve needs (the depth each loaded chunk needs to stay)."""

    def __init__(
        self,
        engine: Engine,
        layout: Layout,
        chunk: int,
        trace_block: int,
        storage_chunks: int | None,
        cpu_chunks: int | None,
        admission: Admission | None,
    ) -> None:
        self.engine, self.layout, self.chunk, self.block = engine, layout, chunk, trace_block
        self.per_block = max(1, trace_block // chunk)
        self.span = max(1, chunk // trace_block)
        self.storage_cap, self.cpu_cap = storage_chunks, cpu_chunks
        self.depths = Depths()
        self.filter = Sightings(admission.sightings, admission.window_seconds) if admission else None
        self.cpu_depths = Depths() if admission and cpu_chunks is not None else None
        self.plans: dict[int, tuple[Any, ...]] = {}
        self.key_bytes = engine.chunk_row(layout, chunk).stored_bytes
        self.tail_bytes: dict[int, int] = {}
        self.totals: Counter[str] = Counter()
        self.seconds: dict[int, list[int]] = {}
        """Per second of the trace's clock: chunks stored, bytes stored, chunks loaded, bytes loaded (storage tier)."""
        self.loads: Counter[tuple[int, int]] = Counter()
        """Requests by (chunks loaded from storage, chunks loaded from the CPU tier)."""
        self.needed: dict[int, int] = {}
        """Tokens loaded at unlimited storage, by the depth (chunks) the storage tier needed to keep them."""

    def _plan(self, tokens: int) -> tuple[Any, ...]:
        plan = self.plans.get(tokens)
        if plan is None:
            stored = self.engine.stored_chunks(self.layout, tokens, self.chunk)
            groups = tuple((g.start, g.stop, g.window) for g in stored.groups)
            tail = stored.groups[0].tail_tokens if len(stored.groups) == 1 else 0
            plan = (groups, tail, stored.max_hit_tokens // self.chunk, stored.max_hit_tokens)
            if len(self.plans) >= _PLANS_CACHED:
                self.plans.clear()
            self.plans[tokens] = plan
        return plan

    def _keys(self, hashes: list[int], count: int) -> list[int]:
        """Keys of chunks 0 .. count - 1 (before the group is added)."""
        if self.per_block > 1:
            m = self.per_block
            return [h * m + o for h in hashes[: -(-count // m)] for o in range(m)][:count]
        if self.span == 1:
            return hashes[:count]
        return hashes[self.span - 1 :: self.span][:count]

    def _tail(self, hashes: list[int], index: int, tokens: int) -> tuple[Hashable, int]:
        """A stored partial chunk: its key (the last block it touches, its place, its length) and its bytes."""
        last = (index * self.chunk + tokens - 1) // self.block
        if tokens not in self.tail_bytes:
            self.tail_bytes[tokens] = self.engine.plan_row(self.layout, tokens, self.chunk).stored_bytes
        return ("tail", hashes[last], index, tokens), self.tail_bytes[tokens]

    def visit(self, request: Request, gpu_hit: int, second: int) -> int:
        """Replay one request (after the GPU tier's ``gpu_hit`` tokens); returns the tokens it got from the offload tiers."""
        groups, tail, max_chunks, max_tokens = self._plan(request.input_length)
        stop = max(max(g[1] for g in groups), max_chunks)
        base = self._keys(request.hash_ids, stop)
        first = gpu_hit // self.chunk
        if len(groups) == 1 and groups[0][2] is None:
            keys = [base]
            loaded = self._prefix_run(base, first, min(max_chunks, groups[0][1], len(base)), gpu_hit)
        else:
            keys = [[key * len(groups) + g for key in base] for g in range(len(groups))]
            loaded = self._windowed_run(keys, groups, first, min(max_chunks, len(base)), gpu_hit)
        tokens = self._count_loads(loaded, keys, gpu_hit, second)
        tail_key = None
        if tail:
            whole = groups[0][1]
            tail_key = self._tail(request.hash_ids, whole, tail)
            reached = (loaded[0][-1] + 1 if loaded[0] else first) == whole
            if reached and whole * self.chunk + tail <= max_tokens:
                tokens += self._load_tail(tail_key, max(0, gpu_hit - whole * self.chunk), second)
        self._store(request, keys, groups, loaded, tail_key, second)
        return tokens

    def _prefix_run(self, keys: list[int], first: int, limit: int, gpu_hit: int) -> list[list[int]]:
        """The leading run from chunk ``first``: at unlimited storage (the depth each chunk needs, into ``needed``) and
        at the configured tiers (the chunks loaded)."""
        depths, needed, chunk = self.depths, self.needed, self.chunk
        last, tree, clock, removed = depths.last, depths.tree, depths.clock, depths.removed
        deepest, run = -1, []
        simple = self.cpu_cap is None and self.storage_cap is None
        counting = open_run = True
        for j in range(first, limit):
            when = last.get(keys[j])
            depth = None
            if when is not None:
                index, before = when, 0
                while index:
                    before += tree[index]
                    index &= index - 1
                depth = clock - when - (removed - before)
                if counting:
                    deepest = depth if depth > deepest else deepest
                    needed[deepest] = needed.get(deepest, 0) + (j + 1) * chunk - max(j * chunk, gpu_hit)
            else:
                counting = False
            if open_run and (counting if simple else self._present(keys[j], depth)):
                run.append(j)
            else:
                open_run = False
            if not counting and not open_run:
                break
        return [run]

    def _present(self, key: Hashable, depth: int | None) -> bool:
        """Whether a chunk of storage depth ``depth`` is in the CPU tier or the storage tier at the configured sizes."""
        if self.cpu_cap is not None and self._cpu_depth(key, depth) is not None:
            return True
        return depth is not None and (self.storage_cap is None or depth < self.storage_cap)

    def _cpu_depth(self, key: Hashable, depth: int | None) -> int | None:
        """The chunk's depth in the CPU tier when it is there (its own order under an admission filter), else None."""
        assert self.cpu_cap is not None
        if self.cpu_depths is not None:
            depth = self.cpu_depths.depth(key)
        return depth if depth is not None and depth < self.cpu_cap else None

    def _windowed_run(
        self, keys: list[list[int]], groups: tuple[Any, ...], first: int, limit: int, gpu_hit: int
    ) -> list[list[int]]:
        """The hit k (chunks from 0) every group allows (``_lookup_complete_chunks``): a prefix group its leading run, a
        sliding-window group the W chunks before k; what each k needs of the storage tier, into ``needed``."""
        inf = float("inf")
        need = self._needs(keys, groups, first, limit)
        cap = self.storage_cap if self.storage_cap is not None else inf
        if self.cpu_cap is not None:
            cap = max(cap, self.cpu_cap)
        best, kept, chunk = first, inf, self.chunk
        for i in range(len(need) - 1, -1, -1):
            kept = min(kept, need[i])
            j = first + i
            if kept < inf:
                self.needed[int(kept)] = self.needed.get(int(kept), 0) + (j + 1) * chunk - max(j * chunk, gpu_hit)
            if best == first and need[i] < cap:
                best = j + 1
        return [list(range(first if window is None else max(first, best - window), best)) for _, _, window in groups]

    def _needs(self, keys: list[list[int]], groups: tuple[Any, ...], first: int, limit: int) -> list[float]:
        """For each hit k = first + 1 .. limit, the depth the storage tier needs for it: the deepest chunk a prefix
        group loads up to k, or a window group's W before k (sliding maxima)."""
        depths, inf = self.depths, float("inf")
        need: list[float] = []
        prefix = [g for g, (_, _, window) in enumerate(groups) if window is None]
        deepest = -1.0
        for j in range(first, limit):
            found = [depths.depth(keys[g][j]) for g in prefix]
            if any(value is None for value in found):
                break
            deepest = max([deepest, *(float(v) for v in found if v is not None)])
            need.append(deepest)
        if not prefix:
            need = [-1.0] * (limit - first)
        for g, (_, _, window) in enumerate(groups):
            if window is None:
                continue
            column = [depths.depth(key) for key in keys[g][first : first + len(need)]]
            values = [inf if d is None else float(d) for d in column]
            queue: deque[int] = deque()
            for i, value in enumerate(values):
                while queue and values[queue[-1]] <= value:
                    queue.pop()
                queue.append(i)
                if queue[0] <= i - window:
                    queue.popleft()
                need[i] = max(need[i], values[queue[0]])
        return need

    def _load_tail(self, tail: tuple[Hashable, int], covered: int, second: int) -> int:
        """A stored partial chunk loaded after the whole ones, when a tier holds it; its tokens past the GPU hit."""
        key, size = tail
        depth = self.depths.depth(key)
        if not self._present(key, depth):
            return 0
        tokens = int(key[3]) - covered  # type: ignore[index]
        tier = "cpu" if self.cpu_cap is not None and self._cpu_depth(key, depth) is not None else "storage"
        self.totals[f"{tier}_chunks"] += 1
        self.totals[f"{tier}_bytes"] += size
        self.totals[f"{tier}_tokens"] += tokens
        if tier == "storage":
            row = self.seconds.setdefault(second, [0, 0, 0, 0])
            row[2] += 1
            row[3] += size
        return tokens

    def _count_loads(self, loaded: list[list[int]], keys: list[list[int]], gpu_hit: int, second: int) -> int:
        """Each loaded chunk by the tier that served it (chunks, bytes, tokens); the request's loads by tier. Returns
        the tokens loaded (past the GPU hit); with several groups a tier's tokens are its share of their chunks."""
        chunk, size = self.chunk, self.key_bytes
        if self.cpu_cap is None and len(loaded) == 1:
            run = loaded[0]
            got = (run[-1] + 1) * chunk - max(run[0] * chunk, gpu_hit) if run else 0
            self.totals["storage_chunks"] += len(run)
            self.totals["storage_bytes"] += len(run) * size
            self.totals["storage_tokens"] += got
            if run:
                row = self.seconds.setdefault(second, [0, 0, 0, 0])
                row[2] += len(run)
                row[3] += len(run) * size
            self.loads[(len(run), 0)] += 1
            return got
        served = {"cpu": 0, "storage": 0}
        tokens = {"cpu": 0, "storage": 0}
        for g, indices in enumerate(loaded):
            for j in indices:
                key = keys[g][j]
                tier = "storage"
                if self.cpu_cap is not None and self._cpu_depth(key, self.depths.depth(key)) is not None:
                    tier = "cpu"
                served[tier] += 1
                tokens[tier] += (j + 1) * chunk - max(j * chunk, gpu_hit)
        hit = max((indices[-1] + 1 for indices in loaded if indices), default=0)
        total = max(0, hit * chunk - gpu_hit)
        if len(loaded) > 1 and served["cpu"] + served["storage"]:
            tokens["cpu"] = total * served["cpu"] // (served["cpu"] + served["storage"])
            tokens["storage"] = total - tokens["cpu"]
        for tier in ("cpu", "storage"):
            self.totals[f"{tier}_chunks"] += served[tier]
            self.totals[f"{tier}_bytes"] += served[tier] * size
            self.totals[f"{tier}_tokens"] += tokens[tier]
        if served["storage"]:
            row = self.seconds.setdefault(second, [0, 0, 0, 0])
            row[2] += served["storage"]
            row[3] += served["storage"] * size
        self.loads[(served["storage"], served["cpu"])] += 1
        return tokens["cpu"] + tokens["storage"]

    def _store(
        self,
        request: Request,
        keys: list[list[int]],
        groups: tuple[Any, ...],
        loaded: list[list[int]],
        tail: tuple[Hashable, int] | None,
        second: int,
    ) -> None:
        """Store the request's chunks not stored yet (at the configured storage), then touch them and its loads: the
        tail first, the head last (the most recent)."""
        order: list[Hashable] = [tail[0]] if tail else []
        for g, (start, stop, _) in enumerate(groups):
            order += keys[g][start:stop][::-1]
            order += [keys[g][j] for j in reversed(loaded[g]) if not start <= j < stop]
        sizes = [self.key_bytes] * len(order)
        if tail:
            sizes[0] = tail[1]
        if self.filter is None and not tail:
            unseen, new = self.depths.touch_all(order, self.storage_cap)
            self.totals["distinct_chunks"] += unseen
            self.totals["distinct_bytes"] += unseen * self.key_bytes
            new_bytes = new * self.key_bytes
        else:
            new, new_bytes = self._offer(order, sizes, request.timestamp_ms)
        if new:
            self.totals["stored_chunks"] += new
            self.totals["stored_bytes"] += new_bytes
            row = self.seconds.setdefault(second, [0, 0, 0, 0])
            row[0] += new
            row[1] += new_bytes

    def _offer(self, order: list[Hashable], sizes: list[int], now_ms: float) -> tuple[int, int]:
        """Offer chunks to storage one by one (through an admission filter when the engine has one), each held or not
        as it was before this request: the new ones stored, in chunks and bytes."""
        depths, cap, new, new_bytes = self.depths, self.storage_cap, 0, 0
        held = [key in depths.last and (cap is None or (depths.depth(key) or 0) < cap) for key in order]
        for key, size, was_held in zip(order, sizes, held, strict=True):
            seen = key in depths.last
            admitted = self.filter is None or self.filter.offer(key, now_ms) or seen
            if self.cpu_depths is not None:
                self.cpu_depths.touch(key)
            if not admitted:
                continue
            if not was_held:
                new, new_bytes = new + 1, new_bytes + size
            if not seen:
                self.totals["distinct_chunks"] += 1
                self.totals["distinct_bytes"] += size
            depths.touch(key)
        return new, new_bytes
