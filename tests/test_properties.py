"""Invariants of the sweep, for any valid model, parallelism, prompt and chunk size, under every registered engine:
each engine refuses what its own documented rule refuses, and stores exactly what that rule says (``tests/oracles.py``).

CI runs a fixed set of examples (derandomized, as the fuzz tests); KVSIZE_FUZZ_EXAMPLES=5000 explores afresh.
"""

from __future__ import annotations

import os
import typing
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import kvsize
from kvsize.engines.registry import ENGINE_NAMES, engine_for
from kvsize.model.spec import LayerKind, ModelSpec
from tests.oracles import ORACLES, Case, check_row

EXAMPLES = int(os.environ.get("KVSIZE_FUZZ_EXAMPLES", "400"))
DERANDOMIZE = "KVSIZE_FUZZ_EXAMPLES" not in os.environ
# The layer mixes drawn: one attention kind, sliding windows beside full attention, chunked-local layers, state
# layers; MLA is drawn on its own.
MIXES = [
    [LayerKind.FULL],
    [LayerKind.FULL, LayerKind.SLIDING],
    [LayerKind.FULL, LayerKind.CHUNKED],
    [LayerKind.FULL, LayerKind.SLIDING, LayerKind.MAMBA],
]
NUMBERS = {
    ("vllm", "gpu_block_size"): st.sampled_from([None, 16, 32, 64, 128]),
    ("llmd-fs", "gpu_block_size"): st.sampled_from([None, 16, 32, 64, 128]),
}
"""Numeric settings that change what is stored, and values to draw (other numeric settings keep their defaults)."""


def engine_settings(engine: str) -> st.SearchStrategy[Any]:
    """Any settings of the engine: each choice and switch among its flags drawn, the numbers above drawn."""
    settings_type = engine_for(engine).Settings
    drawn: dict[str, st.SearchStrategy[Any]] = {}
    for name in settings_type.FLAGS:
        annotation = settings_type.model_fields[name].annotation
        if typing.get_origin(annotation) is typing.Literal:
            drawn[name] = st.sampled_from(typing.get_args(annotation))
        elif annotation is bool:
            drawn[name] = st.booleans()
        elif (engine, name) in NUMBERS:
            drawn[name] = NUMBERS[(engine, name)]

    def builds(values: dict[str, Any]) -> bool:
        """Settings the engine takes together (a field may exclude another, as AIBrix's ingestion needs an L2)."""
        try:
            settings_type(**values)
        except kvsize.KvsizeError:
            return False
        return True

    return st.fixed_dictionaries(drawn).filter(builds).map(lambda values: settings_type(**values))


@st.composite
def served_models(draw, engines=ENGINE_NAMES):
    """Any model, served any way vLLM allows (and some it refuses), under any engine and its settings."""
    mla = draw(st.booleans())
    kv_heads = 1 if mla else draw(st.sampled_from([1, 2, 4, 8, 16]))
    heads = (16 if mla else kv_heads) * draw(st.sampled_from([1, 2, 4, 8]))
    mix = [LayerKind.MLA] if mla else draw(st.sampled_from(MIXES))
    layers = draw(st.lists(st.sampled_from(mix), min_size=1, max_size=64))
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
        sliding_window=draw(st.one_of(st.none(), st.integers(1, 8192))) if LayerKind.SLIDING in layers else None,
    )
    tps = [t for t in (1, 2, 4, 8, 16) if heads % t == 0 and (mla or t % kv_heads == 0 or kv_heads % t == 0)]
    tp = draw(st.sampled_from([*tps, 3]))
    pp = draw(st.integers(1, min(4, len(layers))))
    partition = None
    if pp > 1 and draw(st.booleans()):
        cuts = sorted(draw(st.lists(st.integers(1, len(layers) - 1), min_size=pp - 1, max_size=pp - 1, unique=True)))
        partition = tuple(b - a for a, b in zip([0, *cuts], [*cuts, len(layers)], strict=True))
    serving = kvsize.Serving(
        tp=tp,
        pp=pp,
        kv_dtype=draw(st.sampled_from(["auto", "fp8", "float16"])),
        draft_layers=draw(st.sampled_from([0, 0, 0, 1, 3])),
        pp_partition=partition,
    )
    engine = draw(st.sampled_from(engines))
    return engine, Case(spec, serving, draw(engine_settings(engine)))


