"""The library's arguments: the building blocks honour the engine they are given, an engine's settings refuse another
engine's options as ``size`` does, and the flat keywords of the previous release still work, with one
``DeprecationWarning`` naming the group each belongs in."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import kvsize
from kvsize.engines.registry import ENGINE_NAMES

SEED = "Qwen/Qwen3-4B-Instruct-2507"


# --- plan_layout dispatches to the engine the options name ----------------------------------------------------


def test_plan_layout_gives_vllms_layout_when_the_options_name_vllm():
    """The seed at TP 4 under vLLM native, chunk 256, 100,000 tokens: one object per (chunk, KV-cache group), one
    group (36 full-attention layers), 100,000 // 256 = 390 objects of every worker's slice, 4 x 256 tokens x 36 layers
    x 2 (K, V) x 2 heads x 128 x 2 B; not LMCache's 4 writers x 390 = 1,560 objects of one rank's slice."""
    spec = kvsize.resolve_model(SEED)
    layout = kvsize.plan_layout(spec, kvsize.EngineOptions(tp=4, engine="vllm"))
    row = kvsize.plan_row(layout, 100_000, 256)
    assert (row.objects, row.object_bytes) == (390, 4 * 256 * 36 * 2 * 2 * 128 * 2)
    assert layout.engine == "vllm" and layout.connector.name == "fs"


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_plan_layout_and_plan_row_are_plan_sweeps_for_every_engine(engine):
    spec = kvsize.resolve_model(SEED)
    options = kvsize.EngineOptions(tp=4, engine=engine)
    layout = kvsize.plan_layout(spec, options)
    (swept,) = kvsize.plan_sweep(spec, options, 100_000, [256]).rows
    assert layout.engine == engine
    assert kvsize.plan_row(layout, 100_000, 256) == swept.model_copy(update={"reduction_vs_256": None})


# --- an engine's options belong to it ---------------------------------------------------------------------------

OTHER_ENGINES_OPTIONS = [
    ("tier", "obj", {"vllm", "llmd-fs"}),
    ("layerwise", True, {"lmcache"}),
    ("kvbm_tier", "object", {"kvbm"}),
    ("connector", "fs", {"lmcache"}),
]


@pytest.mark.parametrize(("option", "value", "owners"), OTHER_ENGINES_OPTIONS, ids=[o[0] for o in OTHER_ENGINES_OPTIONS])
def test_engine_options_refuse_another_engines_option_as_size_does(option, value, owners):
    with pytest.raises(kvsize.KvsizeError) as built:
        kvsize.EngineOptions(engine="sglang", **{option: value})
    with pytest.raises(kvsize.KvsizeError) as sized, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        kvsize.size(SEED, engine="sglang", **{option: value})
    assert str(built.value) == str(sized.value) and built.value.field == sized.value.field == option
    message = str(built.value)
    assert message.startswith(f"`{option}` applies to `engine` ") and message.endswith(", not sglang")
    from kvsize.engines.registry import engine_for

    takers = {
        name for name in ENGINE_NAMES if {option} & {*engine_for(name).Settings.model_fields, *engine_for(name).Settings.ALIASES}
    }
    assert owners <= takers and "sglang" not in takers
    named = set(message.removeprefix(f"`{option}` applies to `engine` ").removesuffix(", not sglang").split(" or "))
    assert named == takers


def test_engine_options_take_the_engines_own_options():
    options = kvsize.EngineOptions(engine="sglang", tp=4, sglang_backend="mooncake")
    assert options.settings == kvsize.engines.Sglang(backend="mooncake") and options.tp == 4
    assert kvsize.EngineOptions(engine="vllm", tier="obj").settings == kvsize.engines.Vllm(tier="obj")


# --- the flat keywords of the previous release -------------------------------------------------------------------


def _deprecation(caught: list[warnings.WarningMessage]) -> str:
    """The one DeprecationWarning a call gave, pointing at the caller's line."""
    found = [warning for warning in caught if issubclass(warning.category, DeprecationWarning)]
    assert len(found) == 1, [str(warning.message) for warning in found]
    assert found[0].filename == __file__
    return str(found[0].message)


