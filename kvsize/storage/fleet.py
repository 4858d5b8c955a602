"""``kvsize probe TARGET --scheduler``: the probe run on many machines at once, on a Dask distributed cluster.

The shared terms of the time model, the aggregate bandwidth B and the request-rate cap R, only show when
many clients hit the tier together. Each Dask worker runs one client (``kvsize.storage.fleet_client``), all
started in step by Dask ``Event`` objects per set and phase and reporting on a Dask ``Queue``; the driver
adds the clients' figures up: fleet throughput is all clients' bytes over the span from the first client's
start to the last client's end (worker clocks; on several hosts they must agree, as NTP keeps them).

Clean-up: every client removes what it wrote, on success, error and the driver's stop (Ctrl-C, SIGTERM); a client
whose worker is lost cannot, so the driver removes that client's run by its name and says whether it could. The
driver's run is ``kvsize.stopping.held`` work, from the cluster's start to its close: a signal is recorded, the run
stops at its next poll and waits for every client's clean-up, and a second or third signal cannot cut that short.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvsize import stopping
from kvsize.errors import KvsizeError, ProbeError, shown
from kvsize.storage.fleet_client import dask
from kvsize.storage.probe import FittedProfile, ProbeResult, check_stop, fit_profile
from kvsize.storage.targets import Interrupted, open_target

MAX_LOCAL_WORKERS = 64
ALL_REMOVED = "every client removed what it wrote"
_LOCAL = re.compile(r"^local:([0-9]{1,3})$")
_REMOTE = re.compile(r"^(?P<protocol>tcp|tls)://(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,253})(?::(?P<port>[0-9]{1,6}))?$")
ACCEPTED = "tcp://HOST:PORT, tls://HOST:PORT (with Dask's TLS settings) or local:N (N worker processes on this machine)"


class ClientReport(BaseModel):
    """One client of the fleet: where it ran, its own results, and how it ended."""

    model_config = ConfigDict(frozen=True)

    client: int
    worker: str
    host: str | None
    run_name: str | None
    results: tuple[ProbeResult, ...]
    error: str | None
    removed: bool
    """True when everything the client wrote is gone (by itself, or by the driver for a lost worker)."""


class FleetReport(BaseModel):
    """The fleet-wide figures: every client's sets added up, and the fit of B and R from them."""

    model_config = ConfigDict(frozen=True)

    clients_measured: int
    results: tuple[ProbeResult, ...]
    aggregate_bytes_per_s: float
    max_requests_per_s: float
    notes: tuple[str, ...]


def connect(scheduler: str) -> tuple[Any, Any]:
    """A Dask client for ``scheduler`` (``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``local:N``) and the local cluster
    it started, if any."""
    remote = _REMOTE.match(scheduler) if isinstance(scheduler, str) else None
    if not isinstance(scheduler, str) or not (_LOCAL.match(scheduler) or remote):
        raise KvsizeError(f"`scheduler` {shown(scheduler)} is not {ACCEPTED}", field="scheduler")
    if remote and remote.group("port") is not None and not 1 <= int(remote.group("port")) <= 65535:
        raise KvsizeError(f"`scheduler` {shown(scheduler)}: the port must be 1 to 65535", field="scheduler")
    try:
        distributed = dask()
    except ImportError:
        raise KvsizeError("`scheduler` runs the probe on Dask: pip install 'kvsize[fleet]'", field="scheduler") from None
    for name in ("distributed", "tornado"):  # a lost worker is reported in one line, not in the scheduler's log
        logging.getLogger(name).setLevel(logging.CRITICAL)
    local = _LOCAL.match(scheduler)
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= MAX_LOCAL_WORKERS:
            raise KvsizeError(f"`scheduler` local:N takes 1 to {MAX_LOCAL_WORKERS} workers, got {workers}", field="scheduler")
        cluster = _local_cluster(distributed, workers)
        return distributed.Client(cluster), cluster
    security = _security(distributed, scheduler) if scheduler.startswith("tls://") else None
    try:
        return distributed.Client(scheduler, timeout="10s", security=security), None
    except (OSError, TimeoutError) as error:
        raise ProbeError(
            f"`scheduler` {shown(scheduler)}: cannot reach the Dask scheduler: {shown(str(error), 120)}", field="scheduler"
        ) from None


