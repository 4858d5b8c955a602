"""The engine hooks a replay stands on agree with the engine's own rows: the chunks ``stored_chunks`` names, times the
objects of one chunk (``chunk_row``), are ``plan_row``'s objects and bytes, for every engine."""

from __future__ import annotations

import pytest

import kvsize
from kvsize.engines.base import EngineOptions, Serving
from kvsize.engines.registry import ENGINE_NAMES, engine_for, settings_for

CASES = [
    ("Qwen/Qwen3-4B-Instruct-2507", 1, 1, {}),
    ("Qwen/Qwen3-4B-Instruct-2507", 4, 2, {}),
    ("deepseek-ai/DeepSeek-V3", 8, 1, {}),
    ("meta-llama/Llama-3.1-70B-Instruct", 2, 2, {}),
]
EXTRA = [
    ("google/gemma-3-27b-it", "vllm", 2, 1, {}),
    ("openai/gpt-oss-20b", "vllm", 1, 2, {}),
    ("google/gemma-3-27b-it", "llmd-fs", 2, 1, {}),
    ("openai/gpt-oss-20b", "lmcache", 1, 1, {"save_unfull_chunk": True, "connector": "fs"}),
    ("Qwen/Qwen3-4B-Instruct-2507", "lmcache", 2, 1, {"layerwise": True, "connector": "fs"}),
    ("Qwen/Qwen3-4B-Instruct-2507", "sglang", 2, 1, {"backend": "mooncake"}),
    ("Qwen/Qwen3-4B-Instruct-2507", "kvbm", 2, 2, {"tier": "object"}),
]
PROMPTS = (1, 15, 16, 700, 1023, 1024, 1025, 100_000)


def _cases():
    for model, tp, pp, given in CASES:
        for engine in ENGINE_NAMES:
            yield model, engine, tp, pp, given
    yield from EXTRA


@pytest.mark.parametrize(("model", "engine", "tp", "pp", "given"), list(_cases()))
def test_stored_chunks_times_one_chunk_is_plan_row(model, engine, tp, pp, given):
    spec = kvsize.resolve_model(model)
    options = EngineOptions(serving=Serving(tp=tp, pp=pp), settings=settings_for(engine, **given), engine=engine)
    try:
        layout = kvsize.plan_layout(spec, options)
    except kvsize.KvsizeError:
        pytest.skip(f"{engine} does not size {model}")
    hooks = engine_for(engine)
    block = layout.block_tokens or 1
    for chunk in (16, 64, 256, 2048):
        if chunk % block:
            continue
        one = hooks.chunk_row(layout, chunk)
        for prompt in PROMPTS:
            stored = hooks.stored_chunks(layout, prompt, chunk)
            row = kvsize.plan_row(layout, prompt, chunk)
            chunks = sum(group.stop - group.start for group in stored.groups)
            tail = stored.groups[0].tail_tokens
            tail_row = kvsize.plan_row(layout, tail, chunk) if tail else None
            objects = chunks * one.objects + (tail_row.objects if tail_row else 0)
            stored_bytes = chunks * one.stored_bytes + (tail_row.stored_bytes if tail_row else 0)
            assert (objects, stored_bytes) == (row.objects, row.stored_bytes), (engine, chunk, prompt)
            assert stored.max_hit_tokens in (prompt, prompt - 1)
            if row.groups:
                assert [g.stop - g.start for g in stored.groups] == [g.objects // one.objects for g in row.groups]


def test_state_models_under_vllm_native_are_refused_for_a_replay(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]}\n')
    with pytest.raises(kvsize.UnsupportedModelError, match="state layers"):
        kvsize.replay("ai21labs/AI21-Jamba-1.5-Mini", path, engine="vllm", chunk_sizes=[80])
