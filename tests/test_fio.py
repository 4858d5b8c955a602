"""`kvsize probe --emit fio` and `--from-fio`: the probe's pattern run by the real fio (Debian's package; .ci/run
installs it), on one host and in fio's client/server mode on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

FIO = shutil.which("fio")
pytestmark = pytest.mark.skipif(FIO is None, reason="fio is not installed (.ci/run installs it)")
SETS = ("--object-sizes", "64KiB,1MiB", "--concurrency", "1,2", "--objects", "8")


def job_file(run, target: Path, tmp_path: Path, *extra: str) -> Path:
    result = run("probe", str(target), *SETS, *extra, "--emit", "fio")
    assert result.exit_code == 0, result.stderr
    job = tmp_path / "probe.fio"
    job.write_text(result.stdout)
    return job


def test_emitted_job_runs_under_fio_and_fits_a_profile(run, tmp_path: Path):
    target = tmp_path / "mount"
    target.mkdir()
    job = job_file(run, target, tmp_path)
    text = job.read_text()
    assert text.count("[write-") == 4 and text.count("[read-") == 4  # 2 sizes x 2 levels, write then read
    assert "[read-1048576-2]" in text and "bs=1048576" in text and "numjobs=2" in text and "nrfiles=4" in text
    out = subprocess.run([FIO, "--output-format=json", str(job)], capture_output=True, text=True, check=True, cwd=tmp_path)
    (tmp_path / "result.json").write_text(out.stdout)
    assert list(target.iterdir()) == []  # fio removed what it wrote (unlink=1 on the read phase)
    profile = tmp_path / "profile.yaml"
    result = run(
        "probe", str(target), "--from-fio", str(tmp_path / "result.json"), "--save-profile", str(profile), "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["object_bytes"], r["concurrency"], r["objects"]) for r in data["results"]] == [
        (65_536, 1, 8),
        (65_536, 2, 8),
        (1_048_576, 1, 8),
        (1_048_576, 2, 8),
    ]
    fitted = data["profile"]
    assert fitted["aggregate_bytes_per_s"] > 0 and fitted["concurrency"] == 2
    assert run("Qwen/Qwen3-4B-Instruct-2507", "--tp", "4", "--connector", "fs", "--backend", str(profile)).exit_code == 0


def test_client_server_run_counts_every_client(run, tmp_path: Path):
    target = tmp_path / "mount"
    target.mkdir()
    job = job_file(run, target, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([FIO, f"--server=ip:127.0.0.1,{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(
            [FIO, f"--client=ip:127.0.0.1,{port}", "--output-format=json", str(job)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    (tmp_path / "clients.json").write_text(out.stdout)
    result = run("probe", str(target), "--from-fio", str(tmp_path / "clients.json"), "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(r["object_bytes"], r["concurrency"]) for r in data["results"]] == [
        (65_536, 1),
        (65_536, 2),
        (1_048_576, 1),
        (1_048_576, 2),
    ]
    assert all(r["read_bytes_per_s"] > 0 for r in data["results"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "is not JSON"),
        (b'{"jobs": []}', "has no read-/write- job pairs"),
        (b'{"fio version": "3"}', "has no jobs"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b'{"jobs": [{"jobname": "read-x-1", "read": {}}, {"jobname": "write-x-1", "write": {}}]}', "is not named as kvsize"),
        (
            b'{"jobs": [{"jobname": "read-4096-1", "read": {"bw_bytes": "nan", "io_bytes": 8192}},'
            b' {"jobname": "write-4096-1", "write": {"bw_bytes": 1}}]}',
            "is not a measurement",
        ),
    ],
)
def test_bad_fio_results_are_one_line(run, tmp_path: Path, content, message):
    result_file = tmp_path / "result.json"
    result_file.write_bytes(content)
    result = run("probe", str(tmp_path), "--from-fio", str(result_file))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr


def test_emit_fio_needs_a_directory(run):
    result = run("probe", "s3://bucket/prefix", "--emit", "fio")
    assert result.exit_code == 2 and "--emit fio needs a directory target" in result.stderr
