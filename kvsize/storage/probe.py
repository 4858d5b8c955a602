"""``kvsize probe``: measure a storage target the way LMCache uses it, and fit the time model.

For each object size and concurrency level it writes N objects as LMCache's connector
does (a directory: a temp file, then a rename, as ``FSConnector.put``; S3: one PUT per
object; Redis: two keys per chunk, ``<key>kv_bytes`` and ``<key>metadata``), makes
sure the reads will come from the storage (``--direct`` opens with O_DIRECT; otherwise
the page cache is dropped with ``posix_fadvise(DONTNEED)``, and the run says when that
is not possible), reads them back with C workers, records per-operation latency and
throughput, and deletes them.

The fit: per-op latency at concurrency 1 against object size is ``L + s / b`` (a line:
intercept L, slope 1/b); the aggregate bandwidth B is the best total read throughput
over all the sets at the highest level (bytes read / time reading). It needs at least two object sizes to separate L from b.

Safety: every object goes under a fresh run folder or prefix; only what this run
created is ever removed, on success, error, Ctrl-C and SIGTERM; free space is checked
before writing; ``--max-bytes`` bounds one object set and ``--time-limit`` the run.
Signals: the run is ``kvsize.stopping.held`` work. Ctrl-C or SIGTERM is recorded, the run stops
before its next operation and cleans up; a second or third signal cannot cut the clean-up short.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvsize import stopping
from kvsize.errors import KvsizeError, ProbeError, shown
from kvsize.storage.network_targets import RedisTarget, S3Target
from kvsize.storage.targets import DirectoryTarget, Interrupted, Target, open_target, read_buffer_bytes

__all__ = [
    "DirectoryTarget",
    "FittedProfile",
    "Interrupted",
    "ProbeReport",
    "ProbeResult",
    "RedisTarget",
    "S3Target",
    "Target",
    "fit_profile",
    "open_target",
    "probe_plan",
    "profile_yaml",
    "run_probe",
]


class ProbeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    object_bytes: int
    concurrency: int
    objects: int
    write_seconds: float
    read_seconds: float
    write_bytes_per_s: float
    read_bytes_per_s: float
    read_ops_per_s: float
    read_latency_p50_s: float
    read_latency_p99_s: float
    read_latency_mean_s: float

    @classmethod
    def timed(cls, size: int, level: int, objects: int, write_s: float, read_s: float, latencies: list[float]) -> ProbeResult:
        """A set's figures from its write and read seconds and its per-read latencies."""
        total = size * objects
        return cls(
            object_bytes=size,
            concurrency=level,
            objects=objects,
            write_seconds=write_s,
            read_seconds=read_s,
            write_bytes_per_s=total / write_s,
            read_bytes_per_s=total / read_s,
            read_ops_per_s=objects / read_s,
            read_latency_p50_s=statistics.median(latencies),
            read_latency_p99_s=_percentile(latencies, 0.99),
            read_latency_mean_s=statistics.fmean(latencies),
        )


class FittedProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    source: str
    latency_s: float | None
    stream_bytes_per_s: float | None
    aggregate_bytes_per_s: float
    concurrency: int
    notes: tuple[str, ...]
    max_requests_per_s: float | None = None
    """The request rate R, measured fleet-wide (``--scheduler``); None from one machine."""
    aggregate_by_concurrency: dict[int, float] = {}
    """B at each level probed (all of a level's sets: bytes read over time reading): the model reads it at the load's
    own requests in flight."""
    aggregate_by_object_size: dict[int, dict[int, float]] = {}
    """B per object size and level (each set alone): the model reads it for the size nearest the load's objects."""
    clients_measured: int = 1
    """How many clients measured B and R at once."""


class ProbeReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    direct: bool
    results: tuple[ProbeResult, ...]
    profile: FittedProfile
    notes: tuple[str, ...]
    complete: bool
    clients: list[Any] | None = None
    """With ``--scheduler``: one entry per client, its own results (``ClientReport``); null from one machine."""
    fleet: Any | None = None
    """With ``--scheduler``: the fleet-wide sets and the fit of B and R (``FleetReport``); null from one machine."""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def check_stop() -> None:
    """Raise ``Interrupted`` when Ctrl-C or SIGTERM came (work in ``stopping.held()`` asks between operations); its
    message holds until the work has cleaned up and says what is left."""
    if stopping.requested() is not None:
        raise stopping.interrupted("nothing was written")


def close_target(target: Target) -> str | None:
    """Remove what the run wrote; None when all is gone, else what is left and the command that removes it. Run in
    ``stopping.held()``: no signal cuts it short."""
    try:
        target.close()
    except Exception as error:
        what = str(error) if isinstance(error, KvsizeError) else f"{type(error).__name__}: {shown(str(error), 80)}"
        return f"could not remove everything it wrote ({what}): run 'kvsize probe {shlex.quote(target.name)} --clean'"
    return None


def ended(target: Target, failure: BaseException | None, left: str | None) -> None:
    """How a run that cleaned up ends: ``Interrupted`` after a stop, ``ProbeError`` after a failure or a clean-up
    that could not finish (each saying what is left), else nothing."""
    what = left or "removed everything it wrote"
    if stopping.requested() is not None or isinstance(failure, (KeyboardInterrupt, Interrupted)):
        raise stopping.interrupted(what) from None
    if isinstance(failure, KvsizeError) and not left:
        raise failure
    if isinstance(failure, KvsizeError):
        raise ProbeError(f"{failure}; {left}") from None
    if isinstance(failure, OSError):  # a read-only target, a full disk, a vanished mount
        cause = f"{failure.strerror or failure}" + (f" ({failure.filename})" if failure.filename else "")
        raise ProbeError(f"probe of {target.name} failed: {cause}; {what}") from None
    if isinstance(failure, Exception):  # the storage client's own errors (S3, Redis)
        raise ProbeError(f"probe of {target.name} failed: {type(failure).__name__}: {shown(str(failure), 100)}; {what}") from None
    if failure is not None:
        raise failure
    if left:
        raise ProbeError(f"probe of {target.name} measured, but {left}")


