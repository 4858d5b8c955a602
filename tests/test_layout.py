"""Parallelism, dtype and LMCache modes (docs/rules.md), through the real entry points."""

from __future__ import annotations

import pytest

import kvsize

SEED = "Qwen/Qwen3-4B-Instruct-2507"  # 32 attention heads, 8 KV heads, 36 layers, D 128, bf16


@pytest.mark.parametrize(
    ("tp", "heads_per_rank", "per_rank", "writers", "object_256"),
    [
        (1, 8, 147_456, 1, 37_748_736),
        (2, 4, 73_728, 2, 18_874_368),
        (4, 2, 36_864, 4, 9_437_184),
        (8, 1, 18_432, 8, 4_718_592),
        (16, 1, 18_432, 16, 4_718_592),  # TP > KV heads: each head on 2 ranks, every copy stored
    ],
)
def test_tensor_parallel_heads_per_rank(run_json, tp, heads_per_rank, per_rank, writers, object_256):
    data = run_json(SEED, "--tp", str(tp), "--chunk-size", "256")
    assert data["kv_heads_per_rank"] == heads_per_rank
    assert data["bytes_per_token_per_rank"] == per_rank
    assert data["writers"] == writers
    row = data["rows"][0]
    assert row["object_bytes"] == object_256
    assert row["objects"] == writers * 390
    assert data["bytes_per_token"] == 147_456  # the model's KV, no replication


def test_replication_stores_every_copy(run_json):
    data = run_json(SEED, "--tp", "16", "--chunk-size", "256")
    # 16 writers x 390 chunks x 256 tokens x 18,432 B = 2x the model's KV for those tokens
    assert data["rows"][0]["total_bytes"] == 16 * 390 * 256 * 18_432 == 2 * 390 * 256 * 147_456
    assert any("replicated on 2 ranks" in note for note in data["notes"])


@pytest.mark.parametrize(
    ("model", "tp", "message"),
    [
        (SEED, "3", "TP 3 does not divide Qwen/Qwen3-4B-Instruct-2507's 32 attention heads"),
        (SEED, "64", "does not divide"),
        ("microsoft/phi-4", "4", "TP 4 neither divides nor is a multiple of microsoft/phi-4's 10 KV heads"),
        ("microsoft/phi-4", "4", "pick a --tp that divides the KV heads"),
    ],
)
def test_invalid_tp_is_rejected_like_vllm(run, model, tp, message):
    result = run(model, "--tp", tp)
    assert result.exit_code == 2
    assert message in result.stderr


def test_tp_multiple_of_kv_heads_is_valid(run_json):
    # phi-4: 40 heads, 10 KV heads; TP 20 divides 40 and is a multiple of 10
    data = run_json("microsoft/phi-4", "--tp", "20")
    assert (data["kv_heads_per_rank"], data["writers"]) == (1, 20)


@pytest.mark.parametrize(
    ("layers", "pp", "expected"),
    [
        (4, 3, [1, 2, 1]),
        (61, 4, [15, 15, 16, 15]),
        (36, 4, [9, 9, 9, 9]),
        (36, 5, [7, 7, 7, 8, 7]),
        (10, 4, [2, 3, 3, 2]),
        (5, 5, [1, 1, 1, 1, 1]),
    ],
)
def test_pp_split_matches_vllm_get_pp_indices(layers, pp, expected):
    assert kvsize.pp_split(layers, pp) == expected


def test_pipeline_parallel_largest_stage_and_real_totals(run_json):
    # 36 layers at PP 5 -> [7, 7, 7, 8, 7]; TP 2 -> 4 heads per rank
    data = run_json(SEED, "--tp", "2", "--pp", "5", "--chunk-size", "2048", "--explain")
    per_layer = 2 * 4 * 128 * 2
    assert [s["layers"] for s in data["stages"]] == [7, 7, 7, 8, 7]
    assert data["bytes_per_token_per_rank"] == 8 * per_layer
    assert data["writers"] == 10
    row = data["rows"][0]
    assert row["object_bytes"] == 2048 * 8 * per_layer
    assert row["objects"] == 10 * 48
    assert row["total_bytes"] == 2 * 48 * 2048 * 36 * per_layer
    assert any(line.startswith("  stage 3: layers 21-28") for line in data["explain"])