def _quiet(call: Any) -> Any:
    """``call()``, which must give no DeprecationWarning (the grouped form)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    assert not [warning for warning in caught if issubclass(warning.category, DeprecationWarning)]
    return result


def test_flat_size_keywords_give_the_grouped_result_and_one_warning_naming_the_groups():
    grouped = _quiet(
        lambda: kvsize.size(
            SEED,
            serving=kvsize.Serving(tp=4),
            workload=kvsize.Workload(prompt=100_000),
            storage=kvsize.Storage(backend="s3"),
        )
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flat = kvsize.size(SEED, tp=4, prompt=100_000, backend="s3")
    message = _deprecation(caught)
    assert message.startswith("kvsize.size: flat keywords are deprecated")
    for named in ("tp in kvsize.Serving", "prompt in kvsize.Workload", "backend in kvsize.Storage"):
        assert named in message
    assert flat.model_dump(mode="json") == grouped.model_dump(mode="json")
    assert flat.recommended_chunk_tokens == 2048 and flat.rows[0].objects == 1_560


FLAT_ENGINE_CALLS = [
    (
        "check",
        lambda: kvsize.check(SEED, tp=4, engine="vllm", tier="obj", chunk_size=256),
        lambda: kvsize.check(SEED, serving=kvsize.Serving(tp=4), engine=kvsize.engines.Vllm(tier="obj"), chunk_size=256),
        "tier",
    ),
    (
        "check",
        lambda: kvsize.check(SEED, engine="kvbm", kvbm_tier="object", chunk_size=16),
        lambda: kvsize.check(SEED, engine=kvsize.engines.Kvbm(tier="object"), chunk_size=16),
        "kvbm_tier",
    ),
    (
        "capacity",
        lambda: kvsize.capacity(SEED, engine="sglang", sglang_backend="mooncake", chunk_size=64, prompts=2),
        lambda: kvsize.capacity(SEED, engine=kvsize.engines.Sglang(backend="mooncake"), chunk_size=64, prompts=2),
        "sglang_backend",
    ),
    (
        "capacity",
        lambda: kvsize.capacity(SEED, connector="fs", chunk_size=2048, prompts=10),
        lambda: kvsize.capacity(SEED, engine=kvsize.engines.LMCache(connector="fs"), chunk_size=2048, prompts=10),
        "connector",
    ),
]


@pytest.mark.parametrize(
    ("call", "flat", "grouped", "option"), FLAT_ENGINE_CALLS, ids=[f"{c[0]}-{c[3]}" for c in FLAT_ENGINE_CALLS]
)
def test_flat_engine_options_of_check_and_capacity_still_work_and_warn(call, flat, grouped, option):
    expected = _quiet(grouped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = flat()
    message = _deprecation(caught)
    assert message.startswith(f"kvsize.{call}: flat keywords are deprecated")
    assert f"{option} in the engine's settings (kvsize.engines)" in message
    assert got.model_dump(mode="json") == expected.model_dump(mode="json")


FLAT_PROBES = [
    # LMCache layerwise at chunk 16: one layer's object, 16 x 2 x 2 heads x 128 x 2 B; without it, all 36 layers'.
    ({"connector": "fs", "layerwise": True}, lambda: kvsize.engines.LMCache(connector="fs", layerwise=True), [16], 16_384),
    # SGLang's mooncake stores K and V apart: half of a page's 64 x 36,864 B.
    ({"engine": "sglang", "sglang_backend": "mooncake"}, lambda: kvsize.engines.Sglang(backend="mooncake"), [64], 1_179_648),
]


@pytest.mark.parametrize(("flat", "settings", "chunks", "size"), FLAT_PROBES, ids=["connector-layerwise", "sglang_backend"])
def test_flat_engine_options_of_probe_still_work_and_warn(tmp_path: Path, flat, settings, chunks, size):
    def probed(**engine: Any) -> list[int]:
        report = kvsize.probe(str(tmp_path), model=SEED, tp=4, chunk_sizes=chunks, concurrency=[1], objects=2, **engine)
        return sorted({result.object_bytes for result in report.results})

    assert _quiet(lambda: probed(engine=settings())) == [size]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert probed(**flat) == [size]
    message = _deprecation(caught)
    assert message.startswith("kvsize.probe: flat keywords are deprecated")
    for option in set(flat) - {"engine"}:
        assert f"{option} in the engine's settings (kvsize.engines)" in message
    assert list(tmp_path.iterdir()) == []


def test_probe_command_gives_the_engines_settings_as_one_object(run, tmp_path: Path):
    """``kvsize probe --model`` with an engine's flags probes that engine's object sizes, with no deprecation of its own;
    the engine's flags without ``--model`` are refused."""
    args = ("probe", str(tmp_path), "--model", SEED, "--tp", "4", "--chunk-sizes", "64", "--concurrency", "1", "--objects", "2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(*args, "--engine", "sglang", "--sglang-backend", "mooncake", "--format", "json")
        fio = run(*args, "--connector", "fs", "--layerwise", "--emit", "fio")
    assert result.exit_code == 0, result.stderr
    assert not [warning for warning in caught if issubclass(warning.category, DeprecationWarning)]
    assert {item["object_bytes"] for item in json.loads(result.stdout)["results"]} == {1_179_648}
    assert fio.exit_code == 0, fio.stderr
    # layerwise: one layer's object, 64 tokens x 2 (K, V) x 2 heads x 128 x 2 B (all 36 layers' would be 2,359,296 B)
    assert set(re.findall(r"^filesize=(\d+)$", fio.stdout, re.M)) == {"65536"}
    refused = run("probe", str(tmp_path), "--engine", "vllm", "--tier", "obj")
    assert refused.exit_code == 2 and "--engine and the engine's options go with --model" in refused.stderr
    assert list(tmp_path.iterdir()) == []
