"""Bounded work on hostile files: a FIFO, a device or a folder is refused without blocking, a file past the size limit
is refused unread, a YAML alias bomb is refused before it expands, figures from profiles and fio results stay in
physical ranges, and ``--format json`` never carries NaN or infinity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kvsize
from kvsize.files import MAX_FILE_BYTES, MAX_YAML_NODES, read_yaml

M = "Qwen/Qwen3-4B-Instruct-2507"


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvsize: error: ") and len(lines[0]) <= 320, result.stderr
    return lines[0]


def kvsize_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a process of its own: a read that blocks fails the test by its timeout instead of hanging it."""
    clean = {key: value for key, value in os.environ.items() if key not in ("KVSIZE_CATALOG", "LMCACHE_CONFIG_FILE")}
    return subprocess.run(
        [sys.executable, "-m", "kvsize", *args],
        env={**clean, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- files that are not regular files ------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    os.mkfifo(path)  # no writer ever opens it: a blocking open would wait forever
    return path


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("check", M, "--lmcache-config", "{fifo}"), {}),
        ((M, "--catalog", "{fifo}"), {}),
        ((M, "--backend", "{fifo}"), {}),
        (("probe", "{tmp}", "--from-fio", "{fifo}"), {}),
        (("{fifo}",), {}),
        ((M,), {"KVSIZE_CATALOG": "{fifo}"}),
        (("check", M), {"LMCACHE_CONFIG_FILE": "{fifo}"}),
        (("probe", "{tmp}", "--object-sizes", "4KiB", "--concurrency", "1", "--objects", "1", "--save-profile", "{fifo}"), {}),
    ],
)
def test_a_fifo_with_no_writer_is_refused_not_waited_on(fifo: Path, args, env):
    def filled(text: str) -> str:
        return text.format(fifo=fifo, tmp=fifo.parent)

    result = kvsize_process(*map(filled, args), env={key: filled(value) for key, value in env.items()})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "is a pipe" in lines[0] or "has no config.json" in lines[0], lines[0]


def test_a_device_and_a_folder_are_refused(run, tmp_path: Path):
    assert "is not a regular file" in one_line(run("check", M, "--lmcache-config", "/dev/zero"))
    assert "is a folder" in one_line(run("check", M, "--lmcache-config", str(tmp_path)))
    assert "is not a regular file" in one_line(run(M, "--catalog", "/dev/null"))


def test_a_file_past_the_size_limit_is_refused_unread(run, tmp_path: Path):
    big = tmp_path / "lmcache.yaml"
    with big.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: no time spent writing it
    assert f"is larger than {MAX_FILE_BYTES // 2**20} MiB" in one_line(run("check", M, "--lmcache-config", str(big)))


# --- YAML alias bombs ----------------------------------------------------------------------------------------


def bomb(levels: int, width: int = 10) -> str:
    """A YAML value whose aliases expand ``width ** levels`` times ("billion laughs")."""
    lines = ["- &l0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"- &l{n} [" + ", ".join([f"*l{n - 1}"] * width) + "]" for n in range(1, levels)]
    return "\n".join("    " + line for line in lines) + "\n"


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("{M}", "--backend", "{file}"), "name"),
        (("check", "{M}", "--lmcache-config", "{file}"), "chunk_size"),
        (("check", "{M}", "--lmcache-config", "{file}"), "remote_url"),
        (("{M}", "--catalog", "{file}"), "models"),
    ],
)
def test_an_alias_bomb_is_refused_before_it_expands(run, tmp_path: Path, args, key):
    file = tmp_path / "bomb.yaml"
    file.write_text(f"{key}:\n{bomb(7)}")  # 10^7 values once expanded
    line = one_line(run(*(part.format(M=M, file=file) for part in args)))
    assert f"its aliases expand it past {MAX_YAML_NODES:,} values" in line and str(file) in line


def test_a_billion_laughs_is_refused_at_once(tmp_path: Path):
    file = tmp_path / "bomb.yaml"
    file.write_text(f"name:\n{bomb(9)}")  # 10^9 values expanded: minutes and gigabytes
    with pytest.raises(kvsize.ConfigError, match="alias bomb"):
        read_yaml(file, "backend profile")


def test_an_alias_to_its_own_anchor_is_refused(run, tmp_path: Path):
    file = tmp_path / "loop.yaml"
    file.write_text("name: &loop [1, *loop]\nlatency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 4\n")
    assert "refers to its own anchor" in one_line(run(M, "--backend", str(file)))


