"""Every emitted config works in the engine's own code: read by readers that follow each engine's rules (LMCache
0.5.6's adapters and backends, vLLM 0.33's offloading config, SGLang 0.5.23's HiCache backends, kvbm 1.6.1's leader),
filled from the --emit-* flags it starts and stores, left with its placeholders the engine refuses it loudly, and
`kvsize check --lmcache-config` fails what LMCache would not start or never store with, naming the setting."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

import kvsize
from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
BASE = (SEED, "--tp", "4", "--prompt", "100000")
DATA = Path(__file__).parent / "data"
GIB = 2**30


# --- LMCache 0.5.6, as its adapters and backends read a config ----------------------------------------------------


def lmcache_refuses(config: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    """What LMCache 0.5.6 fails at, for a config it loads: the asserts and raises of the connector's adapter or
    backend (each found in the lmcache 0.5.6 wheel), and the directories it would make (``os.makedirs``, run here on
    a path under a scratch root when it is not the placeholder form that cannot be made)."""
    environ = environ or {}
    extra = config.get("extra_config") or {}
    url = str(config.get("remote_url") or "")
    found = []
    if url.startswith("s3://"):  # s3_adapter.py: assert s3_region; s3_connector.py: the rest is the Host header
        host = url.removeprefix("s3://")
        if extra.get("s3_region") is None:
            found.append("s3_region is required")
        if "." not in host or "/" in host:
            found.append("not a bucket host")
        if bool(extra.get("save_chunk_meta", False)):
            found.append("save_chunk_meta must be False for S3")
    if url.startswith(("fs://", "resp://", "valkey://")):  # parse_remote_url: assert host, assert port
        parsed = urlparse(url)
        if parsed.hostname is None or parsed.port is None:
            found.append("missing host or port")
    if url.startswith(("resp://", "valkey://")) and config.get("save_unfull_chunk"):
        found.append("save_unfull_chunk must be False")
    if url.startswith("mooncakestore://") and not environ.get("MOONCAKE_CONFIG_PATH"):
        if not extra:
            found.append("The extra config is not set.")
        found += [f"{key} missing" for key in ("local_hostname", "metadata_server", "master_server_address") if key not in extra]
    if "gds_path" in config:  # gds_backend.py: assert gds_buffer_size; get_fstype needs an absolute path
        if config.get("gds_buffer_size") is None:
            found.append("assert config.gds_buffer_size is not None")
        if not str(config["gds_path"]).startswith("/"):
            found.append("Unable to detect fstype")
    if "local_disk" in config:  # CreateStorageBackends: max_local_disk_size > 0 (float() of it)
        try:
            if not float(config.get("max_local_disk_size", 0.0)) > 0:
                found.append("no disk tier")
        except ValueError:
            found.append("could not convert string to float")
    return found


def makedirs_fails(path: str, root: Path) -> bool:
    """Whether ``os.makedirs`` of ``path`` fails (a path under /dev/null cannot be made by anyone); any other path is
    made under ``root`` so the test never writes outside it."""
    target = path if path.startswith("/dev/null/") else str(root / path.lstrip("/"))
    try:
        os.makedirs(target, exist_ok=True)
    except NotADirectoryError:
        return True
    return False


def lmcache_emit(run, connector: str, *flags: str, chunk: str = "1024") -> dict[str, Any]:
    result = run(*BASE, "--connector", connector, "--chunk-size", chunk, "--emit", "lmcache", *flags)
    assert result.exit_code == 0, result.stderr
    settings: dict[str, Any] = yaml.safe_load(result.stdout)
    return settings


FILLED = {
    "s3": ("--emit-bucket", "kv-cache", "--emit-region", "us-east-1"),
    "fs": ("--emit-dir", "/mnt/kv"),
    "redis": ("--emit-host", "kv.example"),
    "valkey": ("--emit-host", "kv.example"),
    "resp": ("--emit-host", "kv.example"),
    "mooncakestore": ("--emit-host", "mooncake.example"),
    "local-disk": ("--emit-dir", "/mnt/nvme", "--emit-disk-size", "500GiB"),
    "gds": ("--emit-dir", "/mnt/gds"),
    "weka": ("--emit-dir", "/mnt/weka"),
    "cpu": (),
}


@pytest.mark.parametrize("connector", sorted(FILLED))
def test_every_lmcache_connector_config_starts_and_refuses_its_placeholders(run, tmp_path: Path, connector: str):
    filled = lmcache_emit(run, connector, *FILLED[connector])
    assert lmcache_refuses(filled) == [], filled
    assert "<" not in json.dumps(filled)
    unfilled = lmcache_emit(run, connector)
    directory = {"fs": lambda s: urlparse(s["remote_url"]).path, "local-disk": lambda s: s["local_disk"]}.get(connector)
    if directory:  # a directory LMCache would make: the placeholder form cannot be made, the filled one can
        assert makedirs_fails(directory(unfilled), tmp_path)
        assert not makedirs_fails(directory(filled), tmp_path)
    if connector in ("gds", "weka", "local-disk"):  # loud at start: fstype, float()
        assert lmcache_refuses(unfilled)
    assert ("<" in json.dumps(unfilled)) == (connector != "cpu")


def test_item_1_s3_names_its_region_and_a_bucket_host(run):
    settings = lmcache_emit(run, "s3", chunk="2048")
    assert settings["remote_url"] == "s3://<bucket>.s3.<region>.amazonaws.com"
    assert settings["extra_config"] == {"s3_region": "<region>"}  # LMCache's S3 adapter asserts it
    filled = lmcache_emit(run, "s3", *FILLED["s3"], chunk="2048")
    assert (
        filled["remote_url"] == "s3://kv-cache.s3.us-east-1.amazonaws.com" and filled["extra_config"]["s3_region"] == "us-east-1"
    )
    result = run(*BASE, "--chunk-size", "2048", "--emit", "lmcache")
    assert "starts with the s3 placeholders left unfilled and then stores nothing" in result.stderr


@pytest.mark.parametrize("connector", ["gds", "weka"])
def test_item_2_gds_and_weka_size_their_gpu_buffer(run, connector: str):
    settings = lmcache_emit(run, connector, "--emit-dir", "/mnt/gds", chunk="2048")
    # One writer stores 48 chunks of 2,048 x 36,864 B = 75,497,472 B (a multiple of 4,096) per prompt; x 2 margin:
    # 7,247,757,312 B = 6,912 MiB, which GdsBackend.initialize_allocator asserts is set.
    assert settings["gds_buffer_size"] == 6_912 and settings["gds_path"] == "/mnt/gds"
    assert "weka_path" not in settings  # not an LMCache 0.5.6 key


def test_item_3_mooncakestore_gets_its_extra_config(run):
    settings = lmcache_emit(run, "mooncakestore", "--emit-host", "mc.example", chunk="2048")
    extra = settings["extra_config"]
    assert extra["master_server_address"] == "mc.example:50051"
    assert extra["metadata_server"] == "http://mc.example:8080/metadata" and extra["local_hostname"] == "mc.example"
    assert extra["protocol"] == "tcp"
    # global_segment_size: one writer's 48 x 75,497,472 B x 2 = 7,247,757,312 B, above LMCache's 3,355,443,200.
    assert extra["global_segment_size"] == 7_247_757_312


def kvbm_exports(text: str) -> dict[str, str]:
    return dict(shlex.split(line)[1].split("=", 1) for line in text.splitlines() if line.startswith("export "))


def test_item_4_kvbm_object_tier_is_refused_and_each_variable_names_its_version(run):
    result = run(*BASE, "--engine", "kvbm", "--kvbm-tier", "object", "--chunk-size", "16", "--emit", "kvbm")
    assert result.exit_code == 2 and result.stdout == ""
    assert (
        "in no released kvbm: kvbm 1.6.1 (and every wheel since 0.7.0) reads no DYN_KVBM_OBJECT_*"
        in result.stderr.splitlines()[-1]
    )
    sized = run(*BASE, "--engine", "kvbm", "--kvbm-tier", "object", "--chunk-size", "16")
    assert sized.exit_code == 0 and "object tier (G4) is in no released kvbm" in sized.stderr
    disk = run(*BASE, "--engine", "kvbm", "--chunk-size", "16", "--emit", "kvbm").stdout
    lines = disk.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("export "):
            assert lines[index - 1].startswith("# kvbm >= 0.7.0 ("), line
    assert not any(name.startswith("DYN_KVBM_OBJECT") for name in kvbm_exports(disk))


def test_item_5_kvbm_gb_is_the_whole_instance(run):
    args = ("--engine", "kvbm", "--chunk-size", "16", "--emit", "kvbm", "--backend", "nvme", "--concurrent-prompts", "2")
    text = run(*BASE, *args).stdout
    exported = kvbm_exports(text)
    # kvbm 1.6.1's leader: blocks = floor(GB x 1e9 / sum of the 4 workers' block bytes (4 x 589,824 B)). Two prompts
    # of 6,250 blocks x 2 margin need 25,000 blocks: ceil(25,000 x 2,359,296 / 1e9) = ceil(58.98) = 59 GB.
    assert exported["DYN_KVBM_CPU_CACHE_GB"] == "59" and exported["DYN_KVBM_DISK_CACHE_GB"] == "59"
    assert 59 * 10**9 // (4 * 589_824) >= 25_000 > 58 * 10**9 // (4 * 589_824)
    assert "--kv-transfer-config" in text and '"kv_connector":"DynamoConnector"' in text


def vllm_line(text: str) -> dict[str, str]:
    (line,) = [line for line in text.splitlines() if line.startswith("vllm serve")]
    argv = shlex.split(line)
    return dict(zip(argv[3::2], argv[4::2], strict=True))


def test_item_5_kv_offloading_size_given_is_never_replaced(run):
    args = (*BASE, "--engine", "vllm", "--chunk-size", "256", "--emit", "vllm")
    ours = vllm_line(run(*args).stdout)["--kv-offloading-size"]
    assert ours == "28"  # 390 objects of 37,748,736 B x 2 margin = 27.4 GiB
    high = run(*args, "--kv-offloading-size", "64")
    assert vllm_line(high.stdout)["--kv-offloading-size"] == "64" and "kv-offloading-size" not in high.stderr
    low = run(*args, "--kv-offloading-size", "8")
    assert vllm_line(low.stdout)["--kv-offloading-size"] == "8"
    # vLLM's CPU tier holds int(8 GiB) // 37,748,736 B = 227 chunks.
    assert "--kv-offloading-size 8 GiB (yours, emitted as given) is below the 28 GiB kvsize predicts" in low.stderr
    assert "227 chunks" in low.stderr
    tiny = run(*args, "--kv-offloading-size", "0.01")
    assert "holds 0 chunks" in tiny.stderr and "so it stores nothing" in tiny.stderr


def test_item_5_directory_placeholders_fail_loudly_and_the_flag_fills_them(run, tmp_path: Path):
    vllm = json.loads(
        vllm_line(run(*BASE, "--engine", "vllm", "--chunk-size", "256", "--emit", "vllm").stdout)["--kv-transfer-config"]
    )
    root = vllm["kv_connector_extra_config"]["secondary_tiers"][0]["root_dir"]
    # vLLM's FileSystemTierManager makes f"{root_dir}/{model}_{digest}" with os.makedirs.
    assert "<ROOT_DIR: " in root and makedirs_fails(f"{root}/model_0123", tmp_path)
    given = run(*BASE, "--engine", "vllm", "--chunk-size", "256", "--emit", "vllm", "--emit-dir", "/mnt/kv").stdout
    assert json.loads(vllm_line(given)["--kv-transfer-config"])["kv_connector_extra_config"]["secondary_tiers"][0] == {
        "type": "fs",
        "root_dir": "/mnt/kv",
    }
    sglang = run(*BASE, "--engine", "sglang", "--chunk-size", "64", "--emit", "sglang").stdout
    (line,) = [line for line in sglang.splitlines() if line.startswith("export ")]
    assert makedirs_fails(shlex.split(line)[1].split("=", 1)[1], tmp_path)
    disk = kvbm_exports(run(*BASE, "--engine", "kvbm", "--chunk-size", "16", "--emit", "kvbm").stdout)
    assert makedirs_fails(disk["DYN_KVBM_DISK_CACHE_DIR"], tmp_path)


def test_item_5_sglang_hf3fs_names_the_setting_sglang_reads(run, tmp_path: Path):
    known = json.loads((DATA / "sglang-0.5.23-hicache-flags.json").read_text())["backends"]["hf3fs"]
    text = run(*BASE, "--engine", "sglang", "--sglang-backend", "hf3fs", "--chunk-size", "64", "--emit", "sglang",
               "--emit-dir", "/mnt/3fs").stdout  # fmt: skip
    assert "SGLANG_HICACHE_HF3FS_CONFIG_PATH" in text
    import subprocess

    script = text.replace("python -m sglang.launch_server", "true")
    subprocess.run(["sh", "-c", script + '\ncat "$SGLANG_HICACHE_HF3FS_CONFIG_PATH"'], cwd=tmp_path, check=True, timeout=30)
    config = json.loads((tmp_path / "hf3fs_config.json").read_text())
    assert set(known["config_required"]) <= set(config) <= {*known["config_required"], *known["config_optional"]}
    # One rank's pages: 1,562 pages of 64 x 36,864 B, x 2 margin = 7,371,030,528 B.
    assert config["file_size"] == 1_562 * 64 * 36_864 * 2 and config["file_path_prefix"] == "/mnt/3fs/hicache"


def test_sglang_refuses_nixl_and_hf3fs_with_pp(run):
    for backend in ("nixl", "hf3fs"):
        result = run(
            SEED, "--pp", "2", "--engine", "sglang", "--sglang-backend", backend, "--chunk-size", "64", "--emit", "sglang"
        )
        assert result.exit_code == 2 and "without the PP rank" in one_line(result)


def test_llmd_fs_emit_says_why_not(run):
    result = run(*BASE, "--engine", "llmd-fs", "--chunk-size", "256", "--emit", "vllm")
    assert "llm-d's fs connector stops at vLLM 0.22" in one_line(result) and "give --engine vllm" in one_line(result)
    own = run(*BASE, "--engine", "llmd-fs", "--chunk-size", "256", "--emit", "llmd-fs")
    assert result.exit_code == own.exit_code == 2 and "llmd-fs-connector 0.22 is its last release" in one_line(own)


# --- item 6: kvsize check fails what LMCache would not start or never store with ----------------------------------


def check_config(run, tmp_path: Path, config: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    file = tmp_path / "lmcache.yaml"
    file.write_text(config)
    result = run("check", *BASE, "--lmcache-config", str(file), *args, "--format", "json", env=env)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout), result.stderr


def violated(data: dict) -> dict[str, str]:
    return {v["limit"]: v["detail"] for v in data["violations"]}


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ('chunk_size: 2048\nremote_url: "s3://<bucket>"\n', "extra_config.s3_region", "s3_region is required"),
        ('chunk_size: 2048\nremote_url: "s3://kv"\nextra_config: {s3_region: us-east-1}\n', "remote_url", "not a bucket host"),
        ('chunk_size: 2048\nremote_url: "s3://kv.s3.us-east-1.amazonaws.com/"\nextra_config: {s3_region: x}\n', "remote_url",
         "nothing after the host"),
        ('chunk_size: 2048\ngds_path: "/mnt/gds"\n', "gds_buffer_size", "asserts it"),
        ('chunk_size: 2048\ngds_path: "mnt/gds"\ngds_buffer_size: 8000\n', "gds_path", "not absolute"),
        ('chunk_size: 2048\nremote_url: "mooncakestore://h:1/"\n', "extra_config", "The extra config is not set."),
        ('chunk_size: 2048\nremote_url: "mooncakestore://h:1/"\nextra_config: {protocol: tcp}\n',
         "extra_config.master_server_address", "is missing"),
        ('chunk_size: 2048\nlocal_disk: "/mnt/nvme"\n', "max_local_disk_size", "no disk tier"),
        ('chunk_size: 2048\nlocal_disk: "/mnt/nvme"\nmax_local_disk_size: "<GB of disk>"\n', "max_local_disk_size",
         "placeholder <GB of disk>"),
        ('chunk_size: 2048\nremote_url: "resp://h:6379"\nsave_unfull_chunk: true\n', "save_unfull_chunk", "refuse"),
        ('chunk_size: 2048\nremote_url: "redis-sentinel://h:26379"\n', "remote_url", "never awaits its writes"),
        ('chunk_size: 2048\nremote_url: "fs://localhost:1"\n', "remote_url", "working directory"),
        ('chunk_size: 2048\ncache_policy: "random"\n', "cache_policy", "LRU, LFU, FIFO, MRU"),
        ('chunk_size: 2048\nremote_url: "redis://h:6379"\nremote_serde: "json"\n', "remote_serde", "CreateSerde"),
        ('chunk_size: 2048\nremote_url: "valkey://<host>:6379"\n', "remote_url", "placeholder <host>"),
    ],
)  # fmt: skip
def test_item_6_check_fails_a_config_lmcache_cannot_use(run, tmp_path: Path, config: str, key: str, words: str):
    code, data, _ = check_config(run, tmp_path, config)
    assert code == 1 and data["ok"] is False
    assert words in violated(data)[key], data["violations"]


def test_item_6_check_fails_the_s3_4096_rule(run, tmp_path: Path):
    # DeepSeek-V3 in fp8: 61 layers x 576 B = 35,136 B a token per writer; chunk 100 = 3,513,600 B, not a multiple of
    # 4,096 (chunk 128 = 4,497,408 B = 1,098 x 4,096 is), so LMCache's S3 connector uploads none.
    model = ("deepseek-ai/DeepSeek-V3", "--kv-dtype", "fp8")
    s3 = 'remote_url: "s3://kv.s3.us-east-1.amazonaws.com"\nextra_config: {s3_region: us-east-1}\n'
    file = tmp_path / "lmcache.yaml"
    file.write_text("chunk_size: 100\n" + s3)
    result = run("check", *model, "--lmcache-config", str(file), "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert "objects of 3,513,600 B are not a multiple of 4,096 B" in violated(data)["chunk_size"]
    assert data["row"]["objects"] == 0 and data["row"]["stored_bytes"] == 0
    file.write_text("chunk_size: 128\n" + s3)
    assert run("check", *model, "--lmcache-config", str(file)).exit_code == 0
    sized = run(*model, "--chunk-sizes", "100,128", "--format", "json")
    rows = {row["chunk_tokens"]: row["objects"] for row in json.loads(sized.stdout)["rows"]}
    assert rows == {100: 0, 128: 781} and "chunk 100 stores nothing" in sized.stderr
    emitted = run(*model, "--chunk-size", "100", "--emit", "lmcache")
    assert emitted.exit_code == 2 and "use chunk_size 128" in emitted.stderr.splitlines()[-1]


def test_check_warns_as_lmcache_does(run, tmp_path: Path):
    config = (
        'chunk_size: 2048\nremote_url: "s3://kv.s3.us-east-1.amazonaws.com"\nweka_path: "/mnt/weka"\n'
        "extra_config: {s3_region: us-east-1, s3_max_inflight_reqs: 16, s3_prefer_http2: 'false'}\n"
    )
    code, _, stderr = check_config(run, tmp_path, config)
    assert code == 0
    assert "weka_path is not an LMCache 0.5.6 setting" in stderr
    assert "extra_config.s3_max_inflight_reqs is not read by LMCache 0.5.6" in stderr
    assert "s3_prefer_http2 = 'false' is text" in stderr
    mooncake = 'chunk_size: 2048\nremote_url: "mooncakestore://h:1/"\n'
    code, _, stderr = check_config(run, tmp_path, mooncake, env={"MOONCAKE_CONFIG_PATH": "/etc/mooncake.json"})
    assert code == 0 and "reads its settings from that file" in stderr


def test_the_env_form_reads_back_as_the_file(tmp_path: Path):
    from kvsize.engines.lmcache_settings import read_settings

    result = kvsize.size(
        SEED, serving=kvsize.Serving(tp=4), engine=kvsize.engines.LMCache(connector="mooncakestore"), chunk_sizes=[2048]
    )
    text, _ = kvsize.lmcache_config(result, chunk_size=2048, emit_options=kvsize.EmitOptions(host="mc.example"))
    env = {}
    for line in text[text.rindex("# The same as environment variables") :].splitlines()[1:]:
        name, value = shlex.split(line[2:])[0].split("=", 1)
        env[name] = value
    assert json.loads(env["LMCACHE_EXTRA_CONFIG"]) == yaml.safe_load(text)["extra_config"]  # JSON, as LMCache parses it
    file = tmp_path / "lmcache.yaml"
    file.write_text(text)
    assert read_settings(None, env).problems == read_settings(file, {}).problems == ()


# --- vLLM 0.33, as its config code reads the line -----------------------------------------------------------------


@pytest.mark.parametrize("tier", ["cpu", "fs", "obj"])
def test_vllm_reads_the_line_and_holds_the_prompts(run, tier: str):
    keys = json.loads((DATA / "vllm-0.33.0-offloading-keys.json").read_text())
    flags = ("--emit-dir", "/mnt/kv") if tier == "fs" else ("--emit-bucket", "kv-cache", "--emit-region", "us-east-1")
    text = run(*BASE, "--engine", "vllm", "--tier", tier, "--chunk-size", "256", "--emit", "vllm", *flags).stdout
    line = vllm_line(text)
    config = json.loads(line["--kv-transfer-config"])
    assert config["kv_role"] in keys["kv_roles"]  # KVTransferConfig: kv_role is required with kv_connector
    extra = config["kv_connector_extra_config"]
    # _post_init_kv_transfer_config: cpu_bytes_to_use = --kv-offloading-size x 2**30; CPUOffloadingSpec:
    # num_chunks = int(cpu_bytes_to_use) // round_up(4 x 589,824 x 16 blocks, 4,096) = // 37,748,736.
    chunks = int(float(line["--kv-offloading-size"]) * GIB) // 37_748_736
    assert chunks >= 390 * 2 and extra["block_size"] % int(line["--block-size"]) == 0
    if tier == "cpu":
        return
    (entry,) = extra["secondary_tiers"]
    spec = keys["tiers"][tier]
    assert set(spec["required"]) <= set(entry) <= {*spec["required"], *spec["optional"]}
    if tier == "obj":
        store = keys["obj_store_config"]
        assert set(store["required"]) <= set(entry["store_config"]) <= {*store["required"], *store["optional"]}
        assert entry["store_config"] == {
            "bucket": "kv-cache",
            "endpoint_override": "s3.us-east-1.amazonaws.com",
            "scheme": "https",
            "region": "us-east-1",
        }
    assert "<" not in line["--kv-transfer-config"]


# --- the --emit-* flags, validated like every input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--emit-dir", "mnt/kv", "is not absolute"),
        ("--emit-dir", "/", "is the root directory"),
        ("--emit-dir", "/mnt/a,/mnt/b", "split a path list at commas"),
        ("--emit-dir", "/mnt/<x>", "read as a placeholder"),
        ("--emit-dir", "/" + "a" * 5000, "longer than 4,095 bytes"),
        ("--emit-dir", "/mnt/\udcff", "is not valid UTF-8"),
        ("--emit-dir", "/mnt/a\nb", "holds a control character"),
        ("--emit-bucket", "My_Bucket", "is not an S3 bucket name"),
        ("--emit-bucket", "b" * 100, "is not an S3 bucket name"),
        ("--emit-bucket", "\udcff\udcfe", "is not valid UTF-8"),
        ("--emit-region", "US East", "is not a region name"),
        ("--emit-region", "r" * 200, "is not a region name"),
        ("--emit-host", "http://kv", "is not a host name"),
        ("--emit-host", "kv:6379", "is not a host name"),
        ("--emit-host", "h" * 300, "is not a host name"),
        ("--emit-host", "\udcff", "is not valid UTF-8"),
        ("--emit-disk-size", "nan", "is not a number"),
        ("--emit-disk-size", "1e400", "is not a number"),
        ("--emit-disk-size", "9" * 5000, "is not a number"),
        ("--emit-disk-size", "9" * 29, "is too large"),
        ("--emit-disk-size", "5MiB", "from 1 GiB"),
        ("--emit-disk-size", "\udcff", "is not a number"),
    ],
)
def test_emit_flags_refuse_bad_values(run, flag: str, value: str, message: str):
    result = run(*BASE, "--chunk-size", "2048", "--emit", "lmcache", flag, value)
    assert result.exit_code == 2 and result.stdout == ""
    line = one_line(result)
    assert message in line and flag in line and "Traceback" not in result.stderr


def test_emit_flags_need_emit_and_say_when_unused(run):
    alone = run(*BASE, "--chunk-size", "2048", "--emit-dir", "/mnt/kv")
    assert alone.exit_code == 2 and "--emit-dir fills a setting of --emit: give --emit ENGINE too" in one_line(alone)
    extra = run(*BASE, "--chunk-size", "2048", "--emit", "lmcache", "--emit-dir", "/mnt/kv", *FILLED["s3"])
    assert extra.exit_code == 0 and "--emit-dir has no place in LMCache's s3 settings: not used" in extra.stderr
    with pytest.raises(kvsize.KvsizeError, match=r"`emit_options` must be kvsize\.EmitOptions"):
        kvsize.emit_config(kvsize.size(SEED, chunk_sizes=[2048]), emit_options="/mnt/kv")  # type: ignore[arg-type]
    with pytest.raises(kvsize.KvsizeError, match=r"`emit_dir` must be text"):
        kvsize.EmitOptions(dir=7)  # type: ignore[arg-type]


def test_disk_size_is_whole_gib_per_worker(run):
    settings = lmcache_emit(run, "local-disk", "--emit-dir", "/mnt/nvme", "--emit-disk-size", "1.5TiB")
    assert settings["max_local_disk_size"] == 1536 and math.isclose(float(settings["max_local_disk_size"]), 1536)