def _local_cluster(distributed: Any, workers: int) -> Any:
    """``workers`` worker processes on this machine, their stderr /dev/null: a Ctrl-C in a terminal reaches every
    process of its group, and each worker would print its own traceback; what a client has to say comes back in its
    result. The scheduler's HTTP server takes a free loopback port (its default, 8787, taken by any other Dask
    cluster here, prints a warning)."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)  # the worker processes inherit it as they start
        return distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _security(distributed: Any, scheduler: str) -> Any:
    """Dask's TLS settings for a client (its config: ``distributed.comm.tls.ca-file``, ``.client.cert``, ``.client.key``,
    or their ``DASK_DISTRIBUTED__COMM__TLS__...`` variables); refused in one line when missing or unusable."""
    try:
        security = distributed.Security()
        context = security.get_connection_args("client").get("ssl_context")
    except (OSError, ValueError, TypeError) as error:  # ssl.SSLError is an OSError: a missing or malformed file
        raise KvsizeError(
            f"`scheduler` {shown(scheduler)}: Dask's TLS settings (distributed.comm.tls.*) cannot be used: "
            f"{shown(str(error), 100)}; fix them, or give tcp://HOST:PORT or local:N",
            field="scheduler",
        ) from None
    if context is None:
        raise KvsizeError(
            f"`scheduler` {shown(scheduler)} needs Dask's TLS settings, and none is set: set distributed.comm.tls.ca-file, "
            ".client.cert and .client.key (e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE=ca.pem), or give tcp://HOST:PORT or local:N",
            field="scheduler",
        )
    return security


class _Run:
    """The driver's side of one fleet run: its clients, their futures, and the lost-worker check."""

    def __init__(self, client: Any, workers: list[str], name: str) -> None:
        self.client, self.workers, self.name = client, workers, name
        self.queue: Any = dask().Queue(f"{name}-queue")
        self.stop: Any = dask().Event(f"{name}-stop")
        self.futures: list[Any] = []
        self.ready: dict[int, dict[str, Any]] = {}

    def signal(self, event: str) -> None:
        dask().Event(f"{self.name}-{event}").set()

    def collect(self, kind: str, count: int, timeout_s: float) -> list[dict[str, Any]]:
        """``count`` messages of ``kind`` from the clients; a lost worker or a failed client ends the wait."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            if self.queue.qsize():  # poll: a get that times out is logged as an error by the scheduler
                message = self.queue.get()
                if message.get("kind") == "ready":
                    self.ready[message["client"]] = message
                if message.get("kind") == kind:
                    got.append(message)
                continue
            check_stop()
            self.check()
            time.sleep(0.05)
            if time.monotonic() > deadline:
                raise ProbeError(f"fleet probe: the clients did not report '{kind}' within {timeout_s:g} s")
        return got

    def check(self) -> None:
        """Raise ``_Lost`` when a client's worker is gone or its task failed."""
        alive = set(self.client.scheduler_info()["workers"])
        for index, (worker, future) in enumerate(zip(self.workers, self.futures, strict=True)):
            if worker not in alive or future.status in ("lost", "cancelled"):
                raise _Lost(index, worker)
            if future.status == "error":
                raise _Failed(index, worker, str(future.exception()))
            if future.status == "finished" and future.result()["error"]:
                # A client that finished cleanly has sent all its messages: they are read on the next poll.
                raise _Failed(index, worker, future.result()["error"])


class _Lost(Exception):
    def __init__(self, index: int, worker: str) -> None:
        super().__init__(index, worker)
        self.index, self.worker = index, worker


class _Failed(Exception):
    def __init__(self, index: int, worker: str, error: str | None) -> None:
        super().__init__(index, worker, error)
        self.index, self.worker, self.error = index, worker, error


