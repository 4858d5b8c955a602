"""``kvsize probe``: parse the flags, call ``kvsize.probe`` (or clean up), render."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kvsize.cli import options as o
from kvsize.cli.app import app
from kvsize.cli.engine_flags import EngineCommand, engine_settings, given_settings
from kvsize.errors import KvsizeError

if TYPE_CHECKING:
    from kvsize.storage.probe import ProbeReport


@app.command("probe", cls=EngineCommand)
def probe(
    target: Annotated[
        str, typer.Argument(help="A directory (local disk, NFS/pNFS mount), s3://bucket/prefix or redis://host:port.")
    ],
    model: Annotated[str | None, typer.Option("--model", help="Probe the object sizes kvsize predicts for this model.")] = None,
    tp: Annotated[int, typer.Option("--tp", help="With --model: tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option("--pp", help="With --model: pipeline-parallel size.")] = 1,
    chunk_sizes: Annotated[
        str | None, typer.Option("--chunk-sizes", help="With --model: chunk sizes (default 256,...,4096).")
    ] = None,
    kv_dtype: Annotated[o.KvDtypeChoice, typer.Option("--kv-dtype", help="With --model: KV-cache dtype.")] = o.KvDtypeChoice.auto,
    engine: o.OptionalEngine = None,
    object_sizes: Annotated[
        str | None, typer.Option("--object-sizes", help="Explicit object sizes, e.g. 9MiB,72MiB (default 1MiB,16MiB,64MiB).")
    ] = None,
    concurrency: Annotated[str, typer.Option("--concurrency", help="Concurrency levels, e.g. 1,4,16.")] = "1,4,16",
    objects: Annotated[int, typer.Option("--objects", help="Objects per set (fewer when --max-bytes says so).")] = 256,
    max_bytes: Annotated[
        str, typer.Option("--max-bytes", help="Most bytes one object set may write; sets the size of a real load fit best.")
    ] = "1GiB",
    time_limit: Annotated[str, typer.Option("--time-limit", help="Stop starting new sets after this long.")] = "120s",
    direct: Annotated[bool, typer.Option("--direct", help="Read with O_DIRECT (directory targets).")] = False,
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3 endpoint (else AWS_ENDPOINT_URL / AWS default).")
    ] = None,
    save_profile: Annotated[
        Path | None, typer.Option("--save-profile", help="Write the fitted backend profile YAML here (for --backend).")
    ] = None,
    output: Annotated[o.TableFormat, typer.Option("--format", "-f", help="Output format.")] = o.TableFormat.table,
    catalog: o.Catalog = None,
    emit: Annotated[
        o.ProbeEmit | None,
        typer.Option("--emit", help="Print a fio job file reproducing this probe on TARGET (a directory), and stop."),
    ] = None,
    from_fio: Annotated[
        Path | None,
        typer.Option("--from-fio", help="Fit the profile from fio's JSON output of that job file instead of measuring."),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Run on every worker of a Dask cluster at once: tcp://HOST:8786 (tls://HOST:8786 with Dask's TLS "
            "settings), or local:N for N processes here (needs: pip install 'kvsize\\[fleet]'). Measures B and R fleet-wide.",
        ),
    ] = None,
    clients: Annotated[
        int | None, typer.Option("--clients", help="With --scheduler: how many workers probe (default all).")
    ] = None,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Remove what earlier probes killed mid-run left on TARGET (their process gone; never a symbolic link, "
            "nor a folder without a probe's marker), then stop.",
        ),
    ] = False,
) -> None:
    """Measure a storage target with LMCache-shaped objects and fit the time model's L, b and B."""
    from kvsize import stopping
    from kvsize.calls import measure
    from kvsize.units import parse_duration, parse_int_list, parse_size

    if clean:
        _clean(target, endpoint_url)
        return
    if from_fio is not None:
        _show(measure.probe_from_fio(from_fio, target, save_profile=save_profile), output, save_profile)
        return
    sizes = None
    if object_sizes is not None:
        sizes = [parse_size(part.strip(), "--object-sizes") for part in object_sizes.split(",") if part.strip()]
        if not sizes:
            raise KvsizeError("--object-sizes is empty: give sizes like 9MiB,72MiB")
    chosen = (engine or o.DEFAULT_ENGINE_CHOICE).value
    sets: dict[str, Any] = {
        "model": model,
        "tp": tp,
        "pp": pp,
        "chunk_sizes": parse_int_list(chunk_sizes, "--chunk-sizes") if chunk_sizes else None,
        "kv_dtype": kv_dtype.value,
        # The engine's settings as one object (flat engine keywords are deprecated in the library), when any is given.
        "engine": engine_settings(chosen) if engine is not None or given_settings(chosen) else None,
        "object_sizes": sizes,
        "concurrency": parse_int_list(concurrency, "--concurrency"),
        "objects": objects,
        "max_bytes": parse_size(max_bytes, "--max-bytes"),
        "direct": direct,
        "catalog": catalog,
    }
    if emit is not None:
        sys.stdout.write(measure.fio_job(target, **sets))
        return
    for left in measure.probe_leftovers(target, endpoint_url=endpoint_url):
        if left.kept:
            kept = f"{left.name}, named like a probe's run; kvsize leaves it alone ({left.kept})"
            sys.stderr.write(f"kvsize: note: {target} holds {kept}\n")
            continue
        fix = "run 'kvsize probe TARGET --clean' to remove it" if left.owner_gone else "kvsize leaves it alone"
        sys.stderr.write(f"kvsize: note: {target} holds {left.name} from an earlier probe ({left.why}); {fix}\n")
    from rich.progress import Progress

    with Progress(transient=True, disable=not (sys.stderr.isatty() and output is o.TableFormat.table)) as bar:
        task = bar.add_task("probing", total=None)
        try:
            report = measure.probe(
                target,
                **sets,
                time_limit=parse_duration(time_limit, "--time-limit"),
                endpoint_url=endpoint_url,
                save_profile=save_profile,
                scheduler=scheduler,
                clients=clients,
                progress=lambda label, done, total: bar.update(task, completed=done, total=total, description=label),
            )
        except stopping.Interrupted as stop:
            stopping.report(f"probe {stop}")
            raise typer.Exit(stop.exit_code) from None
    _show(report, output, save_profile)


def _show(report: "ProbeReport", output: o.TableFormat, save_profile: Path | None) -> None:
    from kvsize.cli.reports import print_probe

    for note in report.notes:
        sys.stderr.write(f"kvsize: note: {note}\n")
    if output is o.TableFormat.json:
        from kvsize.cli.output import json_text

        sys.stdout.write(json_text(report.model_dump(mode="json")))
        return
    print_probe(report, save_profile)


def _clean(target: str, endpoint_url: str | None) -> None:
    from kvsize import stopping
    from kvsize.calls import measure

    try:
        found = measure.clean_probe_leftovers(target, endpoint_url=endpoint_url)
    except stopping.Interrupted as stop:
        stopping.report(f"clean-up {stop}")
        raise typer.Exit(stop.exit_code) from None
    for name, why, removed in found:
        if removed:
            sys.stdout.write(f"removed {name} ({why})\n")
        else:
            sys.stderr.write(f"kvsize: note: kept {name} ({why})\n")
    if not any(removed for _, _, removed in found):
        sys.stdout.write(f"nothing to remove on {target}\n")
