"""`kvsize check` (the CI guard), `kvsize capacity` and `--emit lmcache`, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvsize.engines.lmcache_settings import read_settings

SEED = "Qwen/Qwen3-4B-Instruct-2507"
BASE = (SEED, "--tp", "4", "--prompt", "100000")


def check_json(run, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = run("check", *BASE, *args, "--format", "json", env=env)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def test_check_passes_when_every_limit_holds(run):
    code, data = check_json(
        run, "--chunk-size", "2048", "--max-objects", "192", "--max-object-size", "72MiB", "--max-total-bytes", "14495514624"
    )
    assert code == 0 and data["ok"] is True and data["violations"] == []
    assert data["row"]["objects"] == 192
    table = run("check", *BASE, "--chunk-size", "2048")
    assert table.exit_code == 0 and "every limit holds" in table.stdout


@pytest.mark.parametrize(
    ("args", "limit", "value", "threshold", "unit", "detail"),
    [
        (("--max-objects", "191"), "max_objects", 192, 191, "objects", "192 objects per prompt > --max-objects 191"),
        (
            ("--max-object-size", "75497471"),
            "max_object_size",
            75_497_472,
            75_497_471,
            "B",
            "one object of 75,497,472 B > --max-object-size 75497471",
        ),
        (
            ("--max-total-bytes", "14495514623"),
            "max_total_bytes",
            14_495_514_624,
            14_495_514_623,
            "B",
            "14,495,514,624 B per prompt > --max-total-bytes 14495514623",
        ),
        # one writer: 48 chunks x 2,048 tokens x 36,864 B/token = 3,623,878,656 B, one byte past the buffer
        (
            ("--cpu-buffer", "3623878655"),
            "cpu_buffer",
            3_623_878_656,
            3_623_878_655,
            "B",
            "one writer's 3.38 GiB > max_local_cpu_size",
        ),
    ],
)
def test_each_limit_fires_just_past_its_threshold(run, args, limit, value, threshold, unit, detail):
    code, data = check_json(run, "--chunk-size", "2048", *args)
    assert code == 1 and data["ok"] is False
    (violation,) = data["violations"]
    assert (violation["limit"], violation["value"], violation["threshold"]) == (limit, value, threshold)
    assert (violation["unit"], violation["over_by"]) == (unit, 1)
    assert violation["detail"].startswith(detail)
    just_inside = [arg if arg != args[1] else str(int(args[1]) + 1) for arg in args]
    code, data = check_json(run, "--chunk-size", "2048", *just_inside)  # at the threshold itself: no violation
    assert code == 0 and data["ok"] is True


def test_load_seconds_and_engine_risks_with_a_backend(run):
    code, data = check_json(
        run, "--chunk-size", "256", "--backend", "s3", "--concurrent-prompts", "20", "--max-load-seconds", "5s"
    )
    assert code == 1
    limits = {v["limit"]: v for v in data["violations"]}
    assert set(limits) == {"max_load_seconds", "blocking_timeout"}
    assert limits["blocking_timeout"]["threshold"] == 10
    assert limits["max_load_seconds"]["value"] == pytest.approx(20 * 3120 / 5500)
    ok, _ = check_json(run, "--chunk-size", "2048", "--backend", "s3", "--concurrent-prompts", "20", "--max-load-seconds", "7s")
    assert ok == 0


def test_max_load_seconds_needs_a_backend(run):
    result = run("check", *BASE, "--max-load-seconds", "5s")
    assert result.exit_code == 2
    assert "--max-load-seconds needs a storage backend" in result.stderr


def test_failure_table_names_limit_value_threshold_and_excess(run):
    result = run("check", *BASE, "--chunk-size", "256", "--max-objects", "500", env={"COLUMNS": "100"})
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "max_objects" in result.stdout
    assert "1,560" in result.stdout and "500" in result.stdout and "1,060" in result.stdout
    md = run("check", *BASE, "--chunk-size", "256", "--max-objects", "500", "--format", "markdown")
    assert md.exit_code == 1 and "| max_objects | 1,560 | 500 | 1,060 |" in md.stdout


def test_check_reads_the_lmcache_config_and_env_overrides(run, tmp_path: Path):
    config = tmp_path / "lmcache.yaml"
    config.write_text(
        'chunk_size: 256\nremote_url: "redis://cache:6379"\nmax_local_cpu_size: 2.0\n'
        "blocking_timeout_secs: 100\nsave_unfull_chunk: true\n"
    )
    code, data = check_json(run, "--lmcache-config", str(config))
    assert code == 1  # one writer's 3.43 GiB exceeds the 2 GiB CPU buffer
    assert (data["chunk_tokens"], data["connector"]) == (256, "redis")
    assert data["engine"]["max_local_cpu_size_bytes"] == 2 * 2**30
    assert data["engine"]["save_unfull_chunk"] is True
    assert data["row"]["objects"] == 4 * 391
    assert [v["limit"] for v in data["violations"]] == ["cpu_buffer"]
    # LMCACHE_* variables apply over the file, as LMCache applies them (values stripped of quotes)
    env = {"LMCACHE_CHUNK_SIZE": " '2048' ", "LMCACHE_MAX_LOCAL_CPU_SIZE": "5", "LMCACHE_CONFIG_FILE": str(config)}
    code, data = check_json(run, env=env)
    assert code == 0 and data["chunk_tokens"] == 2048
    assert data["lmcache_sources"]["chunk_size"] == "env LMCACHE_CHUNK_SIZE"
    assert data["lmcache_sources"]["remote_url"] == str(config)


def test_flags_win_over_the_lmcache_config(run, tmp_path: Path):
    config = tmp_path / "lmcache.yaml"
    config.write_text("chunk_size: 256\nremote_url: s3://bucket\nuse_layerwise: false\n")
    _code, data = check_json(run, "--lmcache-config", str(config), "--chunk-size", "1024", "--connector", "fs")
    assert (data["chunk_tokens"], data["connector"]) == (1024, "fs")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("chunk_size: lots\n", "LMCache 0.5.6 cannot read chunk_size = 'lots' as a whole number"),
        ("chunk_size: [\n", "is not valid YAML"),
        ("- 1\n", "must be a mapping of settings"),
        ("remote_url: lm://server:65432\n", "remote_url 'lm://server:65432' is not a connector kvsize knows"),
        ("chunk_size: 0\n", "chunk_size = 0 must be a whole number from 1"),
        ("max_local_cpu_size: -1\n", "max_local_cpu_size = -1 must be a finite number more than 0"),
        ("max_local_cpu_size: .inf\n", "max_local_cpu_size = inf must be a finite number"),
        ("blocking_timeout_secs: .nan\n", "LMCache 0.5.6 cannot read blocking_timeout_secs = nan as a whole number"),
        ('chunk_size: "\\xff"\n', "cannot read chunk_size"),
    ],
)
def test_bad_lmcache_config(run, tmp_path: Path, content, message):
    config = tmp_path / "lmcache.yaml"
    config.write_text(content)
    result = run("check", *BASE, "--lmcache-config", str(config))
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_settings_connector_rules(tmp_path: Path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("chunk_size: 512\n")
    assert read_settings(empty, {}).connector == "cpu"  # a deployment with no remote tier serves from CPU
    assert read_settings(None, {}).connector is None
    assert read_settings(None, {"LMCACHE_LOCAL_DISK": "file:///nvme/kv"}).connector == "local-disk"
    assert read_settings(None, {"LMCACHE_GDS_PATH": "/mnt/gds"}).connector == "gds"
    extra = read_settings(None, {"LMCACHE_EXTRA_CONFIG": '{"s3_max_inflight_reqs": 16, "save_chunk_meta": false}'})
    assert extra.s3_max_inflight_reqs == 16 and extra.warnings


def test_emit_then_check_round_trip(run, tmp_path: Path):
    given = ("--emit-bucket", "kv-cache", "--emit-region", "us-east-1")
    emitted = run(*BASE, "--backend", "s3", "--concurrent-prompts", "20", "--emit", "lmcache", *given)
    assert emitted.exit_code == 0, emitted.stderr
    config = tmp_path / "lmcache.yaml"
    config.write_text(emitted.stdout)
    assert "chunk_size: 2048" in emitted.stdout
    assert "blocking_timeout_secs: 13" in emitted.stdout  # ceil(6.28 s x 2)
    assert "max_local_cpu_size: 7" in emitted.stdout  # ceil(3.38 GiB x 2)
    assert "# LMCACHE_CHUNK_SIZE=2048" in emitted.stdout
    assert 'remote_url: "s3://kv-cache.s3.us-east-1.amazonaws.com"' in emitted.stdout
    assert """# LMCACHE_EXTRA_CONFIG='{"s3_region": "us-east-1"}'""" in emitted.stdout  # JSON, as LMCache parses it
    checked = run("check", *BASE, "--backend", "s3", "--concurrent-prompts", "20", "--lmcache-config", str(config))
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    settings = read_settings(config, {})
    assert (settings.chunk_size, settings.connector, settings.blocking_timeout_secs) == (2048, "s3", 13.0)


