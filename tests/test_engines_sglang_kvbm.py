"""SGLang HiCache and Dynamo KVBM (``--engine sglang|kvbm``): every figure derived by hand in the test, from sglang
0.5.23's code and KVBM's docs and Rust (docs/engines.md, ../shared/reference/OFFLOAD-ENGINES.md sections 2-3)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
DATA = Path(__file__).parent / "data"
# Qwen3-4B at TP 4: 36 layers x 2 KV heads a rank x 128 x 2 B, for K or for V.
HALF = 36 * 2 * 128 * 2


def rows(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["chunk_tokens"]: row for row in data["rows"]}


# --- the seed shape -----------------------------------------------------------------------------------------


def test_sglang_file_backend_pages(run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "sglang", "--chunk-sizes", "1,64")
    by_page = rows(data)
    # One file per page per rank, K and V together: 2 x 36 x P x 2 x 128 x 2 B.
    assert (by_page[64]["objects"], by_page[64]["object_bytes"]) == (4 * (100_000 // 64), 2 * HALF * 64) == (6_248, 2_359_296)
    assert (by_page[1]["objects"], by_page[1]["object_bytes"]) == (400_000, 36_864)
    assert data["engine_options"]["backend"] == "file" and data["engine_options"]["kv_split"] is False
    assert any("also SGLang's GPU radix/attention page" in note for note in data["notes"])


@pytest.mark.parametrize("backend", ["mooncake", "nixl", "hf3fs"])
def test_sglang_zero_copy_backends_store_k_and_v_apart(run_json, backend):
    data = run_json(SEED, "--tp", "4", "--engine", "sglang", "--sglang-backend", backend, "--chunk-sizes", "64")
    row = rows(data)[64]
    assert (row["objects"], row["object_bytes"]) == (2 * 4 * 1_562, HALF * 64) == (12_496, 1_179_648)
    assert row["total_bytes"] == 12_496 * 1_179_648
    assert data["engine_options"]["kv_split"] is True


def test_kvbm_on_vllm_blocks(run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "kvbm", "--kvbm-engine", "vllm", "--chunk-sizes", "16")
    row = rows(data)[16]
    # t x p x floor(N / B) transfers of L x 2 x B x heads/rank x head x dtype.
    assert (row["objects"], row["object_bytes"]) == (4 * 6_250, 2 * HALF * 16) == (25_000, 589_824)
    options = data["engine_options"]
    assert (options["framework"], options["tier"], options["confidence"]) == ("vllm", "disk", "medium")
    assert any("unverified" in note and "MLA de-duplication across ranks" in note for note in data["notes"])


def test_kvbm_defaults_to_the_engines_block(run_json):
    assert [r["chunk_tokens"] for r in run_json(SEED, "--tp", "4", "--engine", "kvbm")["rows"]] == [16]
    trt = run_json(SEED, "--tp", "4", "--engine", "kvbm", "--kvbm-engine", "trtllm", "--kvbm-tier", "object")
    row = trt["rows"][0]
    assert (row["chunk_tokens"], row["objects"], row["object_bytes"]) == (32, 4 * 3_125, 2 * HALF * 32)
    assert trt["connector"] == "object"


# --- rules: MLA, PP, partial pages, hybrids -----------------------------------------------------------------------


def test_sglang_mla_one_writer_no_split(run_json):
    """DeepSeek-V3 at TP 8: one object per page (61 layers x 64 x 576 x 2 B), from one rank, even on mooncake."""
    for backend in ("file", "mooncake"):
        data = run_json("deepseek-ai/DeepSeek-V3", "--tp", "8", "--engine", "sglang", "--sglang-backend", backend,
                        "--chunk-sizes", "64")  # fmt: skip
        row = rows(data)[64]
        assert (row["objects"], row["object_bytes"]) == (100_000 // 64, 61 * 64 * 576 * 2)
        assert data["writers"] == 1


def test_sglang_pp_gives_the_last_stages_the_extra_layers(run_json):
    """Llama-3.1-8B (32 layers, 8 KV heads) at TP 2 x PP 3: SGLang's get_pp_indices gives 10, 11, 11 (vLLM: 11, 11, 10);
    each of the 6 ranks writes its stage's pages."""
    data = run_json("meta-llama/Llama-3.1-8B-Instruct", "--tp", "2", "--pp", "3", "--engine", "sglang",
                    "--chunk-sizes", "64")  # fmt: skip
    assert [stage["layers"] for stage in data["stages"]] == [10, 11, 11]
    row = rows(data)[64]
    assert row["objects"] == 3 * 2 * 1_562
    assert row["object_bytes"] == 2 * 11 * 64 * 4 * 128 * 2
    assert row["total_bytes"] == 2 * 1_562 * 64 * 2 * 4 * 128 * 2 * (10 + 11 + 11)
    kvbm = run_json("meta-llama/Llama-3.1-8B-Instruct", "--tp", "2", "--pp", "3", "--engine", "kvbm")
    assert [stage["layers"] for stage in kvbm["stages"]] == [11, 11, 10]


