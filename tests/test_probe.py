"""`kvsize probe`: directory targets (incl. interrupted runs), S3 against moto's server, Redis when present."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvsize.storage.probe as probing
from kvsize.errors import KvsizeError
from kvsize.storage.leftovers import run_name

LONG_RUN = ("--objects", "5000", "--max-bytes", "40GiB", "--time-limit", "600s")
SMALL = ("--object-sizes", "64KiB,1MiB", "--concurrency", "1,2", "--objects", "4")


def probe_json(run, *args: str) -> dict:
    result = run("probe", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict = json.loads(result.stdout)
    return data


def test_directory_probe_measures_fits_and_cleans_up(run, tmp_path: Path):
    target = tmp_path / "mount"
    target.mkdir()
    sentinel = target / "keep.data"
    sentinel.write_bytes(b"not the probe's")
    profile = tmp_path / "profile.yaml"
    data = probe_json(run, str(target), *SMALL, "--save-profile", str(profile))
    assert data["target"] == str(target)
    assert [(r["object_bytes"], r["concurrency"], r["objects"]) for r in data["results"]] == [
        (65_536, 1, 4),
        (65_536, 2, 4),
        (1_048_576, 1, 4),
        (1_048_576, 2, 4),
    ]
    for result in data["results"]:
        assert result["read_bytes_per_s"] > 0 and result["write_bytes_per_s"] > 0
        assert 0 < result["read_latency_p50_s"] <= result["read_latency_p99_s"]
    fitted = data["profile"]
    assert fitted["stream_bytes_per_s"] > 0 and fitted["latency_s"] >= 0 and fitted["concurrency"] == 2
    assert sorted(p.name for p in target.iterdir()) == ["keep.data"]  # only what was there before
    assert sentinel.read_bytes() == b"not the probe's"
    # the saved profile drives the time model
    timed = run("Qwen/Qwen3-4B-Instruct-2507", "--tp", "4", "--connector", "fs", "--backend", str(profile), "--format", "json")
    assert timed.exit_code == 0, timed.stderr
    backend = json.loads(timed.stdout)["backend"]
    assert backend["stream_bytes_per_s"] == pytest.approx(fitted["stream_bytes_per_s"])
    assert backend["aggregate_bytes_per_s"] == pytest.approx(fitted["aggregate_bytes_per_s"])


def test_model_sizes_are_the_predicted_objects(run, tmp_path: Path):
    data = probe_json(
        run,
        str(tmp_path),
        "--model",
        "Qwen/Qwen3-4B-Instruct-2507",
        "--tp",
        "4",
        "--chunk-sizes",
        "16,32",
        "--concurrency",
        "1",
        "--objects",
        "2",
    )
    assert [r["object_bytes"] for r in data["results"]] == [16 * 36_864, 32 * 36_864]


def test_direct_reads(run, tmp_path: Path):
    data = probe_json(run, str(tmp_path), "--object-sizes", "64KiB,256KiB", "--concurrency", "1", "--objects", "2", "--direct")
    assert data["direct"] is True
    assert any("O_DIRECT" in note for note in data["notes"])
    assert list(tmp_path.iterdir()) == []


def test_page_cache_note_without_direct(run, tmp_path: Path):
    data = probe_json(run, str(tmp_path), *SMALL)
    assert any("posix_fadvise" in note for note in data["notes"])


def test_fit_recovers_latency_and_bandwidth():
    def result(size: int, seconds: float) -> probing.ProbeResult:
        return probing.ProbeResult(
            object_bytes=size,
            concurrency=1,
            objects=4,
            write_seconds=1,
            read_seconds=1,
            write_bytes_per_s=1,
            read_bytes_per_s=size * 4 / (4 * seconds),
            read_ops_per_s=1,
            read_latency_p50_s=seconds,
            read_latency_p99_s=seconds,
            read_latency_mean_s=seconds,
        )

    # t = 2 ms + s / (500 MB/s)
    fitted = probing.fit_profile("x", [result(s, 0.002 + s / 500e6) for s in (2**20, 2**24, 2**26)])
    assert fitted.latency_s == pytest.approx(0.002)
    assert fitted.stream_bytes_per_s == pytest.approx(500e6)
    single = probing.fit_profile("x", [result(2**20, 0.01)])
    assert single.latency_s is None and single.stream_bytes_per_s is None
    assert "two sizes" in single.notes[0]


def test_free_space_is_checked_before_writing(run, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 1000))  # type: ignore[attr-defined]
    result = run("probe", str(tmp_path), *SMALL)
    assert result.exit_code == 2
    assert "has 1,000 B free" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("/no/such/dir",), "is not a directory"),
        (("ftp://host/x",), "give a directory, s3://bucket/prefix or redis://host:port"),
        (("s3://bucket/x", "--direct"), "--direct applies to a directory target, not S3"),
        ((".", "--object-sizes", "2GiB", "--max-bytes", "1GiB"), "is more than --max-bytes"),
        ((".", "--object-sizes", "big"), "--object-sizes 'big' is not a number"),
        ((".", "--concurrency", "0"), "--concurrency must be at least 1"),
        ((".", "--model", "Qwen/Qwen3-8B", "--object-sizes", "1MiB"), "not both"),
        ((".", "--format", "csv"), "'csv' is not one of 'table', 'json'"),
    ],
)
def test_bad_probe_input(run, args, message):
    result = run("probe", *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_time_limit_bounds_the_run(tmp_path: Path):
    target = probing.DirectoryTarget(tmp_path, direct=False)
    with pytest.raises(KvsizeError, match="measured nothing within `time_limit`"):
        probing.run_probe(target, [65_536], [1], objects=2, max_bytes=2**20, time_limit_s=0.0, direct=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sig", "code", "reason"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_interrupted_run_leaves_nothing_behind(tmp_path: Path, sig, code, reason):
    target = tmp_path / "mount"
    target.mkdir()
    (target / "keep.data").write_bytes(b"x")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kvsize.cli",
            "probe",
            str(target),
            "--object-sizes",
            "8MiB",
            "--concurrency",
            "1",
            "--objects",
            "5000",
            "--max-bytes",
            "40GiB",
            "--time-limit",
            "600s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until it is writing objects
        runs = [p for p in target.iterdir() if p.name.startswith("kvsize-probe-")]
        if runs and len(list(runs[0].iterdir())) >= 3:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("the probe never started writing")
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"stopped by {reason}; removed everything it wrote" in stderr
    assert sorted(p.name for p in target.iterdir()) == ["keep.data"]


@pytest.fixture
def s3_server(monkeypatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_s3_probe_against_a_real_s3_api_server(run, s3_server):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="kvcache")
    client.put_object(Bucket="kvcache", Key="runs/keep", Body=b"x")
    data = probe_json(run, "s3://kvcache/runs", *SMALL, "--endpoint-url", s3_server)
    assert len(data["results"]) == 4 and data["profile"]["aggregate_bytes_per_s"] > 0
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="kvcache").get("Contents", [])]
    assert keys == ["runs/keep"]


def test_s3_probe_bad_bucket(run, s3_server):
    result = run("probe", "s3://missing-bucket/x", *SMALL, "--endpoint-url", s3_server)
    assert result.exit_code == 2
    assert "cannot reach bucket 'missing-bucket'" in result.stderr


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_probe_two_keys_per_object_and_cleanup(run, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set("keep", b"x")
    # one object as LMCache's redis connector stores it: <key>kv_bytes (the payload) and <key>metadata (28 B)
    target = probing.RedisTarget(redis_url)
    target.prepare(4096)
    target.write("0", memoryview(bytes(4096)))
    written = {key.decode(): client.strlen(key) for key in client.keys(f"{target.prefix}:*")}
    marker = f"{target.prefix}:.kvsize-probe"  # the run's marker, written first and removed last
    assert written == {f"{target.prefix}:0kv_bytes": 4096, f"{target.prefix}:0metadata": 28, marker: written[marker]}
    assert json.loads(client.get(marker))["kvsize_probe"] == target.prefix
    assert target.read("0", 4096) == 4096
    target.close()
    assert client.keys("*") == [b"keep"]
    data = probe_json(run, redis_url, *SMALL)
    assert len(data["results"]) == 4
    assert client.keys("*") == [b"keep"]


def test_directory_target_never_touches_foreign_files(tmp_path: Path):
    target = probing.DirectoryTarget(tmp_path, direct=False)
    target.prepare(1024)
    assert target.run_dir is not None
    foreign = target.run_dir / "someone-else.data"
    foreign.write_bytes(b"y")
    target.write("a", memoryview(b"z" * 10))
    target.close()
    assert foreign.read_bytes() == b"y"  # left, and so is the folder holding it
    assert sorted(p.name for p in target.run_dir.iterdir()) == ["someone-else.data"]
    os.remove(foreign)


@pytest.mark.parametrize("direct", [False, True])
def test_directory_objects_are_written_and_read_as_lmcache_fs_connector(tmp_path: Path, monkeypatch, direct):
    """LMCache's FSConnector (save_chunk_meta, its default) prepends a 28-byte RemoteMetadata and reads it first
    through a buffered file, then the bytes: that small read starts the kernel's readahead, so the probe does the
    same. Its O_DIRECT path (save_chunk_meta off) stores and reads the bytes alone."""
    target = probing.DirectoryTarget(tmp_path, direct=direct)
    target.prepare(1 << 20)
    assert target.run_dir is not None
    payload = os.urandom(3 * 4096)
    target.write("a", memoryview(payload))
    stored = (target.run_dir / "a.data").read_bytes()
    assert stored == (payload if direct else bytes(28) + payload)
    reads: list[int] = []
    real_open = open

    class Recording:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def readinto(self, buffer):
            reads.append(len(buffer))
            return self.file.readinto(buffer)

    monkeypatch.setattr(
        "kvsize.storage.targets.open", lambda path, mode, **kw: Recording(real_open(path, mode, **kw)), raising=False
    )
    assert target.read("a", len(payload)) == len(payload)
    assert reads == ([] if direct else [28, len(payload)])
    if not direct:
        (target.run_dir / "a.data").write_bytes(bytes(20))  # cut inside the header: nothing counts as read
        assert target.read("a", len(payload)) == 0
    target.close()
    assert list(tmp_path.iterdir()) == []


def test_read_buffers_beyond_memory_are_refused_before_writing(run, tmp_path: Path):
    # 4,096 reads of 64 MiB in flight need 256 GiB of buffers at once
    result = run("probe", str(tmp_path), "--object-sizes", "64MiB", "--concurrency", "4096", "--objects", "1")
    assert result.exit_code == 2
    assert "274,877,906,944 B of buffers" in result.stderr and "lower --concurrency" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_read_buffers_are_allocated_once_before_the_first_write(tmp_path: Path):
    """LMCache allocates its CPU buffer when the engine starts; the probe allocates every read buffer of the run
    before it writes, and each read pass takes its buffers from them."""
    target = probing.DirectoryTarget(tmp_path, direct=False)
    target.prepare(1 << 20, 4 * 8192)
    arena = target._arena
    assert arena is not None and len(arena) == 4 * 8192
    target.warm(4, 5000)  # rounded to 8,192 each: fits
    assert target._arena is arena
    views = [target._buffer(5000) for _ in range(4)]
    assert all(view.obj is arena and len(view) == 8192 for view in views)
    for view in views:
        target._release(view)
    target.close()
    assert target._arena is None and list(tmp_path.iterdir()) == []


def _run_dirs(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir() if p.name.startswith("kvsize-probe-"))


def test_read_only_target_is_one_line_and_leaves_nothing(run, tmp_path: Path, monkeypatch):
    import errno

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = run("probe", str(tmp_path), *SMALL)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "failed: Read-only file system" in result.stderr and "removed everything it wrote" in result.stderr
    assert _run_dirs(tmp_path) == []


def test_running_out_of_space_mid_run_is_one_line_and_leaves_nothing(run, tmp_path: Path, monkeypatch):
    import errno

    real_write = os.write
    calls = {"n": 0}

    def fills_up(fd, data):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", fills_up)
    result = run("probe", str(tmp_path), *SMALL)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_save_profile_folder_is_checked_before_measuring(run, tmp_path: Path):
    result = run("probe", str(tmp_path), *SMALL, "--save-profile", str(tmp_path / "missing" / "p.yaml"))
    assert result.exit_code == 2 and "the folder" in result.stderr and "does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before writing anything
    result = run("probe", str(tmp_path), *SMALL, "--save-profile", str(tmp_path))
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_save_profile_write_failure_after_measuring_is_one_line(run, tmp_path: Path, monkeypatch):
    target = tmp_path / "mount"
    target.mkdir()

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    result = run("probe", str(target), *SMALL, "--save-profile", str(tmp_path / "p.yaml"))
    assert result.exit_code == 2 and result.stderr.count("\n") <= 2  # a page-cache note may precede it
    assert "measured, but cannot write --save-profile" in result.stderr and "Traceback" not in result.stderr
    assert list(target.iterdir()) == []


def test_killed_probe_is_named_by_the_next_and_removed_by_clean(run, tmp_path: Path):
    target = tmp_path / "mount"
    target.mkdir()
    (target / "keep.data").write_bytes(b"x")
    process = subprocess.Popen(
        [sys.executable, "-m", "kvsize.cli", "probe", str(target), "--object-sizes", "8MiB", "--concurrency", "1", *LONG_RUN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (_run_dirs(target) and len(list((target / _run_dirs(target)[0]).iterdir())) >= 2):
        time.sleep(0.05)
    process.kill()  # SIGKILL: no clean-up runs
    process.wait(timeout=30)
    (left,) = _run_dirs(target)
    assert left.endswith(f"-{process.pid}-" + left.rsplit("-", 1)[1])
    noticed = run("probe", str(target), *SMALL)
    assert noticed.exit_code == 0
    assert f"holds {left} from an earlier probe (process {process.pid} is gone)" in noticed.stderr
    assert "--clean" in noticed.stderr
    cleaned = run("probe", str(target), "--clean")
    assert cleaned.exit_code == 0 and f"removed {left}" in cleaned.stdout
    assert sorted(p.name for p in target.iterdir()) == ["keep.data"]


def test_clean_keeps_a_live_run_and_another_hosts(run, tmp_path: Path):
    alive = tmp_path / f"kvsize-probe-{run_name().split('-')[2]}-1-0123abcd"  # pid 1 is always running
    other = tmp_path / "kvsize-probe-otherhost-12345-0123abcd"
    for folder in (alive, other):
        folder.mkdir()
        (folder / "0.data").write_bytes(b"x")
    result = run("probe", str(tmp_path), "--clean")
    assert result.exit_code == 0 and "nothing to remove" in result.stdout
    assert "written by host otherhost: kvsize cannot tell" in result.stderr
    assert alive.exists() and other.exists()
