"""One client of a fleet probe: the task each Dask worker runs (``kvsize.storage.fleet`` drives it).

It opens the target under a run name of its own (``kvsize-probe-<host>-<pid>-<hex>``), says so on the run's
queue, then for every set waits for the driver's start event of each phase, so that every client writes, and
then reads, at the same moment; it reports each phase's wall-clock start and end and its read latencies.
Whatever happens (an error, the driver's stop event, the worker being told to close), it removes what it
wrote before returning; only a killed process cannot, and the driver then removes its run by name.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from kvsize.storage.probe import run_pool, timed_reader
from kvsize.storage.targets import Interrupted, open_target, read_buffer_bytes

PHASE_TIMEOUT_S = 3600.0


def dask() -> Any:
    """``distributed``, imported on first use (the ``fleet`` extra); typed Any, as the package is untyped."""
    import distributed

    return distributed


"""Longest a client waits for the driver's next start event before giving up (and cleaning up)."""


def _stopper(run: str) -> Callable[[], bool]:
    stop: Any = dask().Event(f"{run}-stop")
    return lambda: bool(stop.is_set())


def _wait(run: str, name: str, stopped: Callable[[], bool]) -> None:
    event: Any = dask().Event(f"{run}-{name}")
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while not event.wait(timeout=0.2):
        if stopped():
            raise Interrupted("stopped by the driver")
        if time.monotonic() > deadline:
            raise Interrupted(f"no start signal for {name} within {PHASE_TIMEOUT_S:g} s")


def _phase(level: int, work: Callable[[str], None], keys: list[str], stopped: Callable[[], bool]) -> tuple[float, float]:
    """Run ``work`` over ``keys`` with ``level`` in flight; (wall-clock start, end). Stops between operations."""

    def guarded(key: str) -> None:
        if stopped():
            raise Interrupted("stopped by the driver")
        work(key)

    return run_pool(level, guarded, keys, clock=time.time)


def run_client(
    run: str, index: int, target_url: str, plan: list[tuple[int, int, int]], direct: bool, endpoint_url: str | None
) -> dict[str, Any]:
    """The client task: every set of ``plan`` ((size, level, count)), in step with the other clients."""
    queue: Any = dask().Queue(f"{run}-queue")
    stopped = _stopper(run)
    target = open_target(target_url, direct=direct, endpoint_url=endpoint_url)
    sets: list[dict[str, Any]] = []
    error: str | None = None
    try:
        target.prepare(max(size * count for size, _, count in plan), read_buffer_bytes(plan))
        folder = getattr(target, "run_dir", None)
        name = folder.name if folder is not None else str(getattr(target, "prefix", "")).rsplit("/", 1)[-1]
        queue.put({"kind": "ready", "client": index, "run_name": name, "host": socket.gethostname(), "pid": os.getpid()})
        for number, (size, level, count) in enumerate(plan):
            sets.append(_one_set(run, index, number, (size, level, count), target, queue, stopped))
    except BaseException as caught:  # reported to the driver; the clean-up below runs first
        error = f"{type(caught).__name__}: {caught}"
    finally:
        try:
            target.close()
            removed = True
        except Exception as failure:
            removed, error = False, (error or "") + f"; could not remove what it wrote: {failure}"
    return {"client": index, "sets": sets, "error": error, "removed": removed}


def _one_set(
    run: str, index: int, number: int, shape: tuple[int, int, int], target: Any, queue: Any, stopped: Callable[[], bool]
) -> dict[str, Any]:
    size, level, count = shape
    payload = memoryview(os.urandom(size))
    keys = [f"c{index}-s{number}-{item:05d}" for item in range(count)]
    latencies: list[float] = []
    try:
        _wait(run, f"{number}-write", stopped)
        write = _phase(level, lambda key: target.write(key, payload), keys, stopped)
        target.drop(keys)
        target.warm(level, size)
        queue.put({"kind": "written", "client": index, "set": number})
        _wait(run, f"{number}-read", stopped)
        read_span = _phase(level, timed_reader(target, size, latencies), keys, stopped)
    finally:
        target.remove(keys)
    queue.put({"kind": "read", "client": index, "set": number})
    return {"size": size, "level": level, "objects": count, "write": write, "read": read_span, "latencies": latencies}