def test_sglang_takes_a_pp_partition_only_when_it_adds_up(run, run_json):
    """10 + 20 layers of a 36-layer model would size 30 of them: refused, as every engine refuses it; 10 + 26 is used
    as given."""
    assert "--pp-partition 10,20 must give 2 stages" in one_line(
        run(SEED, "--tp", "4", "--pp", "2", "--pp-partition", "10,20", "--engine", "sglang")
    )
    data = run_json(SEED, "--tp", "4", "--pp", "2", "--pp-partition", "10,26", "--engine", "sglang", "--chunk-sizes", "64")
    assert [stage["layers"] for stage in data["stages"]] == [10, 26]
    assert rows(data)[64]["total_bytes"] == 4 * 1_562 * 64 * 2 * 2 * 128 * 2 * 36


def test_partial_pages_are_not_stored(run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "sglang", "--prompt", "100", "--chunk-sizes", "64")
    row = rows(data)[64]
    assert (row["full_chunks"], row["tail_tokens"], row["tail_saved"], row["objects"]) == (1, 36, False, 4)


@pytest.mark.parametrize("engine", ["sglang", "kvbm"])
def test_extra_pools_fail_closed_naming_them(run, engine):
    line = one_line(run("google/gemma-3-27b-it", "--engine", engine))
    assert "52 sliding_attention" in line and "will not guess" in line
    assert "28 mamba" in one_line(run("ai21labs/AI21-Jamba-1.5-Mini", "--engine", engine))


# --- time model, check, capacity ----------------------------------------------------------------------------


def test_sglang_file_backend_reads_one_page_at_a_time(run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "sglang", "--chunk-sizes", "64", "-b", "nfs")
    terms = data["rows"][0]["terms"]
    assert (terms["concurrency"], terms["objects_per_writer"], terms["waves"]) == (1, 1_562, 1_562)
    assert any(note.startswith("1 request in flight per rank: SGLang's file backend") for note in data["backends"][0]["notes"])


def test_check_and_capacity_under_sglang_and_kvbm(run, run_json):
    result = run("check", SEED, "--tp", "4", "--engine", "sglang", "--chunk-size", "64", "--max-objects", "5000",
                 "-f", "json")  # fmt: skip
    assert result.exit_code == 1
    violation = json.loads(result.stdout)["violations"][0]
    assert (violation["limit"], violation["value"], violation["threshold"]) == ("max_objects", 6_248, 5_000)
    shared = run_json("capacity", SEED, "--tp", "4", "--engine", "sglang", "--sglang-backend", "mooncake",
                      "--chunk-size", "64", "--prompts", "2", "--shared-prefix", "6400")  # fmt: skip
    # 100 shared pages x 4 ranks x K and V, stored once.
    assert shared["capacity"]["shared"]["objects"] == 100 * 4 * 2
    assert shared["capacity"]["needed"]["objects"] == 800 + 2 * (12_496 - 800)
    assert run_json("capacity", SEED, "--tp", "4", "--engine", "kvbm", "--prompts", "1")["rows"][0]["objects"] == 25_000


# --- --emit sglang and --emit kvbm, checked against the option names of their sources --------------------------


def test_emit_sglang_uses_only_sglangs_flags(run):
    known = json.loads((DATA / "sglang-0.5.23-hicache-flags.json").read_text())
    result = run(SEED, "--tp", "4", "--engine", "sglang", "--sglang-backend", "mooncake", "--chunk-size", "64",
                 "--emit", "sglang")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if line.startswith("python -m sglang.launch_server")]
    argv = shlex.split(command)[3:]
    index = 0
    while index < len(argv):
        flag = argv[index]
        kind = known["flags"][flag]  # KeyError: a flag sglang 0.5.23 does not have
        if kind == "flag":
            index += 1
            continue
        value = argv[index + 1]
        if isinstance(kind, list):
            assert value in kind, (flag, value)
        elif kind == "int":
            assert int(value) >= 1
        index += 2
    assert "--page-size 64" in command and "--hicache-storage-backend mooncake" in command
    file_emit = run(SEED, "--tp", "4", "--engine", "sglang", "--chunk-size", "64", "--emit", "sglang").stdout
    assert any(line.split("=")[0] in known["environment"] for line in file_emit.splitlines() if "=" in line)


@pytest.mark.parametrize("tier", ["disk", "object"])
def test_emit_kvbm_uses_only_kvbms_variables(run, tier):
    known = json.loads((DATA / "dynamo-kvbm-environment.json").read_text())
    result = run(SEED, "--tp", "4", "--engine", "kvbm", "--kvbm-tier", tier, "--emit", "kvbm", "--chunk-size", "16")
    assert result.exit_code == 0, result.stderr
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines() if line.startswith("export ")
    )
    assert exported and set(exported) <= set(known["names"])
    for name in known["gigabyte_values"]:
        if name in exported:
            # One worker holds 6,250 blocks of 589,824 B a prompt; x 2 margin, in whole GB.
            assert int(exported[name]) * 1e9 >= 6_250 * 589_824 * 2
    assert ("DYN_KVBM_DISK_CACHE_DIR" in exported) == (tier == "disk")


def test_library_and_cli_agree_for_sglang_and_kvbm(run_json):
    import kvsize

    for flags, kwargs in (
        (("--engine", "sglang", "--sglang-backend", "nixl"), {"engine": "sglang", "sglang_backend": "nixl"}),
        (("--engine", "kvbm", "--kvbm-tier", "object"), {"engine": "kvbm", "kvbm_tier": "object"}),
    ):
        library = kvsize.size(SEED, tp=4, chunk_sizes=[64], **kwargs).model_dump(mode="json")
        assert library == run_json(SEED, "--tp", "4", "--chunk-sizes", "64", *flags)
