"""The contract around the numbers: every bad input is one short line and exit 2, LMCache 0.5.6's own
parsing, and recommendations that hold for every model and say when offloading does not pay."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from kvsize.engines.lmcache_settings import read_settings, remote_url_problem
from tests.conftest import reference_config

SEED = "Qwen/Qwen3-4B-Instruct-2507"
DATA = Path(__file__).parent / "data"


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvsize: error: ") and len(lines[0]) <= 320, result.stderr
    return lines[0]


# --- configs that used to end in a traceback ---------------------------------------------------------------


def test_config_nested_100000_levels(run, tmp_path):
    config = tmp_path / "deep.json"
    config.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    assert "nested too deeply" in one_line(run(str(config)))


@pytest.mark.parametrize("text_config", [{"text_config": {}}, {}, {"model_type": 3}, {"text_config": {"text_config": []}}])
def test_odd_text_config(run, write_config, text_config):
    raw = {"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"], "text_config": text_config}
    assert "config" in one_line(run(str(write_config(raw))))


def test_integer_of_5000_digits(run, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama", "num_hidden_layers": ' + "9" * 5000 + "}")
    assert "number too large" in one_line(run(str(config)))
    config.write_text('{"model_type": "llama", "num_hidden_layers": ' + "9" * 4000 + "}")
    assert "an integer of about 4,0" in one_line(run(str(config)))


def test_a_huge_layer_count_is_refused_at_once(run, write_config):
    """A config class would build per-layer lists of that length (a hang): kvsize refuses it in one line first."""
    raw = reference_config("HuggingFaceTB/SmolLM3-3B") | {"num_hidden_layers": 10**12}
    raw.pop("no_rope_layers")
    assert "num_hidden_layers = 1000000000000 is out of range" in one_line(run(str(write_config(raw))))


def test_unreadable_config_and_folder(run, write_config, monkeypatch):
    folder = write_config(reference_config(SEED))
    real_open, real_is_file = os.open, Path.is_file

    def denied_open(path, *args, **kwargs):
        if Path(path).name == "config.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied_open)
    assert "cannot read config" in one_line(run(str(folder))) and "Permission denied" in run(str(folder)).stderr
    monkeypatch.setattr(os, "open", real_open)

    def denied_stat(self):
        if self.parent == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", denied_stat)
    assert "cannot access" in one_line(run(str(folder)))


def test_a_long_field_is_cut_in_the_error(run, write_config):
    raw = reference_config(SEED)
    raw["num_key_value_heads"] = "x" * 5000
    line = one_line(run(str(write_config(raw))))
    assert len(line) < 300 and "num_key_value_heads" in line and "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in line


# --- non-finite and huge numbers, wherever a number is read ------------------------------------------------

FLAG_CASES = [
    (("--backend", "s3", "--prefill-tps", "nan"), "--prefill-tps must be a finite number"),
    (("--backend", "s3", "--prefill-tps", "inf"), "--prefill-tps must be a finite number"),
    (("--backend", "s3", "--prefill-tps", "1e400"), "--prefill-tps must be a finite number"),
    (("--backend", "s3", "--max-requests-per-s", "inf"), "--max-requests-per-s must be a finite number"),
    (("--backend", "s3", "--mfu", "nan"), "--mfu must be a finite number"),
    (("--chunk-size", "256", "--emit", "lmcache", "--margin", "nan"), "--margin must be a finite number"),
    (("--prompt", "9" * 30), "--prompt '99999"),
    (("--backend", "s3", "--latency", "9" * 40 + "s"), "is too large: it has more than 24 digits"),
    (("--backend", "s3", "--stream-bandwidth", "9" * 40 + "MB/s"), "too large"),
    (("--tp", "9" * 30), "--tp and --pp must be 1 to 100,000"),
    (("--backend", "s3", "--concurrent-prompts", "9" * 12), "--concurrent-prompts must be 1 to 1,000,000"),
    (("--chunk-sizes", ",".join(["256"] * 10_000)), "--chunk-sizes has 10,000 entries; give at most 64"),
    (("--backend", "s3", "--instances", "0"), "--instances must be 1 to 1,000,000"),
    (("--backend", "s3", "--instances", "9" * 30), "--instances must be 1 to 1,000,000"),
    (("--vllm-version", "9" * 400), "is not a version"),
    (("--vllm-version", "\udcff"), "is not a version"),
    (("--backend", "s3", "--gpu", "\udcff" * 400), "unknown --gpu"),
]


@pytest.mark.parametrize(("args", "message"), FLAG_CASES, ids=[m for _, m in FLAG_CASES])
def test_flags_refuse_non_finite_and_huge_values(run, args, message):
    assert message in one_line(run(SEED, "--tp", "4", *args))


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("latency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 4\nmax_requests_per_s: .nan\n", "max_requests_per_s = nan"),
        ("latency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 4\nmax_requests_per_s: .inf\n", "max_requests_per_s = inf"),
        ("latency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: " + "9" * 5000 + "\n", "too large to read"),
    ],
)
def test_profile_yaml_refuses_non_finite(run, tmp_path, profile, message):
    file = tmp_path / "profile.yaml"
    file.write_text(profile)
    assert message in one_line(run(SEED, "--backend", str(file)))


@pytest.mark.parametrize("value", ["1e400", "nan", "9" * 5000, "\udcff\udcfe", ""])
def test_lmcache_environment_numbers_it_cannot_read(run, value):
    line = one_line(run("check", SEED, "--tp", "4", env={"LMCACHE_CHUNK_SIZE": value}))
    assert "LMCache 0.5.6 cannot read chunk_size" in line and "ignores the variable" in line


def test_lmcache_environment_boolean_not_utf8_is_false_with_a_warning(run):
    result = run("check", SEED, "--tp", "4", "--format", "json", env={"LMCACHE_USE_LAYERWISE": "\udcff"})
    assert result.exit_code == 0 and json.loads(result.stdout)["engine"]["use_layerwise"] is False
    assert "is read by LMCache 0.5.6 as false" in result.stderr


NON_UTF8 = b"chunk_size: 256\nname: \xff\xfe\n"


@pytest.mark.parametrize(
    "command",
    [
        ["SEED", "--backend", "FILE"],
        ["SEED", "--catalog", "FILE"],
        ["check", "SEED", "--lmcache-config", "FILE"],
        ["capacity", "SEED", "--lmcache-config", "FILE", "--storage", "1TiB"],
        ["catalog", "add", "SEED", "--catalog", "FILE"],
    ],
)
def test_yaml_files_that_are_not_utf8(run, tmp_path, command):
    file = tmp_path / "file.yaml"
    file.write_bytes(NON_UTF8)
    args = [str(file) if part == "FILE" else SEED if part == "SEED" else part for part in command]
    assert "is not UTF-8 text" in one_line(run(*args))


# --- LMCache 0.5.6's own parsing (lmcache/v1/config_base.py), value form by value form ----------------------
# (source, key, value) -> what LMCache 0.5.6 makes of it. File values go through the key's converter
# (_apply_env_converter_safely); environment values through _parse_quoted_string first.
PARITY = [
    ("file", "use_layerwise", True, True),
    ("file", "use_layerwise", "yes", False),  # _to_bool: only "true" / "1"
    ("file", "use_layerwise", "True", True),
    ("file", "use_layerwise", 1, True),
    ("file", "use_layerwise", "on", False),
    ("env", "use_layerwise", "yes", False),
    ("env", "use_layerwise", "on", False),
    ("env", "use_layerwise", "y", False),
    ("env", "use_layerwise", " TRUE ", True),
    ("env", "use_layerwise", "'1'", True),
    ("env", "save_unfull_chunk", '"true"', True),
    ("file", "chunk_size", 512, 512),
    ("file", "chunk_size", "512", 512),  # int("512")
    ("file", "chunk_size", 512.9, 512),  # int(512.9) truncates
    ("env", "chunk_size", "'1024'", 1024),
    ("env", "chunk_size", " 2048 ", 2048),
    ("file", "blocking_timeout_secs", 30, 30.0),
    ("env", "blocking_timeout_secs", "100", 100.0),
    ("file", "max_local_cpu_size", 7, 7 * 2**30),
    ("env", "max_local_cpu_size", "2.5", int(2.5 * 2**30)),
]

FIELD = {"max_local_cpu_size": "max_local_cpu_size_bytes"}


@pytest.mark.parametrize(("source", "key", "value", "expected"), PARITY)
def test_settings_parse_as_lmcache_056(tmp_path, source, key, value, expected):
    if source == "file":
        file = tmp_path / "lmcache.yaml"
        file.write_text(f"{key}: {json.dumps(value)}\n")
        settings = read_settings(file, {})
    else:
        settings = read_settings(None, {f"LMCACHE_{key.upper()}": value})
    assert getattr(settings, FIELD.get(key, key)) == expected


@pytest.mark.parametrize(
    ("source", "key", "value"),
    [("file", "chunk_size", "256.0"), ("env", "chunk_size", "1e400"), ("env", "chunk_size", ""), ("file", "chunk_size", "lots")],
)
def test_values_lmcache_cannot_read_are_refused(tmp_path, source, key, value):
    from kvsize.errors import KvsizeError

    with pytest.raises(KvsizeError, match=r"LMCache 0\.5\.6 cannot read"):
        if source == "file":
            file = tmp_path / "lmcache.yaml"
            file.write_text(f"{key}: {json.dumps(value)}\n")
            read_settings(file, {})
        else:
            read_settings(None, {f"LMCACHE_{key.upper()}": value})


def test_check_no_longer_fails_a_deployment_on_yes(run, tmp_path):
    """use_layerwise: 'yes' is false to LMCache: no 36x objects, no failure."""
    file = tmp_path / "lmcache.yaml"
    file.write_text("chunk_size: 2048\nuse_layerwise: 'yes'\nremote_url: 'fs://localhost:1/mnt/kv'\n")
    result = run("check", SEED, "--tp", "4", "--max-objects", "400", "--lmcache-config", str(file), "--format", "json")
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["engine"]["use_layerwise"] is False and data["row"]["objects"] == 192
    assert "read by LMCache 0.5.6 as false" in result.stderr


LMCACHE_KEYS = {line for line in (DATA / "lmcache-0.5.6-config-keys.txt").read_text().splitlines() if not line.startswith("#")}


@pytest.mark.parametrize(
    "connector", ["s3", "fs", "redis", "valkey", "resp", "mooncakestore", "local-disk", "gds", "weka", "cpu"]
)
def test_emitted_keys_and_urls_are_lmcache_056s(run, connector):
    emitted = run(SEED, "--tp", "4", "--connector", connector, "--chunk-size", "2048", "--emit", "lmcache")
    assert emitted.exit_code == 0, emitted.stderr
    keys = [line.split(":", 1)[0] for line in emitted.stdout.splitlines() if line and not line.startswith("#")]
    assert keys and set(keys) <= LMCACHE_KEYS, set(keys) - LMCACHE_KEYS
    urls = re.findall(r'^remote_url: "(.+)"$', emitted.stdout, re.M)
    assert all(remote_url_problem(url) is None for url in urls)


def test_check_flags_a_remote_url_lmcache_cannot_parse(run, tmp_path):
    file = tmp_path / "lmcache.yaml"
    file.write_text('chunk_size: 2048\nremote_url: "fs:///mnt/kv"\n')
    result = run("check", SEED, "--tp", "4", "--lmcache-config", str(file), "--format", "json")
    assert result.exit_code == 1
    (violation,) = json.loads(result.stdout)["violations"]
    assert violation["limit"] == "remote_url" and "nothing would be stored" in violation["detail"]
    assert remote_url_problem("fs://localhost:1/mnt/kv") is None
    assert remote_url_problem("valkey://host") is not None and remote_url_problem("s3://bucket") is None


# --- recommendations ---------------------------------------------------------------------------------------

PRESET_FIGURES = {
    "s3-express": ["--stream-bandwidth", "1GB/s"],
    "pnfs-rdma": ["--latency", "100us"],
    "redis": ["--concurrency", "8"],
}


@pytest.mark.parametrize("preset", ["s3", "s3-express", "nfs", "nfs-100g", "pnfs-rdma", "nvme", "redis", "cpu"])
def test_every_catalog_model_gets_a_pick_on_every_preset(run, preset):
    models = json.loads(run("models", "--format", "json").stdout)
    assert len(models) == 32
    for model in models:
        name = model["model"]
        tp = ["--tp", "8"] if model["use_mla"] or model["kv_heads"] % 8 == 0 else []
        result = run(name, *tp, "--backend", preset, *PRESET_FIGURES.get(preset, []), "--format", "json")
        assert result.exit_code == 0, (name, result.stderr)
        data = json.loads(result.stdout)
        assert isinstance(data["recommended_chunk_tokens"], int), (name, preset)
        assert isinstance(data["offload_pays"], bool) and data["full_recompute_seconds"] > 0


def test_seed_offload_pays_on_one_instance_not_on_twenty(run_json):
    one = run_json(SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "20")
    # 20 prompts x 100,000 tokens at ~23,608 tokens/s on one instance: ~85 s against a 6.4 s load
    assert one["full_recompute_seconds"] == pytest.approx(20 * 100_000 / 23_608, rel=0.01)
    assert one["offload_pays"] is True and one["backends"][0]["offload_pays"] is True
    spread = run_json(SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "20", "--instances", "20")
    assert spread["full_recompute_seconds"] == pytest.approx(100_000 / 23_608, rel=0.01)  # ~4.2 s
    assert spread["offload_pays"] is False and spread["recommended_chunk_tokens"] == 2048
    assert spread["time_options"]["instances"] == 20


LLAMA_NFS = ("meta-llama/Llama-3.1-70B-Instruct", "--tp", "8", "--backend", "nfs", "--connector", "fs")
LLAMA_NFS += ("--concurrent-prompts", "8", "--prompt", "128k", "--prefill-tps", "7000")


def test_slower_than_recompute_is_said_refused_and_checked(run, tmp_path):
    table = run(*LLAMA_NFS)
    assert table.exit_code == 0
    assert "OFFLOADING DOES NOT PAY on nfs: recomputing the 8 prompts one instance holds takes 146.29 s" in table.stdout
    emitted = run(*LLAMA_NFS, "--emit", "lmcache")
    assert "recomputing is faster than loading on nfs" in one_line(emitted)
    assert run(*LLAMA_NFS, "--emit", "lmcache", "--chunk-size", "2048").exit_code == 0
    checked = run("check", *LLAMA_NFS, "--chunk-size", "2048", "--format", "json")
    assert checked.exit_code == 1
    limits = {v["limit"]: v for v in json.loads(checked.stdout)["violations"]}
    assert limits["slower_than_recompute"]["threshold"] == pytest.approx(8 * 128_000 / 7000)
    svg = tmp_path / "plot.svg"
    assert run(*LLAMA_NFS, "--plot", str(svg)).exit_code == 0
    assert "recompute every prompt (146.29 s)" in svg.read_text()


def test_equal_cost_picks_the_smaller_chunk(run_json):
    # CPU memory: 1 us per object against seconds of transfer, so every size costs the same within 1%
    data = run_json(SEED, "--tp", "4", "--prompt", "64Ki", "--backend", "cpu", "--connector", "cpu")
    costs = [row["cost_seconds"] for row in data["rows"]]
    assert max(costs) <= min(costs) * 1.01 and costs[0] > min(costs)  # 256 is not the strict minimum
    assert data["recommended_chunk_tokens"] == 256


def test_check_json_counts_are_integers(run):
    result = run("check", SEED, "--tp", "4", "--max-objects", "400", "--format", "json")
    text = result.stdout
    assert '"value": 1560' in text and '"threshold": 400' in text and '"over_by": 1160' in text


# --- output and help ---------------------------------------------------------------------------------------


def test_prompt_longer_than_the_context_is_sized_with_a_warning(run):
    result = run(SEED, "--tp", "4", "--prompt", "300k")
    assert result.exit_code == 0
    assert "longer than the model's context (max_position_embeddings = 262,144)" in result.stderr


@pytest.mark.parametrize(
    ("command", "formats"),
    [
        (["size"], "table|json|csv|markdown"),
        (["check"], "table|json|markdown"),
        (["capacity"], "table|json|markdown"),
        (["inspect"], "table|json"),
        (["probe"], "table|json"),
        (["models"], "table|json|csv|markdown"),
    ],
)
def test_help_lists_only_the_formats_each_command_prints(run, command, formats):
    text = re.sub(r"\s+", " ", run(*command, "--help", env={"COLUMNS": "200"}).stdout)
    assert f"<{formats}>" in text


def test_help_names_the_plot_extra_and_hub_repos(run):
    text = re.sub(r"\s+", " ", run("size", "--help", env={"COLUMNS": "200"}).stdout)
    assert "kvsize[plot]" in text and "Hub repo ORG/NAME" in text


def test_a_json_file_is_named_after_itself(run_json, tmp_path):
    file = tmp_path / "folder" / "my-finetune.json"
    file.parent.mkdir()
    file.write_text(json.dumps(reference_config(SEED)))
    assert run_json(str(file))["model"] == "my-finetune"


# --- agree with vLLM ---------------------------------------------------------------------------------------


def test_architecture_vllm_retired_is_refused_unless_sized_for_that_vllm(run, write_config):
    raw = reference_config(SEED) | {"architectures": ["MiniMaxM1ForCausalLM"]}
    folder = write_config(raw)
    line = one_line(run(str(folder)))
    assert "MiniMaxM1ForCausalLM only until v0.23.0" in line and "--vllm-version 0.23.0" in line
    assert run(str(folder), "--vllm-version", "0.23.0").exit_code == 0
    assert "is not a version" in one_line(run(str(folder), "--vllm-version", "latest"))


def test_head_dim_zero_is_ignored_with_a_warning(run, write_config):
    raw = reference_config(SEED) | {"head_dim": 0}
    result = run(str(write_config(raw)), "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["head_size"] == 2560 // 32
    assert any("head_dim = 0 is ignored, as vLLM ignores it" in w for w in data["warnings"])