def run_fleet(
    client: Any,
    target_url: str,
    plan: list[tuple[int, int, int]],
    *,
    clients: int | None,
    direct: bool,
    endpoint_url: str | None,
    time_limit_s: float,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[list[ClientReport], FleetReport, FittedProfile, bool, list[str]]:
    """Run every set on the clients in step: their reports, the fleet's, the profile fitted fleet-wide (B and R,
    with how many clients measured them), whether every set ran, and notes."""
    from kvsize.storage.fleet_client import run_client

    workers = sorted(client.scheduler_info()["workers"])
    wanted = clients if clients is not None else len(workers)
    if not 1 <= wanted <= len(workers):
        raise KvsizeError(f"`clients` {wanted} is more than the {len(workers)} workers of the cluster", field="clients")
    run = _Run(client, workers[:wanted], f"kvsize-fleet-{secrets.token_hex(4)}")
    run.futures = [
        client.submit(
            run_client,
            run.name,
            index,
            target_url,
            plan,
            direct,
            endpoint_url,
            workers=[worker],
            allow_other_workers=False,
            pure=False,
            key=f"{run.name}-client-{index}",
        )
        for index, worker in enumerate(run.workers)
    ]
    complete, notes, started = True, [], time.monotonic()
    try:
        run.collect("ready", wanted, 120.0)
        for number, (size, level, count) in enumerate(plan):
            check_stop()
            if time.monotonic() - started > time_limit_s:
                complete = False
                notes.append(f"--time-limit {time_limit_s:g} s reached: {len(plan) - number} of {len(plan)} sets not measured")
                break
            if progress:
                progress(f"{size:,} B x {count} at concurrency {level} on {wanted} clients", number, len(plan))
            for phase, kind in (("write", "written"), ("read", "read")):
                run.signal(f"{number}-{phase}")
                run.collect(kind, wanted, max(600.0, time_limit_s))
        run.stop.set()
        outcomes = client.gather(run.futures)
    except (KeyboardInterrupt, Interrupted):  # Ctrl-C or SIGTERM
        outcome = _abandon(run, target_url, direct, endpoint_url, None)
        raise stopping.interrupted("removed everything it wrote" if outcome == ALL_REMOVED else outcome) from None
    except _Lost as lost:
        raise ProbeError(_abandon(run, target_url, direct, endpoint_url, lost)) from None
    except _Failed as failed:
        outcome = _abandon(run, target_url, direct, endpoint_url, None)
        raise ProbeError(
            f"fleet probe: client {failed.index} (worker {failed.worker}) failed: {shown(failed.error or '?', 120)}; {outcome}"
        ) from None
    reports = [_client_report(outcome, run) for outcome in outcomes]
    if not any(outcome["sets"] for outcome in outcomes):
        raise ProbeError("the fleet probe measured nothing within `time_limit`: raise it or lower `max_bytes`")
    summary, profile = _fleet(target_url, outcomes)
    return reports, summary, profile, complete, notes


def _abandon(run: _Run, target_url: str, direct: bool, endpoint_url: str | None, lost: _Lost | None) -> str:
    """Stop the clients and let them clean up; remove by name the run of any client that could not (a lost
    worker, a client that did not finish in time); the sentence saying how it ended."""
    run.stop.set()
    with contextlib.suppress(Exception):
        dask().wait([f for i, f in enumerate(run.futures) if lost is None or i != lost.index], timeout=60)
    left: list[str] = []
    for index, future in enumerate(run.futures):
        done = future.status == "finished" and future.result().get("removed")
        name = run.ready.get(index, {}).get("run_name")
        if done or not name:
            continue
        try:
            problem = open_target(target_url, direct=direct, endpoint_url=endpoint_url).clean(name)
        except Exception as error:
            problem = f"{type(error).__name__}: {shown(str(error), 60)}"
        if problem:
            left.append(f"{name} ({problem})")
    if lost is None:
        if left:
            return f"could not remove {'; '.join(left)}: run 'kvsize probe {shlex.quote(target_url)} --clean' on its host"
        return ALL_REMOVED
    what = f"fleet probe: client {lost.index} (worker {lost.worker}) was lost mid-run"
    if left:
        return f"{what}; could not remove {'; '.join(left)}: run 'kvsize probe {shlex.quote(target_url)} --clean' on its host"
    return f"{what}; removed what it wrote, and the other clients removed theirs"


def _client_report(outcome: dict[str, Any], run: _Run) -> ClientReport:
    index = outcome["client"]
    ready = run.ready.get(index, {})
    return ClientReport(
        client=index,
        worker=run.workers[index],
        host=ready.get("host"),
        run_name=ready.get("run_name"),
        results=tuple(_result(s["size"], s["level"], s["objects"], [s], s["latencies"]) for s in outcome["sets"]),
        error=outcome["error"],
        removed=outcome["removed"],
    )


def _result(size: int, level: int, objects: int, spans: list[dict[str, Any]], latencies: list[float]) -> ProbeResult:
    """A set's figures over ``spans`` (one client's, or all of them): bytes over the first start to the last end."""
    write_s = max(s["write"][1] for s in spans) - min(s["write"][0] for s in spans)
    read_s = max(s["read"][1] for s in spans) - min(s["read"][0] for s in spans)
    return ProbeResult.timed(size, level, objects, write_s, read_s, latencies)


def _fleet(target_url: str, outcomes: list[dict[str, Any]]) -> tuple[FleetReport, FittedProfile]:
    """Each set over all clients (objects and bytes added up, one span from the first start to the last end), and
    B and R fitted from those."""
    fleet: list[ProbeResult] = []
    for number in range(max(len(o["sets"]) for o in outcomes)):
        spans = [o["sets"][number] for o in outcomes if len(o["sets"]) > number]
        latencies = [value for span in spans for value in span["latencies"]]
        first = spans[0]
        fleet.append(_result(first["size"], first["level"], sum(s["objects"] for s in spans), spans, latencies))
    if not fleet:
        raise ProbeError("the fleet probe measured nothing within `time_limit`: raise it or lower `max_bytes`")
    fitted = fit_profile(f"{target_url} ({len(outcomes)} clients)", fleet)
    rate = max(r.read_ops_per_s for r in fleet)
    notes = (
        f"{len(outcomes)} clients at once; a set's fleet figures are all clients' objects and bytes over the span from "
        "the first client's start to the last client's end (worker clocks)",
        "R is the highest fleet-wide read rate measured: the tier's cap is at least this",
        *fitted.notes,
    )
    report = FleetReport(
        clients_measured=len(outcomes),
        results=tuple(fleet),
        aggregate_bytes_per_s=fitted.aggregate_bytes_per_s,
        max_requests_per_s=rate,
        notes=notes,
    )
    profile = fitted.model_copy(update={"max_requests_per_s": rate, "clients_measured": len(outcomes)})
    return report, profile
