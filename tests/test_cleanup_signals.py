"""Clean-up that cannot escape its target, and signals: `--clean` and the probe's own clean-up never follow a symbolic
link and remove only what a probe made (a marker names each run); repeated Ctrl-C / SIGTERM never cut a clean-up
short; Ctrl-C during start-up or a Dask cluster's start ends in one line and exit 130, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kvsize.storage.probe as probing
from kvsize import stopping
from kvsize.errors import ProbeError
from kvsize.storage.leftovers import MARKER, host_tag
from kvsize.storage.rundir import PAUSE_VARIABLE, cleanup_pause
from tests.test_probe import redis_url, s3_server  # noqa: F401  (the Redis and moto S3 server fixtures)

SMALL = ("--object-sizes", "64KiB,1MiB", "--concurrency", "1,2", "--objects", "4")


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def run_named(pid: int, tag: str = "0123abcd") -> str:
    return f"kvsize-probe-{host_tag()}-{pid}-{tag}"


def mark(folder: Path, pid: int, name: str | None = None) -> None:
    """A marker as a probe writes it, for run ``name`` (the folder's own by default) of process ``pid``."""
    fields = {"kvsize_probe": name or folder.name, "host": host_tag(), "pid": pid, "token": "00" * 16}
    (folder / MARKER).write_text(json.dumps(fields) + "\n")


def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "x.data").write_bytes(b"someone's data")
    (folder / "y.tmp").write_bytes(b"someone's temp")
    return folder


def test_clean_never_follows_a_symlink_named_like_a_run(run, tmp_path: Path):
    target = tmp_path / "shared"
    target.mkdir()
    elsewhere = victim(tmp_path)
    mark(elsewhere, dead_pid(), "x")  # even a marker there changes nothing: a link is never followed
    link = target / run_named(dead_pid())
    link.symlink_to(elsewhere, target_is_directory=True)
    result = run("probe", str(target), "--clean")
    assert sorted(p.name for p in elsewhere.iterdir()) == [MARKER, "x.data", "y.tmp"]  # the victim's files untouched
    assert (elsewhere / "x.data").read_bytes() == b"someone's data" and link.is_symlink()
    assert result.exit_code == 0, result.stderr
    assert f"kept {link.name} (a symbolic link, which kvsize never follows)" in result.stderr
    assert "nothing to remove" in result.stdout
    # and a probe of that directory names it, and leaves it alone
    noticed = run("probe", str(target), *SMALL)
    assert noticed.exit_code == 0, noticed.stderr
    assert f"holds {link.name}, named like a probe's run; kvsize leaves it alone (a symbolic link" in noticed.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == [MARKER, "x.data", "y.tmp"]


def test_clean_removes_a_killed_runs_folder_with_its_marker(run, tmp_path: Path):
    code = (
        "import os, sys; from pathlib import Path; import kvsize.storage.probe as p\n"
        "t = p.DirectoryTarget(Path(sys.argv[1]), direct=False); t.prepare(1 << 20)\n"
        "[t.write(f'obj{i:05d}', memoryview(b'x' * 100)) for i in range(3)]\n"
        "print(t.run_dir.name); os._exit(0)  # killed: no clean-up ran\n"
    )
    (tmp_path / "keep.data").write_bytes(b"x")
    made = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    name = made.stdout.strip()
    assert sorted(p.name for p in (tmp_path / name).iterdir()) == [MARKER, "obj00000.data", "obj00001.data", "obj00002.data"]
    assert json.loads((tmp_path / name / MARKER).read_text())["kvsize_probe"] == name
    result = run("probe", str(tmp_path), "--clean")
    assert result.exit_code == 0 and f"removed {name}" in result.stdout, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.data"]


def test_clean_keeps_a_folder_without_a_valid_marker(run, tmp_path: Path):
    unmarked, foreign, bad = (tmp_path / run_named(dead_pid(), tag) for tag in ("0123abcd", "0123abce", "0123abcf"))
    for folder in (unmarked, foreign, bad):
        folder.mkdir()
        (folder / "obj00000.data").write_bytes(b"kept")
    mark(foreign, dead_pid(), name=run_named(12345))  # a marker copied from another run
    (bad / MARKER).write_bytes(b"\xff\xfe not json")  # not UTF-8
    result = run("probe", str(tmp_path), "--clean")
    assert all((folder / "obj00000.data").exists() for folder in (unmarked, foreign, bad))
    assert result.exit_code == 0 and "nothing to remove" in result.stdout, result.stderr
    assert f"kept {unmarked.name} (no {MARKER} marker: not made by a probe" in result.stderr
    assert f"kept {foreign.name} (its {MARKER} marker is not this run's)" in result.stderr
    assert f"kept {bad.name} (its {MARKER} marker is not this run's)" in result.stderr