def test_a_few_aliases_still_read(tmp_path: Path):
    file = tmp_path / "ok.yaml"
    file.write_text("base: &b {chunk_size: 256}\nother: *b\nlist: [*b, *b]\n")
    assert read_yaml(file, "settings") == {
        "base": {"chunk_size": 256},
        "other": {"chunk_size": 256},
        "list": [{"chunk_size": 256}] * 2,
    }


# --- figures from profiles -----------------------------------------------------------------------------------

PROFILE = "latency: 1ms\nstream_bandwidth: 1GB/s\nconcurrency: 4\n"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("latency: 1.0e+300", "latency = 1e+300 must be 0 to 3,600 s"),
        ("latency: 2h", "latency = '2h' must be 0 to 3,600 s"),
        ("stream_bandwidth: 1.0e-300", "stream_bandwidth = 1e-300 must be a finite number more than 0, 1 B/s to 10 PB/s"),
        ("stream_bandwidth: 1.0e+300", "stream_bandwidth = 1e+300 must be a finite number"),
        ("aggregate_bandwidth: 1000PB/s", "aggregate_bandwidth = '1000PB/s' must be a finite number"),
        ("concurrency: 99999999999999999999", "concurrency = 99999999999999999999 must be a whole number 1 to 100,000"),
        ("max_requests_per_s: 1.0e-300", "max_requests_per_s = 1e-300 must be a finite number more than 0"),
        ("max_requests_per_s: 1.0e+13", "max_requests_per_s = 10000000000000.0 must be a finite number"),
        ("part_size: 2PiB", "part_size = '2PiB' must be a whole number of bytes, 1 B to 1 TiB"),
        ("max_value_size: 1.5", "max_value_size = 1.5 must be a whole number of bytes"),
        ("aggregate_bandwidth_by_concurrency: {1: 1.0e+300}", "aggregate_bandwidth_by_concurrency[1] = 1e+300 must be"),
        ("aggregate_bandwidth_by_object_size: {2PiB: {1: 1GB/s}}", "aggregate_bandwidth_by_object_size = '2PiB' must be"),
    ],
)
def test_profile_figures_are_physically_bounded(run, tmp_path: Path, line, shown):
    file = tmp_path / "extreme.yaml"
    file.write_text(PROFILE + line + "\n")
    error = one_line(run(M, "--backend", str(file), "--format", "json"))
    assert f"backend profile {file}: {shown}" in error, error


def test_library_profiles_are_bounded_and_strict():
    for figures in (
        {"latency_s": 1e300},
        {"stream_bytes_per_s": 5e-324},
        {"concurrency": True},
        {"concurrency": 10**30},
        {"latency_s": "0.1"},
        {"aggregate_by_concurrency": {1: float("inf")}},
    ):
        with pytest.raises(kvsize.BackendError) as caught:
            kvsize.BackendProfile(name="x", **figures)
        assert caught.value.field == next(iter(figures)), (figures, caught.value.field)


# --- fio results ---------------------------------------------------------------------------------------------


def fio_result(read: object, write: object = None, **extra: object) -> str:
    jobs = [{"jobname": "read-4096-1", "read": read}, {"jobname": "write-4096-1", "write": write or {"bw_bytes": 10**6}}]
    return json.dumps({"jobs": jobs, **extra})


GOOD_READ = {
    "bw_bytes": 10**6,
    "io_bytes": 40960,
    "clat_ns": {"mean": 4000, "percentile": {"50.000000": 3000, "99.000000": 9000}},
}


