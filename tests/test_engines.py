"""vLLM native offloading and llm-d's fs connector beside LMCache (``--engine``): every figure derived by hand from
vLLM 0.33's code in the test (docs/engines.md, ../shared/reference/OFFLOAD-ENGINES.md section 1)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

import kvsize
from tests.conftest import reference_config
from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
REFERENCE_JAMBA = reference_config("ai21labs__AI21-Jamba-1.5-Mini")
DATA = Path(__file__).parent / "data"
PAGE = 4096


def round_up(value: int, to: int = PAGE) -> int:
    return -(-value // to) * to


def rows(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["chunk_tokens"]: row for row in data["rows"]}


# --- the seed shape and the figures vLLM's own code produced -----------------------------------------------------


def test_seed_shape_under_vllm_native(run_json):
    data = rows(run_json(SEED, "--tp", "4", "--prompt", "100000", "--engine", "vllm", "--chunk-sizes", "16,256"))
    # 36 layers x (2 x 16 tokens x 2 heads/rank x 128 x 2 B) per worker, x 4 workers in one object.
    per_worker_block = 36 * 2 * 16 * 2 * 128 * 2
    assert per_worker_block == 589_824
    assert (data[16]["objects"], data[16]["object_bytes"]) == (6_250, 4 * per_worker_block) == (6_250, 2_359_296)
    assert (data[256]["objects"], data[256]["object_bytes"]) == (390, 37_748_736)
    assert data[256]["total_bytes"] == data[256]["stored_bytes"] == 390 * 37_748_736
    assert data[256]["groups"] == [
        {
            "kind": "full_attention",
            "layers": 36,
            "objects": 390,
            "object_bytes": 37_748_736,
            "states_handed_over": None,  # a state group's only
            "resend_hit_tokens": None,  # a state model's only
        }
    ]
    assert (data[256]["tail_tokens"], data[256]["tail_saved"], data[256]["header_bytes"]) == (160, False, 0)


def test_seed_shape_under_llmd_fs(run_json):
    data = run_json(SEED, "--tp", "4", "--prompt", "100000", "--engine", "llmd-fs")
    assert data["offload_engine"] == "llmd-fs"
    row = rows(data)[256]  # llm-d's default block_size
    assert (row["objects"], row["object_bytes"]) == (4 * 390, 256 * 36_864) == (1_560, 9_437_184)
    assert data["writers"] == 4


def test_gemma3_27b_sliding_window_groups(run_json):
    """62 layers = 52 sliding (window 1,024) + 10 full: group size 10, so 6 sliding groups (layers[i::6]) + 1 full.
    The shared slot is 10 layers x (2 x 16 x 4 heads/rank x 128 x 2 B) = 327,680 B per worker, x 4 workers."""
    data = run_json("google/gemma-3-27b-it", "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16,256,2048")
    by_chunk = rows(data)
    assert data["engine_options"]["kv_cache_groups"] == 7
    assert sorted(g["layers"] for g in by_chunk[16]["groups"]) == [8, 8, 9, 9, 9, 9, 10]
    # sliding: min(max(cdiv(1024, C), cdiv(1023, C)), floor(99,999 / C)) per group; full: floor(100,000 / C).
    assert by_chunk[16]["objects"] == 6 * 64 + 6_250 == 6_634
    assert by_chunk[16]["object_bytes"] == 4 * 10 * 32_768 == 1_310_720
    assert by_chunk[256]["objects"] == 6 * 4 + 390 == 414
    assert by_chunk[2048]["objects"] == 6 * 1 + 48 == 54
    assert {g["object_bytes"] for g in by_chunk[16]["groups"]} == {1_310_720}


def test_gpt_oss_and_phi4_mini(run_json):
    oss = rows(run_json("openai/gpt-oss-20b", "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16,256"))
    assert oss[16]["objects"] == 128 // 16 + 6_250 == 6_258  # window 128: 8 chunks of 16
    assert oss[256]["objects"] == 1 + 390
    # Every layer slides with a window (262,144) longer than the prompt: floor((N - 1) / C), one fewer than N / C.
    phi = rows(run_json("microsoft/Phi-4-mini-instruct", "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16"))
    assert phi[16]["objects"] == 99_999 // 16 == 6_249


def test_a_small_window_stores_only_its_tail(run_json, write_config):
    config = {
        "model_type": "mistral",
        "architectures": ["MistralForCausalLM"],
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hidden_size": 512,
        "sliding_window": 100,
        "torch_dtype": "float16",
    }
    data = rows(run_json(str(write_config(config)), "--prompt", "1000", "--engine", "vllm", "--chunk-sizes", "16,64"))
    assert data[16]["objects"] == max(-(-100 // 16), -(-99 // 16)) == 7
    assert data[64]["objects"] == 2
    # One worker: 4 layers x 2 x 16 x 2 heads x 64 x 2 B = 32,768 B, a whole number of pages.
    assert data[16]["object_bytes"] == 4 * 2 * 16 * 2 * 64 * 2


def test_chunked_local_groups_store_every_chunk(run_json, write_config):
    """Llama 4 Scout's shape: 36 chunked-local + 12 full layers, group size 12: 3 chunked groups + 1 full group."""
    config = {
        "model_type": "llama4_text",
        "architectures": ["Llama4ForCausalLM"],
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_size": 5120,
        "attention_chunk_size": 8192,
        "no_rope_layers": [1, 1, 1, 0] * 12,
        "torch_dtype": "bfloat16",
    }
    data = rows(run_json(str(write_config(config)), "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16"))
    assert data[16]["objects"] == 4 * 6_250
    assert data[16]["object_bytes"] == 4 * 12 * (2 * 16 * 2 * 128 * 2) == 786_432
    assert [g["kind"] for g in data[16]["groups"]] == ["chunked_attention"] * 3 + ["full_attention"]


