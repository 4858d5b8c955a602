"""Invariants of the sweep, for any valid model, parallelism, prompt and chunk size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import kvsize
from kvsize.model.spec import LayerKind, ModelSpec


@st.composite
def served_models(draw):
    """Any servable model and LMCache settings: GQA/MHA/MQA or MLA, hybrids, layerwise, drafts, PP partitions."""
    mla = draw(st.booleans())
    kv_heads = 1 if mla else draw(st.sampled_from([1, 2, 4, 8, 16]))
    heads = (16 if mla else kv_heads) * draw(st.sampled_from([1, 2, 4, 8]))
    kinds = [LayerKind.MLA] if mla else [LayerKind.FULL, LayerKind.SLIDING, LayerKind.MAMBA]
    layers = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=64))
    if not any(kind.keeps_kv for kind in layers):
        layers[0] = LayerKind.FULL
    spec = ModelSpec(
        name="m",
        model_type="test",
        source="hypothesis",
        layer_kinds=tuple(layers),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_size=576 if mla else draw(st.sampled_from([64, 80, 128, 256])),
        config_dtype="bfloat16",
    )
    tps = [t for t in (1, 2, 4, 8, 16) if heads % t == 0 and (mla or t % kv_heads == 0 or kv_heads % t == 0)]
    tp = draw(st.sampled_from(tps))
    pp = 1 if mla else draw(st.integers(1, min(4, len(layers))))
    partition = None
    if pp > 1 and draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(1, len(layers) - 1), min_size=pp - 1, max_size=pp - 1, unique=True)))
        partition = tuple(b - a for a, b in zip([0, *cuts], [*cuts, len(layers)], strict=True))
    connector = draw(st.sampled_from(["s3", "fs", "redis", "gds"]))
    options = kvsize.EngineOptions(
        tp=tp,
        pp=pp,
        kv_dtype=draw(st.sampled_from(["auto", "fp8"])),
        connector=connector,
        save_unfull_chunk=draw(st.booleans()),
        layerwise=connector != "s3" and draw(st.booleans()),
        draft_layers=draw(st.integers(0, 3)) if pp == 1 else 0,
        pp_partition=partition,
    )
    return spec, options


def oracle(spec: ModelSpec, options: kvsize.EngineOptions, prompt: int, chunk: int) -> dict[str, int]:
    """Objects and bytes derived from the rules as docs/rules.md states them, not from kvsize's code."""
    mla = LayerKind.MLA in spec.layer_kinds
    dtype = 1 if options.kv_dtype == "fp8" else 2
    factor, per_rank = (1, 1) if mla else (2, max(1, spec.num_kv_heads // options.tp))
    writers = options.tp if (not mla or options.layerwise) else 1  # MLA: save_only_first_rank, unless layerwise
    n, pp = len(spec.layer_kinds), options.pp
    split = list(options.pp_partition or [n // pp] * pp)
    if options.pp_partition is None:
        for i in range(2, n % pp + 2):  # get_pp_indices: remainder counted back from the second-to-last stage
            split[-i] += 1
    stored = []
    start = 0
    for index, count in enumerate(split):
        kv = sum(
            1 for kind in spec.layer_kinds[start : start + count] if kind in (LayerKind.FULL, LayerKind.SLIDING, LayerKind.MLA)
        )
        stored.append(kv + (options.draft_layers if index == pp - 1 else 0))
        start += count
    full, tail = divmod(prompt, chunk)
    per_token = [layers * factor * per_rank * spec.head_size * dtype for layers in stored]
    if options.connector == "s3" and any(layers and chunk * b % 4096 for layers, b in zip(stored, per_token, strict=True)):
        full = 0  # LMCache's S3 connector uploads only chunks whose bytes are a multiple of 4,096: none is stored
    tail_saved = options.save_unfull_chunk and options.connector != "s3" and tail > 0
    chunks = full + tail_saved
    tokens = full * chunk + (tail if tail_saved else 0)
    largest = max(range(pp), key=lambda i: per_token[i])
    share = stored[largest] if options.layerwise else 1
    header = kvsize.CONNECTORS[options.connector].header_bytes
    objects = sum(writers * chunks * (layers if options.layerwise else 1) for layers in stored if layers)
    total = sum(writers * tokens * b for b in per_token)
    return {
        "objects": objects,
        "object_bytes": chunk * per_token[largest] // share,
        "total_bytes": total,
        "stored_bytes": total + objects * header,
    }


@settings(max_examples=300, deadline=None)
@given(served_models(), st.integers(1, 2_000_000), st.lists(st.integers(1, 70_000), min_size=1, max_size=6))
def test_sweep_matches_the_rules(model, prompt, chunks):
    spec, options = model
    sweep = kvsize.plan_sweep(spec, options, prompt, chunks)
    assert [row.chunk_tokens for row in sweep.rows] == sorted(set(chunks))
    for row in sweep.rows:
        expected = oracle(spec, options, prompt, row.chunk_tokens)
        actual = {key: getattr(row, key) for key in expected}
        assert actual == expected
        assert row.full_chunks * row.chunk_tokens + row.tail_tokens == prompt and 0 <= row.tail_tokens < row.chunk_tokens


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