def options_of(engine: str, case: Case) -> kvsize.EngineOptions:
    return kvsize.EngineOptions(serving=case.serving, settings=case.settings, engine=engine)


CHUNKS = st.lists(st.one_of(st.integers(1, 70_000), st.integers(1, 512).map(lambda blocks: 128 * blocks)), min_size=1, max_size=6)
"""Any chunk sizes, and whole numbers of any GPU block drawn (128 tokens is a multiple of each)."""


@settings(max_examples=EXAMPLES, derandomize=DERANDOMIZE, deadline=None)
@given(served_models(), st.integers(1, 2_000_000), CHUNKS)
def test_every_engine_sizes_by_its_own_rule(model, prompt, chunks):
    engine, case = model
    oracle, options = ORACLES[engine], options_of(engine, case)
    event(f"{engine}: {'refused' if oracle.refuses(case) else 'sized'}")
    if oracle.refuses(case):
        with pytest.raises(kvsize.KvsizeError):
            kvsize.plan_sweep(case.spec, options, prompt, chunks)
        return
    taken = sorted({chunk for chunk in chunks if oracle.takes(case, chunk)})
    if len(taken) < len(set(chunks)):
        with pytest.raises(kvsize.KvsizeError) as refused:
            kvsize.plan_sweep(case.spec, options, prompt, chunks)
        assert refused.value.field == "chunk_sizes"
    if not taken:
        return
    sweep = kvsize.plan_sweep(case.spec, options, prompt, taken)
    assert sweep.layout.engine == engine and [row.chunk_tokens for row in sweep.rows] == taken
    for row in sweep.rows:
        check_row(sweep.layout, row, prompt)
        expected = oracle.row(case, prompt, row.chunk_tokens)
        assert {key: getattr(row, key) for key in vars(expected)} == vars(expected), row.chunk_tokens


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


@settings(max_examples=EXAMPLES, derandomize=DERANDOMIZE, deadline=None)
@given(served_models(), backends(), st.integers(1, 500_000), st.integers(1, 64).map((128).__mul__), st.integers(1, 64))
def test_time_model_invariants(model, profile, prompt, chunk, prompts):
    from kvsize.storage import TimeOptions, time_row

    engine, case = model
    assume(not ORACLES[engine].refuses(case))
    layout = kvsize.plan_layout(case.spec, options_of(engine, case))
    row = kvsize.plan_row(layout, prompt, chunk)
    one = time_row(row, layout, profile, TimeOptions(concurrent_prompts=prompts))
    more = time_row(row, layout, profile, TimeOptions(concurrent_prompts=prompts + 1))
    assert one.load_seconds >= 0 and more.load_seconds >= one.load_seconds  # more prompts never load faster
    if row.objects:
        # at least one wave of the busiest writer, and never less than its bytes at one stream's speed / C
        assert one.load_seconds >= profile.latency_s + row.object_bytes / profile.stream_bytes_per_s - 1e-12
    timeout = engine_for(engine).timeout_seconds(layout)
    if timeout is None:  # no load timeout: nothing caps the prompts loading at once
        assert one.max_concurrent_prompts is None
        return
    # the engine's load timeout is broken exactly when the load passes it
    assert any(limit.unit == "s" and limit.threshold == timeout for limit in one.breaches) == (one.load_seconds > timeout)
    if engine == "lmcache":
        assert ("blocking_timeout" in one.risks) == (one.load_seconds > 10.0)
    # max_concurrent_prompts is the crossing point of the timeout
    cap = one.max_concurrent_prompts
    if cap is not None and cap >= 1 and row.objects:
        at = time_row(row, layout, profile, TimeOptions(concurrent_prompts=cap))
        past = time_row(row, layout, profile, TimeOptions(concurrent_prompts=cap + 1))
        assert at.load_seconds <= timeout < past.load_seconds
