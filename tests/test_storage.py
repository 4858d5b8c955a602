"""The storage time model, presets, engine-limit risks and the recommendation (issue: storage time model)."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

import kvsize
from kvsize.storage import PRESETS, TimeOptions, plan_storage, resolve_backend
from tests.conftest import reference_config

SEED = "Qwen/Qwen3-4B-Instruct-2507"


def timed(run, *args: str) -> dict:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict = json.loads(result.stdout)
    return data


def rows_by_chunk(data: dict) -> dict[int, dict]:
    return {row["chunk_tokens"]: row for row in data["rows"]}


def test_load_seconds_follow_the_formula_for_explicit_parameters(run):
    args = (
        SEED,
        "--tp",
        "4",
        "--prompt",
        "100000",
        "--chunk-sizes",
        "256,2048",
        "--latency",
        "100ms",
        "--stream-bandwidth",
        "100MB/s",
        "--concurrency",
        "4",
        "--aggregate-bandwidth",
        "1GB/s",
        "--max-requests-per-s",
        "100",
        "--part-size",
        "8MiB",
        "--prefill-tps",
        "10000",
    )
    rows = rows_by_chunk(timed(run, *args))
    # chunk 256: n_w = 390 per writer, s = 9,437,184 B; 3,120 ranged GETs (2 parts per object)
    waves_256 = math.ceil(390 / 4) * (0.1 + 9_437_184 / 100e6)
    bandwidth_256 = 14_722_007_040 / 1e9
    rate_256 = 1_560 * 2 / 100
    assert rows[256]["wire_requests"] == 3_120
    assert rows[256]["load_seconds"] == pytest.approx(max(waves_256, bandwidth_256, rate_256))
    assert rows[256]["load_bound"] == "request rate"
    # chunk 2048: n_w = 48, s = 75,497,472 B = 9 parts
    waves_2048 = math.ceil(48 / 4) * (0.1 + 75_497_472 / 100e6)
    assert rows[2048]["wire_requests"] == 192 * 9
    assert rows[2048]["load_seconds"] == pytest.approx(max(waves_2048, 192 * 75_497_472 / 1e9, 1_728 / 100))
    # concurrent prompts share the aggregate and rate caps, not the per-writer waves
    shared = rows_by_chunk(timed(run, *args, "--concurrent-prompts", "3"))
    assert shared[256]["load_seconds"] == pytest.approx(max(waves_256, 3 * bandwidth_256, 3 * rate_256))


@pytest.mark.parametrize("given", [(), ("--concurrency", "8")])
def test_redis_makes_two_round_trips_per_object_four_in_flight(run, given):
    """LMCache's redis connector loads through its AsyncPQExecutor of 4 workers, whatever the profile says."""
    data = timed(run, SEED, "--tp", "4", "--chunk-size", "256", "--connector", "redis", "--backend", "redis", *given)
    row = rows_by_chunk(data)[256]
    assert row["wire_requests"] == 2 * 1_560
    assert row["terms"]["concurrency"] == 4 and row["terms"]["in_flight"] == 16
    # t_op = 2 x 200 us + 9,437,184 B / 125 MB/s; the 28-byte metadata is a separate key
    waves = math.ceil(390 / 4) * (2 * 200e-6 + 9_437_184 / 125e6)
    assert row["load_seconds"] == pytest.approx(max(waves, (14_722_007_040 + 1_560 * 28) / 125e6))
    assert data["engine_options"]["io_threads"] == 4
    assert any("AsyncPQExecutor of 4 workers" in note for note in data["backends"][0]["notes"])


def test_other_redis_protocol_connectors_still_need_a_concurrency(run):
    result = run(SEED, "--tp", "4", "--connector", "valkey", "--backend", "redis")
    assert result.exit_code == 2
    assert "fixed only for LMCache's redis:// connector" in result.stderr and "--concurrency" in result.stderr


def test_seed_case_on_s3_prefers_larger_chunks(run):
    data = timed(run, SEED, "--tp", "4", "--prompt", "100000", "--backend", "s3")
    rows = rows_by_chunk(data)
    assert rows[256]["load_seconds"] > rows[2048]["load_seconds"]
    assert data["recommended_chunk_tokens"] > 256
    assert data["recommended_chunk_tokens"] == 2048
    assert data["backend"]["name"] == "s3"
    assert "Amazon S3 performance" in data["backend"]["source"]
    assert data["backend"]["figures"]["latency_s"].startswith("100 ms")
    for row in data["rows"]:
        assert {"load_seconds", "wire_requests", "risks"} <= set(row)
    # the core contract is intact
    assert rows[256]["objects"] == 1_560 and rows[2048]["objects"] == 192