@pytest.mark.parametrize("kind", ["symlink", "fifo", "huge"])
def test_a_marker_that_is_not_a_small_regular_file_is_refused(run, tmp_path: Path, kind):
    folder = tmp_path / run_named(dead_pid())
    folder.mkdir()
    (folder / "obj00000.data").write_bytes(b"kept")
    if kind == "symlink":
        real = tmp_path / "real-marker"
        mark(tmp_path, dead_pid(), folder.name)
        (tmp_path / MARKER).rename(real)
        (folder / MARKER).symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(folder / MARKER)  # no writer: opened non-blocking, never waited on
    else:
        (folder / MARKER).write_text(json.dumps({"kvsize_probe": folder.name, "pad": "x" * 10_000}))
    result = run("probe", str(tmp_path), "--clean")
    assert result.exit_code == 0 and f"kept {folder.name}" in result.stderr, result.stderr
    assert (folder / "obj00000.data").read_bytes() == b"kept"


def test_clean_removes_only_probe_files_in_a_marked_folder(run, tmp_path: Path):
    elsewhere = victim(tmp_path)
    folder = tmp_path / run_named(dead_pid())
    folder.mkdir()
    mark(folder, int(folder.name.split("-")[-2]))
    (folder / "obj00000.data").write_bytes(b"probe's")
    (folder / "obj00001.tmp").write_bytes(b"probe's")
    (folder / "notes.txt").write_bytes(b"someone's")
    (folder / "z.data").symlink_to(elsewhere / "x.data")  # a link named like a probe file: not a probe file
    result = run("probe", str(tmp_path), "--clean")
    assert result.exit_code == 0, result.stderr
    assert f"kept {folder.name} (it holds entries a probe does not write (2; its probe files were removed))" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [MARKER, "notes.txt", "z.data"]
    assert (elsewhere / "x.data").read_bytes() == b"someone's data"


def test_the_probes_own_clean_up_never_follows_a_swapped_in_symlink(tmp_path: Path):
    """The run folder is swapped for a link to another folder mid-run: the clean-up removes the run's files where
    they are (through the folder's descriptor), and nothing in the other folder."""
    elsewhere = victim(tmp_path)
    (elsewhere / "obj00000.data").write_bytes(b"someone's, named like the probe's")
    target = probing.DirectoryTarget(tmp_path, direct=False)
    target.prepare(1 << 20)
    assert target.run_dir is not None
    target.write("obj00000", memoryview(b"probe's"))
    moved = tmp_path / "moved"
    target.run_dir.rename(moved)
    target.run_dir.symlink_to(elsewhere, target_is_directory=True)
    target.close()
    assert (elsewhere / "obj00000.data").read_bytes() == b"someone's, named like the probe's"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["obj00000.data", "x.data", "y.tmp"]
    assert list(moved.iterdir()) == [] and target.run_dir.is_symlink()  # its own files gone; the link not its to remove


def test_clean_on_s3_needs_the_marker_and_removes_only_probe_keys(run, s3_server):  # noqa: F811
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket="kvcache-clean")
    pid = dead_pid()
    unmarked, marked, mixed = (f"runs/{run_named(pid, tag)}" for tag in ("0123abcd", "0123abce", "0123abcf"))
    for prefix in (unmarked, marked, mixed):
        client.put_object(Bucket="kvcache-clean", Key=f"{prefix}/obj00000", Body=b"x")
    for prefix in (marked, mixed):
        fields = {"kvsize_probe": prefix.split("/")[1], "host": host_tag(), "pid": pid, "token": "00"}
        client.put_object(Bucket="kvcache-clean", Key=f"{prefix}/{MARKER}", Body=json.dumps(fields).encode())
    client.put_object(Bucket="kvcache-clean", Key=f"{mixed}/their/file", Body=b"y")
    result = run("probe", "s3://kvcache-clean/runs", "--clean", "--endpoint-url", s3_server)
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket="kvcache-clean").get("Contents", []))
    assert keys == sorted([f"{mixed}/{MARKER}", f"{mixed}/their/file", f"{unmarked}/obj00000"])
    assert result.exit_code == 0, result.stderr
    assert f"removed {marked.split('/')[1]}" in result.stdout
    assert f"kept {unmarked.split('/')[1]} (no {MARKER} marker" in result.stderr
    assert "it holds keys a probe does not write (1;" in result.stderr
    client.delete_objects(Bucket="kvcache-clean", Delete={"Objects": [{"Key": key} for key in keys]})  # moto's store is global


