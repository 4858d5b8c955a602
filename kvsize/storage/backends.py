"""Storage backends: published presets, measured profiles and command-line figures.

Presets hold only published or explicitly derived figures, each labelled with its
source (docs/load-time.md). They take the favourable end of each published range (lowest
latency, highest bandwidth), so a risk a preset shows is a risk on real storage. A figure
that is not published is left out and asked for (a flag, or a measured profile).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kvsize.errors import BackendError, shown

MAX_CONCURRENCY = 100_000
MAX_OBJECT_BYTES = 2**50
FIGURE_RANGES: dict[str, tuple[float, float, str]] = {
    "latency_s": (0.0, 3600.0, "0 to 3,600 s (an hour)"),
    "per_object_s": (0.0, 3600.0, "0 to 3,600 s (an hour)"),
    "stream_bytes_per_s": (1.0, 1e16, "1 B/s to 10 PB/s"),
    "aggregate_bytes_per_s": (1.0, 1e16, "1 B/s to 10 PB/s"),
    "max_requests_per_s": (1e-3, 1e12, "0.001 to 10^12 requests/s"),
    "write_max_requests_per_s": (1e-3, 1e12, "0.001 to 10^12 requests/s"),
    "concurrency": (1, MAX_CONCURRENCY, "a whole number 1 to 100,000"),
    "part_size_bytes": (1, 2**40, "a whole number of bytes, 1 B to 1 TiB"),
    "max_value_bytes": (1, MAX_OBJECT_BYTES, "a whole number of bytes, 1 B to 1 PiB"),
}
"""What a storage figure may physically be: every figure kvsize times with is finite and in this range, so a load
time is finite too (a typo of a profile, a broken measurement, is refused rather than timed)."""


def figure_problem(field: str, value: object) -> str | None:
    """Why ``value`` cannot be the figure ``field`` (``FIGURE_RANGES``), or None."""
    low, high, words = FIGURE_RANGES[field]
    whole = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return f"must be {words}"
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        zero_ok = field in ("latency_s", "per_object_s")
        return f"must be {words}" if whole or zero_ok else f"must be a finite number more than 0, {words}"
    return None


class BackendProfile(BaseModel):
    """Timing of one storage tier. Headers and requests per object belong to the connector."""

    model_config = ConfigDict(frozen=True, strict=True)  # strict: a bool or a numeric string is not a figure

    name: str
    latency_s: float | None = None
    per_object_s: float | None = None
    """P: the fixed cost of one object beyond its data request(s): opening and closing a file and its metadata round
    trips (NFS LOOKUP/OPEN/GETATTR/CLOSE), the local syscalls, an object store's request set-up. None: not known (0 is
    used, and ``missing`` says so)."""
    stream_bytes_per_s: float | None = None
    aggregate_bytes_per_s: float | None = None
    concurrency: int | None = None
    max_requests_per_s: float | None = None
    write_max_requests_per_s: float | None = None
    part_size_bytes: int | None = None
    max_value_bytes: int | None = None
    aggregate_by_concurrency: dict[int, float] | None = None
    """Aggregate bandwidth measured at each level of requests in flight (a probe's profile); the time model reads
    B at the load's own level. None: ``aggregate_bytes_per_s`` at any level."""
    aggregate_by_object_size: dict[int, dict[int, float]] | None = None
    """The same per object size (each probe set alone): the time model uses the size nearest the load's objects."""
    ranges: dict[str, tuple[float, float]] = {}
    """Per figure field (``latency_s``, ``per_object_s``, ``stream_bytes_per_s``, ...): ``(low, high)`` as published
    (a preset: the figure is the typical value inside it) or as measured (a probe's repeats). A figure with no range
    has no spread."""
    source: str = ""
    figures: dict[str, str] = {}
    """Per figure: where it comes from (a published source, or how it was derived)."""
    missing: dict[str, str] = {}
    """Figures that are not published, and how to supply them."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "name"
            raise BackendError(
                f"backend {shown(data.get('name'))}: `{field}` {first['msg'].lower()}, got {shown(first.get('input'))}",
                field=field,
            ) from None
        for field in FIGURE_RANGES:
            value = getattr(self, field)
            if value is not None and (problem := figure_problem(field, value)):
                raise BackendError(f"backend {self.name}: `{field}` {problem}, got {shown(value)}", field=field)
        self._check_ranges()
        by_size = self.aggregate_by_object_size or {}
        if any(isinstance(size, bool) or not 1 <= size <= MAX_OBJECT_BYTES for size in by_size):
            raise BackendError(
                f"backend {self.name}: `aggregate_by_object_size` needs sizes of at least 1 byte and at most 1 PiB",
                field="aggregate_by_object_size",
            )
        tables = [("aggregate_by_concurrency", self.aggregate_by_concurrency or {})]
        tables += [("aggregate_by_object_size", levels) for levels in by_size.values()]
        for table, levels in tables:
            for level, rate in levels.items():
                if figure_problem("concurrency", level) or figure_problem("aggregate_bytes_per_s", rate):
                    raise BackendError(
                        f"backend {self.name}: `{table}` needs levels of at least 1 (at most {MAX_CONCURRENCY:,}) and "
                        f"finite rates more than 0 (1 B/s to 10 PB/s), got {shown(level)}: {shown(rate)}",
                        field=table,
                    )

    def _check_ranges(self) -> None:
        """Each range is of a figure kvsize times with, ``low <= high``, both physical, and holds the figure."""
        for field, bounds in self.ranges.items():
            if field not in FIGURE_RANGES:
                raise BackendError(
                    f"backend {self.name}: its ranges name {shown(field)}, not a figure ({', '.join(FIGURE_RANGES)})",
                    field="ranges",
                )
            low, high = bounds
            problem = figure_problem(field, low) or figure_problem(field, high)
            value = getattr(self, field)
            if problem or low > high or (value is not None and not low <= value <= high):
                why = problem or ("low is above high" if low > high else f"it does not hold the figure {shown(value)}")
                raise BackendError(f"backend {self.name}: the range of {field} {shown(bounds)}: {why}", field="ranges")

    def aggregate_at(self, in_flight: int, object_bytes: int | None = None) -> float | None:
        """B at ``in_flight`` requests of ``object_bytes``: from the sets of the nearest object size (by ratio) when the
        profile has them, else all sets; linear between the measured levels, the nearest level outside them."""
        levels = self.aggregate_by_concurrency
        sizes = self.aggregate_by_object_size
        if sizes and object_bytes:
            nearest = min(sizes, key=lambda size: abs(math.log(size / object_bytes)))
            levels = sizes[nearest]
        if not levels:
            return self.aggregate_bytes_per_s
        points = sorted(levels.items())
        if in_flight <= points[0][0]:
            return points[0][1]
        for (low, low_b), (high, high_b) in itertools.pairwise(points):
            if in_flight <= high:
                return low_b + (high_b - low_b) * (in_flight - low) / (high - low)
        return points[-1][1]

    def require(self) -> tuple[float, float, int]:
        """L, b and C, or an error naming the missing figure and how to give it."""
        flags = {"latency_s": "`latency`", "stream_bytes_per_s": "`stream_bandwidth`", "concurrency": "`concurrency`"}
        for field, flag in flags.items():
            if getattr(self, field) is None:
                why = self.missing.get(field, "not given")
                raise BackendError(
                    f"backend {self.name}: {field.removesuffix('_s').replace('_', ' ')} is {why}; give {flag} "
                    "or a measured profile (`backend` PROFILE.yaml, written by 'kvsize probe')"
                )
        assert self.latency_s is not None and self.stream_bytes_per_s is not None and self.concurrency is not None
        return self.latency_s, self.stream_bytes_per_s, self.concurrency


_AWS_PERF = "AWS S3 User Guide, 'Best practices design patterns: optimizing Amazon S3 performance'"
_FS_CONCURRENCY = (
    "LMCache's fs connector reads through aiofiles, i.e. asyncio's default thread pool: min(32, CPUs + 4) "
    "= 32 workers on a server with 28 or more CPUs"
)

PRESETS: dict[str, BackendProfile] = {
    p.name: p
    for p in (
        BackendProfile(
            name="s3",
            latency_s=0.100,
            stream_bytes_per_s=90e6,
            concurrency=64,
            max_requests_per_s=5500,
            write_max_requests_per_s=3500,
            part_size_bytes=8 * 2**20,
            source=_AWS_PERF,
            figures={
                "latency_s": "100 ms: low end of the published 100-200 ms first byte for large objects",
                "stream_bytes_per_s": "90 MB/s: high end of the published 85-90 MB/s per connection",
                "concurrency": "64: LMCache S3 connector default (s3_num_io_threads / s3_max_io_concurrency)",
                "max_requests_per_s": "5,500 GET/s per partitioned prefix",
                "write_max_requests_per_s": "3,500 PUT/s per partitioned prefix",
                "part_size_bytes": "8 MiB: aws-c-s3 fallback part size; LMCache leaves the part size to the client",
            },
            missing={
                "aggregate_bytes_per_s": "the client's network, not an S3 figure: no aggregate cap applied (the guide's "
                "example: ~15 connections fill 10 Gb/s; give --aggregate-bandwidth, e.g. your NIC's 100Gbit/s)",
            },
        ),
        BackendProfile(
            name="s3-express",
            latency_s=0.001,
            concurrency=64,
            max_requests_per_s=200_000,
            write_max_requests_per_s=100_000,
            part_size_bytes=8 * 2**20,
            source="AWS S3 User Guide, S3 Express One Zone performance",
            figures={
                "latency_s": "1 ms: low end of the published 'single-digit ms' (AWS S3 Express One Zone)",
                "concurrency": "64: LMCache S3 connector default (s3_num_io_threads / s3_max_io_concurrency)",
                "max_requests_per_s": "200,000 reads/s per directory bucket by default (AWS S3 Express One Zone)",
                "write_max_requests_per_s": "100,000 writes/s per directory bucket by default (AWS S3 Express One Zone)",
                "part_size_bytes": "8 MiB: aws-c-s3 fallback part size",
            },
            missing={
                "stream_bytes_per_s": "not published for S3 Express One Zone",
                "aggregate_bytes_per_s": "not published: no aggregate cap applied (give --aggregate-bandwidth, your NIC)",
            },
        ),
        BackendProfile(
            name="nfs",
            latency_s=193e-6,
            stream_bytes_per_s=0.65e9,
            aggregate_bytes_per_s=0.65e9,
            concurrency=32,
            source="beckerg/nct README; mechanicker/iotrap (NFS over TCP, 10GbE)",
            figures={
                "latency_s": "193 us per 128 KiB READ at QD1 over 10GbE (beckerg/nct)",
                "stream_bytes_per_s": "0.65 GB/s per stream over 10GbE (beckerg/nct; mechanicker/iotrap)",
                "aggregate_bytes_per_s": "0.65 GB/s: one TCP connection per mount unless nconnect, so one stream's "
                "bandwidth (raise with --aggregate-bandwidth when nconnect is set)",
                "concurrency": _FS_CONCURRENCY,
            },
        ),
        BackendProfile(
            name="nfs-100g",
            latency_s=77e-6,
            stream_bytes_per_s=1.7e9,
            aggregate_bytes_per_s=1.7e9,
            concurrency=32,
            source="beckerg/nct README; mechanicker/iotrap (NFS over TCP, 100GbE)",
            figures={
                "latency_s": "77 us: low end of the published 77-144 us per READ over 100GbE (beckerg/nct)",
                "stream_bytes_per_s": "1.7 GB/s: high end of the published 1.6-1.7 GB/s per stream over 100GbE",
                "aggregate_bytes_per_s": "1.7 GB/s: one TCP connection per mount unless nconnect",
                "concurrency": _FS_CONCURRENCY,
            },
        ),
        BackendProfile(
            name="pnfs-rdma",
            stream_bytes_per_s=3.4e9,
            concurrency=32,
            source="NVIDIA blog headline (~2x NFS over TCP); NetApp ONTAP NFS-over-RDMA docs",
            figures={
                "stream_bytes_per_s": "3.4 GB/s: derived, 2x the 1.7 GB/s NFS-over-TCP 100GbE stream (NVIDIA headline '~2x')",
                "concurrency": _FS_CONCURRENCY,
            },
            missing={
                "latency_s": "not published for NFS/pNFS over RDMA",
                "aggregate_bytes_per_s": "not published: no aggregate cap applied (give --aggregate-bandwidth)",
            },
        ),
        BackendProfile(
            name="nvme",
            latency_s=78e-6,
            stream_bytes_per_s=7e9,
            aggregate_bytes_per_s=7e9,
            concurrency=32,
            source="AnandTech P4800X review; Samsung 990 PRO spec (PCIe 4.0 x4)",
            figures={
                "latency_s": "78 us: low end of the published 78-108 us per 4 KiB read at QD1 (AnandTech)",
                "stream_bytes_per_s": "7 GB/s sequential read, PCIe 4.0 x4 (Samsung 990 PRO spec)",
                "aggregate_bytes_per_s": "7 GB/s: one drive",
                "concurrency": _FS_CONCURRENCY,
            },
        ),
        BackendProfile(
            name="redis",
            latency_s=200e-6,
            stream_bytes_per_s=125e6,
            aggregate_bytes_per_s=125e6,
            max_value_bytes=536_870_912,
            source="redis.io latency doc; LMCache PR #1107 (over 1 GbE)",
            figures={
                "latency_s": "200 us round trip over 1 GbE (redis.io latency doc)",
                "stream_bytes_per_s": "125 MB/s: derived, network-bound on 1 GbE",
                "aggregate_bytes_per_s": "125 MB/s: derived, the 1 GbE link",
                "max_value_bytes": "512 MB (536,870,912 B): proto-max-bulk-len default (redis.io)",
            },
            missing={"concurrency": "fixed only for LMCache's redis:// connector (4: its AsyncPQExecutor's workers)"},
        ),
        BackendProfile(
            name="cpu",
            latency_s=1e-6,
            stream_bytes_per_s=25e9,
            concurrency=1,
            source="PCI-SIG rates; NVIDIA/nvbandwidth#24 (CPU memory to GPU, PCIe Gen4 x16)",
            figures={
                "latency_s": "1 us: the published order of magnitude ('us')",
                "stream_bytes_per_s": "25 GB/s measured over PCIe Gen4 x16 (NVIDIA/nvbandwidth#24)",
                "concurrency": "1: copies taken one after another; at 1 us the count in flight barely moves the time",
                "aggregate_bytes_per_s": "none shared: each GPU has its own link",
            },
        ),
    )
}

PRESET_TRANSPORTS = {
    "s3": "object",
    "s3-express": "object",
    "nfs": "file",
    "nfs-100g": "file",
    "pnfs-rdma": "file",
    "nvme": "file",
    "redis": "kv",
    "cpu": "memory",
}
"""What kind of storage each preset is: what an engine's connector or tier must reach (``Connector.transport``)."""


def connector_mismatch(backend: str | None, layout: Any) -> str | None:
    """A warning when a preset is timed through a connector (or an engine's tier) that does not reach that storage,
    naming the engine's setting that would."""
    from kvsize.engines.registry import engine_for

    transport = PRESET_TRANSPORTS.get(backend or "")
    if transport is None or layout.connector.transport == transport:
        return None
    engine = engine_for(layout.engine)
    current = layout.options.settings
    defaults = type(current)()
    fitting = engine.settings_for_transport(transport, defaults)
    changed = [
        name for name in type(current).model_fields if fitting is not None and getattr(fitting, name) != getattr(defaults, name)
    ]
    flags = type(current).FLAGS
    if fitting is None or not changed or changed[0] not in flags:
        return f"--backend {backend}: {engine.name} has no setting that reaches {transport} storage; its figures are a guess"
    flag = flags[changed[0]].name
    return (
        f"--backend {backend} is timed through {flag} {getattr(current, changed[0])}, which decides the headers and "
        f"requests per object; did you mean {flag} {getattr(fitting, changed[0])}?"
    )


FIGURE_NAMES = {
    "latency_s": "latency",
    "per_object_s": "per-object cost",
    "stream_bytes_per_s": "stream bandwidth",
    "aggregate_bytes_per_s": "aggregate bandwidth",
    "concurrency": "concurrency",
    "max_requests_per_s": "request rate",
    "write_max_requests_per_s": "write request rate",
    "part_size_bytes": "part size",
    "max_value_bytes": "max value size",
}
