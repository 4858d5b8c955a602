"""The replay's one-pass LRU (stack distances) against a plain LRU cache simulated request by request: the same hits,
the same new objects at every storage capacity, and the capacity a hit rate needs is the least one that reaches it."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvsize
from kvsize.traces.lru import Depths

SEED = "Qwen/Qwen3-4B-Instruct-2507"
PER_TOKEN = 147_456


def plain_lru(trace: list[dict], chunk: int, capacity: int | None) -> tuple[int, int]:
    """(hit tokens, chunks stored new): chunk j's key is (block of its last token, place), LMCache's whole chunks."""
    cache: OrderedDict[tuple[int, int], None] = OrderedDict()
    hits = stored = 0
    per_block = max(1, 512 // chunk)
    for request in trace:
        count = request["input_length"] // chunk
        keys = [(request["hash_ids"][((j + 1) * chunk - 1) // 512], j % per_block) for j in range(count)]
        run = 0
        while run < count and keys[run] in cache:
            run += 1
        hits += run * chunk
        stored += sum(1 for key in keys if key not in cache)
        for key in reversed(keys):
            cache[key] = None
            cache.move_to_end(key)
        while capacity is not None and len(cache) > capacity:
            cache.popitem(last=False)
    return hits, stored


requests = st.lists(st.tuples(st.integers(1, 3000), st.lists(st.integers(0, 3), min_size=6, max_size=6)), min_size=1, max_size=12)


def as_trace(drawn: list[tuple[int, list[int]]]) -> list[dict]:
    """Chained hashes from small alphabets: a prefix of choices names the blocks (equal hashes, equal prefixes)."""
    out = []
    for index, (length, choices) in enumerate(drawn):
        blocks = -(-length // 512)
        hashes = [hash(tuple(choices[: k + 1])) % 10**9 for k in range(blocks)]
        out.append({"timestamp": index * 700, "input_length": length, "output_length": 1, "hash_ids": hashes})
    return out


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests, st.sampled_from([64, 256, 512, 1024]), st.integers(1, 40))
def test_one_pass_equals_a_plain_lru(tmp_path: Path, drawn, chunk, capacity):
    trace = as_trace(drawn)
    path = tmp_path / f"t{chunk}-{capacity}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in trace))
    key_bytes = chunk * PER_TOKEN
    for limit in (None, capacity):
        options = kvsize.Replay(storage_capacity=None if limit is None else limit * key_bytes)
        row = kvsize.replay(SEED, path, options=options, chunk_sizes=[chunk]).rows[0]
        assert (row.hit_tokens, row.objects_stored) == plain_lru(trace, chunk, limit)
    row = kvsize.replay(SEED, path, chunk_sizes=[chunk]).rows[0]
    unlimited = plain_lru(trace, chunk, None)[0]
    for share, found in ((0.9, row.capacity_90_bytes), (0.99, row.capacity_99_bytes)):
        if not unlimited:
            assert found is None
            continue
        assert found is not None and found % key_bytes == 0
        least = found // key_bytes
        assert plain_lru(trace, chunk, least)[0] >= share * unlimited
        assert least == 1 or plain_lru(trace, chunk, least - 1)[0] < share * unlimited


def test_depths_grow_past_their_first_tree():
    depths = Depths()
    keys = list(range(70_000))
    for key in keys:
        depths.touch(key)
    assert depths.depth(0) == 69_999 and depths.depth(69_999) == 0
    depths.touch(0)
    assert depths.depth(0) == 0 and depths.depth(1) == 69_999
    assert depths.touch_all([5, 6, 200_000], capacity=69_995) == (1, 2)  # 5 at depth 69,995 is out, 6 in; 200,000 new
