"""The probe's I/O pattern as a fio job file, and a profile fitted from fio's JSON output.

Storage teams measure with fio, across hosts (``fio --client``). ``kvsize probe DIR --emit fio`` writes the job file
that reproduces the probe on a directory: for each object size and concurrency level, a write phase (one file per
object, ``fsync`` on close, as LMCache's fs connector writes and renames) then a read phase of the same files with
as many jobs in flight (O_DIRECT with ``direct``; else fio drops the page cache, ``invalidate=1``), one I/O per file
(``bs`` = the file size), the files removed after the read. ``kvsize probe DIR --from-fio RESULT.json`` reads fio's
``--output-format=json`` (one host, or the "All clients" totals of a client/server run) and fits the same profile
as the probe (``kvsize.storage.probe.fit_profile``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from kvsize.errors import ProbeError, shown
from kvsize.files import read_text
from kvsize.storage.probe import ProbeReport, ProbeResult, fit_profile


def fio_job(directory: str, sizes: list[int], levels: list[int], *, objects: int, max_bytes: int, direct: bool) -> str:
    """A fio job file running the probe's sets on ``directory`` (sets of up to ``objects`` objects, ``max_bytes``).

    ``directory`` goes through ``kvsize.quoting.fio_value`` (``:`` escaped, a value fio would misread refused with
    one line) and the comments through ``fio_comment``; the ``--from-fio`` hint is a quoted shell line."""
    from kvsize.quoting import fio_comment, fio_value, shell_line

    value = fio_value(directory, "--emit fio: the target directory", field="target")
    how = "(kvsize probe --emit fio)"
    hint = shell_line(["kvsize", "probe", directory, "--from-fio", "result.json"])
    lines = [
        fio_comment(f"kvsize probe pattern for {directory}: one file per object, written then read back {how}"),
        fio_comment("run:  fio --output-format=json THIS_FILE > result.json   (or fio --client=HOST,... for many hosts)"),
        fio_comment(f"then: {hint}"),
        "[global]",
        "ioengine=psync",
        f"directory={value}",
        "group_reporting=1",
        "",
    ]
    for size in sizes:
        count = min(objects, max_bytes // size)
        if count < 1:
            raise ProbeError(f"object size {size:,} B is more than `max_bytes` {max_bytes:,} B: raise `max_bytes`")
        for level in levels:
            per_job = math.ceil(count / level)
            files = f"filename_format=kvsize-fio.{size}-{level}.$jobnum.$filenum"
            common = [f"bs={size}", f"filesize={size}", f"nrfiles={per_job}", f"numjobs={level}", files, "stonewall"]
            lines += [f"[write-{size}-{level}]", "rw=write", "fsync_on_close=1", *common, ""]
            read = ["rw=read", "direct=1" if direct else "invalidate=1", "unlink=1"]
            lines += [f"[read-{size}-{level}]", *read, *common, ""]
    return "\n".join(lines)


def _jobs(data: Any) -> list[dict[str, Any]]:
    """fio's job entries: a one-host run's ``jobs``, or a client/server run's per-host entries combined per job."""
    if not isinstance(data, dict):
        raise ProbeError("the fio result is not a JSON object: run fio with --output-format=json")
    if isinstance(data.get("client_stats"), list):
        by_name: dict[str, list[dict[str, Any]]] = {}
        for job in data["client_stats"]:
            if isinstance(job, dict) and job.get("jobname") != "All clients":
                by_name.setdefault(str(job.get("jobname")), []).append(job)
        return [_combined(name, hosts) for name, hosts in by_name.items()]
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise ProbeError("the fio result has no jobs: run fio with --output-format=json on a kvsize job file")
    return [job for job in jobs if isinstance(job, dict)]