FILLED = {
    "fs": ("--emit-dir", "/mnt/kv"),
    "redis": ("--emit-host", "kv.example"),
    "local-disk": ("--emit-dir", "/mnt/nvme", "--emit-disk-size", "500GiB"),
    "gds": ("--emit-dir", "/mnt/gds"),
    "weka": ("--emit-dir", "/mnt/weka"),
    "cpu": (),
    "valkey": ("--emit-host", "kv.example"),
    "resp": ("--emit-host", "10.0.0.7"),
    "mooncakestore": ("--emit-host", "mooncake.example"),
    "s3": ("--emit-bucket", "kv-cache", "--emit-region", "eu-west-1"),
}


@pytest.mark.parametrize("connector", sorted(FILLED))
def test_emit_for_each_connector_loads_back_and_check_refuses_it_unfilled(run, tmp_path: Path, connector):
    """Filled from the --emit-* flags, every connector's config passes check; left with its placeholders, check fails
    it (exit 1), naming each setting that still holds one."""
    config = tmp_path / "lmcache.yaml"
    emitted = run(*BASE, "--connector", connector, "--chunk-size", "1024", "--emit", "lmcache", *FILLED[connector])
    assert emitted.exit_code == 0, emitted.stderr
    assert "<" not in emitted.stdout.replace("<placeholders>", "")
    config.write_text(emitted.stdout)
    assert read_settings(config, {}).connector == ("gds" if connector == "weka" else connector)
    checked = run("check", *BASE, "--lmcache-config", str(config))
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    unfilled = run(*BASE, "--connector", connector, "--chunk-size", "1024", "--emit", "lmcache")
    config.write_text(unfilled.stdout)
    code, data = check_json(run, "--lmcache-config", str(config))
    if connector == "cpu":
        assert code == 0 and "<" not in unfilled.stdout
        return
    named = {v["limit"] for v in data["violations"]}
    assert code == 1 and named, data["violations"]
    assert all("placeholder <" in v["detail"] for v in data["violations"])
    holders = {"s3": {"remote_url", "extra_config.s3_region"}, "local-disk": {"local_disk", "max_local_disk_size"}}
    holders |= {"mooncakestore": {"remote_url", "extra_config.local_hostname", "extra_config.metadata_server",
                                  "extra_config.master_server_address"}}  # fmt: skip
    assert named == holders.get(connector, {"gds_path"} if connector in ("gds", "weka") else {"remote_url"})


