"""Replaying hand-built traces: hit tokens, objects and bytes derived by hand from the reuse rule (docs/replay.md),
for chunk sizes 64 to 2,048 against 512-token trace blocks, with and without a GPU tier, a CPU tier and a storage
capacity; vLLM native's own rule for its sliding-window group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kvsize

SEED = "Qwen/Qwen3-4B-Instruct-2507"
PER_TOKEN = 36 * 2 * 8 * 128 * 2  # Qwen3-4B at TP 1: 36 layers x K,V x 8 heads x 128 x bf16 = 147,456 B
BLOCK = 36 * 2 * 16 * 8 * 128 * 2  # one vLLM GPU block of 16 tokens: 2,359,296 B

# R1 and R4 are the same prompt; R2 shares R1's two whole blocks; R3 shares only block 1.
TRACE = [
    {"timestamp": 0, "input_length": 1300, "output_length": 10, "hash_ids": [1, 2, 3]},
    {"timestamp": 1000, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 4]},
    {"timestamp": 2000, "input_length": 2100, "output_length": 10, "hash_ids": [1, 5, 6, 7, 8]},
    {"timestamp": 3000, "input_length": 1300, "output_length": 10, "hash_ids": [1, 2, 3]},
]
INPUT = 1300 + 1100 + 2100 + 1300

# Per chunk size, by hand (chunks j = 0 .. floor(N / C) - 1; key = last block covered and place in it):
# (hit tokens, chunks stored new, chunks loaded)
BY_HAND = {
    # 64: R1 stores 20 (blocks 1, 2, and 4 chunks of partial block 3); R2 loads 16 and stores (4, 0); R3 loads block 1's
    # 8 and stores 24; R4 loads its 20.
    64: (16 * 64 + 8 * 64 + 20 * 64, 20 + 1 + 24, 16 + 8 + 20),
    # 256: R1 stores 5 ((1,0) (1,1) (2,0) (2,1) (3,0)); R2 loads 4; R3 loads 2 and stores 6; R4 loads 5.
    256: (1024 + 512 + 1280, 5 + 6, 4 + 2 + 5),
    # 512: R1 stores blocks 1, 2; R2 loads both; R3 loads block 1, stores 5, 6, 7; R4 loads 1, 2.
    512: (1024 + 512 + 1024, 2 + 3, 2 + 1 + 2),
    # 1,024: chunk j's key is block 2j + 1's hash: R1 stores (2); R2 loads it; R3's (5) misses, it stores (5), (7).
    1024: (1024 + 1024, 1 + 2, 1 + 1),
    # 2,048: only R3 has a whole chunk, (8)'s ... its key is block 4's hash 7: stored, never loaded.
    2048: (0, 1, 0),
}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in TRACE))
    return path


def rows(result: kvsize.ReplayResult) -> dict[int, kvsize.traces.result.ReplayRow]:
    return {row.chunk_tokens: row for row in result.rows}


@pytest.mark.parametrize("tp", [1, 2])
def test_hits_and_objects_by_hand(trace: Path, tp: int):
    result = kvsize.replay(SEED, trace, serving=kvsize.Serving(tp=tp), chunk_sizes=list(BY_HAND))
    for chunk, (hit, stored, loaded) in BY_HAND.items():
        row = rows(result)[chunk]
        assert (row.hit_tokens, row.storage_hit_tokens, row.gpu_hit_tokens) == (hit, hit, 0), chunk
        # objects: every writer's (TP ranks); bytes: the chunk's KV on every writer
        assert row.objects_stored == stored * tp and row.objects_loaded == loaded * tp, chunk
        assert row.bytes_stored == stored * chunk * PER_TOKEN and row.bytes_loaded == loaded * chunk * PER_TOKEN, chunk
        assert row.objects_per_chunk == tp and row.requests == 4 and row.input_tokens == INPUT
        assert row.hit_rate == hit / INPUT and row.recompute_tokens == INPUT - hit


def test_rates_per_second_and_the_capacity_a_hit_rate_needs(trace: Path):
    row = rows(kvsize.replay(SEED, trace, chunk_sizes=[256]))[256]
    # one request per second: stored 5, 0, 6, 0 chunks; loaded 0, 4, 2, 5 (TP 1: one object each)
    assert row.stored_objects_per_s.model_dump() == {"mean": 11 / 4, "p99": 6.0, "peak": 6.0}
    assert row.loaded_objects_per_s.model_dump() == {"mean": 11 / 4, "p99": 5.0, "peak": 5.0}
    assert row.stored_bytes_per_s.peak == 6 * 256 * PER_TOKEN
    # LRU depths (0 = most recent; a request touches its chunks tail first): R2 finds (1,0) (1,1) (2,0) (2,1) at 0-3,
    # R3 finds (1,0) (1,1) at 0-1; R4 finds them at 0-1 and (2,0) (2,1) (3,0) at 8, 9, 10 (R3's 8 chunks came between).
    # 90% of 2,816 tokens needs depth 9 kept: 10 chunks; 99% all 11.
    chunk_bytes = 256 * PER_TOKEN
    assert row.storage_needed_bytes == 11 * chunk_bytes
    assert (row.capacity_90_bytes, row.capacity_99_bytes) == (10 * chunk_bytes, 11 * chunk_bytes)
    assert row.storage_hit_tokens_unlimited == 2816


def test_a_storage_capacity_evicts_the_least_recently_used(trace: Path):
    chunk_bytes = 256 * PER_TOKEN
    for chunks, hit, stored in ((10, 1024 + 512 + 1024, 11 + 1), (9, 1024 + 512 + 768, 11 + 2), (11, 2816, 11)):
        options = kvsize.Replay(storage_capacity=chunks * chunk_bytes + chunk_bytes // 2)
        row = rows(kvsize.replay(SEED, trace, options=options, chunk_sizes=[256]))[256]
        # at 10 chunks R3's 8 push (3,0) out: R4 loads 4 and stores (3,0) again; at 9 (2,1) goes too
        assert (row.storage_capacity_chunks, row.hit_tokens, row.objects_stored) == (chunks, hit, stored)


def test_a_gpu_tier_in_front(trace: Path):
    # 66 blocks of 16 tokens: 65 hold prefixes (block 0 is vLLM's null block). By hand: R1 leaves blocks 1, 2 and one of
    # 3's; R2 hits 64 blocks (1,024 tokens); R3 hits block 1 (512) and evicts down to 6's first block, 5 and 1;
    # R4 hits block 1 (512). Offload then loads from the chunk the GPU hit leaves: R4 loads (2,0) (2,1) (3,0).
    gpu = kvsize.Gpu(kv_cache_memory_bytes=66 * BLOCK)
    result = kvsize.replay(SEED, trace, gpu=gpu, chunk_sizes=[256])
    assert result.gpu is not None and (result.gpu.num_blocks, result.gpu.prefix_cache_blocks) == (66, 65)
    row = rows(result)[256]
    assert (row.gpu_hit_tokens, row.storage_hit_tokens, row.hit_tokens) == (2048, 768, 2816)
    assert (row.objects_loaded, row.objects_stored, row.prefill_tokens_saved) == (3, 11, 768)


def test_a_cpu_tier_serves_the_most_recent_chunks(trace: Path):
    # 2 chunks of 37,748,736 B per rank: the chunks at depth 0 and 1 come from the CPU tier
    options = kvsize.Replay(cpu_tier=2 * 256 * PER_TOKEN)
    result = kvsize.replay(SEED, trace, options=options, chunk_sizes=[256])
    row = rows(result)[256]
    assert (row.cpu_hit_tokens, row.storage_hit_tokens, row.hit_tokens) == (3 * 512, 512 + 768, 2816)
    assert (row.cpu_objects_loaded, row.objects_loaded, row.cpu_tier_chunks) == (6, 5, 2)


def test_vllm_native_sliding_window_group_follows_vllms_rule(trace: Path):
    # gpt-oss-20b under vLLM native: group 0 sliding (window 128), group 1 full. At 256 the window is 1 chunk; a
    # sliding group stores the chunk before the last reachable boundary (N - 1); a load needs the full group's prefix
    # and the sliding group's chunk before the hit, and covers at most N - 1 tokens.
    # R1 stores 5 + 1; R2 finds no sliding chunk before any hit (R1 kept only its 5th): 0, stores its sliding (3rd);
    # R3 stores 6 + 1; R4 finds (1,0)..(3,0) and R1's sliding 5th chunk: 5 chunks, 6 objects.
    # At 512 the sliding group's one chunk is block 2's for R1, R2 and R4: R2 and R4 hit 1,024 each.
    result = kvsize.replay("openai/gpt-oss-20b", trace, engine="vllm", chunk_sizes=[256, 512])
    assert [(r.chunk_tokens, r.hit_tokens, r.objects_stored, r.objects_loaded) for r in result.rows] == [
        (256, 1280, 6 + 1 + 7, 6),
        (512, 2048, 3 + 4, 3 + 3),
    ]


def test_sglang_and_kvbm_recompute_the_last_token(tmp_path: Path):
    # one prompt of exactly two trace blocks, twice: LMCache loads all 1,024 tokens, SGLang and KVBM N - 1 at most
    path = tmp_path / "t.jsonl"
    line = {"timestamp": 0, "input_length": 1024, "output_length": 1, "hash_ids": [1, 2]}
    path.write_text(json.dumps(line) + "\n" + json.dumps(line) + "\n")
    assert rows(kvsize.replay(SEED, path, chunk_sizes=[256]))[256].hit_tokens == 1024
    for engine in ("sglang", "kvbm"):
        assert rows(kvsize.replay(SEED, path, engine=engine, chunk_sizes=[256]))[256].hit_tokens == 768, engine


def test_kvbm_disk_takes_a_block_on_its_second_offer_with_a_host_tier(tmp_path: Path):
    # KVBM's frequency filter (both G2 and G3): the first request's blocks reach disk only when offered again
    path = tmp_path / "t.jsonl"
    line = {"timestamp": 0, "input_length": 64, "output_length": 1, "hash_ids": [1]}
    path.write_text("".join(json.dumps(line) + "\n" for _ in range(3)))
    plain = rows(kvsize.replay(SEED, path, engine="kvbm", chunk_sizes=[16]))[16]
    assert (plain.objects_stored, plain.storage_hit_tokens) == (4, 48 + 48)  # stored at once; loads cap at N - 1
    options = kvsize.Replay(cpu_tier=1)  # a host tier of no chunk: every load must come from disk
    filtered = rows(kvsize.replay(SEED, path, engine="kvbm", chunk_sizes=[16], options=options))[16]
    assert (filtered.objects_stored, filtered.storage_hit_tokens, filtered.cpu_tier_chunks) == (4, 48, 0)
