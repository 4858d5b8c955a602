"""AIBrix KV cache offloading (``--engine aibrix``, aibrix-kvcache 0.8.0): every figure derived by hand in the test from
the wheel's rules (docs/rules.md): one object per block per TP rank of every PP stage, ``2 x B x L_stage x
heads/rank x head x dtype`` bytes, ``TP x PP x floor(N / B)`` objects, the tail never stored; and ``--emit aibrix``
read back by ``sh`` and checked against the variables of the wheel's ``envs.py`` (tests/data)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvsize
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError
from kvsize.quoting import comment_text
from tests.test_emit_quoting import NAMES, PAYLOADS, PROPERTY, has_control, hostile_catalog, local_model, one_line_comments
from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
DATA = Path(__file__).parent / "data"
AIBRIX = json.loads((DATA / "aibrix-kvcache-0.8.0-envs.json").read_text())
VLLM_KEYS = json.loads((DATA / "vllm-0.33.0-offloading-keys.json").read_text())["kv_transfer_config"]
SH = shutil.which("sh")
# Qwen3-4B-Instruct-2507: 36 layers, 8 KV heads of 128, bf16. At TP 4 each rank holds 2 heads:
# 2 (K, V) x 36 x 2 x 128 x 2 B = 36,864 B per token per rank.
PER_RANK_TOKEN = 2 * 36 * 2 * 128 * 2
N = 100_000


def rows(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["chunk_tokens"]: row for row in data["rows"]}


def aibrix(*args: str) -> tuple[str, ...]:
    return (SEED, "--tp", "4", "--engine", "aibrix", *args)


# --- the object rule ---------------------------------------------------------------------------------------------


def test_the_seed_at_aibrixs_defaults(run_json):
    """AIBRIX_KV_CACHE_OL_BLOCK_SIZE unset: the block is vLLM's 16; 4 ranks x floor(100,000 / 16) = 25,000 objects of
    16 x 36,864 = 589,824 B, no tail, no header: 14,745,600,000 B, the model's 147,456 B/token x 100,000."""
    data = run_json(*aibrix())
    assert [row["chunk_tokens"] for row in data["rows"]] == [16, 32, 64, 128, 256, 512, 1024]
    row = rows(data)[16]
    assert row["object_bytes"] == 16 * PER_RANK_TOKEN == 589_824
    assert row["objects"] == 4 * (N // 16) == 25_000
    assert (row["tail_tokens"], row["tail_saved"], row["header_bytes"]) == (0, False, 0)
    assert row["total_bytes"] == row["stored_bytes"] == 25_000 * 589_824 == 147_456 * N
    assert data["writers"] == 4 and data["offload_engine"] == "aibrix" and data["connector"] == "shfs"
    options = data["engine_options"]
    assert (options["confidence"], options["targets_vllm"], options["vllm_block_tokens"]) == ("medium", "0.21.0", 16)
    assert (options["l2_backend"], options["l2_ingestion"], options["io_threads"]) == ("shfs", "all", 1)
    assert any(note.startswith("confidence medium") for note in data["notes"])
    assert any("does not run on vLLM 0.33.0" in warning for warning in data["warnings"])


@pytest.mark.parametrize(
    ("block", "objects", "tail"),
    [(32, 12_500, 0), (64, 6_248, 32), (128, 3_124, 32), (256, 1_560, 160), (512, 780, 160), (1024, 388, 672)],
)
def test_other_blocks_store_whole_blocks_only(run_json, block, objects, tail):
    row = rows(run_json(*aibrix("--chunk-sizes", str(block))))[block]
    assert row["objects"] == 4 * (N // block) == objects
    assert row["tail_tokens"] == N % block == tail
    assert row["object_bytes"] == block * PER_RANK_TOKEN
    assert row["total_bytes"] == objects * block * PER_RANK_TOKEN


def test_a_block_that_is_not_a_power_of_two_is_refused_unless_it_is_vllms(run, run_json):
    line = one_line(run(*aibrix("--chunk-sizes", "16,48")))
    assert "AIBrix refuses block 48" in line and "must be a power of two" in line and "use 32 or 64" in line
    # AIBRIX_KV_CACHE_OL_BLOCK_SIZE unset takes vLLM's block as it is (spec.py asserts only a configured one).
    row = rows(run_json(*aibrix("--gpu-block-size", "48", "--chunk-sizes", "48")))[48]
    assert (row["objects"], row["object_bytes"]) == (4 * (N // 48), 48 * PER_RANK_TOKEN)


def test_pp_stores_each_stages_layers_from_every_rank(run_json):
    """Llama-3.1-8B (32 layers, 8 KV heads of 128) at TP 2 x PP 3: vLLM's get_pp_indices gives 11, 11, 10; each of the
    6 ranks writes its stage's blocks, 4 heads each."""
    data = run_json("meta-llama/Llama-3.1-8B-Instruct", "--tp", "2", "--pp", "3", "--engine", "aibrix", "--chunk-sizes", "16")
    assert [stage["layers"] for stage in data["stages"]] == [11, 11, 10]
    row = rows(data)[16]
    assert row["objects"] == 3 * 2 * (N // 16) == 37_500
    assert row["object_bytes"] == 2 * 16 * 11 * 4 * 128 * 2 == 360_448
    assert row["total_bytes"] == 2 * (N // 16) * 16 * 2 * 4 * 128 * 2 * (11 + 11 + 10)
    given = run_json("meta-llama/Llama-3.1-8B-Instruct", "--tp", "2", "--pp", "3", "--pp-partition", "10,11,11",
                     "--engine", "aibrix", "--chunk-sizes", "16")  # fmt: skip
    assert rows(given)[16]["object_bytes"] == 360_448 and [s["layers"] for s in given["stages"]] == [10, 11, 11]


def test_tp_beyond_the_kv_heads_stores_every_replica(run_json):
    """TP 16 over 8 KV heads: one head a rank (get_num_kv_heads), rank r's heads [r] in its key, so the two copies of
    each head are stored apart: 16 x 6,250 objects of 2 x 16 x 36 x 1 x 128 x 2 B, twice the model's bytes."""
    data = run_json(SEED, "--tp", "16", "--engine", "aibrix", "--chunk-sizes", "16")
    row = rows(data)[16]
    assert (data["writers"], data["kv_heads_per_rank"]) == (16, 1)
    assert row["objects"] == 16 * (N // 16) == 100_000
    assert row["object_bytes"] == 2 * 16 * 36 * 1 * 128 * 2 == 294_912
    assert row["total_bytes"] == 2 * 147_456 * N


def test_mla_is_refused_naming_the_field(run):
    line = one_line(run("deepseek-ai/DeepSeek-V3", "--tp", "8", "--engine", "aibrix"))
    assert "uses MLA (kv_lora_rank = 512)" in line and "NotImplementedError" in line and "--engine lmcache" in line


def test_hybrids_and_layers_without_kv_are_refused_naming_them(run, write_config):
    assert "52 sliding_attention" in one_line(run("google/gemma-3-27b-it", "--engine", "aibrix"))
    assert "28 mamba" in one_line(run("ai21labs/AI21-Jamba-1.5-Mini", "--engine", "aibrix"))
    config = {
        "model_type": "nemotron_h",
        "architectures": ["NemotronHForCausalLM"],
        "num_hidden_layers": 4,
        "hybrid_override_pattern": "*-*-",
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hidden_size": 512,
        "torch_dtype": "bfloat16",
    }
    line = one_line(run(str(write_config(config)), "--engine", "aibrix"))
    assert "2 mlp layers (no attention)" in line and "cache_kernels.cu" in line
    assert "draft layers under --engine aibrix" in one_line(run(*aibrix("--draft-layers", "1")))


def test_a_prompt_under_the_load_threshold_is_recomputed_in_full(run_json):
    """100 tokens: 96 stored at block 16, under max(8 x 16, 16) = 128, so the connector loads nothing."""
    data = run_json(*aibrix("--prompt", "100", "-b", "nvme"))
    assert {row["chunk_tokens"]: row["recompute_tokens"] for row in data["rows"]}[16] == 100
    assert any("100-token prompt is not loaded" in note for note in data["notes"])
    assert rows(run_json(*aibrix("-b", "nvme", "--chunk-sizes", "64")))[64]["recompute_tokens"] == N % 64


# --- settings, flags and bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--l2-backend", "mock"), "--l2-backend"),
        (("--l2-backend", "shfs\udcff"), "--l2-backend"),
        (("--l2-ingestion", "sometimes"), "--l2-ingestion"),
        (("--l2-ingestion", "all\udcff"), "--l2-ingestion"),
        (("--l2-backend", "none", "--l2-ingestion", "hot"), "--l2-ingestion decides when L1 hands blocks"),
        (("--l1-capacity-gb", "abc"), "--l1-capacity-gb"),
        (("--l1-capacity-gb", "nan"), "--l1-capacity-gb must be a finite number"),
        (("--l1-capacity-gb", "inf"), "--l1-capacity-gb"),
        (("--l1-capacity-gb", "1e400"), "--l1-capacity-gb"),
        (("--l1-capacity-gb", "0"), "--l1-capacity-gb must be more than 0"),
        (("--l1-capacity-gb", "-1"), "--l1-capacity-gb"),
        (("--l1-capacity-gb", "99999999"), "--l1-capacity-gb must be at most 65,536"),
        (("--l1-capacity-gb", "4\udcff"), "--l1-capacity-gb"),
        (("--gpu-block-size", "0"), "--gpu-block-size must be 1 to 65,536"),
        (("--gpu-block-size", "99999999999999999999"), "--gpu-block-size"),
        (("--gpu-block-size", "abc"), "--gpu-block-size"),
        (("--gpu-block-size", "16\udcff"), "--gpu-block-size"),
        (("--chunk-sizes", "96"), "AIBrix refuses block 96"),
        (("--tier", "fs"), "--tier applies to --engine vllm or llmd-fs, not aibrix"),
        (("--kvbm-tier", "disk"), "--kvbm-tier applies to --engine kvbm, not aibrix"),
    ],
)
def test_bad_values_are_one_line(run, args, expected):
    assert expected in one_line(run(*aibrix(*args)))


def test_its_flags_belong_to_it(run):
    assert "--l2-backend applies to --engine aibrix, not kvbm" in one_line(run(SEED, "--engine", "kvbm", "--l2-backend", "shfs"))
    assert "--l1-capacity-gb applies to --engine aibrix, not lmcache" in one_line(run(SEED, "--l1-capacity-gb", "4"))


def test_the_settings_object(run_json):
    settings = kvsize.engines.Aibrix(l2_backend="rocksdb", l1_capacity_gb=4.5)
    result = kvsize.size(SEED, serving=kvsize.Serving(tp=4), engine=settings, chunk_sizes=[64])
    assert result.model_dump(mode="json") == run_json(*aibrix("--l2-backend", "rocksdb", "--l1-capacity-gb", "4.5",
                                                               "--chunk-sizes", "64"))  # fmt: skip
    with pytest.raises(KvsizeError, match="`l2_ingestion` decides") as error:
        kvsize.engines.Aibrix(l2_backend="none", l2_ingestion="hot")
    assert error.value.field == "l2_ingestion"


def test_the_json_is_the_library_call(run_json):
    library = kvsize.size(SEED, serving=kvsize.Serving(tp=4), engine="aibrix")
    assert library.model_dump(mode="json") == run_json(*aibrix())


def test_kvsize_engines_lists_it(run_json):
    data = run_json("engines", SEED, "--tp", "4")
    (info,) = [engine for engine in data["engines"] if engine["name"] == "aibrix"]
    assert (info["default_chunk"], info["confidence"]) == (16, "medium")
    assert "AIBRIX_KV_CACHE_OL_BLOCK_SIZE" in info["knob"] and "vLLM 0.21.0" in info["stack"]
    table = {r["chunk_tokens"]: (r["objects"], r["object_bytes"]) for r in data["rows"] if r["engine"] == "aibrix"}
    assert table == {16: (25_000, 589_824), 256: (4 * (N // 256), 256 * PER_RANK_TOKEN)}


def test_the_vllm_it_runs_on(run_json):
    assert not any("AIBrix" in warning for warning in run_json(*aibrix("--vllm-version", "0.21.0"))["warnings"])
    (warning,) = [w for w in run_json(*aibrix("--vllm-version", "0.25.0"))["warnings"] if "AIBrix" in w]
    assert "is not known to run on vLLM 0.25.0" in warning and "0.21.0" in warning
    (warning,) = [w for w in run_json(*aibrix())["warnings"] if "AIBrix" in w]
    assert "does not run on vLLM 0.33.0" in warning and "get_kv_cache_shape" in warning


# --- the time model, check and capacity -----------------------------------------------------------------------------


def test_requests_in_flight_per_backend(run_json):
    shfs = run_json(*aibrix("--chunk-sizes", "16", "-b", "nfs"))
    assert shfs["rows"][0]["terms"]["concurrency"] == 1
    assert shfs["rows"][0]["terms"]["waves"] == N // 16  # one rank's 6,250 files, one at a time
    assert any(note.startswith("1 request in flight per rank: AIBrix's SHFS") for note in shfs["backends"][0]["notes"])
    rocksdb = run_json(*aibrix("--l2-backend", "rocksdb", "--chunk-sizes", "16", "-b", "nvme"))
    assert rocksdb["rows"][0]["terms"]["concurrency"] == 8
    assert rocksdb["rows"][0]["terms"]["waves"] == -(-(N // 16) // 8)
    infinistore = run_json(*aibrix("--l2-backend", "infinistore", "--chunk-sizes", "16", "-b", "redis", "--concurrency", "12"))
    assert infinistore["rows"][0]["terms"]["concurrency"] == 12  # the profile's: no count measured for InfiniStore


def test_limits_l2_get_timeout_and_l1_capacity(run):
    """A 1 MB/s stream: one file at a time, 6,250 x (193 us + 589,824 B / 1e6 B/s) = 3,687.6 s, past AIBrix's
    20 ms x 100,000 tokens = 2,000 s L2 get timeout. L1 only at 2 GiB: one rank's 6,250 x 589,824 B does not fit."""
    slow = run("check", *aibrix("--chunk-size", "16", "-b", "nfs", "--stream-bandwidth", "1MB/s", "-f", "json"))
    assert slow.exit_code == 1
    (timeout,) = [v for v in json.loads(slow.stdout)["violations"] if v["limit"] == "l2_get_timeout"]
    assert timeout["threshold"] == pytest.approx(N * 0.020)
    assert timeout["value"] == pytest.approx((N // 16) * (193e-6 + 589_824 / 1e6))
    small = run("check", *aibrix("--l2-backend", "none", "--l1-capacity-gb", "2", "-f", "json"))
    assert small.exit_code == 1
    (capacity,) = json.loads(small.stdout)["violations"]
    assert (capacity["limit"], capacity["value"], capacity["threshold"]) == ("l1_capacity", 6_250 * 589_824, 2 * 2**30)
    assert run("check", *aibrix("--l2-backend", "none", "-f", "json")).exit_code == 0  # 3.43 GiB < the default 10 GiB


def test_capacity_shares_the_prefix_blocks(run_json):
    data = run_json("capacity", *aibrix("--chunk-size", "64", "--prompts", "2", "--shared-prefix", "6400"))
    # 6,400 / 64 = 100 shared blocks x 4 ranks, stored once; each prompt's other 1,462 x 4 apart.
    assert data["capacity"]["shared"]["objects"] == 100 * 4
    assert data["capacity"]["needed"]["objects"] == 400 + 2 * (6_248 - 400)


def test_a_storage_it_cannot_reach_is_named(run):
    assert "aibrix has no setting that reaches object storage" in run(*aibrix("-b", "s3")).stderr
    assert "did you mean --l2-backend infinistore?" in run(*aibrix("-b", "redis")).stderr
    assert "did you mean --l2-backend none?" in run(*aibrix("-b", "cpu")).stderr


def test_explain_shows_the_chunk_and_threshold(run):
    result = run(*aibrix("--chunk-sizes", "16,256", "--explain"))
    assert result.exit_code == 0, result.stderr
    for text in (
        "stage 0: object = 16 x 36,864 = 589,824 B; objects = 4 writers x 6,250 = 25,000",
        "block 256: chunk = max(512 - 512 mod B, 4 x B) = 1,024 tokens per cache call; a step loads at least max(8 x 16, "
        "B) = 256 tokens",
    ):
        assert text in result.stdout, text


# --- --emit aibrix ------------------------------------------------------------------------------------------------


def run_by_sh(text: str, cwd: Path) -> tuple[list[str], dict[str, str]]:
    """What ``sh`` does with the emitted text pasted as it is: the arguments ``vllm`` receives and the ``AIBRIX_*``
    and ``VLLM_*`` variables it exports."""
    assert SH is not None
    stub = "vllm() { printf '%s\\0' \"$@\"; printf '\\1\\0'; env -0 | grep -z -e ^AIBRIX_ -e ^VLLM_; }\n"
    out = subprocess.run(
        [SH, "-c", stub + text], capture_output=True, cwd=cwd, check=True, timeout=30, env={"PATH": "/usr/bin:/bin"}
    )
    assert out.stderr == b"", out.stderr
    fields = os.fsdecode(out.stdout).split("\0")[:-1]
    split = fields.index("\1")
    return fields[:split], dict(field.split("=", 1) for field in fields[split + 1 :])


def check_value(name: str, value: str) -> None:
    """``value`` reads as AIBrix's ``envs.py`` reads ``name``, or is a placeholder for the user's own value."""
    kind = AIBRIX["variables"][name]  # KeyError: a variable aibrix-kvcache 0.8.0 does not read
    if value.startswith("<") and value.endswith(">"):
        assert kind in ("str", "int") and value[1:-1].strip(), (name, value)
        return
    if kind == "int":
        int(value)
    elif kind == "float":
        float(value)
    elif kind == "bool":
        assert value.strip().lower() in ("0", "1", "true", "false"), (name, value)


@pytest.mark.parametrize("backend", ["shfs", "rocksdb", "infinistore", "hpkv", "priskv", "eic", "none"])
def test_emit_is_aibrixs_own_environment(run, tmp_path, backend):
    result = run(*aibrix("--l2-backend", backend, "--chunk-size", "64", "--emit", "aibrix"))
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    argv, exported = run_by_sh(text, tmp_path)
    assert exported and all(name in AIBRIX["variables"] for name in exported), exported
    for name, value in exported.items():
        check_value(name, value)
    ol = {name.removeprefix("AIBRIX_KV_CACHE_OL_"): value for name, value in exported.items()}
    # B = 64, a power of two; the chunk 512 (a multiple of 64, above 4 x 64); compact layout.
    assert (ol["BLOCK_SIZE"], ol["CHUNK_SIZE"], ol["TOKEN_VALIDATION_ENABLED"], ol["L1_CACHE_ENABLED"]) == ("64", "512", "0", "1")
    # One rank holds 1,562 blocks of 64 x 36,864 B = 3,685,220,352 B a prompt; x 2 margin = 6.86 GiB: 7.
    assert int(ol["L1_CACHE_CAPACITY_GB"]) == -(-1_562 * 64 * PER_RANK_TOKEN * 2 // 2**30) == 7
    if backend == "none":
        assert "L2_CACHE_BACKEND" not in ol and "L2_CACHE_INGESTION_TYPE" not in ol
    else:
        assert ol["L2_CACHE_BACKEND"] == backend.upper() and ol["L2_CACHE_BACKEND"] in AIBRIX["l2_backends"]
        # The default HOT would write a block to L2 only at its first reuse.
        assert ol["L2_CACHE_INGESTION_TYPE"] == "ALL"
        assert any(value.startswith("<") for value in ol.values())
    assert argv[:8] == ["serve", SEED, "--tensor-parallel-size", "4", "--pipeline-parallel-size", "1", "--block-size", "16"]
    assert argv[8] == "--kv-transfer-config" and len(argv) == 10
    config = json.loads(argv[9])
    assert set(config) <= set(VLLM_KEYS) and config["kv_role"] == "kv_both"
    assert {key: config[key] for key in AIBRIX["connector"]} == AIBRIX["connector"]
    words = shlex.split(text, comments=True)
    assert words[words.index("vllm") + 1 :] == argv
    assert "(confidence medium)" in text and "does not run on vLLM 0.33.0" in text and "vllm==0.21.0" in text


def test_emit_warns_where_storage_would_miss_prompts(run):
    hot = run(*aibrix("--l2-ingestion", "hot", "--chunk-size", "16", "--emit", "aibrix"))
    assert hot.exit_code == 0 and "L2_CACHE_INGESTION_TYPE=HOT" in hot.stdout
    assert "only at its first reuse" in hot.stderr and "give --l2-ingestion all" in hot.stderr
    small = run(*aibrix("--chunk-size", "8", "--l1-capacity-gb", "1.5", "--emit", "aibrix"))
    assert "AIBRIX_KV_CACHE_OL_L1_CACHE_CAPACITY_GB=1.5" in small.stdout
    assert "below vLLM's 16-token block" in small.stderr and "--l1-capacity-gb 1.5 is below the 7 GiB" in small.stderr


def test_emit_keeps_vllms_block_and_the_partition(run, tmp_path):
    result = run("meta-llama/Llama-3.1-8B-Instruct", "--tp", "2", "--pp", "3", "--pp-partition", "10,11,11", "--engine",
                 "aibrix", "--gpu-block-size", "48", "--chunk-size", "48", "--emit", "aibrix")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    argv, exported = run_by_sh(result.stdout, tmp_path)
    assert "AIBRIX_KV_CACHE_OL_BLOCK_SIZE" not in exported  # 48 is vLLM's block: AIBrix would assert on it
    assert exported["AIBRIX_KV_CACHE_OL_CHUNK_SIZE"] == str(512 - 512 % 48) == "480"
    assert exported["VLLM_PP_LAYER_PARTITION"] == "10,11,11"
    assert argv[argv.index("--block-size") + 1] == "48"


@pytest.mark.skipif(SH is None, reason="no sh")
@pytest.mark.parametrize("name", PAYLOADS)
def test_emit_reads_back_a_hostile_model_directory_and_catalog_name(run, tmp_path, name):
    directory = local_model(tmp_path, name)
    catalog = hostile_catalog(tmp_path, [name])
    for model, extra in ((str(directory), ()), (name, ("--catalog", str(catalog)))):
        result = run(model, *extra, "--tp", "4", "--engine", "aibrix", "--chunk-size", "16", "--emit", "aibrix")
        if has_control(model):  # the vllm serve line would carry it: refused
            assert "holds the control character" in result.stderr and result.exit_code == 2
            continue
        assert result.exit_code == 0, result.stderr
        one_line_comments(result.stdout)
        argv, exported = run_by_sh(result.stdout, tmp_path)
        assert argv[1] == model and exported["AIBRIX_KV_CACHE_OL_BLOCK_SIZE"] == "16"
        assert not (tmp_path / "MARK").exists()


@pytest.fixture(scope="module")
def sized() -> Any:
    return kvsize.size(SEED, serving=kvsize.Serving(tp=4), engine="aibrix", chunk_sizes=[16])


@pytest.mark.skipif(SH is None, reason="no sh")
@PROPERTY
@given(name=NAMES, local=st.booleans())
def test_emit_round_trips_any_model_name(sized, tmp_path_factory, name: str, local: bool):
    cwd = tmp_path_factory.mktemp("sh")
    local_path = f"/models/{name}" if local else None
    model = local_path or name
    sweep = sized.sweep
    sweep = sweep.model_copy(update={"spec": sweep.spec.model_copy(update={"name": name, "local_path": local_path})})
    engine = engine_for("aibrix")
    if model.startswith("-") or has_control(model):
        with pytest.raises(KvsizeError, match=r"begins with '-'|holds the control character"):
            engine.emit(sweep, sweep.rows[0], None, 2.0)
        return
    text, _ = engine.emit(sweep, sweep.rows[0], None, 2.0)
    one_line_comments(text)
    assert text.splitlines()[0].startswith("# ") and comment_text(name) in text.splitlines()[0]
    argv, exported = run_by_sh(text, cwd)
    assert argv[:2] == ["serve", model] and exported["AIBRIX_KV_CACHE_OL_SHFS_ROOT"] == "<shared mount path>"
    assert not (cwd / "MARK").exists()


def test_emit_refuses_another_engines_result(run):
    assert "give --engine aibrix" in one_line(run(SEED, "--chunk-size", "16", "--emit", "aibrix"))
    other = run(*aibrix("--vllm-version", "0.21.0", "--chunk-size", "16", "--emit", "kvbm"))
    assert "give --engine kvbm or --emit aibrix" in one_line(other)