def test_concurrent_prompts_show_where_each_chunk_size_times_out(run):
    rows = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3"))
    # request-rate cap: 5,500 GET/s per prefix; 3,120 GETs per prompt at 256, 1,728 at 2,048 and 4,096
    assert [rows[c]["max_concurrent_prompts"] for c in (256, 512, 1024, 2048, 4096)] == [17, 23, 28, 31, 31]
    at_17 = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "17"))
    at_18 = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "18"))
    assert at_17[256]["risks"] == [] and at_18[256]["risks"] == ["blocking_timeout"]
    assert at_18[2048]["risks"] == []


def test_recommendation_moves_to_larger_chunks_as_latency_grows(run):
    base = (
        SEED,
        "--tp",
        "4",
        "--stream-bandwidth",
        "1GB/s",
        "--concurrency",
        "4",
        "--prefill-tps",
        "20000",
        "--blocking-timeout",
        "1000s",
    )
    picks = [timed(run, *base, "--latency", latency)["recommended_chunk_tokens"] for latency in ("1us", "10ms", "1s")]
    assert picks == sorted(picks) and picks[0] < picks[-1]


def test_recommendation_moves_to_smaller_chunks_as_recompute_gets_dearer(run):
    base = (SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "10")
    picks = [timed(run, *base, "--prefill-tps", tps)["recommended_chunk_tokens"] for tps in ("1000000", "1000", "50")]
    assert picks == sorted(picks, reverse=True) and picks[0] > picks[-1]


def test_shared_prefix_adds_its_partial_chunk_to_the_recompute(run):
    rows = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--shared-prefix", "5000", "--prefill-tps", "1000"))
    # dropped tail + the shared prefix's tokens past its last whole chunk
    assert rows[256]["recompute_tokens"] == 160 + 5000 % 256
    assert rows[4096]["recompute_tokens"] == 1_696 + 5000 % 4096
    assert rows[4096]["recompute_seconds"] == pytest.approx((1_696 + 904) / 1000)


def test_blocking_timeout_fires_at_its_threshold(run):
    load = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3"))[256]["load_seconds"]
    below = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--blocking-timeout", f"{load * 0.999}"))
    above = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--blocking-timeout", f"{load * 1.001}"))
    assert "blocking_timeout" in below[256]["risks"]
    assert "blocking_timeout" not in above[256]["risks"]


def test_cpu_buffer_fires_at_its_threshold(run):
    # one writer of TP 4 loads 390 x 256 x 36,864 B = 3,680,501,760 B at chunk 256
    per_writer = 390 * 256 * 36_864
    over = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--cpu-buffer", str(per_writer - 1)))
    fits = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--cpu-buffer", str(per_writer)))
    assert over[256]["per_writer_bytes"] == per_writer
    assert "cpu_buffer" in over[256]["risks"] and "cpu_buffer" not in fits[256]["risks"]
    # the 5 GiB default holds a TP 4 writer, not a TP 1 one (1,560 x ... bytes)
    tp1 = rows_by_chunk(timed(run, SEED, "--backend", "s3"))
    assert "cpu_buffer" in tp1[256]["risks"]


def test_pinned_memory_rule_for_s3(run):
    # object x s3_max_inflight_reqs (64) + max_local_cpu_size x TP
    need = 9_437_184 * 64 + 5 * 2**30 * 4
    rows = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3"))
    assert rows[256]["pinned_bytes_needed"] == need
    assert "pinned_memory" not in rows[256]["risks"]  # reported, not checked, without --pinned-memory
    short = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--pinned-memory", str(need - 1)))
    enough = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--pinned-memory", str(need)))
    assert "pinned_memory" in short[256]["risks"] and "pinned_memory" not in enough[256]["risks"]


def test_max_value_size_on_redis(run):
    # TP 1: 147,456 B/token; chunk 3,640 -> 536,739,840 B (fits 512 MB with 28-byte key aside); 3,648 -> over
    rows = rows_by_chunk(
        timed(
            run,
            SEED,
            "--connector",
            "redis",
            "--backend",
            "redis",
            "--concurrency",
            "8",
            "--chunk-sizes",
            "3640,3648",
            "--cpu-buffer",
            "1TiB",
        )
    )
    assert rows[3640]["object_bytes"] <= 536_870_912 < rows[3648]["object_bytes"]
    assert "max_value_size" not in rows[3640]["risks"] and "max_value_size" in rows[3648]["risks"]