def test_mla_at_tp8_keeps_one_copy(run_json):
    """DeepSeek-V3: 61 MLA layers x 16 tokens x 576 x 2 B = 1,124,352 B; the replicated layout keeps one copy at TP 8,
    rounded up to the page: 275 pages."""
    data = run_json("deepseek-ai/DeepSeek-V3", "--tp", "8", "--engine", "vllm", "--chunk-sizes", "16")
    row = rows(data)[16]
    assert row["object_bytes"] == round_up(61 * 16 * 576 * 2) == 275 * PAGE == 1_126_400
    assert row["objects"] == 6_250
    assert data["engine_options"]["copies"] == 1
    assert any("replicated layout applies" in note for note in data["notes"])


def test_pp_puts_every_worker_in_one_object(run_json):
    """Qwen3-4B at TP 2 x PP 2: 18 layers a stage, 4 heads a rank: 18 x 2 x 16 x 4 x 128 x 2 = 589,824 B per worker,
    x 4 workers per object; the objects are not multiplied by PP. llm-d writes one file per worker instead."""
    vllm = run_json(SEED, "--tp", "2", "--pp", "2", "--engine", "vllm", "--chunk-sizes", "16")
    assert (rows(vllm)[16]["objects"], rows(vllm)[16]["object_bytes"]) == (6_250, 4 * 589_824)
    assert vllm["engine_options"]["copies"] == 4
    llmd = run_json(SEED, "--tp", "2", "--pp", "2", "--engine", "llmd-fs", "--chunk-sizes", "256")
    assert (rows(llmd)[256]["objects"], rows(llmd)[256]["object_bytes"]) == (4 * 390, 256 * 18 * 4 * 4 * 128)


def test_mla_with_pp_holds_every_workers_copy(run_json):
    data = run_json("deepseek-ai/DeepSeek-V3", "--tp", "4", "--pp", "2", "--engine", "vllm", "--chunk-sizes", "16")
    assert data["engine_options"]["copies"] == 8
    first_stage = data["stages"][0]["layers"]
    assert rows(data)[16]["object_bytes"] == round_up(8 * first_stage * 16 * 576 * 2)


def test_a_chunk_that_is_not_a_block_multiple_is_refused(run):
    line = one_line(run(SEED, "--engine", "vllm", "--chunk-sizes", "16,100"))
    assert "chunk 100 is not a multiple of vLLM's GPU block of 16 tokens" in line and "use 112" in line
    line = one_line(run(SEED, "--engine", "vllm", "--gpu-block-size", "32", "--chunk-sizes", "16"))
    assert "GPU block of 32 tokens" in line


