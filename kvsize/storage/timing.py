"""Backend profiles, the load-time model, engine-limit risks and the chunk-size recommendation.

The time model (STORAGE-FACTS, "Time for n objects of s bytes with C in flight")::

    t_op         = r · L + s / b             (r round trips per object: 2 for redis's two keys)
    load_seconds = max( ceil(n_w / C) · t_op,  (waves: each writer loads its n_w objects, C in flight)
                        N · bytes / B,         (aggregate bandwidth, shared by all writers and prompts)
                        N · wire / R )         (request-rate cap on what the storage sees)

Presets hold only published or explicitly derived figures, each labelled with its
source. They take the favourable end of each published range (lowest latency,
highest bandwidth), so a risk a preset shows is a risk on real storage. A figure
that is not published is left out and asked for (a flag, or a measured profile).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvsize.engines.lmcache import Layout
from kvsize.errors import BackendError, KvsizeError, shown
from kvsize.files import read_yaml
from kvsize.plan import SweepRow
from kvsize.units import format_iec, parse_duration, parse_rate, parse_size

GIB = 2**30
LMCACHE_BLOCKING_TIMEOUT_S = 10.0  # lmcache/v1/config.py: blocking_timeout_secs
LMCACHE_CPU_BUFFER_BYTES = 5 * GIB  # lmcache/v1/config.py: max_local_cpu_size 5.0 (GB, read as GiB)
S3_MAX_INFLIGHT_REQS = 64  # lmcache s3 adapter: extra_config s3_max_inflight_reqs default
INT32_MAX_BYTES = 2**31  # a length field of int32 cannot describe 2 GiB or more
EQUAL_COST = 0.01
"""Costs within 1% of the least count as equal; the smallest such chunk is recommended."""


class BackendProfile(BaseModel):
    """Timing of one storage tier. Headers and requests per object belong to the connector."""

    model_config = ConfigDict(frozen=True)

    name: str
    latency_s: float | None = None
    stream_bytes_per_s: float | None = None
    aggregate_bytes_per_s: float | None = None
    concurrency: int | None = None
    max_requests_per_s: float | None = None
    write_max_requests_per_s: float | None = None
    part_size_bytes: int | None = None
    max_value_bytes: int | None = None
    source: str = ""
    figures: dict[str, str] = {}
    """Per figure: where it comes from (a published source, or how it was derived)."""
    missing: dict[str, str] = {}
    """Figures that are not published, and how to supply them."""

    def require(self) -> tuple[float, float, int]:
        """L, b and C, or an error naming the missing figure and how to give it."""
        flags = {"latency_s": "--latency", "stream_bytes_per_s": "--stream-bandwidth", "concurrency": "--concurrency"}
        for field, flag in flags.items():
            if getattr(self, field) is None:
                why = self.missing.get(field, "not given")
                raise KvsizeError(
                    f"backend {self.name}: {field.removesuffix('_s').replace('_', ' ')} is {why}; give {flag} "
                    "or a measured profile (--backend PROFILE.yaml, written by 'kvsize probe')"
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
            missing={"concurrency": "not published for LMCache's redis connector"},
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

# The connectors each preset's storage is reached through (the connector decides headers and requests).
PRESET_CONNECTORS = {
    "s3": ("s3",),
    "s3-express": ("s3",),
    "nfs": ("fs", "gds", "weka", "local-disk"),
    "nfs-100g": ("fs", "gds", "weka", "local-disk"),
    "pnfs-rdma": ("fs", "gds", "weka"),
    "nvme": ("local-disk", "fs", "gds"),
    "redis": ("redis", "valkey", "resp"),
    "cpu": ("cpu",),
}


def connector_mismatch(backend: str | None, connector: str) -> str | None:
    """A warning when a preset is timed through a connector that does not reach that storage."""
    expected = PRESET_CONNECTORS.get(backend or "")
    if expected is None or connector in expected:
        return None
    return (
        f"--backend {backend} is timed through --connector {connector}, which decides the headers and requests "
        f"per object; did you mean --connector {expected[0]}?"
    )


GPUS = {
    # Dense BF16 Tensor Core peak, vendor datasheets.
    "a100": (312e12, "NVIDIA A100 datasheet: 312 TFLOP/s dense BF16"),
    "h100": (989e12, "NVIDIA H100 SXM datasheet: 989 TFLOP/s dense BF16"),
    "h200": (989e12, "NVIDIA H200 datasheet: 989 TFLOP/s dense BF16"),
    "l40s": (362e12, "NVIDIA L40S datasheet: 362 TFLOP/s dense BF16"),
    "b200": (2.25e15, "NVIDIA B200 (HGX B200 datasheet): 2.25 PFLOP/s dense BF16"),
}
DEFAULT_MFU = 0.4

_PROFILE_FIELDS = {
    "latency": ("latency_s", parse_duration),
    "stream_bandwidth": ("stream_bytes_per_s", parse_rate),
    "aggregate_bandwidth": ("aggregate_bytes_per_s", parse_rate),
    "concurrency": ("concurrency", None),
    "max_requests_per_s": ("max_requests_per_s", None),
    "write_max_requests_per_s": ("write_max_requests_per_s", None),
    "part_size": ("part_size_bytes", parse_size),
    "max_value_size": ("max_value_bytes", parse_size),
}


def load_profile(path: Path) -> BackendProfile:
    """A backend profile YAML (written by ``kvsize probe``, or by hand).

    Keys: name, source, latency (``200us``), stream_bandwidth (``650MB/s``),
    aggregate_bandwidth, concurrency, max_requests_per_s, write_max_requests_per_s,
    part_size (``8MiB``), max_value_size. Bare numbers are seconds, bytes/s or bytes.
    """
    data = read_yaml(path, "backend profile")
    if not isinstance(data, dict):
        raise KvsizeError(f"backend profile {path} must be a mapping of figures (latency, stream_bandwidth, ...)")
    values: dict[str, Any] = {"name": str(data.get("name") or path.stem), "source": str(data.get("source") or path)}
    figures: dict[str, str] = {}
    for key, raw in data.items():
        if key in ("name", "source", "figures", "missing"):
            continue
        if key not in _PROFILE_FIELDS:
            raise KvsizeError(f"backend profile {path}: unknown figure {shown(key)}; use {', '.join(_PROFILE_FIELDS)}")
        field, parser = _PROFILE_FIELDS[key]
        values[field] = _profile_value(path, key, raw, parser)
        figures[field] = f"{raw} ({values['source']})"
    return BackendProfile(**values, figures=figures)


def _profile_value(path: Path, key: str, raw: Any, parser: Any) -> float | int:
    if isinstance(raw, bool) or raw is None:
        raise KvsizeError(f"backend profile {path}: {key} = {shown(raw)} is not a figure")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw):
            raise BackendError(f"backend profile {path}: {key} = {shown(raw)} is not a finite figure; give a number", field=key)
        value: float | int = raw
    elif parser is None:
        raise KvsizeError(f"backend profile {path}: {key} = {shown(raw)} must be a number")
    else:
        value = parser(str(raw), f"{path}: {key}")
    if value < 0 or (value == 0 and key != "latency"):  # a fitted latency may be 0
        raise KvsizeError(f"backend profile {path}: {key} must be more than 0, got {shown(raw)}")
    if key == "concurrency" and (not isinstance(value, int) or isinstance(value, bool)):
        raise KvsizeError(f"backend profile {path}: concurrency must be a whole number, got {shown(raw)}")
    return value


def resolve_backend(name_or_path: str | None, overrides: dict[str, Any]) -> BackendProfile:
    """A preset name or a profile file, with explicit flag overrides on top (labelled as such)."""
    if name_or_path is None:
        if not overrides:
            raise KvsizeError("no backend: give --backend with a preset or a profile file")
        base = BackendProfile(name="custom", source="command-line figures")
    elif name_or_path in PRESETS:
        base = PRESETS[name_or_path]
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        base = load_profile(Path(name_or_path))
    else:
        raise KvsizeError(f"unknown backend {shown(name_or_path)}: use a preset ({', '.join(PRESETS)}) or a profile YAML file")
    if not overrides:
        return base
    figures = dict(base.figures)
    missing = dict(base.missing)
    for field in overrides:
        figures[field] = "given on the command line"
        missing.pop(field, None)
    return base.model_copy(update={**overrides, "figures": figures, "missing": missing})


FIGURE_NAMES = {
    "latency_s": "latency",
    "stream_bytes_per_s": "stream bandwidth",
    "aggregate_bytes_per_s": "aggregate bandwidth",
    "concurrency": "concurrency",
    "max_requests_per_s": "request rate",
    "write_max_requests_per_s": "write request rate",
    "part_size_bytes": "part size",
    "max_value_bytes": "max value size",
}


class Risk(BaseModel):
    """An engine limit one row breaks: its name, the value, the threshold, and a sentence."""

    model_config = ConfigDict(frozen=True)

    name: str
    value: int | float
    """An integer for bytes and counts, seconds as a float."""
    threshold: int | float
    unit: str
    detail: str


def per_writer_bytes(row: SweepRow, layout: Layout) -> int:
    """KV bytes one writer of the largest stage loads for the prompt (what its CPU buffer must hold)."""
    largest = layout.largest_stage
    return row.stages[largest.index].total_bytes // largest.writers


def pinned_bytes_needed(row: SweepRow, layout: Layout, options: TimeOptions) -> int | None:
    """LMCache's S3 pinned-memory rule: ``(bytes/token) x chunk_size x s3_max_inflight_reqs +
    max_local_cpu_size x num_tp_workers``; None on other connectors."""
    if layout.connector.name != "s3":
        return None
    return row.object_bytes * options.s3_max_inflight_reqs + options.cpu_buffer_bytes * layout.options.tp


def engine_risks(row: SweepRow, layout: Layout, options: TimeOptions) -> list[Risk]:
    """The engine limits that need no storage timing: CPU buffer, S3 pinned memory, int32 header length."""
    found = []
    per_writer = per_writer_bytes(row, layout)
    if per_writer > options.cpu_buffer_bytes:
        found.append(
            Risk(
                name="cpu_buffer",
                value=per_writer,
                threshold=options.cpu_buffer_bytes,
                unit="B",
                detail=f"one writer's {format_iec(per_writer)} > max_local_cpu_size {format_iec(options.cpu_buffer_bytes)}",
            )
        )
    pinned = pinned_bytes_needed(row, layout, options)
    if pinned is not None and options.pinned_memory_bytes is not None and pinned > options.pinned_memory_bytes:
        found.append(
            Risk(
                name="pinned_memory",
                value=pinned,
                threshold=options.pinned_memory_bytes,
                unit="B",
                detail=f"S3 pinned memory {format_iec(pinned)} > available {format_iec(options.pinned_memory_bytes)}",
            )
        )
    connector = layout.connector
    if connector.int32_header and row.object_bytes >= INT32_MAX_BYTES:
        found.append(
            Risk(
                name="int32_header",
                value=row.object_bytes,
                threshold=INT32_MAX_BYTES - 1,
                unit="B",
                detail=f"object {format_iec(row.object_bytes)} >= 2 GiB: {connector.name}'s int32 header length overflows",
            )
        )
    return found


class RowTiming(BaseModel):
    """The time model and risks for one sweep row on one backend."""

    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    load_seconds: float
    load_bound: str
    """Which term set the load time: 'waves' (each writer's requests, C in flight), 'bandwidth' (aggregate) or 'request rate'."""
    store_seconds: float | None
    wire_requests: int
    max_concurrent_prompts: int | None
    """Prompts that can load at once within the blocking timeout; None = no shared cap limits them."""
    per_writer_bytes: int
    pinned_bytes_needed: int | None
    recompute_tokens: int
    recompute_seconds: float | None
    cost_seconds: float | None
    risks: tuple[str, ...]
    risk_details: tuple[str, ...]
    risk_list: tuple[Risk, ...] = ()


class TimeOptions(BaseModel):
    """The deployment limits and workload the time model checks against."""

    model_config = ConfigDict(frozen=True)

    concurrent_prompts: int = 1
    """Prompts loading at once from the same storage, over all serving instances."""
    instances: int = 1
    """Serving instances the concurrent prompts are spread over (each has its own GPUs and CPU buffers)."""
    blocking_timeout_s: float = LMCACHE_BLOCKING_TIMEOUT_S
    cpu_buffer_bytes: int = LMCACHE_CPU_BUFFER_BYTES
    pinned_memory_bytes: int | None = None
    shared_prefix_tokens: int | None = None
    prefill_tokens_per_s: float | None = None
    s3_max_inflight_reqs: int = S3_MAX_INFLIGHT_REQS


def wire_requests(row: SweepRow, layout: Layout, profile: BackendProfile) -> int:
    """Requests the storage sees for one prompt.

    S3: ``ceil(s / part_size)`` ranged GETs (or part PUTs) per object, an estimate since
    LMCache leaves the part size to the client (awscrt); redis: two keys per chunk; else
    the connector's requests per object.
    """
    connector = layout.connector
    if connector.name == "s3" and profile.part_size_bytes:
        # S3 stores whole chunks only, so every object is a full one of its stage's size.
        part = profile.part_size_bytes
        return sum(stage.objects * math.ceil(stage.object_bytes / part) for stage in row.stages if stage.objects)
    return row.objects * connector.requests_per_object


def load_time(
    *,
    objects_per_writer: int,
    object_bytes: int,
    total_bytes: int,
    wire_requests: int,
    round_trips: int,
    profile: BackendProfile,
    prompts: int = 1,
) -> tuple[float, str, float]:
    """``(load_seconds, bound, waves_seconds)``: the time model for one prompt's objects.

    ``max(ceil(n_w / C) x (r x L + s / b), N x bytes / B, N x wire / R)``.
    """
    latency, stream, concurrency = profile.require()
    t_op = round_trips * latency + object_bytes / stream
    waves = math.ceil(objects_per_writer / concurrency) * t_op if objects_per_writer else 0.0
    terms = {"waves": waves}
    if profile.aggregate_bytes_per_s:
        terms["bandwidth"] = prompts * total_bytes / profile.aggregate_bytes_per_s
    if profile.max_requests_per_s:
        terms["request rate"] = prompts * wire_requests / profile.max_requests_per_s
    bound = max(terms, key=lambda k: terms[k])
    return terms[bound], bound, waves


def time_row(row: SweepRow, layout: Layout, profile: BackendProfile, options: TimeOptions) -> RowTiming:
    connector = layout.connector
    prompts = options.concurrent_prompts
    wire = wire_requests(row, layout, profile)
    load, bound, waves = load_time(
        objects_per_writer=row.objects_per_writer,
        object_bytes=row.object_bytes + (connector.header_bytes if connector.requests_per_object == 1 else 0),
        total_bytes=row.stored_bytes,
        wire_requests=wire,
        round_trips=connector.requests_per_object,
        profile=profile,
        prompts=prompts,
    )

    store = None
    if profile.write_max_requests_per_s:
        store_terms = [waves, prompts * wire / profile.write_max_requests_per_s]
        if profile.aggregate_bytes_per_s:
            store_terms.append(prompts * row.stored_bytes / profile.aggregate_bytes_per_s)
        store = max(store_terms)

    if waves > options.blocking_timeout_s:
        max_prompts: int | None = 0
    else:
        caps = []
        if profile.aggregate_bytes_per_s and row.stored_bytes:
            caps.append(options.blocking_timeout_s * profile.aggregate_bytes_per_s / row.stored_bytes)
        if profile.max_requests_per_s and wire:
            caps.append(options.blocking_timeout_s * profile.max_requests_per_s / wire)
        max_prompts = math.floor(min(caps)) if caps else None

    per_writer = per_writer_bytes(row, layout)
    pinned = pinned_bytes_needed(row, layout, options)

    recompute = 0 if row.tail_saved else row.tail_tokens
    if options.shared_prefix_tokens is not None:
        recompute += options.shared_prefix_tokens % row.chunk_tokens
    recompute_s = recompute / options.prefill_tokens_per_s if options.prefill_tokens_per_s else None

    found: list[Risk] = []
    if load > options.blocking_timeout_s:
        found.append(
            Risk(
                name="blocking_timeout",
                value=load,
                threshold=options.blocking_timeout_s,
                unit="s",
                detail=f"load {load:.2f} s > blocking_timeout_secs {options.blocking_timeout_s:g} s",
            )
        )
    found.extend(engine_risks(row, layout, options))
    stored_object = row.object_bytes + (connector.header_bytes if connector.requests_per_object == 1 else 0)
    if profile.max_value_bytes is not None and stored_object > profile.max_value_bytes:
        found.append(
            Risk(
                name="max_value_size",
                value=stored_object,
                threshold=profile.max_value_bytes,
                unit="B",
                detail=f"object {format_iec(stored_object)} > {profile.name} max value {format_iec(profile.max_value_bytes)}",
            )
        )
    risks = [risk.name for risk in found]
    details = [risk.detail for risk in found]
    return RowTiming(
        chunk_tokens=row.chunk_tokens,
        load_seconds=load,
        load_bound=bound,
        store_seconds=store,
        wire_requests=wire,
        max_concurrent_prompts=max_prompts,
        per_writer_bytes=per_writer,
        pinned_bytes_needed=pinned,
        recompute_tokens=recompute,
        recompute_seconds=recompute_s,
        cost_seconds=load + recompute_s if recompute_s is not None else None,
        risks=tuple(risks),
        risk_details=tuple(details),
        risk_list=tuple(found),
    )


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    chunk_tokens: int
    at_risk: bool
    """True when every row is at risk and this is the least-bad one."""
    reason: str


def recommend(timings: list[RowTiming]) -> Recommendation | None:
    """The chunk size minimising load + recompute among rows with no risk; else the least bad, flagged.

    None when the recompute cost is unknown (no prefill throughput).
    """
    if not timings or any(t.cost_seconds is None for t in timings):
        return None
    safe = [t for t in timings if not t.risks]
    fewest = min(len(t.risks) for t in timings)
    pool = safe or [t for t in timings if len(t.risks) == fewest]
    least = min(t.cost_seconds or 0.0 for t in pool)
    # Costs within EQUAL_COST of the least are equal at the model's precision: the smaller chunk wins them
    # (less pinned memory per request in flight, a shorter tail to recompute).
    best = min((t for t in pool if (t.cost_seconds or 0.0) <= least * (1 + EQUAL_COST)), key=lambda t: t.chunk_tokens)
    assert best.cost_seconds is not None and best.recompute_seconds is not None
    reason = (
        f"chunk {best.chunk_tokens:,}: load {best.load_seconds:.2f} s ({best.load_bound}-bound) + recompute of "
        f"{best.recompute_tokens:,} tokens {best.recompute_seconds:.2f} s = {best.cost_seconds:.2f} s, the least"
    )
    if best.cost_seconds and best.cost_seconds > least:
        reason += " (within 1% of the least cost, and the smallest such chunk)"
    if safe:
        reason += f" of the {len(safe)} chunk sizes with no risk"
    else:
        reason += f"; every chunk size is at risk, this one least ({', '.join(best.risks)})"
    return Recommendation(chunk_tokens=best.chunk_tokens, at_risk=not safe, reason=reason)


class PrefillEstimate(BaseModel):
    """Prefill throughput for recomputed tokens, and the assumption behind it."""

    model_config = ConfigDict(frozen=True)

    tokens_per_s: float
    assumption: str


def estimate_prefill(
    active_params: int | None, attention: tuple[int, int, int] | None, gpus: int, gpu: str, mfu: float, context_tokens: int
) -> PrefillEstimate | None:
    """Tokens/s from FLOPs: ``2 x active params + 4 x attention layers x heads x head size x context`` per token
    (the recomputed tokens sit at the end of the prompt, so each attends to about the whole context).

    None when the config does not give a parameter count.
    """
    if active_params is None or attention is None:
        return None
    if gpu not in GPUS:
        raise KvsizeError(f"unknown --gpu {shown(gpu)}: use one of {', '.join(GPUS)}, or give --prefill-tps")
    peak, source = GPUS[gpu]
    layers, heads, head_size = attention
    flops_per_token = 2 * active_params + 4 * layers * heads * head_size * context_tokens
    tokens_per_s = gpus * peak * mfu / flops_per_token
    return PrefillEstimate(
        tokens_per_s=tokens_per_s,
        assumption=(
            f"prefill ~{tokens_per_s:,.0f} tokens/s estimated: {gpus} x {gpu} ({source}) at {mfu:.0%} utilisation, "
            f"{flops_per_token / 1e9:,.1f} GFLOP/token (2 x {active_params / 1e9:.2f} B active parameters + attention "
            f"over {context_tokens:,} tokens); give --prefill-tps for a measured figure"
        ),
    )


class StoragePlan(BaseModel):
    """A sweep's rows timed on one backend, with the recommendation."""

    model_config = ConfigDict(frozen=True)

    backend: BackendProfile
    options: TimeOptions
    timings: tuple[RowTiming, ...]
    recommendation: Recommendation | None
    prefill_assumption: str | None
    notes: tuple[str, ...]
    full_recompute_seconds: float | None = None
    """Prefill of the prompts one serving instance holds, all recomputed: ``ceil(N / instances) x prompt / rate``."""
    offload_pays: bool | None = None
    """False when the recommended chunk's load + tail recompute is not below ``full_recompute_seconds``;
    None when the recompute cost is unknown."""


def prompts_per_instance(options: TimeOptions) -> int:
    """Prompts one serving instance holds when ``concurrent_prompts`` are spread over ``instances``."""
    return -(-options.concurrent_prompts // options.instances)


def full_recompute_seconds(prompt_tokens: int, options: TimeOptions) -> float | None:
    """What one serving instance needs to prefill its share of the prompts instead of loading them."""
    if not options.prefill_tokens_per_s:
        return None
    return prompts_per_instance(options) * prompt_tokens / options.prefill_tokens_per_s


def plan_storage(
    rows: tuple[SweepRow, ...] | list[SweepRow],
    layout: Layout,
    profile: BackendProfile,
    options: TimeOptions,
    prefill_assumption: str | None = None,
) -> StoragePlan:
    """Time every row on ``profile`` and pick the chunk size."""
    timings = [time_row(row, layout, profile, options) for row in rows]
    notes = []
    if layout.kv_factor == 1 and layout.writers == 1 and layout.options.tp > 1:
        notes.append("MLA loads through one writer; its broadcast to the other TP ranks is not modelled")
    if layout.connector.name == "s3":
        notes.append(
            "S3 wire requests are an estimate: ceil(object / part size) ranged GETs per object (LMCache leaves the "
            "part size to awscrt); the one HEAD per chunk of a lookup is cached per process and not counted"
        )
    recommendation = recommend(timings)
    prompt_tokens = rows[0].full_chunks * rows[0].chunk_tokens + rows[0].tail_tokens if rows else 0
    recompute_all = full_recompute_seconds(prompt_tokens, options)
    pays = None
    if recommendation is not None and recompute_all is not None:
        best = next(t for t in timings if t.chunk_tokens == recommendation.chunk_tokens)
        pays = best.cost_seconds is not None and best.cost_seconds < recompute_all
    return StoragePlan(
        backend=profile,
        options=options,
        timings=tuple(timings),
        recommendation=recommendation,
        prefill_assumption=prefill_assumption,
        notes=tuple(notes),
        full_recompute_seconds=recompute_all,
        offload_pays=pays,
    )


def search_chunk(
    layout: Layout, prompt_tokens: int, profile: BackendProfile, options: TimeOptions, low: int, high: int, block: int
) -> int | None:
    """The best chunk size among the multiples of the vLLM block size in [low, high] (``--search``)."""
    from kvsize.plan import plan_row

    start = max(block, math.ceil(low / block) * block)
    timings = [
        time_row(plan_row(layout, prompt_tokens, chunk), layout, profile, options) for chunk in range(start, high + 1, block)
    ]
    best = recommend(timings)
    return best.chunk_tokens if best else None