def test_int32_header_at_2_gib(run):
    # fs: 28-byte header with an int32 length; 2 GiB / 147,456 B = 14,563.55 tokens
    rows = rows_by_chunk(
        timed(
            run,
            SEED,
            "--connector",
            "fs",
            "--backend",
            "nvme",
            "--chunk-sizes",
            "14563,14564",
            "--cpu-buffer",
            "1TiB",
            "--prompt",
            "1M",
        )
    )
    assert rows[14563]["object_bytes"] < 2**31 <= rows[14564]["object_bytes"]
    assert "int32_header" not in rows[14563]["risks"] and "int32_header" in rows[14564]["risks"]
    s3 = rows_by_chunk(timed(run, SEED, "--backend", "s3", "--chunk-size", "14564", "--cpu-buffer", "1TiB", "--prompt", "1M"))
    assert "int32_header" not in s3[14564]["risks"]


def test_every_row_at_risk_gives_the_least_bad_flagged(run):
    data = timed(run, SEED, "--tp", "4", "--backend", "s3", "--blocking-timeout", "100ms")
    assert all(row["risks"] for row in data["rows"])
    assert data["recommended_chunk_tokens"] is not None
    assert data["backends"][0]["recommended_at_risk"] is True
    table = run(SEED, "--tp", "4", "--backend", "s3", "--blocking-timeout", "100ms", env={"COLUMNS": "100"}).stdout
    assert "every chunk size is at risk" in table


def test_store_seconds_use_the_put_rate(run):
    row = rows_by_chunk(timed(run, SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "10"))[256]
    assert row["store_seconds"] == pytest.approx(max(math.ceil(390 / 64) * (0.1 + 9_437_184 / 90e6), 10 * 3_120 / 3_500))
    nfs = rows_by_chunk(timed(run, SEED, "--tp", "4", "--connector", "fs", "--backend", "nfs"))[256]
    assert nfs["store_seconds"] is None  # no published write figures


def test_prefill_estimate_is_printed_and_asked_for_when_underivable(run, write_config):
    data = timed(run, SEED, "--tp", "4", "--backend", "s3", "--gpu", "a100", "--mfu", "0.5")
    assert "4 x a100" in data["prefill"] and "50% utilisation" in data["prefill"]
    # A config without intermediate_size gives no parameter count, so kvsize asks
    config = reference_config("meta-llama/Llama-3.1-8B-Instruct")
    config.pop("intermediate_size", None)
    result = run(str(write_config(config)), "--backend", "s3", "--format", "json")
    assert "give --prefill-tps" in result.stderr
    assert json.loads(result.stdout)["recommended_chunk_tokens"] is None
    given = timed(run, "meta-llama/Llama-3.1-8B-Instruct", "--backend", "s3", "--prefill-tps", "8000")
    assert given["recommended_chunk_tokens"] is not None


def test_active_parameter_count_from_published_fields():
    spec = kvsize.resolve_model(SEED)
    # 36 x (2560 x 4096 x 2 + 2560 x 1024 x 2 + 3 x 2560 x 9728) + 2560 x 151936
    assert spec.active_params == 36 * (2560 * 4096 * 2 + 2560 * 1024 * 2 + 3 * 2560 * 9728) + 2560 * 151_936
    moe = kvsize.resolve_model("Qwen/Qwen3-30B-A3B")
    assert moe.active_params == 48 * (2048 * 4096 * 2 + 2048 * 512 * 2 + 8 * 3 * 2048 * 768 + 2048 * 128) + 2048 * 151_936


def test_search_adds_the_best_block_multiple(run):
    data = timed(run, SEED, "--tp", "4", "--backend", "s3", "--concurrent-prompts", "20", "--search")
    chunks = [row["chunk_tokens"] for row in data["rows"]]
    best = data["recommended_chunk_tokens"]
    assert best % 16 == 0 and 256 <= best <= 4096
    assert set(chunks) >= {256, 512, 1024, 2048, 4096, best}
    # the searched pick is at least as good as any candidate
    by = rows_by_chunk(data)
    assert by[best]["cost_seconds"] <= min(by[c]["cost_seconds"] for c in (256, 512, 1024, 2048, 4096) if not by[c]["risks"])


