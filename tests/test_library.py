"""The library calls: each returns what its command prints as JSON, key for key, and stands on its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kvsize

SEED = "Qwen/Qwen3-4B-Instruct-2507"

# Every documented command line, beside the library call that takes the same options (long flags in snake_case).
DOCUMENTED: list[tuple[str, Callable[[], Any]]] = [
    (f"{SEED} --tp 4 --prompt 100000", lambda: kvsize.size(SEED, tp=4, prompt=100_000)),
    (
        f"{SEED} --tp 4 --prompt 100000 --backend s3 --concurrent-prompts 20",
        lambda: kvsize.size(SEED, tp=4, prompt=100_000, backend=["s3"], concurrent_prompts=20),
    ),
    (
        f"{SEED} --tp 4 --backend s3 --backend nfs --search --explain --instances 4 --concurrent-prompts 8",
        lambda: kvsize.size(SEED, tp=4, backend=["s3", "nfs"], search=True, explain=True, instances=4, concurrent_prompts=8),
    ),
    (
        "deepseek-ai/DeepSeek-V3 --tp 8 --mtp --backend nvme --connector fs --layerwise --kv-dtype fp8",
        lambda: kvsize.size(
            "deepseek-ai/DeepSeek-V3", tp=8, mtp=True, backend=["nvme"], connector="fs", layerwise=True, kv_dtype="fp8"
        ),
    ),
    (
        "meta-llama/Llama-3.1-405B --tp 8 --pp 3 --backend s3 --shared-prefix 20k --pinned-memory 1GiB --prefill-tps 5000",
        lambda: kvsize.size(
            "meta-llama/Llama-3.1-405B", tp=8, pp=3, backend=["s3"], shared_prefix=20_000, pinned_memory=2**30, prefill_tps=5000
        ),
    ),
    (
        "google/gemma-3-27b-it --tp 4 --save-unfull-chunk --connector redis --backend redis --concurrency 4"
        " --chunk-sizes 256,1Ki",
        lambda: kvsize.size(
            "google/gemma-3-27b-it",
            tp=4,
            save_unfull_chunk=True,
            connector="redis",
            backend=["redis"],
            concurrency=4,
            chunk_sizes=[256, 1024],
        ),
    ),
    (
        f"check {SEED} --tp 4 --prompt 100k --chunk-size 256 --backend s3 --concurrent-prompts 20 --max-objects 400",
        lambda: kvsize.check(SEED, tp=4, prompt=100_000, chunk_size=256, backend="s3", concurrent_prompts=20, max_objects=400),
    ),
    (f"check {SEED} --tp 4 --chunk-size 2048", lambda: kvsize.check(SEED, tp=4, chunk_size=2048)),
    (
        f"capacity {SEED} --tp 4 --prompt 100k --chunk-size 2048 --storage 10TiB --shared-prefix 20k",
        lambda: kvsize.capacity(SEED, tp=4, prompt=100_000, chunk_size=2048, storage=10 * 2**40, shared_prefix=20_000),
    ),
    (f"capacity {SEED} --tp 4 --prompts 100", lambda: kvsize.capacity(SEED, tp=4, prompts=100)),
]


@pytest.mark.parametrize(("command", "call"), DOCUMENTED, ids=[command for command, _ in DOCUMENTED])
def test_library_call_is_the_command_json(run, command, call):
    result = run(*command.split(), "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    cli = json.loads(result.stdout)
    library = json.loads(json.dumps(call().model_dump(mode="json")))
    assert library == cli
    assert list(library) == list(cli)  # the same keys, in the same order


def test_size_result_is_typed_and_carries_its_plans():
    result = kvsize.size(SEED, tp=4, backend=["s3"], concurrent_prompts=20)
    assert isinstance(result, kvsize.SizeResult)
    assert result.recommended_chunk_tokens == 2048 and result.offload_pays is True
    (plan,) = result.plans
    assert plan.recommendation is not None and plan.recommendation.chunk_tokens == 2048
    # the time model's terms are recorded on every row: the load is their largest
    row = next(r for r in result.rows if r.chunk_tokens == 2048)
    assert row.terms is not None and row.load_seconds == pytest.approx(row.terms["request_rate_seconds"])
    assert row.terms["request_rate_seconds"] == pytest.approx(20 * 1728 / 5500)


def test_size_without_a_backend_has_null_timing_keys():
    data = kvsize.size(SEED, tp=4).model_dump(mode="json")
    assert data["backend"] is None and data["backends"] == [] and data["recommended_chunk_tokens"] is None
    assert data["rows"][0]["load_seconds"] is None and data["rows"][0]["objects"] == 1560


def test_plan_storage_recommends_as_the_command_does():
    spec = kvsize.resolve_model(SEED)
    sweep = kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000)
    options = kvsize.TimeOptions(concurrent_prompts=20, prefill_tokens_per_s=23_608.0)
    plan = kvsize.plan_storage(sweep.rows, sweep.layout, kvsize.PRESETS["s3"], options)
    assert plan.recommendation is not None and plan.recommendation.chunk_tokens == 2048
    assert plan.offload_pays is True


def test_lmcache_config_from_a_result():
    text, warnings = kvsize.lmcache_config(kvsize.size(SEED, tp=4, prompt=100_000, backend=["s3"], concurrent_prompts=20))
    assert "chunk_size: 2048" in text and "blocking_timeout_secs: 13" in text and warnings == []
    with pytest.raises(kvsize.KvsizeError, match="`emit` lmcache needs `chunk_size`"):
        kvsize.lmcache_config(kvsize.size(SEED, tp=4))


@pytest.mark.parametrize(
    ("call", "kind", "field"),
    [
        (lambda: kvsize.size(SEED, tp=3), kvsize.ParallelismError, "tp"),
        (lambda: kvsize.size("microsoft/phi-4", serving=kvsize.Serving(tp=4)), kvsize.ParallelismError, "tp"),
        (lambda: kvsize.size(SEED, tp=0), kvsize.ParallelismError, "tp"),
        (lambda: kvsize.size(SEED, prompt=0), kvsize.KvsizeError, "prompt"),
        (lambda: kvsize.size(SEED, backend=["tape"]), kvsize.BackendError, None),
        (lambda: kvsize.size(SEED, backend=["s3"], instances=0), kvsize.KvsizeError, "instances"),
        (lambda: kvsize.size("nobody/nothing", offline=True), kvsize.HubError, None),
        (lambda: kvsize.check(SEED, max_load_seconds=5.0), kvsize.KvsizeError, "max_load_seconds"),
        (lambda: kvsize.capacity(SEED), kvsize.KvsizeError, None),
        (lambda: kvsize.probe("/nonexistent-dir-for-kvsize"), kvsize.ProbeError, None),
    ],
)
def test_errors_come_by_kind_and_name_the_parameter(call, kind, field):
    with pytest.raises(kind) as caught:
        call()
    assert "--" not in str(caught.value)  # library messages name parameters, not flags
    if field is not None:
        assert caught.value.field == field and f"`{field}`" in str(caught.value)


def test_plan_sweep_bounds_its_inputs():
    spec = kvsize.resolve_model(SEED)
    with pytest.raises(kvsize.KvsizeError, match="`chunk_sizes` has 999 sizes"):
        kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000, list(range(1, 1000)))
    with pytest.raises(kvsize.KvsizeError, match="integer of about 5,001 digits"):
        kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000, [10**5000])


def test_specs_and_options_refuse_illegal_values():
    with pytest.raises(kvsize.KvsizeError, match="num_kv_heads"):
        kvsize.ModelSpec(
            name="m",
            model_type="t",
            source="s",
            layer_kinds=(kvsize.LayerKind.FULL,),
            num_attention_heads=8,
            num_kv_heads=0,
            head_size=64,
            config_dtype=None,
        )
    with pytest.raises(kvsize.UnsupportedModelError, match="MLA layers mixed"):
        kvsize.ModelSpec(
            name="m",
            model_type="t",
            source="s",
            layer_kinds=(kvsize.LayerKind.MLA, kvsize.LayerKind.FULL),
            num_attention_heads=8,
            num_kv_heads=1,
            head_size=576,
            config_dtype=None,
        )
    with pytest.raises(kvsize.KvsizeError, match="unknown `connector`"):
        kvsize.EngineOptions(connector="ftp")
    with pytest.raises(kvsize.ParallelismError):
        kvsize.EngineOptions(tp=0)
    with pytest.raises(kvsize.BackendError, match="concurrency"):
        kvsize.BackendProfile(name="x", concurrency=0)


def test_probe_through_the_library(tmp_path: Path):
    report = kvsize.probe(str(tmp_path), object_sizes=[65_536, 2**20], concurrency=[1, 2], objects=4)
    assert isinstance(report, kvsize.ProbeReport)
    assert [(r.object_bytes, r.concurrency) for r in report.results] == [(65_536, 1), (65_536, 2), (2**20, 1), (2**20, 2)]
    assert list(tmp_path.iterdir()) == []
