"""``--emit lmcache``: LMCache 0.5.6's YAML for one chunk size, complete for its connector (the keys of
``lmcache_requirements.CONNECTOR_KEYS``), sized with a margin over the prediction, with its ``LMCACHE_*`` form.

What only the user knows is taken from ``EmitOptions`` (``--emit-dir``, ``--emit-bucket``, ...), else written as a
placeholder LMCache refuses at start where it can (``emit_options``); the ones it accepts silently (an S3
bucket or region, a Redis or RESP host) are named in a warning, and ``kvsize check --lmcache-config`` refuses
every one left.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from kvsize.engines.base import per_writer_bytes
from kvsize.engines.emit_options import (
    BUCKET,
    DISK_GB,
    GDS_DIR,
    HOST,
    LOCAL_DIR,
    REGION,
    SHARED_DIR,
    UNCREATABLE,
    WEKA_DIR,
    EmitOptions,
    unfilled,
)
from kvsize.engines.lmcache_requirements import CONNECTOR_KEYS, MOONCAKE_SEGMENT_BYTES, S3_ALIGN, emitted
from kvsize.engines.lmcache_settings import (
    DEFAULT_BLOCKING_TIMEOUT_S,
    DEFAULT_CPU_BUFFER_BYTES,
    GIB,
    MAX_CPU_GB,
    MAX_GDS_MIB,
    MAX_TIMEOUT_S,
    LMCache,
)
from kvsize.engines.stack_settings import FLAGS, unused
from kvsize.errors import KvsizeError

if TYPE_CHECKING:
    from kvsize.engines.base import Layout, SweepRow
    from kvsize.plan import Sweep

MIB = 2**20
PLACEHOLDER_FILL: dict[str, Any] = {
    "bucket": BUCKET,
    "region": REGION,
    "host": HOST,
    "shared_dir": UNCREATABLE + SHARED_DIR,
    "local_dir": UNCREATABLE + LOCAL_DIR,
    "gds_dir": GDS_DIR,  # not absolute: LMCache's get_fstype refuses it ("Unable to detect fstype")
    "weka_dir": WEKA_DIR,
    "disk_gb": DISK_GB,
    "gds_mib": 1024,
    "segment_bytes": MOONCAKE_SEGMENT_BYTES,
}
"""What ``--emit lmcache`` writes where the user gave nothing (and kvsize sized nothing)."""

# What kvsize writes for each connector with nothing given: the settings that select it, with placeholders.
CONNECTOR_SETTINGS: dict[str, dict[str, Any]] = {name: emitted(name, PLACEHOLDER_FILL) for name in CONNECTOR_KEYS}


SILENT = {"s3": ("bucket", "region"), "redis": ("host",), "resp": ("host",)}
"""Connectors whose placeholders LMCache 0.5.6 accepts at start (it stores nothing later), by emit option."""
USES = {
    "s3": ("bucket", "region"),
    "fs": ("dir",),
    "redis": ("host",),
    "valkey": ("host",),
    "resp": ("host",),
    "mooncakestore": ("host",),
    "local-disk": ("dir", "disk_bytes"),
    "gds": ("dir",),
    "weka": ("dir",),
    "cpu": (),
}
"""The emit options each connector's settings take."""


def emit_settings(
    *,
    chunk_size: int,
    connector: str,
    save_unfull_chunk: bool,
    layerwise: bool,
    blocking_timeout_secs: int,
    max_local_cpu_size_gb: int,
    comments: list[str],
    fill: dict[str, Any] | None = None,
) -> str:
    """LMCache YAML for these settings (through the YAML dumper), the connector's from ``CONNECTOR_KEYS`` filled
    from ``fill`` (placeholders where it gives nothing), with the environment form as trailing comments, each
    ``LMCACHE_NAME=value`` quoted so ``sh`` sets exactly the value the file holds (``extra_config`` as JSON, as
    LMCache parses it). Numbers are whole: LMCache 0.5.6 reads ``blocking_timeout_secs`` with ``int()``."""
    from kvsize.quoting import comment, env_assignment, yaml_mapping

    settings: dict[str, Any] = {
        "chunk_size": chunk_size,
        "save_unfull_chunk": save_unfull_chunk,
        "use_layerwise": layerwise,
        "blocking_timeout_secs": blocking_timeout_secs,
        "local_cpu": True,
        "max_local_cpu_size": max_local_cpu_size_gb,
    }
    settings |= emitted(connector, PLACEHOLDER_FILL | (fill or {}))
    lines = ["", comment("The same as environment variables (LMCache applies these over the file):")]
    for key, value in settings.items():
        lines.append(comment(env_assignment(f"LMCACHE_{key.upper()}", env_text(value))))
    return yaml_mapping(settings, comments) + "\n".join(lines) + "\n"


