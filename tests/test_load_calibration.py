"""The time model where it meets LMCache's own load path: the fs connector's thread pool on the serving host
(``--host-cpus``), B read at the load's own requests in flight, and the probe's warmed read buffers."""

from __future__ import annotations

import json

import pytest

from kvsize.storage.backends import BackendProfile
from kvsize.storage.profiles import load_profile
from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
FIGURES = ("--latency", "1ms", "--stream-bandwidth", "1GB/s", "--aggregate-bandwidth", "2GB/s", "--concurrency", "32")


def test_host_cpus_sets_the_fs_connectors_pool(run_json):
    """asyncio's default executor: min(32, CPUs + 4) reads per writer; 125 objects a writer at chunk 256, 32k tokens."""
    for cpus, threads in ((2, 6), (28, 32), (100, 32)):
        data = run_json(SEED, "--tp", "4", "--prompt", "32000", "--chunk-sizes", "256", "--connector", "fs", *FIGURES,
                        "--host-cpus", str(cpus))  # fmt: skip
        terms = data["rows"][0]["terms"]
        assert (terms["concurrency"], terms["waves"], terms["in_flight"]) == (threads, -(-125 // threads), 4 * threads)
        assert data["time_options"]["host_cpus"] == cpus
    plain = run_json(SEED, "--tp", "4", "--prompt", "32000", "--chunk-sizes", "256", "--connector", "fs", *FIGURES)
    assert plain["rows"][0]["terms"]["concurrency"] == 32 and plain["time_options"]["host_cpus"] is None


def test_host_cpus_leaves_other_connectors_alone(run_json):
    data = run_json(SEED, "--tp", "4", "--chunk-sizes", "256", "--connector", "s3", *FIGURES, "--host-cpus", "2")
    assert data["rows"][0]["terms"]["concurrency"] == 32


@pytest.mark.parametrize("value", ["0", "-1", "100001", "nan", "1e400", "2\udcff", "abc"])
def test_bad_host_cpus(run, value):
    assert "--host-cpus" in one_line(run(SEED, "--connector", "fs", *FIGURES, "--host-cpus", value))


def test_b_is_read_at_the_loads_own_level():
    profile = BackendProfile(
        name="p", latency_s=0.001, stream_bytes_per_s=1e9, concurrency=32, aggregate_bytes_per_s=3e9,
        aggregate_by_concurrency={1: 1e9, 8: 2e9, 32: 3e9},
    )  # fmt: skip
    assert profile.aggregate_at(1) == 1e9
    assert profile.aggregate_at(4) == pytest.approx(1e9 + 1e9 * 3 / 7)
    assert profile.aggregate_at(8) == 2e9
    assert profile.aggregate_at(20) == pytest.approx(2.5e9)
    assert profile.aggregate_at(500) == 3e9


@pytest.mark.parametrize(
    ("tables", "field"),
    [
        ({"aggregate_by_concurrency": {0: 1e9}}, "aggregate_by_concurrency"),
        ({"aggregate_by_concurrency": {8: float("nan")}}, "aggregate_by_concurrency"),
        ({"aggregate_by_object_size": {2**20: {8: float("inf")}}}, "aggregate_by_object_size"),
        ({"aggregate_by_object_size": {2**20: {-1: 1e9}}}, "aggregate_by_object_size"),
    ],
)
def test_bad_measured_tables_name_their_field(tables, field):
    from kvsize.errors import BackendError

    with pytest.raises(BackendError) as caught:
        BackendProfile(name="p", latency_s=0.001, stream_bytes_per_s=1e9, concurrency=32, **tables)
    assert f"`{field}` needs levels of at least 1" in str(caught.value)


def test_profile_with_levels_through_the_cli(run_json, tmp_path):
    profile = tmp_path / "disk.yaml"
    profile.write_text(
        "name: disk\nlatency: 1ms\nstream_bandwidth: 1GB/s\naggregate_bandwidth: 3GB/s\nconcurrency: 32\n"
        "aggregate_bandwidth_by_concurrency: {1: 1GB/s, 8: 2GB/s, 32: 3GB/s}\n"
    )
    assert load_profile(profile).aggregate_by_concurrency == {1: 1e9, 8: 2e9, 32: 3e9}
    data = run_json(SEED, "--tp", "4", "--prompt", "32000", "--chunk-sizes", "256", "--connector", "fs",
                    "--backend", str(profile), "--host-cpus", "2")  # fmt: skip
    terms = data["rows"][0]["terms"]
    # 4 writers x 6 in flight = 24: 2 GB/s + (24 - 8) / (32 - 8) x 1 GB/s.
    assert terms["in_flight"] == 24
    assert terms["aggregate_bytes_per_s"] == pytest.approx(2e9 + 16 / 24 * 1e9)
    assert terms["bandwidth_seconds"] == pytest.approx(data["rows"][0]["stored_bytes"] / terms["aggregate_bytes_per_s"])
    assert any("B read at the load's own requests in flight" in n for n in data["backends"][0]["notes"])


@pytest.mark.parametrize(
    "levels",
    ["[1, 2]", "{}", "{0: 1GB/s}", "{1: nan}", "{1: -5}", "{true: 1GB/s}", "{1: fast}", "{1000001: 1GB/s}"],
)
def test_bad_levels_in_a_profile(run, tmp_path, levels):
    profile = tmp_path / "bad.yaml"
    profile.write_text(
        f"name: bad\nlatency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 4\naggregate_bandwidth_by_concurrency: {levels}\n"
    )
    assert "aggregate_bandwidth_by_concurrency" in one_line(run(SEED, "--backend", str(profile)))


def test_the_probe_records_b_per_level_and_warms_its_buffers(run, tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    saved = tmp_path / "p.yaml"
    result = run("probe", str(target), "--object-sizes", "64KiB,256KiB", "--concurrency", "1,2,4", "--objects", "8",
                 "--save-profile", str(saved), "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    levels = data["profile"]["aggregate_by_concurrency"]
    assert sorted(int(level) for level in levels) == [1, 2, 4]
    for level, rate in levels.items():
        sets = [r for r in data["results"] if r["concurrency"] == int(level)]
        expected = sum(r["object_bytes"] * r["objects"] for r in sets) / sum(r["read_seconds"] for r in sets)
        assert rate == pytest.approx(expected)
    assert load_profile(saved).aggregate_by_concurrency == pytest.approx({int(k): v for k, v in levels.items()})
    assert list(target.iterdir()) == []


def test_warmed_buffers_are_reused(tmp_path):
    from kvsize.storage.targets import DirectoryTarget

    target = DirectoryTarget(tmp_path, direct=False)
    target.prepare(1 << 20)
    target.write("a", memoryview(b"x" * 10_000))
    target.warm(2, 10_000)
    assert target._pool is not None and target._pool.qsize() == 2
    assert target.read("a", 10_000) == 10_000
    assert target._pool.qsize() == 2  # returned to the pool
    target.close()


def test_b_comes_from_the_sets_of_the_nearest_object_size(run_json, tmp_path):
    profile = tmp_path / "sizes.yaml"
    profile.write_text(
        "name: sizes\nlatency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 32\naggregate_bandwidth: 3GB/s\n"
        "aggregate_bandwidth_by_concurrency: {1: 1GB/s, 32: 3GB/s}\n"
        "aggregate_bandwidth_by_object_size:\n  8MiB: {1: 1GB/s, 32: 2GB/s}\n  64MiB: {1: 2GB/s, 32: 4GB/s}\n"
    )
    loaded = load_profile(profile)
    assert loaded.aggregate_by_object_size == {8 * 2**20: {1: 1e9, 32: 2e9}, 64 * 2**20: {1: 2e9, 32: 4e9}}
    assert loaded.aggregate_at(32, 9 * 2**20) == 2e9  # 9 MiB objects: the 8 MiB sets
    assert loaded.aggregate_at(32, 72 * 2**20) == 4e9  # 72 MiB objects: the 64 MiB sets
    data = run_json(SEED, "--tp", "4", "--prompt", "32000", "--chunk-sizes", "256,2048", "--connector", "fs",
                    "--backend", str(profile))  # fmt: skip
    rates = [row["terms"]["aggregate_bytes_per_s"] for row in data["rows"]]
    assert rates == [2e9, 4e9]  # 4 writers x 32 in flight: past the highest level, that level's figure
