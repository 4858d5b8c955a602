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
import re
from pathlib import Path
from typing import Any

from kvsize.errors import ProbeError, shown
from kvsize.files import read_text
from kvsize.storage.backends import MAX_CONCURRENCY, MAX_OBJECT_BYTES, figure_problem
from kvsize.storage.probe import FittedProfile, ProbeReport, ProbeResult, fit_profile


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


_HIGHEST = {
    "bw_bytes": (1e16, "B/s (10 PB/s)"),
    "io_bytes": (2.0**60, "B (1 EiB)"),
    "clat_ns": (3600e9, "ns (an hour)"),
}
"""The most a fio measurement can physically be: 10 PB/s, 1 EiB moved, an hour per read (in ns)."""
_JOB_NAME = re.compile(r"read-([0-9]{1,16})-([0-9]{1,6})")


def _at(job: Any, *path: str) -> Any:
    """``job[path[0]][path[1]]...``, None where a level is missing or is not an object."""
    value = job
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _malformed(job: Any, path: tuple[str, ...]) -> bool:
    """Whether a level above ``path``'s last key is there but not an object (a list or text where fio writes one)."""
    value = job
    for key in path[:-1]:
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return False
        if not isinstance(value, dict):
            return True
    return False


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
        p50 = [_number(host, way, "clat_ns", "percentile", "50.000000", default=0.0) for host in hosts]
        p99 = [_number(host, way, "clat_ns", "percentile", "99.000000", default=0.0) for host in hosts]
        out[way] = {
            "bw_bytes": sum(_number(host, way, "bw_bytes") for host in hosts),
            "io_bytes": sum(_number(host, way, "io_bytes") for host in hosts),
            "clat_ns": {
                "mean": sum(_number(host, way, "clat_ns", "mean") for host in hosts) / len(hosts),
                "percentile": {"50.000000": sum(p50) / len(hosts), "99.000000": max(p99)},
            },
        }
    return out


def _number(job: dict[str, Any], *path: str, default: float | None = None) -> float:
    """fio's measurement at ``path``: a finite number from 0 to what storage can physically do (``_HIGHEST``)."""
    value = _at(job, *path)
    if value is None and default is not None and not _malformed(job, path):
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProbeError(f"fio job {shown(job.get('jobname'))} has no {'.'.join(path)}: is this a kvsize job's result?")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ProbeError(f"fio job {shown(job.get('jobname'))}: {'.'.join(path)} = {shown(value)} is not a number") from None
    high, unit = _HIGHEST["clat_ns" if "clat_ns" in path else path[-1]]
    if not math.isfinite(number) or not 0 <= number <= high:
        raise ProbeError(
            f"fio job {shown(job.get('jobname'))}: {'.'.join(path)} = {shown(value)} is not a measurement "
            f"(a finite number from 0 to {high:g} {unit})"
        )
    return number


def _result(write: dict[str, Any], read: dict[str, Any]) -> ProbeResult:
    """One set: the object size and jobs per host from the job's name (``read-SIZE-LEVEL``), the objects from the
    bytes read (client/server results carry no job options), the rest from fio's measurements."""
    named = _JOB_NAME.fullmatch(str(read.get("jobname")))
    hosts = read.get("hosts", 1)
    if not named or isinstance(hosts, bool) or not isinstance(hosts, int) or not 1 <= hosts <= MAX_CONCURRENCY:
        raise ProbeError(f"fio job {shown(read.get('jobname'))} is not named as kvsize names its jobs (read-SIZE-LEVEL)")
    size, level = int(named.group(1)), int(named.group(2)) * hosts
    if not size <= MAX_OBJECT_BYTES or not level <= MAX_CONCURRENCY:
        raise ProbeError(
            f"fio job {shown(read.get('jobname'))}: object size {size:,} B or {level:,} jobs in flight is past what kvsize "
            f"probes (1 PiB, {MAX_CONCURRENCY:,})"
        )
    objects = int(_number(read, "read", "io_bytes")) // size if size else 0
    read_bw, write_bw = _number(read, "read", "bw_bytes"), _number(write, "write", "bw_bytes")
    if not (size and level and objects and read_bw >= 1 and write_bw >= 1):
        raise ProbeError(f"fio job {shown(read.get('jobname'))} moved no data: check the run")
    mean_ns = _number(read, "read", "clat_ns", "mean")
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
        read_latency_p50_s=_number(read, "read", "clat_ns", "percentile", "50.000000", default=mean_ns) / 1e9,
        read_latency_p99_s=_number(read, "read", "clat_ns", "percentile", "99.000000", default=mean_ns) / 1e9,
        read_latency_mean_s=mean_ns / 1e9,
    )


def report_from_fio(path: Path, target: str) -> ProbeReport:
    """The probe report (sets and fitted profile) that fio's JSON output of a ``--emit fio`` job file gives."""
    text = read_text(path, "fio result")
    try:
        data = json.loads(text[text.find("{") :] if "{" in text else text)  # fio may print notes before the JSON
    except (ValueError, RecursionError):
        raise ProbeError(f"fio result {path} is not JSON: run fio with --output-format=json") from None
    try:
        jobs = {str(job.get("jobname")): job for job in _jobs(data)}
        results = [
            _result(jobs[name.replace("read-", "write-", 1)], job)
            for name, job in sorted(jobs.items())
            if name.startswith("read-") and name.replace("read-", "write-", 1) in jobs
        ]
    except ProbeError as error:
        raise ProbeError(f"fio result {path}: {error}") from None
    if not results:
        raise ProbeError(f"fio result {path} has no read-/write- job pairs of a kvsize job file (kvsize probe --emit fio)")
    results.sort(key=lambda r: (r.object_bytes, r.concurrency))
    profile = fit_profile(f"{target} (fio)", results)
    _check_fit(path, profile)
    direct = any(str(_at(job, "job options", "direct")) == "1" for job in jobs.values()) or (
        str(_at(data, "global options", "direct")) == "1"
    )
    note = f"fitted from fio's measurements in {path}"
    return ProbeReport(target=target, direct=direct, results=tuple(results), profile=profile, notes=(note,), complete=True)


def _check_fit(path: Path, profile: FittedProfile) -> None:
    """The fitted figures are in the ranges a profile may hold (a fit over noise can give an infinite bandwidth)."""
    figures = [(field, getattr(profile, field)) for field in ("latency_s", "stream_bytes_per_s", "aggregate_bytes_per_s")]
    figures += [("aggregate_bytes_per_s", rate) for rate in profile.aggregate_by_concurrency.values()]
    for field, value in figures:
        if value is not None and (problem := figure_problem(field, value)):
            raise ProbeError(
                f"fio result {path}: the fitted {field} {problem}, got {shown(value)}: its sets do not fit a storage "
                "model; measure larger object sizes or check the run"
            )