def test_missing_published_figure_is_asked_for(run):
    result = run(SEED, "--backend", "pnfs-rdma")
    assert result.exit_code == 2
    assert "latency is not published for NFS/pNFS over RDMA; give --latency" in result.stderr
    ok = timed(run, SEED, "--backend", "pnfs-rdma", "--latency", "50us")
    assert ok["backend"]["figures"]["latency_s"] == "given on the command line"


def test_every_preset_states_its_figures():
    for name, profile in PRESETS.items():
        assert profile.source, name
        for field in ("latency_s", "stream_bytes_per_s", "concurrency", "aggregate_bytes_per_s"):
            assert field in profile.figures or field in profile.missing, (name, field)
            if getattr(profile, field) is not None:
                assert field in profile.figures, (name, field)


def test_profile_yaml(run, tmp_path: Path):
    profile = tmp_path / "mine.yaml"
    profile.write_text(
        "name: lab-nfs\nsource: kvsize probe on /mnt/kv\nlatency: 250us\nstream_bandwidth: 1.2GB/s\n"
        "aggregate_bandwidth: 10Gbit/s\nconcurrency: 16\n"
    )
    data = timed(run, SEED, "--tp", "4", "--connector", "fs", "--backend", str(profile))
    assert data["backend"]["name"] == "lab-nfs"
    assert data["backend"]["latency_s"] == pytest.approx(250e-6)
    assert data["backend"]["aggregate_bytes_per_s"] == pytest.approx(1.25e9)
    lib = resolve_backend(str(profile), {})
    sweep = kvsize.plan_sweep(kvsize.resolve_model(SEED), kvsize.EngineOptions(tp=4, connector="fs"), 100_000)
    plan = plan_storage(sweep.rows, sweep.layout, lib, TimeOptions())
    assert plan.timings[0].load_seconds == pytest.approx(rows_by_chunk(data)[256]["load_seconds"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("latency: fast\n", "is not a duration"),
        ("latency: 1ms\nspeed: 3\n", "unknown figure 'speed'"),
        ("- 1\n", "must be a mapping"),
        ("latency: [\n", "is not valid YAML"),
        ("concurrency: 2.5\n", "concurrency must be a whole number"),
        ("stream_bandwidth: -5\n", "must be more than 0"),
    ],
)
def test_bad_profile_yaml(run, tmp_path: Path, content, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(content)
    result = run(SEED, "--backend", str(profile))
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


BAD = [
    (("--backend", "tape"), "unknown backend 'tape'"),
    (("--backend", "s3", "--latency", "soon"), "--latency 'soon' is not a duration"),
    (("--backend", "s3", "--stream-bandwidth", "fast"), "--stream-bandwidth 'fast' is not a number"),
    (("--backend", "s3", "--concurrency", "0"), "--concurrency must be 1 to 100,000"),
    (("--backend", "s3", "--concurrent-prompts", "0"), "--concurrent-prompts must be 1 to 1,000,000"),
    (("--backend", "s3", "--mfu", "2"), "--mfu must be at most 1"),
    (("--backend", "s3", "--gpu", "tpu"), "unknown --gpu 'tpu'"),
    (("--backend", "s3", "--prefill-tps", "0"), "--prefill-tps must be at least 1"),
    (("--backend", "s3", "--blocking-timeout", "0"), "--blocking-timeout must be more than 0"),
    (("--backend", "s3", "--cpu-buffer", "lots"), "--cpu-buffer 'lots' is not a number"),
    (("--search",), "--search needs a storage backend"),
    (("--plot", "x.png"), "--plot needs a storage backend"),
    (("--backend", "s3", "--plot", "x.txt"), "give a .png or .svg file name"),
    (("--backend", "redis", "--connector", "valkey"), "concurrency is fixed only for LMCache's redis:// connector"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_time_model_input(run, args, message):
    result = run(SEED, "--tp", "4", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_table_shows_bars_pick_and_sources_at_80_columns(run):
    terminal = {"COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"}
    out = re.sub(r"\x1b\[[0-9;]*m", "", run(SEED, "--tp", "4", "--prompt", "100000", "--backend", "s3", env=terminal).stdout)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "Load on s3, 1 prompt at once, blocking timeout 10 s" in out
    assert "2,048 *" in out and "█" in out
    assert "* recommended, chunk 2,048" in out
    assert "Backend s3, figures from AWS S3 User Guide" in out


def test_markdown_and_csv_carry_the_time_model(run):
    md = run(SEED, "--tp", "4", "--backend", "s3", "--format", "markdown").stdout
    assert "#### Load on s3" in md and "| 2,048 * |" in md
    csv_out = run(SEED, "--tp", "4", "--backend", "s3", "--backend", "nvme", "--format", "csv").stdout
    lines = csv_out.splitlines()
    assert "load_seconds" in lines[0] and len(lines) == 1 + 2 * 5
    assert sum(line.endswith(",True") for line in lines) == 2


def test_explain_shows_the_time_terms(run):
    out = run(SEED, "--tp", "4", "--chunk-size", "256", "--backend", "s3", "--explain", env={"COLUMNS": "250"}).stdout
    assert "chunk 256: n_w = 390; waves 7 x (1 x 0.1 s + 9,437,184 B / 90,000,000 B/s)" in out


def test_plot_writes_a_png(run, tmp_path: Path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "load.png"
    result = run(SEED, "--tp", "4", "--backend", "s3", "--backend", "nfs", "--plot", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "load.svg"
    assert run(SEED, "--backend", "s3", "--plot", str(svg)).exit_code == 0
    assert "<svg" in svg.read_text()


def test_plot_without_matplotlib_says_how_to_get_it(run, monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run(SEED, "--backend", "s3", "--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    assert "pip install 'kvsize[plot]'" in result.stderr


def test_backend_and_connector_mismatch_is_warned(run):
    result = run(SEED, "--tp", "4", "--backend", "nfs", "--format", "json")
    assert "--backend nfs is timed through --connector s3" in result.stderr
    assert "did you mean --connector fs?" in json.loads(result.stdout)["warnings"][-1]
    matched = run(SEED, "--tp", "4", "--backend", "nfs", "--connector", "fs")
    assert "timed through" not in matched.stderr


def test_s3_parts_follow_each_stage_object_size(run):
    # PP 2 with --pp-partition 30,6: stage objects of 30 and 6 layers; TP 4 -> 2 heads a rank
    row = rows_by_chunk(
        timed(run, SEED, "--tp", "4", "--pp", "2", "--pp-partition", "30,6", "--chunk-size", "2048", "--backend", "s3")
    )[2048]
    per_layer = 2048 * 2 * 2 * 128 * 2  # bytes of one layer in one object
    parts_30 = math.ceil(30 * per_layer / 2**23)
    parts_6 = math.ceil(6 * per_layer / 2**23)
    assert row["wire_requests"] == 4 * 48 * parts_30 + 4 * 48 * parts_6


# --- a figure's per-object cost and its range ---------------------------------------------------------------------


def test_a_profile_carries_a_per_object_cost_and_each_figures_range(tmp_path):
    from kvsize.storage import resolve_backend

    profile = tmp_path / "nfs.yaml"
    profile.write_text(
        "name: nfs\nlatency: 100us\nper_object: 65us\nstream_bandwidth: 650MB/s\nconcurrency: 8\n"
        "ranges:\n  latency: [80us, 200us]\n  per_object: [29us, 130us]\n  stream_bandwidth: [600MB/s, 700MB/s]\n"
    )
    loaded = resolve_backend(str(profile), {})
    assert loaded.per_object_s == pytest.approx(65e-6)
    assert loaded.ranges == {
        "latency_s": pytest.approx((80e-6, 200e-6)),
        "per_object_s": pytest.approx((29e-6, 130e-6)),
        "stream_bytes_per_s": (600e6, 700e6),
    }


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        ("  latency: [200us, 80us]\n", "low is above high"),
        ("  latency: [150us, 200us]\n", "does not hold the figure"),
        ("  latency: [.nan, 200us]\n", "latency"),
        ("  latency: [80us]\n", "must be [low, high]"),
        ("  speed: [1, 2]\n", "ranges names 'speed'"),
        ("  stream_bandwidth: [1e400, 2]\n", "stream_bandwidth"),
        ("  latency: [80us, 9999h]\n", "latency"),
    ],
)
def test_a_bad_range_is_one_line(run, tmp_path, ranges, expected):
    profile = tmp_path / "bad.yaml"
    profile.write_text(f"name: bad\nlatency: 100us\nstream_bandwidth: 650MB/s\nconcurrency: 8\nranges:\n{ranges}")
    result = run(SEED, "--backend", str(profile))
    assert result.exit_code == 2 and expected in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