def with_read(**changes: object) -> dict[str, object]:
    read = json.loads(json.dumps(GOOD_READ))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = read
        for key in parents:
            node = node[key]
        node[last.replace("p", "", 1) + ".000000" if last in ("p50", "p99") else last] = value
    return read


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (fio_result(with_read(clat_ns__percentile__p50=float("nan"))), "percentile.50.000000 = nan is not a measurement"),
        (fio_result(with_read(clat_ns__percentile__p99=float("inf"))), "percentile.99.000000 = inf is not a measurement"),
        (fio_result(with_read(clat_ns__percentile__p50=-5)), "percentile.50.000000 = -5 is not a measurement"),
        (fio_result(with_read(clat_ns__mean=-1)), "clat_ns.mean = -1 is not a measurement"),
        (fio_result(with_read(clat_ns__mean=4e12)), "clat_ns.mean = 4000000000000.0 is not a measurement"),
        (fio_result(with_read(bw_bytes=1e17)), "read.bw_bytes = 1e+17 is not a measurement"),
        (fio_result(with_read(bw_bytes="Infinity")), "read.bw_bytes = 'Infinity' is not a measurement"),
        (fio_result(with_read(io_bytes=-40960)), "read.io_bytes = -40960 is not a measurement"),
        (fio_result(with_read(clat_ns__percentile=[1, 2])), "has no read.clat_ns.percentile.50.000000"),
        (fio_result(with_read(clat_ns="fast")), "has no read.clat_ns.mean"),
        (fio_result([1, 2]), "has no read.io_bytes"),
        (fio_result("read"), "has no read.io_bytes"),
        (fio_result(GOOD_READ, write=[1]), "has no write.bw_bytes"),
        (fio_result(GOOD_READ, **{"global options": [1]}), None),
        (
            json.dumps({"client_stats": [{"jobname": "read-4096-1", "read": [1]}, {"jobname": "write-4096-1", "write": "x"}]}),
            "has no read.clat_ns.percentile.50.000000",
        ),
        (json.dumps({"jobs": [{"jobname": "read-٤٠٩٦-1", "read": GOOD_READ}, {"jobname": "write-٤٠٩٦-1"}]}), "is not named"),
        (
            json.dumps({"jobs": [{"jobname": "read-4096-1", "read": GOOD_READ, "hosts": -3}, {"jobname": "write-4096-1"}]}),
            "is not named",
        ),
        (fio_result(with_read(bw_bytes=0.5)), "moved no data"),
    ],
)
def test_malformed_fio_results_are_one_line_naming_file_field_and_value(run, tmp_path: Path, content, message):
    result_file = tmp_path / "result.json"
    result_file.write_text(content)
    result = run("probe", str(tmp_path), "--from-fio", str(result_file), "--format", "json")
    if message is None:  # a malformed part kvsize does not need: read past, the report is finite
        assert result.exit_code == 0, result.stderr
        json.loads(result.stdout)
        return
    line = one_line(result)
    assert f"fio result {result_file}" in line and message in line, line


def test_a_fit_to_infinity_is_refused(run, tmp_path: Path):
    # Two sizes whose mean latencies differ by one nanosecond: the fitted stream bandwidth is past any storage.
    jobs = []
    for size in (4096, 2**30):
        read = {"bw_bytes": 10**9, "io_bytes": size * 4, "clat_ns": {"mean": 1000 + (size > 4096) * 1e-9}}
        jobs += [{"jobname": f"read-{size}-1", "read": read}, {"jobname": f"write-{size}-1", "write": {"bw_bytes": 10**9}}]
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps({"jobs": jobs}))
    line = one_line(run("probe", str(tmp_path), "--from-fio", str(result_file), "--format", "json"))
    assert "the fitted stream_bytes_per_s must be" in line and str(result_file) in line


def test_json_output_never_carries_a_non_finite_figure(run, monkeypatch):
    from kvsize.results import SizeResult

    real = SizeResult.model_dump

    def poisoned(self, **kwargs):
        data = real(self, **kwargs)
        data["bytes_per_token"] = float("nan")
        return data

    monkeypatch.setattr(SizeResult, "model_dump", poisoned)
    line = one_line(run(M, "--format", "json"))
    assert "not finite (NaN or infinity), which JSON cannot carry" in line


# --- --search over a wide range ------------------------------------------------------------------------------


def test_a_wide_search_is_capped_and_says_so():
    import time

    from kvsize.storage.search import MAX_SEARCH_CANDIDATES, search_step

    start, step, multiples = search_step(16, 1_000_000_000, 16)
    assert (start, multiples) == (16, 62_500_000) and step % 16 == 0
    assert len(range(start, 1_000_000_000 + 1, step)) <= MAX_SEARCH_CANDIDATES
    assert search_step(16, 8192, 16) == (16, 16, 512)  # a range that fits is searched block by block
    began = time.monotonic()
    result = kvsize.size(M, backend=["s3"], search=True, chunk_sizes=[16, 1_000_000_000], prompt=1_000_000_000)
    assert time.monotonic() - began < 60  # minutes before the cap
    note = f"`search` timed chunk sizes {step:,} tokens apart between 16 and 1,000,000,000, not every multiple"
    assert any(warning.startswith(note) for warning in result.warnings), result.warnings
    picked = [row.chunk_tokens for row in result.rows]
    assert all(chunk in (16, 1_000_000_000) or (chunk - 16) % step == 0 for chunk in picked)


def test_a_narrow_search_tries_every_multiple(run):
    result = run(M, "--backend", "s3", "--search", "--chunk-sizes", "256,4096", "--prompt", "100k")
    assert result.exit_code == 0 and "--search timed" not in result.stderr
