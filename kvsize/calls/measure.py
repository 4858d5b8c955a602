"""``kvsize.probe``: measure a storage target the way LMCache uses it, and clean up what killed runs left."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kvsize.calls.args import GIB, grouped, resolve_spec
from kvsize.calls.sizing import candidate_sizes
from kvsize.engines.base import EngineOptions, EngineSettings, KvDtype, Serving
from kvsize.engines.registry import engine_for
from kvsize.errors import KvsizeError, finite, shown, whole

if TYPE_CHECKING:
    from kvsize.storage.probe import ProbeReport


def probe(
    target: str,
    *,
    model: str | None = None,
    tp: int = 1,
    pp: int = 1,
    chunk_sizes: Sequence[int] | None = None,
    kv_dtype: KvDtype = "auto",
    engine: str | EngineSettings | None = None,
    object_sizes: Sequence[int] | None = None,
    concurrency: Sequence[int] = (1, 4, 16),
    objects: int = 256,
    max_bytes: int = GIB,
    time_limit: float = 120.0,
    direct: bool = False,
    endpoint_url: str | None = None,
    save_profile: Path | str | None = None,
    catalog: Path | str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    scheduler: str | None = None,
    clients: int | None = None,
    **engine_options: Any,
) -> ProbeReport:
    """Measure a storage target with LMCache-shaped objects and fit the time model's L, b and B (``kvsize probe``).

    ``save_profile``: write the fitted profile there (a YAML ``backend`` reads); its folder is checked before
    anything is measured. Everything the run writes on the target is removed, whatever happens.
    ``scheduler`` (``tcp://HOST:PORT`` or ``local:N``) runs it on every worker of a Dask cluster at once (or
    ``clients`` of them) and fits B and R fleet-wide (``kvsize.storage.fleet``).
    """
    from kvsize.storage import probe as probing

    save_profile = Path(save_profile) if save_profile is not None else None
    if save_profile is not None:
        _writable(save_profile, "save_profile")
    sizes = _probe_sizes("probe", model, tp, pp, chunk_sizes, kv_dtype, object_sizes, catalog, engine, engine_options)
    levels = _levels(concurrency)
    bounds: dict[str, Any] = {
        "objects": whole(objects, "objects", 1, 1_000_000),
        "max_bytes": whole(max_bytes, "max_bytes", 1, 2**50),
        "time_limit_s": finite(time_limit, "`time_limit`", low=0, low_open=True, high=86_400),
    }
    if clients is not None and scheduler is None:
        raise KvsizeError("`clients` goes with `scheduler` (a Dask cluster)", field="clients")
    if scheduler is not None:
        report = _fleet_probe(target, scheduler, clients, sizes, levels, bounds, direct, endpoint_url, progress)
    else:
        target_ = probing.open_target(target, direct=direct, endpoint_url=endpoint_url)
        report = probing.run_probe(target_, sizes, levels, **bounds, direct=direct, progress=progress)
    if save_profile is not None:
        try:
            save_profile.write_text(probing.profile_yaml(report.profile), encoding="utf-8")
        except OSError as error:
            raise KvsizeError(
                f"measured, but cannot write `save_profile` {save_profile}: {error.strerror or error} (nothing is left "
                "on the target); give a writable path",
                field="save_profile",
            ) from None
    return report


def _fleet_probe(
    target: str,
    scheduler: str,
    clients: int | None,
    sizes: list[int],
    levels: list[int],
    bounds: dict[str, Any],
    direct: bool,
    endpoint_url: str | None,
    progress: Callable[[str, int, int], None] | None,
) -> ProbeReport:
    """The probe on a Dask cluster: the clients' reports, the fleet's, and the profile fitted fleet-wide."""
    from kvsize import stopping
    from kvsize.storage import fleet
    from kvsize.storage.probe import ProbeReport, check_stop, open_target, probe_plan

    if clients is not None:
        whole(clients, "clients", 1, 100_000)
    plan = probe_plan(sizes, levels, bounds["objects"], bounds["max_bytes"])
    name = str(open_target(target, direct=direct, endpoint_url=endpoint_url).name)  # the same checks as one machine
    # Held from the cluster's start to its close: a signal is recorded, never raised inside distributed (a cluster
    # cut off mid-start cannot close); the run stops at its next poll, every client cleans up, the cluster closes.
    with stopping.held():
        try:
            client, cluster = fleet.connect(scheduler)
            try:
                check_stop()
                reports, summary, profile, complete, notes = fleet.run_fleet(
                    client,
                    target,
                    plan,
                    clients=clients,
                    direct=direct,
                    endpoint_url=endpoint_url,
                    time_limit_s=bounds["time_limit_s"],
                    progress=progress,
                )
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        except Exception as error:  # after a stop, the stop is the news (a failure it caused, or one beside it)
            if stopping.requested() is None or isinstance(error, stopping.Interrupted):
                raise
            raise stopping.interrupted(str(error) if isinstance(error, KvsizeError) else "nothing was written") from None
    if direct:
        notes.append("reads used O_DIRECT (writes are buffered, then fsync'd)")
    return ProbeReport(
        target=name,
        direct=direct,
        results=summary.results,
        profile=profile,
        notes=(*notes, *summary.notes),
        complete=complete,
        clients=reports,
        fleet=summary,
    )


def _levels(concurrency: Sequence[int]) -> list[int]:
    """The concurrency levels, each 1 to 4,096; none is an error (never the defaults in silence)."""
    if isinstance(concurrency, (str, bytes)) or not isinstance(concurrency, Sequence):
        raise KvsizeError(
            f"`concurrency` must be a list of levels like [1, 4, 16], got {shown(concurrency)}", field="concurrency"
        )
    levels = [whole(level, "concurrency", 1, 4096) for level in concurrency]
    if not levels:
        raise KvsizeError("`concurrency` is empty: give levels like 1,4,16", field="concurrency")
    return levels


def _writable(path: Path, name: str) -> None:
    """Refuse before any work a file path whose folder is missing or not writable (kvsize creates no folders)."""
    import os

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_fifo() or path.is_socket():  # writing would wait for a reader, after the whole measurement
        raise KvsizeError(f"`{name}` {path} is a pipe or a socket: give a file name", field=name)
    if path.is_dir():
        raise KvsizeError(f"`{name}` {path} is a folder: give a file name, e.g. {path / 'profile.yaml'}", field=name)
    if not folder.is_dir():
        raise KvsizeError(f"`{name}` {path}: the folder {folder} does not exist; create it or give another path", field=name)
    if not os.access(folder, os.W_OK):
        raise KvsizeError(f"`{name}` {path}: the folder {folder} is not writable; give another path", field=name)


def _probe_sizes(
    call: str,
    model: str | None,
    tp: int,
    pp: int,
    chunk_sizes: Sequence[int] | None,
    kv_dtype: KvDtype,
    object_sizes: Sequence[int] | None,
    catalog: str | Path | None,
    engine: str | EngineSettings | None = None,
    engine_options: dict[str, Any] | None = None,
) -> list[int]:
    """The object sizes to probe: the ones kvsize predicts for ``model`` under ``engine`` (its settings: tier, GPU
    block ...), or ``object_sizes``. Engine options given flat (``tier="obj"``) are deprecated, as in ``size``."""
    from kvsize.plan import plan_row

    if model is not None and object_sizes is not None:
        raise KvsizeError("give `model` (its predicted object sizes) or `object_sizes`, not both", field="model")
    given = {name: value for name, value in (engine_options or {}).items() if value is not None and value is not False}
    if model is None:
        if chunk_sizes is not None or engine is not None or given:
            raise KvsizeError("`chunk_sizes`, `engine` and the engine's options go with `model`", field="chunk_sizes")
        if object_sizes is None:
            return [2**20, 16 * 2**20, 64 * 2**20]
        if isinstance(object_sizes, (str, bytes)) or not isinstance(object_sizes, Sequence) or not object_sizes:
            raise KvsizeError(
                f"`object_sizes` must be a list of sizes in bytes like [1048576], got {shown(object_sizes)}",
                field="object_sizes",
            )
        return sorted({whole(size, "object_sizes", 1, 2**40) for size in object_sizes})
    spec = resolve_spec(model, catalog, None, False)
    _, settings, _, _ = grouped(
        {}, serving=None, engine=engine, workload=None, storage=None, call=call, given_engine_options=engine_options
    )
    options = EngineOptions(serving=Serving(tp=tp, pp=pp, kv_dtype=kv_dtype), settings=settings, engine=settings.engine_name())
    chosen = engine_for(options.engine)
    layout = chosen.plan_layout(spec, options)
    if chunk_sizes is not None and not chunk_sizes:
        raise KvsizeError("`chunk_sizes` is empty: give sizes like 256,2048, or leave it out", field="chunk_sizes")
    chunks = candidate_sizes(chunk_sizes, None) or chosen.default_candidates(layout)
    for chunk in chunks:
        if problem := chosen.chunk_problem(layout, chunk):
            raise KvsizeError(problem, field="chunk_sizes")
    # Two chunks of prompt: every group stores at least one object (a sliding-window group skips the last chunk).
    return sorted({plan_row(layout, 2 * chunk, chunk).object_bytes for chunk in chunks})


def clean_probe_leftovers(target: str, *, endpoint_url: str | None = None) -> list[tuple[str, str, bool]]:
    """Remove what earlier probes killed mid-run left on ``target``: runs whose process is gone and that hold a probe's
    marker naming them, never through a symbolic link, and in them only what a probe writes; ``(name, why, removed)``
    each. Ctrl-C or SIGTERM stops it between two runs, never inside one (``Interrupted``, saying what is left)."""
    import shlex

    from kvsize import stopping
    from kvsize.storage.leftovers import classify
    from kvsize.storage.targets import open_target

    handle = open_target(target, direct=False, endpoint_url=endpoint_url)
    out: list[tuple[str, str, bool]] = []
    with stopping.held():
        found = [(name, left) for name in handle.leftovers() if (left := classify(name)) is not None]
        for index, (name, left) in enumerate(found):
            if stopping.requested() is not None:
                done = sum(removed for *_, removed in out)
                rest = sum(1 for _, later in found[index:] if later.owner_gone)
                raise stopping.interrupted(
                    f"removed {done} of {done + rest} leftover runs: run 'kvsize probe {shlex.quote(target)} --clean' again"
                )
            problem = _clean_run(handle, name) if left.owner_gone else None
            out.append((name, problem or left.why, left.owner_gone and problem is None))
    return out


def _clean_run(handle: Any, name: str) -> str | None:
    try:
        problem: str | None = handle.clean(name)
    except Exception as error:  # an unreachable bucket or server, a vanished mount: said, and the next run is tried
        return f"could not remove it: {type(error).__name__}: {shown(str(error), 80)}"
    return problem


def probe_leftovers(target: str, *, endpoint_url: str | None = None) -> list[Any]:
    """What earlier probes killed mid-run left on ``target`` (``Leftover`` records; ``kept`` says why ``--clean``
    would leave one in place)."""
    from kvsize.storage.leftovers import classify
    from kvsize.storage.targets import open_target

    handle = open_target(target, direct=False, endpoint_url=endpoint_url)
    found = []
    for name in handle.leftovers():
        left = classify(name)
        if left is None:
            continue
        try:
            kept = handle.check_run(name)
        except Exception as error:
            kept = f"could not check it: {type(error).__name__}: {shown(str(error), 80)}"
        found.append(left.model_copy(update={"kept": kept}))
    return found


def fio_job(
    target: str,
    *,
    model: str | None = None,
    tp: int = 1,
    pp: int = 1,
    chunk_sizes: Sequence[int] | None = None,
    kv_dtype: KvDtype = "auto",
    engine: str | EngineSettings | None = None,
    object_sizes: Sequence[int] | None = None,
    concurrency: Sequence[int] = (1, 4, 16),
    objects: int = 256,
    max_bytes: int = GIB,
    direct: bool = False,
    catalog: str | Path | None = None,
    **engine_options: Any,
) -> str:
    """The fio job file that runs ``probe``'s sets on a directory target (``kvsize probe DIR --emit fio``)."""
    from kvsize.storage.fio import fio_job as job_file

    if "://" in target:
        raise KvsizeError("`emit` fio needs a directory target (fio measures files): give the mount's path", field="emit")
    sizes = _probe_sizes(
        "calls.measure.fio_job", model, tp, pp, chunk_sizes, kv_dtype, object_sizes, catalog, engine, engine_options
    )
    levels = _levels(concurrency)
    bound = whole(max_bytes, "max_bytes", 1, 2**50)
    return job_file(target, sizes, levels, objects=whole(objects, "objects", 1, 1_000_000), max_bytes=bound, direct=direct)


def probe_from_fio(result: Path | str, target: str, *, save_profile: Path | str | None = None) -> ProbeReport:
    """The probe report and fitted profile from fio's JSON output of an ``fio_job`` file (one host, or many clients)."""
    from kvsize.storage import probe as probing
    from kvsize.storage.fio import report_from_fio

    save_profile = Path(save_profile) if save_profile is not None else None
    if save_profile is not None:
        _writable(save_profile, "save_profile")
    report = report_from_fio(Path(result), target)
    if save_profile is not None:
        try:
            save_profile.write_text(probing.profile_yaml(report.profile), encoding="utf-8")
        except OSError as error:
            raise KvsizeError(
                f"cannot write `save_profile` {save_profile}: {error.strerror or error}", field="save_profile"
            ) from None
    return report