def test_clean_on_redis_needs_the_marker_and_removes_only_probe_keys(run, redis_url):  # noqa: F811
    import redis

    client = redis.Redis.from_url(redis_url)
    pid = dead_pid()
    unmarked, marked = run_named(pid, "0123abcd"), run_named(pid, "0123abce")
    for name in (unmarked, marked):
        client.set(f"{name}:obj00000kv_bytes", b"x")
        client.set(f"{name}:obj00000metadata", b"m")
    client.set(f"{marked}:{MARKER}", json.dumps({"kvsize_probe": marked, "host": host_tag(), "pid": pid, "token": "0"}))
    client.set(f"{marked}:someone-else", b"y")
    result = run("probe", redis_url, "--clean")
    keys = sorted(key.decode() for key in client.keys("*"))
    assert keys == sorted(
        [f"{marked}:{MARKER}", f"{marked}:someone-else", f"{unmarked}:obj00000kv_bytes", f"{unmarked}:obj00000metadata"]
    )
    assert result.exit_code == 0, result.stderr
    assert f"kept {unmarked} (no {MARKER} marker" in result.stderr and "it holds keys a probe does not write (1;" in result.stderr


# --- signals during the probe's clean-up ------------------------------------------------------------------------


def _files(target: Path) -> int:
    """Files in the probe's run folder (-1: no run folder)."""
    runs = [p for p in target.iterdir() if p.name.startswith("kvsize-probe-")]
    try:
        return len(list(runs[0].iterdir())) if runs else -1
    except FileNotFoundError:
        return -1


@pytest.mark.parametrize(("first", "code", "reason"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_repeated_signals_during_clean_up_do_not_stop_it(tmp_path: Path, first, code, reason):
    (tmp_path / "keep.data").write_bytes(b"x")
    many = ("--object-sizes", "4KiB", "--concurrency", "4", "--objects", "100000", "--max-bytes", "1GiB", "--time-limit", "600s")
    process = subprocess.Popen(
        [sys.executable, "-m", "kvsize.cli", "probe", str(tmp_path), *many],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PAUSE_VARIABLE: "0.01"},  # the test seam: 10 ms before each file the clean-up removes
    )
    try:
        deadline = time.monotonic() + 60
        while _files(tmp_path) < 60 and time.monotonic() < deadline:  # some files written: 0.6 s of clean-up at least
            time.sleep(0.02)
        process.send_signal(first)
        most = _files(tmp_path)
        while (now := _files(tmp_path)) >= most - 2 and time.monotonic() < deadline:  # its clean-up has begun
            most = max(most, now)
            time.sleep(0.005)
        assert now > 20, "the clean-up must still be running when the next signals come"
        for again in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            process.send_signal(again)
            time.sleep(0.01)
        assert _files(tmp_path) > 0, "the clean-up must still be running after the signals"
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert stderr == f"kvsize: probe stopped by {reason}; removed everything it wrote\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.data"]


def test_a_stop_whose_clean_up_cannot_finish_says_what_is_left_and_how_to_remove_it(tmp_path: Path, monkeypatch):
    """In-process: a real SIGINT to this process mid-set, then one file that will not go. The library's handlers are
    its own for the run only."""
    before = signal.getsignal(signal.SIGINT)
    real_unlink = os.unlink

    def stuck(path, *args, **kwargs):
        if str(path) == "obj00001.data" and (stopping.requested() is not None or always):
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", stuck)
    target = probing.DirectoryTarget(tmp_path, direct=False)
    real_write = target.write

    def write(key: str, data: memoryview) -> None:
        real_write(key, data)
        if key == "obj00001":
            os.kill(os.getpid(), signal.SIGINT)  # recorded; the run stops before its next operation

    monkeypatch.setattr(target, "write", write)
    always = False
    with pytest.raises(stopping.Interrupted) as stop:
        probing.run_probe(target, [4096], [1], objects=4, max_bytes=2**20, time_limit_s=60, direct=False)
    assert stop.value.exit_code == 130
    message = str(stop.value)
    assert message.startswith("stopped by Ctrl-C; could not remove everything it wrote (1 of its files left in ")
    assert message.endswith(f"): run 'kvsize probe {tmp_path} --clean'")
    assert target.run_dir is not None
    assert sorted(p.name for p in target.run_dir.iterdir()) == [MARKER, "obj00001.data"]  # the marker stays, for --clean
    assert signal.getsignal(signal.SIGINT) is before and stopping.requested() is None  # the caller's handler is back
    # without a stop, a failure to remove is said the same way
    always = True
    again = probing.DirectoryTarget(tmp_path, direct=False)
    with pytest.raises(ProbeError, match=r"failed: Permission denied \(obj00001.data\); could not remove everything it wrote"):
        probing.run_probe(again, [4096], [1], objects=4, max_bytes=2**20, time_limit_s=60, direct=False)


