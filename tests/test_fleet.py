"""`kvsize probe --scheduler`: the probe on a Dask LocalCluster of worker processes, on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvsize.storage.profiles import load_profile
from tests.test_hardening import one_line
from tests.test_probe import s3_server  # noqa: F401  (the moto S3 server fixture)

pytest.importorskip("distributed")

SMALL = ("--object-sizes", "64KiB,256KiB", "--concurrency", "1,4", "--objects", "12")
FOLDER = re.compile(r"^kvsize-probe-[A-Za-z0-9.-]+-(?P<pid>[0-9]+)-[0-9a-f]{8}$")


def fleet_json(run, target: str, *args: str) -> dict:
    result = run("probe", target, *SMALL, "--scheduler", "local:3", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data: dict = json.loads(result.stdout)
    return data


def test_three_clients_add_up_to_the_fleet(run, tmp_path):
    (tmp_path / "keep.data").write_bytes(b"x")
    profile = tmp_path / "fleet.yaml"
    data = fleet_json(run, str(tmp_path), "--save-profile", str(profile))
    clients, fleet = data["clients"], data["fleet"]
    assert len(clients) == 3 and fleet["clients_measured"] == 3
    assert len({c["worker"] for c in clients}) == 3
    assert all(c["removed"] and c["error"] is None and len(c["results"]) == 4 for c in clients)
    for number, summed in enumerate(fleet["results"]):
        own = [c["results"][number] for c in clients]
        assert summed["objects"] == sum(r["objects"] for r in own) == 3 * 12
        total = summed["object_bytes"] * summed["objects"]
        assert summed["read_bytes_per_s"] * summed["read_seconds"] == pytest.approx(total)
        # The fleet's span covers every client's own read.
        assert summed["read_seconds"] >= max(r["read_seconds"] for r in own) - 1e-6
    assert data["results"] == fleet["results"]
    assert fleet["max_requests_per_s"] == max(r["read_ops_per_s"] for r in fleet["results"])
    assert data["profile"]["clients_measured"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.yaml", "keep.data"]
    saved = load_profile(profile)
    assert saved.max_requests_per_s == pytest.approx(fleet["max_requests_per_s"], rel=1e-6)
    assert "measured by 3 clients at once" in saved.figures["aggregate_bytes_per_s"]


def test_some_of_the_workers(run, tmp_path):
    data = fleet_json(run, str(tmp_path), "--clients", "2")
    assert len(data["clients"]) == 2 and data["fleet"]["clients_measured"] == 2
    assert list(tmp_path.iterdir()) == []


def test_fleet_on_s3(run, s3_server):  # noqa: F811
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="kvcache")
    client.put_object(Bucket="kvcache", Key="runs/keep", Body=b"x")
    data = fleet_json(run, "s3://kvcache/runs", "--endpoint-url", s3_server)
    assert data["fleet"]["clients_measured"] == 3 and data["fleet"]["aggregate_bytes_per_s"] > 0
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="kvcache").get("Contents", [])]
    assert keys == ["runs/keep"]


def _start(target: Path, *extra: str, session: bool = False) -> subprocess.Popen[str]:
    args = ("--object-sizes", "64KiB,128KiB", "--concurrency", "1", "--objects", "4000", "--max-bytes", "1GiB")
    return subprocess.Popen(
        [sys.executable, "-m", "kvsize", "probe", str(target), *args, "--scheduler", "local:3", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        start_new_session=session,
    )


def _wait_for_writers(target: Path, process: subprocess.Popen[str]) -> list[Path]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        folders = [p for p in target.iterdir() if FOLDER.match(p.name)]
        if len(folders) == 3 and all(len(list(p.iterdir())) > 20 for p in folders):
            return folders
        if process.poll() is not None:
            pytest.fail(f"the fleet probe ended before writing: {process.communicate()[1]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("the fleet probe never started writing")


def test_a_worker_killed_mid_run_is_reported_and_cleaned_up(tmp_path):
    (tmp_path / "keep.data").write_bytes(b"x")
    process = _start(tmp_path)
    folders = _wait_for_writers(tmp_path, process)
    victim = FOLDER.match(folders[0].name)
    assert victim is not None
    os.kill(int(victim.group("pid")), signal.SIGKILL)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "was lost mid-run; removed what it wrote, and the other clients removed theirs" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.data"]


def test_ctrl_c_stops_every_client_and_cleans_up(tmp_path):
    process = _start(tmp_path)
    _wait_for_writers(tmp_path, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    assert "stopped by Ctrl-C; removed everything it wrote" in stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_a_terminal_then_more_signals_during_the_clean_up(tmp_path):
    """A terminal's Ctrl-C reaches the workers too; a SIGTERM and a second Ctrl-C during the clean-up change nothing."""
    process = _start(tmp_path, session=True)
    _wait_for_writers(tmp_path, process)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    assert stderr == "kvsize: probe stopped by Ctrl-C; removed everything it wrote\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--scheduler", "bogus"), "--scheduler 'bogus' is not tcp://HOST:PORT, tls://HOST:PORT"),
        (("--scheduler", "local:0"), "local:N takes 1 to 64 workers"),
        (("--scheduler", "local:100000"), "is not tcp://HOST:PORT, tls://HOST:PORT"),
        (("--scheduler", "local:nan"), "is not tcp://HOST:PORT, tls://HOST:PORT"),
        (("--scheduler", "tcp://h\udcff:8786"), "is not tcp://HOST:PORT, tls://HOST:PORT"),
        (("--scheduler", "tcp://a:b"), "--scheduler 'tcp://a:b' is not tcp://HOST:PORT, tls://HOST:PORT"),
        (("--scheduler", "tcp://a:"), "--scheduler 'tcp://a:' is not tcp://HOST:PORT"),
        (("--scheduler", "tcp://127.0.0.1:99999"), "--scheduler 'tcp://127.0.0.1:99999': the port must be 1 to 65535"),
        (("--scheduler", "tcp://127.0.0.1:0"), "the port must be 1 to 65535"),
        (("--scheduler", "tls://127.0.0.1:8786"), "--scheduler 'tls://127.0.0.1:8786' needs Dask's TLS settings"),
        (("--clients", "2"), "--clients goes with --scheduler"),
        (("--scheduler", "local:1", "--clients", "0"), "--clients must be 1 to 100,000"),
        (("--scheduler", "local:1", "--clients", "99999999999"), "--clients must be 1 to 100,000"),
    ],
)
def test_bad_fleet_options_are_one_line(run, tmp_path, args, expected):
    assert expected in one_line(run("probe", str(tmp_path), *SMALL, *args))
    assert list(tmp_path.iterdir()) == []