def _combined(name: str, hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """One job run on several hosts at once, as one set: bandwidth and jobs add up; latency p50 and mean are the
    hosts' average, p99 their worst."""
    out: dict[str, Any] = {"jobname": name, "hosts": len(hosts)}
    for way in ("read", "write"):
        percentiles = [host.get(way, {}).get("clat_ns", {}).get("percentile", {}) for host in hosts]
        out[way] = {
            "bw_bytes": sum(_number(host, way, "bw_bytes") for host in hosts),
            "io_bytes": sum(_number(host, way, "io_bytes") for host in hosts),
            "clat_ns": {
                "mean": sum(_number(host, way, "clat_ns", "mean") for host in hosts) / len(hosts),
                "percentile": {
                    "50.000000": sum(float(p.get("50.000000", 0)) for p in percentiles) / len(hosts),
                    "99.000000": max(float(p.get("99.000000", 0)) for p in percentiles),
                },
            },
        }
    return out


def _number(job: dict[str, Any], *path: str) -> float:
    value: Any = job
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProbeError(f"fio job {shown(job.get('jobname'))} has no {'.'.join(path)}: is this a kvsize job's result?")
    try:
        number = float(value)
    except ValueError:
        raise ProbeError(f"fio job {shown(job.get('jobname'))}: {'.'.join(path)} = {shown(value)} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise ProbeError(f"fio job {shown(job.get('jobname'))}: {'.'.join(path)} = {shown(value)} is not a measurement")
    return number


def _result(write: dict[str, Any], read: dict[str, Any]) -> ProbeResult:
    """One set: the object size and jobs per host from the job's name (``read-SIZE-LEVEL``), the objects from the
    bytes read (client/server results carry no job options), the rest from fio's measurements."""
    try:
        _, size_text, level_text = str(read.get("jobname")).split("-")
        size, level = int(size_text), int(level_text) * int(read.get("hosts", 1))
    except ValueError:
        raise ProbeError(
            f"fio job {shown(read.get('jobname'))} is not named as kvsize names its jobs (read-SIZE-LEVEL)"
        ) from None
    objects = int(_number(read, "read", "io_bytes")) // size if size else 0
    read_bw, write_bw = _number(read, "read", "bw_bytes"), _number(write, "write", "bw_bytes")
    if not (size and level and objects and read_bw and write_bw):
        raise ProbeError(f"fio job {shown(read.get('jobname'))} moved no data: check the run")
    percentiles = read.get("read", {}).get("clat_ns", {}).get("percentile", {})
    mean = _number(read, "read", "clat_ns", "mean") / 1e9
    total = size * objects
    return ProbeResult(
        object_bytes=size,
        concurrency=level,
        objects=objects,
        write_seconds=total / write_bw,
        read_seconds=total / read_bw,
        write_bytes_per_s=write_bw,
        read_bytes_per_s=read_bw,
        read_ops_per_s=read_bw / size,
        read_latency_p50_s=float(percentiles.get("50.000000", mean * 1e9)) / 1e9,
        read_latency_p99_s=float(percentiles.get("99.000000", mean * 1e9)) / 1e9,
        read_latency_mean_s=mean,
    )


def report_from_fio(path: Path, target: str) -> ProbeReport:
    """The probe report (sets and fitted profile) that fio's JSON output of a ``--emit fio`` job file gives."""
    text = read_text(path, "fio result")
    try:
        data = json.loads(text[text.find("{") :] if "{" in text else text)  # fio may print notes before the JSON
    except (ValueError, RecursionError):
        raise ProbeError(f"fio result {path} is not JSON: run fio with --output-format=json") from None
    jobs = {str(job.get("jobname")): job for job in _jobs(data)}
    results = [
        _result(jobs[name.replace("read-", "write-", 1)], job)
        for name, job in sorted(jobs.items())
        if name.startswith("read-") and name.replace("read-", "write-", 1) in jobs
    ]
    if not results:
        raise ProbeError(f"fio result {path} has no read-/write- job pairs of a kvsize job file (kvsize probe --emit fio)")
    results.sort(key=lambda r: (r.object_bytes, r.concurrency))
    profile = fit_profile(f"{target} (fio)", results)
    direct = any(str(job.get("job options", {}).get("direct")) == "1" for job in jobs.values()) or (
        str(data.get("global options", {}).get("direct")) == "1" if isinstance(data, dict) else False
    )
    note = f"fitted from fio's measurements in {path}"
    return ProbeReport(target=target, direct=direct, results=tuple(results), profile=profile, notes=(note,), complete=True)