def test_a_larger_gpu_block_sizes_larger_objects(run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "vllm", "--gpu-block-size", "64", "--chunk-sizes", "64,256")
    assert data["engine_options"]["gpu_block_size"] == 64
    assert rows(data)[64]["object_bytes"] == 4 * 36 * 2 * 64 * 2 * 128 * 2


def test_mamba1_hybrid_jamba(run_json):
    """Jamba-1.5-Mini at TP 4: 28 Mamba + 4 attention layers. State per layer and rank (jamba.py, mamba1):
    intermediate 2 x 4,096 / 4 = 2,048; conv 2,048 x (4 - 1) + ssm 2,048 x 16 = 38,912 values x 2 B = 77,824 B.
    Attention page per token and rank 2 x 2 heads x 128 x 2 B = 1,024 B, so the block is raised to
    16 x cdiv(77,824, 16 x 1,024) = 80 tokens. Group size 4: 7 Mamba groups + 1 attention group, one slot of 4 layers."""
    data = run_json("ai21labs/AI21-Jamba-1.5-Mini", "--tp", "4", "--engine", "vllm", "--prompt", "100000")
    assert data["engine_options"]["gpu_block_size"] == 80
    assert [row["chunk_tokens"] for row in data["rows"]] == [80, 320, 1280, 5120, 10240]  # 1, 4, 16, 64, 128 blocks
    row = rows(data)[80]
    assert row["object_bytes"] == 4 * 4 * 80 * 1_024 == 1_310_720
    # Hopper's 8,192-token prefill budget: chunks end every 8,160 tokens (12 of them up to 97,920), then 99,920 (the
    # last block boundary) and 100,000 (80 divides it): 14 states per Mamba group, all stored at chunk 80.
    assert row["objects"] == 7 * 14 + 100_000 // 80
    assert [g["kind"] for g in row["groups"]] == ["mamba"] * 7 + ["full_attention"]
    assert any("77,824 B of state per layer and rank" in note for note in data["notes"])
    assert any(note.startswith("approximate: vLLM raises the GPU block") for note in data["notes"])
    assert rows(data)[80]["reduction_vs_256"] is None  # 256 is not a multiple of the 80-token block


