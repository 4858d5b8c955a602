"""Invariants of the sweep, for any valid model, parallelism, prompt and chunk size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import kvsize
from kvsize.model.spec import LayerKind, ModelSpec


@st.composite
def served_models(draw):
    kv_heads = draw(st.sampled_from([1, 2, 4, 8, 16]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 4, 8]))
    layers = draw(st.lists(st.sampled_from([LayerKind.FULL, LayerKind.SLIDING, LayerKind.MAMBA]), min_size=1, max_size=64))
    if not any(kind.keeps_kv for kind in layers):
        layers[0] = LayerKind.FULL
    spec = ModelSpec(
        name="m",
        model_type="test",
        source="hypothesis",
        layer_kinds=tuple(layers),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_size=draw(st.sampled_from([64, 80, 128, 256])),
        config_dtype="bfloat16",
    )
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8, 16) if heads % t == 0 and (t % kv_heads == 0 or kv_heads % t == 0)]))
    pp = draw(st.integers(1, min(4, len(layers))))
    options = kvsize.EngineOptions(
        tp=tp,
        pp=pp,
        kv_dtype=draw(st.sampled_from(["auto", "fp8"])),
        connector=draw(st.sampled_from(["s3", "fs", "redis", "gds"])),
        save_unfull_chunk=draw(st.booleans()),
    )
    return spec, options


@settings(max_examples=300, deadline=None)
@given(served_models(), st.integers(1, 2_000_000), st.lists(st.integers(1, 70_000), min_size=1, max_size=6))
def test_sweep_invariants(model, prompt, chunks):
    spec, options = model
    sweep = kvsize.plan_sweep(spec, options, prompt, chunks)
    layout = sweep.layout
    assert [row.chunk_tokens for row in sweep.rows] == sorted(set(chunks))
    for row in sweep.rows:
        # the prompt is cut into whole chunks and a tail shorter than one chunk
        assert row.full_chunks * row.chunk_tokens + row.tail_tokens == prompt
        assert 0 <= row.tail_tokens < row.chunk_tokens
        assert row.tail_saved == (options.save_unfull_chunk and options.connector != "s3" and row.tail_tokens > 0)
        stored_chunks = row.full_chunks + row.tail_saved
        assert row.objects == layout.writers * stored_chunks
        # bytes: every writer's stored tokens times its per-token bytes, summed over stages
        stored_tokens = row.full_chunks * row.chunk_tokens + (row.tail_tokens if row.tail_saved else 0)
        assert row.total_bytes == sum(s.writers * s.bytes_per_token_per_rank for s in layout.stages) * stored_tokens
        assert row.stored_bytes == row.total_bytes + row.objects * layout.connector.header_bytes
        # one full-chunk object of the largest stage
        assert row.object_bytes == row.chunk_tokens * layout.bytes_per_token_per_rank
        # nothing stored beyond the prompt; without replication the stages add up to the model
        assert row.total_bytes <= prompt * layout.bytes_per_token * layout.replication
        if layout.replication == 1:
            assert sum(s.writers * s.bytes_per_token_per_rank for s in layout.stages) == layout.bytes_per_token
        baseline = kvsize.plan_row(layout, prompt, 256).objects
        expected = baseline / row.objects if row.objects and baseline else None
        assert row.reduction_vs_256 == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.integers(1, 64))
def test_pp_split_covers_every_layer_once(layers, pp):
    if pp > layers:
        return
    split = kvsize.pp_split(layers, pp)
    assert sum(split) == layers and len(split) == pp
    assert max(split) - min(split) <= 1
    assert split[-1] == layers // pp  # the last stage never takes a remainder layer


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**9))
def test_count_suffixes_round_trip(n):
    assert kvsize.parse_count(str(n)) == n
    assert kvsize.parse_count(f"{n:,}") == n
    if n % 1000 == 0:
        assert kvsize.parse_count(f"{n // 1000}k") == n
    if n % 1024 == 0:
        assert kvsize.parse_count(f"{n // 1024}Ki") == n


@st.composite
def backends(draw):
    from kvsize.storage import BackendProfile

    return BackendProfile(
        name="drawn",
        latency_s=draw(st.floats(1e-6, 0.5)),
        stream_bytes_per_s=draw(st.floats(1e6, 1e11)),
        aggregate_bytes_per_s=draw(st.one_of(st.none(), st.floats(1e6, 1e12))),
        concurrency=draw(st.integers(1, 256)),
        max_requests_per_s=draw(st.one_of(st.none(), st.floats(10, 1e6))),
        part_size_bytes=draw(st.sampled_from([None, 8 * 2**20])),
    )


@settings(max_examples=300, deadline=None)
@given(served_models(), backends(), st.integers(1, 500_000), st.integers(16, 8192), st.integers(1, 64))
def test_time_model_invariants(model, profile, prompt, chunk, prompts):
    from kvsize.storage import TimeOptions, time_row

    spec, options = model
    layout = kvsize.plan_sweep(spec, options, prompt, [chunk]).layout
    row = kvsize.plan_row(layout, prompt, chunk)
    one = time_row(row, layout, profile, TimeOptions(concurrent_prompts=prompts))
    more = time_row(row, layout, profile, TimeOptions(concurrent_prompts=prompts + 1))
    assert one.load_seconds >= 0 and more.load_seconds >= one.load_seconds  # more prompts never load faster
    if row.objects:
        # at least one wave of the busiest writer, and never less than its bytes at one stream's speed / C
        assert one.load_seconds >= profile.latency_s + row.object_bytes / profile.stream_bytes_per_s - 1e-12
    assert ("blocking_timeout" in one.risks) == (one.load_seconds > 10.0)
    # max_concurrent_prompts is the crossing point of the blocking timeout
    cap = one.max_concurrent_prompts
    if cap is not None and cap >= 1 and row.objects:
        at = time_row(row, layout, profile, TimeOptions(concurrent_prompts=cap))
        past = time_row(row, layout, profile, TimeOptions(concurrent_prompts=cap + 1))
        assert "blocking_timeout" not in at.risks
        assert "blocking_timeout" in past.risks