def probe_plan(object_sizes: list[int], levels: list[int], objects: int, max_bytes: int) -> list[tuple[int, int, int]]:
    """Every (object size, concurrency, objects) set: ``objects`` each, fewer when ``max_bytes`` says so."""
    plans: list[tuple[int, int, int]] = []
    for size in object_sizes:
        count = min(objects, max_bytes // size)
        if count < 1:
            raise ProbeError(f"object size {size:,} B is more than `max_bytes` {max_bytes:,} B: raise `max_bytes`")
        plans.extend((size, level, count) for level in levels)
    return plans


def run_probe(
    target: Target,
    object_sizes: list[int],
    concurrency_levels: list[int],
    *,
    objects: int,
    max_bytes: int,
    time_limit_s: float,
    direct: bool,
    progress: Callable[[str, int, int], None] | None = None,
) -> ProbeReport:
    """Measure every (size, level) set within the bounds; clean up whatever happens."""
    plans = probe_plan(object_sizes, concurrency_levels, objects, max_bytes)
    notes: list[str] = []
    results: list[ProbeResult] = []
    complete = True
    with stopping.held():
        failure: BaseException | None = None
        try:
            complete = _measure_all(target, plans, time_limit_s, progress, results, notes)
        except BaseException as error:  # every way out cleans up first
            failure = error
        ended(target, failure, close_target(target))
    if progress:
        progress("done", len(plans), len(plans))
    if target.cache_note:
        notes.append(target.cache_note)
    if direct:
        notes.append("reads used O_DIRECT (writes are buffered, then fsync'd)")
    if not results:
        raise ProbeError("the probe measured nothing within `time_limit`: raise it or lower `max_bytes`")
    profile = fit_profile(target.name, results)
    return ProbeReport(
        target=target.name, direct=direct, results=tuple(results), profile=profile, notes=tuple(notes), complete=complete
    )


def _measure_all(
    target: Target,
    plans: list[tuple[int, int, int]],
    time_limit_s: float,
    progress: Callable[[str, int, int], None] | None,
    results: list[ProbeResult],
    notes: list[str],
) -> bool:
    """Prepare the target and measure every set into ``results`` until done or ``time_limit_s``; True when all ran."""
    started = time.monotonic()
    check_stop()
    target.prepare(max(size * count for size, _, count in plans), read_buffer_bytes(plans))
    for index, (size, level, count) in enumerate(plans):
        check_stop()
        if time.monotonic() - started > time_limit_s:
            notes.append(f"--time-limit {time_limit_s:g} s reached: {len(plans) - index} of {len(plans)} sets not measured")
            return False
        if progress:
            progress(f"{size:,} B x {count} at concurrency {level}", index, len(plans))
        results.append(_measure(target, size, level, count))
    return True


def _measure(target: Target, size: int, level: int, count: int) -> ProbeResult:
    payload = memoryview(os.urandom(size))  # incompressible, like KV bytes
    keys = [f"obj{index:05d}" for index in range(count)]
    latencies: list[float] = []
    try:
        write_seconds = _elapsed(run_pool(level, lambda key: target.write(key, payload), keys))
        target.drop(keys)
        target.warm(level, size)
        read_seconds = _elapsed(run_pool(level, timed_reader(target, size, latencies), keys))
    finally:
        target.remove(keys)
    return ProbeResult.timed(size, level, count, write_seconds, read_seconds, latencies)


def timed_reader(target: Target, size: int, latencies: list[float]) -> Callable[[str], None]:
    """A read of one ``size``-byte object that appends its seconds to ``latencies`` and fails on a short read."""

    def read(key: str) -> None:
        op = time.perf_counter()
        got = target.read(key, size)
        latencies.append(time.perf_counter() - op)
        if got != size:
            raise ProbeError(f"{target.name}: read {got:,} B of a {size:,} B object")

    return read


def run_pool(
    workers: int, work: Callable[[str], None], keys: list[str], clock: Callable[[], float] = time.perf_counter
) -> tuple[float, float]:
    """Run ``work`` over ``keys`` with ``workers`` in flight (each takes the next key when done with one); (start, end)
    on ``clock``. After a stop (Ctrl-C, SIGTERM) or a failure no operation starts, the ones in flight finish, and
    the first failure is raised: clean-up follows at once, with nothing still writing."""
    pending = iter(keys)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while not failures:
            with lock:
                key = next(pending, None)
            if key is None:
                return
            try:
                check_stop()
                work(key)
            except BaseException as error:
                failures.append(error)

    threads = [threading.Thread(target=worker, name=f"kvsize-probe-{index}", daemon=True) for index in range(workers)]
    begin = clock()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as error:  # an exception in this thread (Ctrl-C outside held work): the others stop too
        failures.append(error)
        for thread in threads:
            thread.join()
        raise
    end = clock()
    if failures:
        raise failures[0]
    return begin, end


def _elapsed(span: tuple[float, float]) -> float:
    return span[1] - span[0]


def fit_profile(name: str, results: list[ProbeResult]) -> FittedProfile:
    """L and b from the lowest-concurrency latencies across sizes (least squares); B from all the highest
    level's sets together."""
    notes: list[str] = []
    lowest = min(r.concurrency for r in results)
    single = sorted((r for r in results if r.concurrency == lowest), key=lambda r: r.object_bytes)
    sizes = [r.object_bytes for r in single]
    times = [r.read_latency_mean_s for r in single]
    latency: float | None = None
    stream: float | None = None
    if len(set(sizes)) >= 2:
        mean_s, mean_t = statistics.fmean(sizes), statistics.fmean(times)
        slope = sum((s - mean_s) * (t - mean_t) for s, t in zip(sizes, times, strict=True)) / sum(
            (s - mean_s) ** 2 for s in sizes
        )
        if slope > 0:
            stream = 1 / slope
            latency = max(0.0, mean_t - slope * mean_s)
            if mean_t - slope * mean_s < 0:
                notes.append("the fitted latency was below 0 (noise at small sizes): set to 0")
        else:
            notes.append("read time did not grow with object size: bandwidth could not be fitted; give larger sizes")
    else:
        notes.append("one object size: latency and bandwidth cannot be told apart; probe two sizes or more")
    if lowest != 1:
        notes.append(f"the fit used concurrency {lowest}: include 1 in --concurrency for a per-stream figure")
    # B: the aggregate at the highest level, over all its sets (bytes read / time reading): short
    # bursts and single large sets ride on device and cache burst rates; the mix is what a load sees.
    top = max(r.concurrency for r in results)
    read: dict[int, list[float]] = {}  # per level: bytes read, seconds reading
    by_size: dict[int, dict[int, float]] = {}
    for r in results:
        totals = read.setdefault(r.concurrency, [0.0, 0.0])
        totals[0] += r.object_bytes * r.objects
        totals[1] += r.read_seconds
        by_size.setdefault(r.object_bytes, {})[r.concurrency] = r.object_bytes * r.objects / r.read_seconds
    by_level = {level: total / seconds for level, (total, seconds) in sorted(read.items())}
    aggregate = by_level[top]
    return FittedProfile(
        name=f"probe {name}",
        source=f"kvsize probe {name}, {time.strftime('%Y-%m-%d')}",
        latency_s=latency,
        stream_bytes_per_s=stream,
        aggregate_bytes_per_s=aggregate,
        concurrency=top,
        notes=tuple(notes),
        aggregate_by_concurrency=by_level,
        aggregate_by_object_size=by_size,
    )


def profile_yaml(profile: FittedProfile) -> str:
    """A backend profile that ``kvsize MODEL --backend FILE`` reads (kvsize.storage.load_profile)."""
    lines = [
        f"# Measured by kvsize probe. {' '.join(profile.notes)}".rstrip(),
        f"name: {json.dumps(profile.name)}",
        f"source: {json.dumps(profile.source)}",
    ]
    if profile.latency_s is not None:
        lines.append(f"latency: {shown(profile.latency_s)}   # seconds")
    if profile.stream_bytes_per_s is not None:
        lines.append(f"stream_bandwidth: {shown(profile.stream_bytes_per_s)}   # bytes/s")
    lines.append(f"aggregate_bandwidth: {shown(profile.aggregate_bytes_per_s)}   # bytes/s, at the highest level probed")
    lines.append(f"concurrency: {profile.concurrency}   # the highest level probed; set your connector's")
    if len(profile.aggregate_by_concurrency) > 1:
        lines.append("aggregate_bandwidth_by_concurrency:   # bytes/s at each level probed: B is read at the load's own level")
        lines += [f"  {level}: {shown(rate)}" for level, rate in sorted(profile.aggregate_by_concurrency.items())]
    if len(profile.aggregate_by_object_size) > 1 or len(profile.aggregate_by_concurrency) > 1:
        lines.append("aggregate_bandwidth_by_object_size:   # bytes/s per object size (B) and level: the nearest size is used")
        for size, levels in sorted(profile.aggregate_by_object_size.items()):
            lines.append(f"  {size}: {{{', '.join(f'{level}: {shown(rate)}' for level, rate in sorted(levels.items()))}}}")
    if profile.max_requests_per_s is not None:
        lines.append(f"max_requests_per_s: {shown(profile.max_requests_per_s)}   # the highest fleet-wide read rate")
    if profile.clients_measured > 1:
        lines.append(f"clients_measured: {profile.clients_measured}   # clients that measured B and R at once")
    return "\n".join(lines) + "\n"