def test_mamba2_hybrid_keeps_its_ssm_state_in_float32(run_json):
    """Nemotron-3-Nano at TP 4 (nemotron_h.py, mamba2; NemotronH's SSM state is float32 by default):
    conv (64 x 64 + 2 x 8 x 128) / 4 x 3 = 4,608 values x 2 B; ssm 64 / 4 x 64 x 128 = 131,072 values x 4 B;
    533,504 B. Attention page per token 2 x 1 head x 128 x 2 B = 512 B: block 16 x cdiv(533,504, 8,192) = 1,056."""
    data = run_json("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "--tp", "4", "--engine", "vllm", "--chunk-sizes", "1056")
    assert data["engine_options"]["gpu_block_size"] == 1_056
    row = rows(data)[1056]
    # 23 Mamba layers in groups of 6 (4 groups) + 6 attention layers: a slot of 6 layers.
    assert row["object_bytes"] == 4 * 6 * 1_056 * 512
    # Hopper's 8,192 tokens: chunks end every 7,392 (13 of them), each with a checkpoint one block before (Mamba2),
    # then 99,264 (the last block boundary): 27 states per group (tests/test_vllm_hybrids.py).
    assert row["objects"] == 4 * 27 + 100_000 // 1_056


def test_gated_delta_net_hybrid_qwen3_next(run_json):
    """Qwen3-Next at TP 4 (qwen3_next.py): conv (128 x 16 x 2 + 128 x 32) / 4 x 3 = 6,144 values; ssm 32 / 4 x 128 x 128
    = 131,072 values; x 2 B = 274,432 B. Attention 2 x 1 head x 256 x 2 B = 1,024 B a token: on Ampere (Triton GDN, no
    checkpoint alignment) the block is 16 x 17 = 272."""
    data = run_json(
        "Qwen/Qwen3-Next-80B-A3B-Instruct", "--tp", "4", "--engine", "vllm", "--gpu-arch", "ampere", "--chunk-sizes", "272"
    )
    row = rows(data)[272]
    assert row["object_bytes"] == 4 * 12 * 272 * 1_024
    # A100's 2,048 tokens: chunks end every 1,904 (52 of them), then 99,824: 53 states per GDN group, all stored.
    assert row["objects"] == 3 * 53 + 100_000 // 272


def test_a_given_gpu_block_that_holds_the_state_is_kept(run_json):
    data = run_json("ai21labs/AI21-Jamba-1.5-Mini", "--tp", "4", "--engine", "vllm", "--gpu-block-size", "256")
    assert data["engine_options"]["gpu_block_size"] == 256  # 256 x 1,024 B >= 77,824 B
    assert rows(data)[256]["object_bytes"] == 4 * 4 * 256 * 1_024


def test_state_layers_without_their_fields_fail_closed(run, write_config):
    config = json.loads(json.dumps(REFERENCE_JAMBA))
    del config["mamba_d_state"]
    line = one_line(run(str(write_config(config)), "--engine", "vllm"))
    assert "28 mamba" in line and "mamba_d_state missing" in line and "--engine lmcache" in line
    assert run(str(write_config(config, "again")), "--chunk-sizes", "256").exit_code == 0  # LMCache sizes the attention


# --- the time model, limits and the CI guard --------------------------------------------------------------------


def test_time_model_uses_the_tiers_threads(run_json):
    fs = run_json(SEED, "--tp", "4", "--engine", "vllm", "-b", "nfs", "--chunk-sizes", "16,256")
    terms = fs["rows"][0]["terms"]
    assert (terms["concurrency"], terms["objects_per_writer"]) == (16, 6_250)
    assert terms["waves"] == -(-6_250 // 16)
    assert fs["rows"][0]["max_concurrent_prompts"] is None  # no blocking timeout in vLLM
    assert any("16 I/O threads" in note for note in fs["backends"][0]["notes"])
    obj = run_json(SEED, "--tp", "4", "--engine", "vllm", "--tier", "obj", "-b", "s3", "--chunk-sizes", "256")
    assert obj["rows"][0]["terms"]["concurrency"] == 4
    assert obj["warnings"] == [] or not any("--tier" in w for w in obj["warnings"])


def test_lmcache_limits_do_not_apply_to_vllm(run, run_json):
    data = run_json(SEED, "--tp", "4", "--engine", "vllm", "-b", "s3", "--tier", "obj", "--concurrent-prompts", "200")
    assert all("blocking_timeout" not in row["risks"] for row in data["rows"])
    refused = run(SEED, "--engine", "vllm", "--blocking-timeout", "1ms")
    assert refused.exit_code == 2
    assert "--blocking-timeout applies to --engine lmcache, not vllm" in refused.stderr


def test_check_flags_the_cpu_tier_slots(run):
    result = run("check", SEED, "--tp", "4", "--engine", "vllm", "--chunk-size", "16", "--kv-offloading-size", "10", "-f", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    slots = 10 * 2**30 // 2_359_296
    assert data["violations"] == [
        {
            "limit": "cpu_bytes_to_use",
            "value": 6_250,
            "threshold": slots,
            "unit": "objects",
            "over_by": 6_250 - slots,
            "detail": f"6,250 objects > the {slots:,} slots of cpu_bytes_to_use 10 GiB (2.25 MiB each)",
        }
    ]
    assert (data["offload_engine"], data["engine_options"]["tier"], data["row"]["objects"]) == ("vllm", "fs", 6_250)
    ok = run("check", SEED, "--tp", "4", "--engine", "vllm", "--chunk-size", "256", "--kv-offloading-size", "20")
    assert ok.exit_code == 0, ok.stderr


def test_check_defaults_to_the_engines_chunk(run_json):
    assert run_json("capacity", SEED, "--tp", "4", "--engine", "vllm", "--storage", "1TiB")["rows"][0]["chunk_tokens"] == 16
    assert run_json("capacity", SEED, "--tp", "4", "--engine", "llmd-fs", "--prompts", "3")["rows"][0]["objects"] == 1_560


# --- options of another engine, and bad values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--engine", "vllm", "--connector", "fs"), "--connector applies to --engine lmcache, not vllm"),
        (("--engine", "vllm", "--layerwise"), "--layerwise applies to --engine lmcache, not vllm"),
        (("--tier", "obj"), "--tier applies to --engine vllm or llmd-fs, not lmcache"),
        (("--gpu-block-size", "32"), "--gpu-block-size applies to --engine vllm or llmd-fs or aibrix, not lmcache"),
        (("--engine", "vllm", "--sglang-backend", "file"), "--sglang-backend applies to --engine sglang, not vllm"),
        (("--engine", "sglang", "--kvbm-tier", "disk"), "--kvbm-tier applies to --engine kvbm, not sglang"),
        (("--engine", "kvbm", "--tier", "fs"), "--tier applies to --engine vllm or llmd-fs, not kvbm"),
        (("--engine", "sglang", "--sglang-backend", "aibrix"), "--sglang-backend"),
        (("--engine", "sglang", "--sglang-backend", "file\udcff"), "--sglang-backend"),
        (("--engine", "kvbm", "--kvbm-engine", "sglang"), "--kvbm-engine"),
        (("--engine", "kvbm", "--kvbm-tier", "g3"), "--kvbm-tier"),
        (("--engine", "llmd-fs", "--tier", "obj"), "unknown --tier 'obj': use one of fs"),
        (("--engine", "vllm", "--gpu-block-size", "0"), "--gpu-block-size must be 1 to 65,536"),
        (("--engine", "vllm", "--gpu-block-size", "99999999999999999999"), "--gpu-block-size"),
        (("--engine", "vllm", "--kv-offloading-size", "nan"), "--kv-offloading-size"),
        (("--engine", "vllm", "--kv-offloading-size", "inf"), "--kv-offloading-size"),
        (("--engine", "vllm", "--kv-offloading-size", "-1"), "--kv-offloading-size"),
        (("--engine", "vllm", "--kv-offloading-size", "1e400"), "--kv-offloading-size"),
        (("--kv-offloading-size", "4"), "--kv-offloading-size applies to --engine vllm, not lmcache"),
        (("--engine", "nope"), "--engine"),
        (("--engine", "vllm", "--tier", "disk"), "--tier"),
        (("--engine", "vllm", "--tier", "fs\udcff"), "--tier"),
        (("--engine", "vllm", "--gpu-block-size", "abc"), "--gpu-block-size"),
        (("--engine", "vllm", "--gpu-block-size", "1e400"), "--gpu-block-size"),
        (("--engine", "vllm", "--kv-offloading-size", "4\udcff"), "--kv-offloading-size"),
        (("--engine", "vllm\udcff"), "--engine"),
    ],
)
def test_bad_engine_options_are_one_line(run, args, expected):
    line = one_line(run(SEED, *args))
    assert expected in line, line


def test_check_refuses_an_lmcache_config_under_vllm(run, tmp_path):
    config = tmp_path / "lmcache.yaml"
    config.write_text("chunk_size: 256\n")
    line = one_line(run("check", SEED, "--engine", "vllm", "--lmcache-config", str(config)))
    assert "--lmcache-config is LMCache's config file: engine vllm has no config file kvsize reads" in line


# --- the default engine is unchanged; the JSON only gains keys ----------------------------------------------------


def test_default_engine_json_gains_keys_only(run_json):
    data = run_json(SEED, "--tp", "4")
    assert data["offload_engine"] == "lmcache"
    assert data["engine_options"] == {
        "connector": "s3",
        "layerwise": False,
        "save_unfull_chunk": False,
        "stores_partial_chunks": False,
        "io_threads": None,  # only redis fixes its loads in flight (its connector's executor)
    }
    assert all(row["groups"] is None for row in data["rows"])
    assert data["connector"] == "s3" and data["writers"] == 4


def test_library_and_cli_agree(run_json):
    result = kvsize.size(SEED, tp=4, engine="vllm", chunk_sizes=[16, 256])
    assert result.model_dump(mode="json") == run_json(SEED, "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16,256")


# --- --emit vllm, parsed as vLLM 0.33 reads it --------------------------------------------------------------------


def _check_types(values: dict[str, Any], types: dict[str, str], where: str) -> None:
    kinds = {"str": str, "int": int, "dict": dict, "list": list, "bool": bool, "float": (int, float)}
    for key, value in values.items():
        assert key in types, f"{where}: vLLM 0.33 does not read {key!r}"
        assert isinstance(value, kinds[types[key]]) and not (types[key] == "int" and isinstance(value, bool)), (where, key)


@pytest.mark.parametrize("tier", ["fs", "obj", "cpu"])
def test_emit_vllm_parses_as_vllm_reads_it(run, tier):
    keys = json.loads((DATA / "vllm-0.33.0-offloading-keys.json").read_text())
    result = run(SEED, "--tp", "4", "--engine", "vllm", "--tier", tier, "--chunk-size", "256", "--emit", "vllm")
    assert result.exit_code == 0, result.stderr
    command = [line for line in result.stdout.splitlines() if line.startswith("vllm serve")]
    assert len(command) == 1
    argv = shlex.split(command[0])
    flags = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert argv[:3] == ["vllm", "serve", SEED]
    assert flags["--block-size"] == "16" and flags["--tensor-parallel-size"] == "4"
    gib = float(flags["--kv-offloading-size"])
    assert gib * 2**30 >= 390 * 37_748_736 * 2  # one prompt x the default margin of 2
    config = json.loads(flags["--kv-transfer-config"])
    _check_types(config, keys["kv_transfer_config"], "kv_transfer_config")
    assert config["kv_connector"] in keys["connectors"] and config["kv_role"] in keys["kv_roles"]
    extra = config["kv_connector_extra_config"]
    _check_types(extra, keys["extra_config"], "kv_connector_extra_config")
    assert extra["block_size"] == 256 and extra["block_size"] % 16 == 0
    assert "blocks_per_chunk" not in extra  # mutually exclusive with block_size
    if tier == "cpu":
        assert "secondary_tiers" not in extra and "spec_name" not in extra  # CPUOffloadingSpec is the default
        return
    assert extra["spec_name"] in keys["spec_names"]
    (entry,) = extra["secondary_tiers"]
    spec = keys["tiers"][entry["type"]]
    assert entry["type"] == tier and set(spec["required"]) <= set(entry)
    _check_types(entry, {**spec["required"], **spec["optional"]}, f"tier {tier}")
    if tier == "obj":
        store = keys["obj_store_config"]
        assert set(store["required"]) <= set(entry["store_config"])
        _check_types(entry["store_config"], {**store["required"], **store["optional"]}, "store_config")
    assert "<" in command[0]  # the placeholders kvsize cannot fill


def test_emit_refuses_the_other_engines_settings(run):
    assert "give --engine lmcache or --emit vllm" in one_line(
        run(SEED, "--engine", "vllm", "--chunk-size", "256", "--emit", "lmcache")
    )
    assert "give --engine vllm" in one_line(run(SEED, "--chunk-size", "256", "--emit", "vllm"))


# --- kvsize engines -------------------------------------------------------------------------------------------


def test_engines_lists_each_engine_and_sizes_the_seed(run_json):
    data = run_json("engines", SEED, "--tp", "4")
    assert [e["name"] for e in data["engines"]] == ["lmcache", "vllm", "llmd-fs", "sglang", "kvbm", "aibrix"]
    defaults = {e["name"]: e["default_chunk"] for e in data["engines"]}
    assert defaults == {"lmcache": 256, "vllm": 16, "llmd-fs": 256, "sglang": 1, "kvbm": 16, "aibrix": 16}
    table = {(r["engine"], r["chunk_tokens"]): (r["objects"], r["object_bytes"]) for r in data["rows"]}
    assert table == {
        ("lmcache", 256): (1_560, 9_437_184),
        ("vllm", 16): (6_250, 2_359_296),
        ("vllm", 256): (390, 37_748_736),
        ("llmd-fs", 256): (1_560, 9_437_184),
        ("sglang", 1): (400_000, 36_864),
        ("sglang", 256): (1_560, 9_437_184),
        ("kvbm", 16): (25_000, 589_824),
        ("kvbm", 256): (1_560, 9_437_184),
        ("aibrix", 16): (25_000, 589_824),
        ("aibrix", 256): (1_560, 9_437_184),
    }


def test_capacity_shares_only_the_groups_that_store_every_chunk(run_json):
    """gemma-3-27b-it, 10 prompts sharing 50,000 tokens at chunk 16: the full group's 3,125 prefix objects are stored
    once; the sliding groups' 6 x 64 objects sit at each prompt's end."""
    data = run_json(
        "capacity", "google/gemma-3-27b-it", "--tp", "4", "--engine", "vllm", "--prompts", "10", "--shared-prefix", "50000"
    )
    capacity = data["capacity"]
    assert capacity["shared"]["objects"] == 50_000 // 16 == 3_125
    assert capacity["unique_per_prompt"]["objects"] == 6_634 - 3_125
    assert capacity["needed"]["objects"] == 3_125 + 10 * (6_634 - 3_125)
    assert capacity["needed"]["stored_bytes"] == capacity["needed"]["objects"] * 1_310_720
    assert any("KV-cache groups (7)" in line for line in data["assumptions"])


def test_vllm_under_an_uneven_pp_times_its_one_writer(run_json):
    """Llama-3.2-3B at TP 2 x PP 3 (stages of 9, 10 and 9 layers): every object holds 6 worker slices sized as the
    first stage's (9 layers x 2,048 B per token), written and read by the first stage's scheduler, the one writer,
    which loads the whole prompt (the busiest stage of 10 layers writes nothing of its own)."""
    data = run_json("meta-llama/Llama-3.2-3B", "--tp", "2", "--pp", "3", "--engine", "vllm", "--chunk-sizes", "256",
                    "--backend", "s3", "--tier", "obj")  # fmt: skip
    assert [stage["layers"] for stage in data["stages"]] == [9, 10, 9]
    assert [stage["writers"] for stage in data["stages"]] == [1, 0, 0]
    assert data["bytes_per_token_per_rank"] == 9 * 2_048
    (row,) = data["rows"]
    assert (row["objects"], row["object_bytes"]) == (390, 6 * 9 * 2_048 * 256)
    assert row["per_writer_bytes"] == row["total_bytes"] == 390 * 6 * 9 * 2_048 * 256


def test_llmd_capacity_shares_each_workers_own_file(run_json):
    """llm-d under an uneven PP: Llama-3.2-3B at TP 2 x PP 3 (stages of 9, 10 and 9 layers, 2,048 B per layer and
    token on a rank), chunk 256. A shared chunk stores each worker's own file, 256 x 2,048 x its stage's layers: 2 x
    (9 + 10 + 9) files' worth, not 6 files of the largest stage."""
    data = run_json("capacity", "meta-llama/Llama-3.2-3B", "--tp", "2", "--pp", "3", "--engine", "llmd-fs",
                    "--chunk-size", "256", "--prompts", "2", "--shared-prefix", "50000")  # fmt: skip
    capacity = data["capacity"]
    per_chunk = 2 * 256 * 2_048 * (9 + 10 + 9)
    assert capacity["per_prompt"]["stored_bytes"] == 390 * per_chunk
    assert capacity["shared"]["stored_bytes"] == 195 * per_chunk  # 50,000 // 256 shared chunks
    assert capacity["unique_per_prompt"]["stored_bytes"] == (390 - 195) * per_chunk
    assert capacity["needed"]["stored_bytes"] == (195 + 2 * 195) * per_chunk
    assert capacity["shared"]["stored_bytes_per_writer"] == 195 * 256 * 2_048 * 10


def test_explain_shows_vllms_own_formula(run):
    result = run("google/gemma-3-27b-it", "--tp", "4", "--engine", "vllm", "--chunk-sizes", "16", "--explain")
    assert result.exit_code == 0, result.stderr
    for text in (
        "object = round_up(4 x 327,680 x 1, 4096) = round_up(1,310,720) = 1,310,720 B",
        "sliding_attention (8 layers): window 1,024: min(64, (100,000 - 1) // 16) -> 64 objects",
        "full_attention (10 layers): 100,000 // 16 -> 6,250 objects",
        "total 6,634 objects of 1,310,720 B = 8,695,316,480 B",
    ):
        assert text in result.stdout, text
    assert "LMCache kv_shape" not in result.stdout


def test_the_library_call_behind_kvsize_engines(run_json):
    """``kvsize.engines`` is the engines package; the call is ``kvsize.compare_engines`` (no name shadows the other)."""
    report = kvsize.compare_engines(SEED, tp=4)
    assert report.model_dump(mode="json") == run_json("engines", SEED, "--tp", "4")