def env_text(value: Any) -> str:
    """A setting as its ``LMCACHE_*`` variable holds it: booleans as true/false, a mapping as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _fill(connector: str, row: SweepRow, layout: Layout, margin: float, given: EmitOptions) -> dict[str, Any]:
    """The values the connector's templates take: the user's, else placeholders; and what kvsize sizes."""
    aligned = -(-row.object_bytes // S3_ALIGN) * S3_ALIGN
    writer_bytes = per_writer_bytes(row, layout)
    fill = dict(PLACEHOLDER_FILL)
    fill |= {
        "gds_mib": max(1, math.ceil(max(row.objects_per_writer, 1) * aligned * margin / MIB)),
        "segment_bytes": max(MOONCAKE_SEGMENT_BYTES, math.ceil(writer_bytes * margin)),
        "shared_dir": given.directory(SHARED_DIR),
        "local_dir": given.directory(LOCAL_DIR),
        "gds_dir": given.dir or GDS_DIR,
        "weka_dir": given.dir or WEKA_DIR,
        "disk_gb": given.disk_gib or DISK_GB,
    }
    for name in ("bucket", "region", "host"):
        if getattr(given, name) is not None:
            fill[name] = getattr(given, name)
    return fill


def _connector_comments(connector: str, fill: dict[str, Any], row: SweepRow, margin: str) -> list[str]:
    aligned = -(-row.object_bytes // S3_ALIGN) * S3_ALIGN
    if connector in ("gds", "weka"):
        return [
            f"gds_buffer_size {fill['gds_mib']:,} MiB of GPU memory per worker: one writer's {row.objects_per_writer:,} "
            f"objects of {aligned:,} B (4,096-aligned) per prompt, x {margin} margin; vLLM loses that GPU memory "
            "(lower --gpu-memory-utilization to make room)."
        ]
    if connector == "mooncakestore":
        return [
            f"global_segment_size {fill['segment_bytes']:,} B: what each worker gives the Mooncake store (one writer's "
            f"objects per prompt x {margin} margin, at least LMCache's default).",
            "local_hostname is the address of the node the worker runs on (each node its own); metadata_server and "
            "master_server_address are where the Mooncake metadata service and mooncake_master run.",
        ]
    if connector == "local-disk":
        return ["max_local_disk_size: the GB (read as GiB) of disk each worker may fill; LMCache creates no disk tier at 0."]
    return []


def _placeholder_notes(connector: str, text_settings: dict[str, Any], given: EmitOptions) -> tuple[list[str], list[str]]:
    """The comment telling how to fill what is left, and warnings for placeholders LMCache would accept."""
    left = sorted(set(unfilled(text_settings)))
    if not left:
        return [], []
    flags = ", ".join(FLAGS[name] for name in USES[connector] if getattr(given, name) is None)
    whole = ""
    if UNCREATABLE in json.dumps(text_settings):
        whole = " (for a directory, the whole /dev/null/<...> value: LMCache cannot create it, so it fails at start)"
    comments = [
        f"Replace {', '.join(left)} with your deployment's values{whole}, or give {flags}; kvsize check "
        "--lmcache-config refuses them left as they are."
    ]
    warnings = []
    silent = [FLAGS[name] for name in SILENT.get(connector, ()) if getattr(given, name) is None]
    if silent:
        warnings.append(
            f"--emit lmcache: LMCache 0.5.6 starts with the {connector} placeholders left unfilled and then stores "
            f"nothing, without an error: fill them, or give {' and '.join(silent)}"
        )
    return comments, warnings


def settings_for(
    sweep: Sweep, plan: Any, chunk: int, margin: float, emit_options: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The LMCache YAML for one chunk size of a sweep, sized with ``margin`` over the prediction, and warnings.

    ``blocking_timeout_secs`` covers the predicted load (with a backend) and ``max_local_cpu_size``
    one writer's bytes, each times ``margin`` and never below LMCache's defaults (10 s, 5 GB); the connector's
    settings are complete (``CONNECTOR_KEYS``), from ``emit_options`` where given.
    """
    from kvsize.engines.registry import engine_for
    from kvsize.quoting import exact_number
    from kvsize.units import format_iec

    given = emit_options or EmitOptions()
    index = next(i for i, row in enumerate(sweep.rows) if row.chunk_tokens == chunk)
    row = sweep.rows[index]
    layout = sweep.layout
    settings = layout.options.settings
    assert isinstance(settings, LMCache)
    connector = layout.connector.name
    _refuse(sweep, row, settings, engine_for(layout.engine).stores_nothing(layout, chunk))
    writer_bytes = per_writer_bytes(row, layout)
    cpu_gb = max(DEFAULT_CPU_BUFFER_BYTES // GIB, math.ceil(writer_bytes * margin / GIB))
    times = exact_number(margin)
    comments = [
        f"LMCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, connector {connector}.",
        f"chunk_size {chunk:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt.",
        f"max_local_cpu_size {cpu_gb:,} GB: one writer loads {format_iec(writer_bytes)} per prompt, x {times} margin "
        "(LMCache default 5).",
    ]
    warnings: list[str] = []
    timeout = int(DEFAULT_BLOCKING_TIMEOUT_S)
    if plan is not None:
        timing = plan.timings[index]
        timeout = max(timeout, math.ceil(timing.load_seconds * margin))
        prompts = plan.options.concurrent_prompts
        comments.append(
            f"blocking_timeout_secs {timeout:,}: predicted load {timing.load_seconds:.2f} s on {plan.backend.name} with "
            f"{prompts} prompt{'s' if prompts != 1 else ''} at once, x {times} margin (LMCache default 10)."
        )
        warnings += [
            f"chunk {chunk:,} breaks an engine limit no setting here fixes: {risk.detail}"
            for risk in timing.breaches
            if risk.limit in ("max_value_size", "int32_header", "pinned_memory")
        ]
    else:
        comments.append("blocking_timeout_secs 10: LMCache's default; no backend given, so no load was predicted.")
    fill = _fill(connector, row, layout, margin, given)
    comments += _connector_comments(connector, fill, row, times)
    notes, said = _placeholder_notes(connector, emitted(connector, fill), given)
    comments += notes
    warnings += said + unused(given, USES[connector], f"LMCache's {connector} settings")
    _readable(cpu_gb, timeout, times, fill["gds_mib"] if connector in ("gds", "weka") else 0)
    text = emit_settings(
        chunk_size=chunk,
        connector=connector,
        save_unfull_chunk=settings.save_unfull_chunk,
        layerwise=settings.layerwise,
        blocking_timeout_secs=timeout,
        max_local_cpu_size_gb=cpu_gb,
        comments=comments,
        fill=fill,
    )
    return text, warnings


def _refuse(sweep: Sweep, row: SweepRow, settings: LMCache, never: str | None) -> None:
    """Settings LMCache would start with and never store by: refused, with the fix."""
    connector = sweep.layout.connector.name
    if never is not None:
        raise KvsizeError(
            f"`emit` lmcache: chunk {row.chunk_tokens:,} stores nothing on {connector}: {never}", field="chunk_size"
        )
    if settings.save_unfull_chunk and connector in ("resp", "valkey"):
        raise KvsizeError(
            f"`emit` lmcache: LMCache 0.5.6's {connector} connector refuses save_unfull_chunk (its adapter asserts it is "
            "false, and the cache stores nothing); drop `save_unfull_chunk`",
            field="save_unfull_chunk",
        )


def _readable(cpu_gb: int, timeout: int, margin: str, gds_mib: int) -> None:
    """Refuse settings past what ``kvsize check`` reads back (``read_settings``'s bounds)."""
    for key, value, high, unit in (
        ("max_local_cpu_size", cpu_gb, MAX_CPU_GB, "GB"),
        ("blocking_timeout_secs", timeout, MAX_TIMEOUT_S, "s"),
        ("gds_buffer_size", gds_mib, MAX_GDS_MIB, "MiB"),
    ):
        if value > high:
            raise KvsizeError(
                f"`emit` lmcache: {key} would be {value:,} {unit} (the prediction x `margin` {margin}), past the "
                f"{high:,} {unit} kvsize check reads back: lower `margin`, or size a shorter `prompt`",
                field="margin",
            )