def test_emit_needs_a_chunk(run):
    result = run(*BASE, "--emit", "lmcache")
    assert result.exit_code == 2
    assert "--emit lmcache needs --chunk-size N, or --backend" in result.stderr


def test_capacity_fit_and_need(run):
    result = run("capacity", *BASE, "--chunk-size", "2048", "--storage", "10TiB", "--prompts", "1000", "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["capacity"]
    assert plan["per_prompt"] == {
        "objects": 192,
        "stored_bytes": 14_495_514_624,
        "objects_per_writer": 48,
        "stored_bytes_per_writer": 3_623_878_656,
    }
    assert plan["prompts_that_fit"] == 10 * 2**40 // 14_495_514_624 == 758
    assert plan["needed"]["stored_bytes"] == 1000 * 14_495_514_624
    assert plan["needed"]["objects_per_writer"] == 48_000


def test_capacity_counts_headers(run):
    plan = json.loads(
        run("capacity", *BASE, "--chunk-size", "256", "--connector", "fs", "--prompts", "2", "--format", "json").stdout
    )["capacity"]
    assert plan["per_prompt"]["stored_bytes"] == 14_722_007_040 + 1_560 * 28
    assert plan["per_prompt"]["stored_bytes_per_writer"] == 390 * 256 * 36_864 + 390 * 28


def test_capacity_with_a_shared_prefix(run):
    plan = json.loads(
        run("capacity", *BASE, "--chunk-size", "2048", "--storage", "10TiB", "--shared-prefix", "20k", "--format", "json").stdout
    )["capacity"]
    chunk_bytes = 4 * 2048 * 36_864
    assert (plan["shared_chunks"], plan["shared"]["stored_bytes"]) == (9, 9 * chunk_bytes)
    assert plan["unique_per_prompt"]["stored_bytes"] == 14_495_514_624 - 9 * chunk_bytes
    assert plan["prompts_that_fit"] == (10 * 2**40 - 9 * chunk_bytes) // (14_495_514_624 - 9 * chunk_bytes) == 933


def test_capacity_markdown_is_a_planning_section(run):
    md = run("capacity", *BASE, "--chunk-size", "2048", "--storage", "10TiB", "--format", "markdown").stdout
    assert md.startswith(f"## KV-cache capacity: {SEED}\n")
    assert "| one prompt | 192 | 13.5 GiB | 48 | 3.38 GiB |" in md
    assert "### Chunk-size sweep" in md and "### Assumptions and sources" in md
    assert "lmcache/v1/storage_backend/connector/s3_connector.py" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "capacity needs --storage SIZE"),
        (("--storage", "lots"), "--storage 'lots' is not a number"),
        (("--prompts", "0"), "--prompts must be 1 to 1,000,000,000,000"),
        (("--prompts", "5", "--shared-prefix", "200k"), "is longer than the 100,000-token prompt"),
        (("--storage", "1TiB", "--prompt", "100", "--chunk-size", "256"), "each prompt stores nothing"),
    ],
)
def test_capacity_bad_input(run, args, message):
    result = run("capacity", SEED, "--tp", "4", *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1