@pytest.mark.parametrize(
    ("value", "pause"), [("0.01", 0.01), ("abc", 0.0), ("nan", 0.0), ("inf", 0.0), ("1e308", 0.0), ("-1", 0.0), ("\udcff", 0.0)]
)
def test_the_clean_up_test_seam_takes_only_a_small_number(monkeypatch, value, pause):
    monkeypatch.setenv(PAUSE_VARIABLE, value)
    assert cleanup_pause() == pause


# --- Ctrl-C and SIGTERM at start-up and during a Dask cluster's start --------------------------------------------


def _entry(form: str) -> list[str]:
    if form == "console script":
        script = Path(sys.executable).parent / "kvsize"
        if not script.exists():
            pytest.skip("the kvsize console script is not installed beside this Python")
        return [sys.executable, "-X", "importtime", str(script)]
    return [sys.executable, "-X", "importtime", "-m", form]


def _stop_after_import(command: list[str], module: str, sig: int) -> tuple[int, list[str]]:
    """Run ``command`` and send ``sig`` the moment the import of ``module`` completes (Python's ``-X importtime``
    says so on stderr); its exit code and its stderr without the import-time lines."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: list[str] = []
    sent = False
    try:
        for line in process.stderr:
            if not line.startswith("import time:"):
                lines.append(line)
            elif not sent and line.rsplit("|", 1)[-1].strip() == module:
                process.send_signal(sig)
                sent = True
        process.wait(timeout=60)
    finally:
        process.kill()
    assert sent, f"{module} was never imported"
    return process.returncode, lines


MODEL = ("Qwen/Qwen3-4B-Instruct-2507", "--tp", "4", "--prompt", "100k")


@pytest.mark.parametrize(
    ("form", "module"),
    [
        ("console script", "typer"),
        ("console script", "pydantic"),
        ("console script", "kvsize.calls.sizing"),
        ("console script", "kvsize.model.sources"),
        ("kvsize", "kvsize.cli.app"),
        ("kvsize.cli", "kvsize.engines.lmcache_settings"),
    ],
)
def test_ctrl_c_during_start_up_is_one_line_and_exit_130(form, module):
    code, lines = _stop_after_import([*_entry(form), *MODEL], module, signal.SIGINT)
    assert (code, lines) == (130, ["kvsize: stopped by Ctrl-C\n"])


def test_sigterm_during_start_up_is_one_line_and_exit_143():
    code, lines = _stop_after_import([*_entry("console script"), *MODEL], "pydantic", signal.SIGTERM)
    assert (code, lines) == (143, ["kvsize: stopped by SIGTERM\n"])


def test_ctrl_c_during_a_dask_cluster_start(tmp_path: Path):
    """As in a terminal: Ctrl-C reaches every process of the group, the starting workers too."""
    pytest.importorskip("distributed")
    import psutil

    process = subprocess.Popen(
        [sys.executable, "-m", "kvsize", "probe", str(tmp_path), *SMALL, "--scheduler", "local:2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not psutil.Process(process.pid).children() and time.monotonic() < deadline:  # its workers are starting
            time.sleep(0.01)
        assert not list(tmp_path.iterdir()), "the signal must come while the cluster starts, before any client writes"
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # a second one changes nothing
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130 and stderr == "kvsize: probe stopped by Ctrl-C; nothing was written\n", stderr
    assert list(tmp_path.iterdir()) == []


def test_repeated_signals_stop_clean_between_two_runs_never_inside_one(tmp_path: Path):
    names = [run_named(dead_pid(), tag) for tag in ("0123abcd", "0123abce")]
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        mark(folder, int(name.split("-")[-2]))
        for index in range(80):
            (folder / f"obj{index:05d}.data").write_bytes(b"x")
    first = tmp_path / names[0]
    process = subprocess.Popen(
        [sys.executable, "-m", "kvsize.cli", "probe", str(tmp_path), "--clean"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PAUSE_VARIABLE: "0.01"},
    )
    try:
        deadline = time.monotonic() + 60
        while first.exists() and len(list(first.iterdir())) > 70 and time.monotonic() < deadline:
            time.sleep(0.005)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            process.send_signal(sig)
            time.sleep(0.01)
        assert len(list(first.iterdir())) > 10, "the signals must come while the first run is being removed"
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr == (
        f"kvsize: clean-up stopped by Ctrl-C; removed 1 of 2 leftover runs: run 'kvsize probe {tmp_path} --clean' again\n"
    )
    assert not first.exists() and len(list((tmp_path / names[1]).iterdir())) == 81  # the second untouched