def test_more_clients_than_workers(run, tmp_path):
    assert "--clients 4 is more than the 2 workers" in one_line(
        run("probe", str(tmp_path), *SMALL, "--scheduler", "local:2", "--clients", "4")
    )


def test_without_the_fleet_extra(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    line = one_line(run("probe", str(tmp_path), *SMALL, "--scheduler", "local:2"))
    assert "pip install 'kvsize[fleet]'" in line


def test_a_tls_scheduler_with_dasks_tls_settings(run, tmp_path):
    """tls:// connects with Dask's own TLS settings (its config, or DASK_DISTRIBUTED__COMM__TLS__* variables); without
    them, or with unusable ones, one line naming --scheduler."""
    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()  # a self-signed CA, certificate and key, in memory
    pem = {}
    for part, text in (
        ("ca-file", security.tls_ca_file),
        ("client.cert", security.tls_client_cert),
        ("client.key", security.tls_client_key),
    ):
        pem[f"distributed.comm.tls.{part}"] = str(tmp_path / f"{part}.pem")
        (tmp_path / f"{part}.pem").write_text(text)
    target = tmp_path / "mount"
    target.mkdir()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tls://", security=security, dashboard_address="127.0.0.1:0"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        assert "needs Dask's TLS settings, and none is set" in one_line(run("probe", str(target), *SMALL, "--scheduler", address))
        with dask.config.set({**pem, "distributed.comm.tls.ca-file": str(tmp_path / "missing.pem")}):
            line = one_line(run("probe", str(target), *SMALL, "--scheduler", address))
            assert f"--scheduler '{address}': Dask's TLS settings (distributed.comm.tls.*) cannot be used" in line
        with dask.config.set(pem):
            result = run("probe", str(target), *SMALL, "--scheduler", address, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["fleet"]["clients_measured"] == 2
    assert list(target.iterdir()) == []