def test_pp_partition_override(run_json):
    data = run_json(SEED, "--pp", "2", "--pp-partition", "30,6")
    assert [s["layers"] for s in data["stages"]] == [30, 6]
    assert data["bytes_per_token_per_rank"] == 30 * 2 * 8 * 128 * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pp", "37"), "--pp 37 is more than the model's 36 layers"),
        (("--pp", "2", "--pp-partition", "30,5"), "must give 2 stages"),
    ],
)
def test_invalid_pp(run, args, message):
    result = run(SEED, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_hybrid_pp_counts_attention_layers_per_stage(run_json):
    # Jamba attention layers 4, 12, 20, 28; PP 2 -> layers 0-15 and 16-31: 2 attention layers each
    data = run_json("ai21labs/AI21-Jamba-1.5-Mini", "--pp", "2")
    assert [s["stored_layers"] for s in data["stages"]] == [2, 2]


def test_mla_tp8_has_one_writer(run_json):
    data = run_json("deepseek-ai/DeepSeek-V3", "--tp", "8", "--chunk-size", "256")
    row = data["rows"][0]
    assert data["writers"] == 1
    assert data["bytes_per_token_per_rank"] == 70_272
    assert row["object_bytes"] == 256 * 70_272 == 17_989_632
    assert row["objects"] == 390
    assert any("only TP rank 0 stores" in note for note in data["notes"])


def test_mla_with_pp_fails_closed(run):
    result = run("deepseek-ai/DeepSeek-V3", "--pp", "2")
    assert result.exit_code == 2
    assert "global rank 0 only" in result.stderr


def test_mla_layerwise_every_rank_stores(run_json):
    data = run_json("deepseek-ai/DeepSeek-V3", "--tp", "8", "--layerwise", "--connector", "fs", "--chunk-size", "256")
    assert data["writers"] == 8
    assert data["rows"][0]["objects"] == 8 * 390 * 61
    assert any("no first-rank check" in w for w in data["warnings"])


def test_mtp_adds_draft_layers(run_json):
    data = run_json("deepseek-ai/DeepSeek-V3", "--mtp")
    assert data["draft_layers"] == 1
    assert data["bytes_per_token"] == 62 * 576 * 2
    assert run_json("deepseek-ai/DeepSeek-V3", "--draft-layers", "3")["bytes_per_token"] == 64 * 576 * 2


def test_mtp_without_nextn_layers_is_an_error(run):
    result = run(SEED, "--mtp")
    assert result.exit_code == 2
    assert "no num_nextn_predict_layers" in result.stderr


@pytest.mark.parametrize(
    ("dtype", "dtype_bytes"), [("fp8", 1), ("fp8_e4m3", 1), ("fp8_e5m2", 1), ("float16", 2), ("bfloat16", 2)]
)
def test_kv_dtype(run_json, dtype, dtype_bytes):
    data = run_json(SEED, "--tp", "4", "--kv-dtype", dtype, "--chunk-size", "256")
    assert (data["kv_dtype"], data["dtype_bytes"]) == (dtype, dtype_bytes)
    assert data["bytes_per_token"] == 36 * 2 * 8 * 128 * dtype_bytes
    assert data["rows"][0]["object_bytes"] == 256 * 36 * 2 * 2 * 128 * dtype_bytes


def test_layerwise_multiplies_objects_not_bytes(run_json):
    plain = run_json(SEED, "--tp", "4", "--connector", "fs", "--chunk-size", "256")["rows"][0]
    layered = run_json(SEED, "--tp", "4", "--connector", "fs", "--chunk-size", "256", "--layerwise")["rows"][0]
    assert layered["objects"] == plain["objects"] * 36 == 56_160
    assert layered["object_bytes"] == plain["object_bytes"] // 36 == 262_144
    assert layered["total_bytes"] == plain["total_bytes"]
    assert layered["header_bytes"] == 56_160 * 28


def test_layerwise_with_s3_stores_nothing(run):
    result = run(SEED, "--layerwise")
    assert result.exit_code == 2
    assert "S3 connector only uploads objects of exactly one full chunk" in result.stderr


def test_save_unfull_chunk_stores_the_tail(run_json):
    data = run_json(SEED, "--tp", "4", "--connector", "fs", "--save-unfull-chunk", "--chunk-size", "256")
    row = data["rows"][0]
    assert (row["full_chunks"], row["tail_tokens"], row["tail_saved"]) == (390, 160, True)
    assert row["objects"] == 4 * 391
    assert row["tail_object_bytes"] == 160 * 36_864
    assert row["total_bytes"] == 4 * 100_000 * 36_864
    assert row["header_bytes"] == 4 * 391 * 28


def test_save_unfull_chunk_with_s3_warns_and_drops_the_tail(run, run_json):
    row = run_json(SEED, "--tp", "4", "--save-unfull-chunk", "--chunk-size", "256")["rows"][0]
    assert (row["tail_saved"], row["objects"]) == (False, 1_560)
    assert "never stores a partial chunk" in run(SEED, "--save-unfull-chunk").stderr


def test_prompt_shorter_than_a_chunk_stores_nothing(run, run_json):
    row = run_json(SEED, "--prompt", "200", "--chunk-size", "256")["rows"][0]
    assert (row["objects"], row["total_bytes"], row["reduction_vs_256"]) == (0, 0, None)
    assert "shorter than chunk 256" in run(SEED, "--prompt", "200", "--chunk-size", "256").stderr
    saved = run_json(SEED, "--prompt", "200", "--chunk-size", "256", "--save-unfull-chunk", "--connector", "fs")
    assert saved["rows"][0]["objects"] == 1


@pytest.mark.parametrize(
    ("connector", "header", "requests"),
    [
        ("s3", 0, 1),
        ("fs", 28, 1),
        ("mooncakestore", 28, 1),
        ("redis", 28, 2),
        ("valkey", 0, 1),
        ("resp", 0, 1),
        ("local-disk", 0, 1),
        ("gds", 8192, 2),
        ("weka", 8192, 2),
        ("cpu", 0, 1),
    ],
)
def test_connector_headers(run_json, connector, header, requests):
    row = run_json(SEED, "--tp", "4", "--connector", connector, "--chunk-size", "256")["rows"][0]
    assert row["header_bytes"] == 1_560 * header
    assert row["stored_bytes"] == row["total_bytes"] + 1_560 * header
    assert kvsize.CONNECTORS[connector].requests_per_object == requests


def test_unknown_connector(run):
    result = run(SEED, "--connector", "ftp")
    assert result.exit_code == 2
    assert "unknown --connector 'ftp'" in result.stderr


def test_hybrid_stage_without_attention_layers_stores_nothing(run_json):
    # Jamba at PP 8: 4 layers a stage, attention at 4, 12, 20, 28: stages 0, 2, 4, 6 have none
    data = run_json("ai21labs/AI21-Jamba-1.5-Mini", "--pp", "8", "--chunk-size", "256")
    assert [(s["stored_layers"], s["writers"]) for s in data["stages"]] == [(0, 0), (1, 1)] * 4
    assert data["writers"] == 4
    assert data["rows"][0]["objects"] == 4 * 390
