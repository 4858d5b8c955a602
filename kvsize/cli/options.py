"""Every command-line option, declared once (typer ``Annotated`` aliases), and the enums of its choices."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from kvsize.cli.engine_flags import ENGINE_HELP, PANEL, EngineChoice
from kvsize.engines.registry import DEFAULT_ENGINE

DEFAULT_ENGINE_CHOICE = EngineChoice(DEFAULT_ENGINE)

TIME = "Storage time model"


class SizeFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class ReportFormat(str, Enum):
    """check and capacity: no CSV (their output is not one table of rows)."""

    table = "table"
    json = "json"
    markdown = "markdown"


class TableFormat(str, Enum):
    """inspect and probe."""

    table = "table"
    json = "json"


class ProbeEmit(str, Enum):
    fio = "fio"


class KvDtypeChoice(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    fp8 = "fp8"
    fp8_e4m3 = "fp8_e4m3"
    fp8_e5m2 = "fp8_e5m2"


ENGINE = PANEL

Model = Annotated[
    str, typer.Argument(help="Catalog name (see 'kvsize models'), a config.json or its directory, or a Hub repo ORG/NAME.")
]
Tp = Annotated[int, typer.Option("--tp", help="Tensor-parallel size.")]
Pp = Annotated[int, typer.Option("--pp", help="Pipeline-parallel size.")]
Prompt = Annotated[str, typer.Option("--prompt", "-p", help="Prompt tokens: 100000, 100k, 128Ki, 1M.")]
ChunkSizes = Annotated[str | None, typer.Option("--chunk-sizes", help="Candidate chunk sizes, e.g. 256,512,2048.")]
KvDtype = Annotated[KvDtypeChoice, typer.Option("--kv-dtype", help="KV-cache dtype; auto follows the checkpoint.")]
Catalog = Annotated[
    Path | None, typer.Option("--catalog", help="A catalog YAML whose entries override the bundled ones (or KVSIZE_CATALOG).")
]
Revision = Annotated[
    str | None, typer.Option("--revision", help="Hub branch, tag or commit (goes to the Hub even for catalog names).")
]
Offline = Annotated[bool, typer.Option("--offline", help="No network: Hub models from the cache only (as HF_HUB_OFFLINE=1).")]
VllmVersion = Annotated[
    str, typer.Option("--vllm-version", help="The vLLM that serves the model (architectures it retired are refused).")
]
Latency = Annotated[str | None, typer.Option("--latency", help="Per-operation latency, e.g. 100ms.", rich_help_panel=TIME)]
StreamBandwidth = Annotated[
    str | None, typer.Option("--stream-bandwidth", help="Per-stream bandwidth, e.g. 90MB/s.", rich_help_panel=TIME)
]
AggregateBandwidth = Annotated[
    str | None,
    typer.Option(
        "--aggregate-bandwidth", help="Bandwidth shared by all writers and prompts, e.g. 100Gbit/s.", rich_help_panel=TIME
    ),
]
Concurrency = Annotated[int | None, typer.Option("--concurrency", help="Requests in flight per writer.", rich_help_panel=TIME)]
MaxRequests = Annotated[
    float | None,
    typer.Option("--max-requests-per-s", help="Request-rate cap of the storage, e.g. 5500.", rich_help_panel=TIME),
]
PartSize = Annotated[str | None, typer.Option("--part-size", help="S3 part size, e.g. 8MiB.", rich_help_panel=TIME)]
ConcurrentPrompts = Annotated[
    int,
    typer.Option(
        "--concurrent-prompts", help="Prompts loading at once on the same storage (all instances).", rich_help_panel=TIME
    ),
]
Instances = Annotated[
    int,
    typer.Option(
        "--instances", help="Serving instances the concurrent prompts are spread over (default 1).", rich_help_panel=TIME
    ),
]
PrefillTps = Annotated[
    float | None,
    typer.Option("--prefill-tps", help="Measured prefill tokens/s, for the recompute cost.", rich_help_panel=TIME),
]
PrefillGpu = Annotated[
    str,
    typer.Option(
        "--gpu",
        help="GPU for the prefill estimate: h100, h200, b200, a100, l40s, ... (see 'kvsize MODEL --help').",
        rich_help_panel=TIME,
    ),
]
GPU = "GPU memory (the first tier)"
Gpu = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        help="The GPU: h100, h200, b200, gb200, a100, a100-40gb, l40s, l4, mi300x, ... (the prefill estimate's, default "
        "h100; given, the header shows vLLM's KV memory per GPU, the tokens that fit and the maximum concurrency).",
        rich_help_panel=GPU,
    ),
]
GpuMemory = Annotated[
    float | None,
    typer.Option("--gpu-memory", help="Another GPU's memory in GiB, as CUDA reports it (instead of --gpu).", rich_help_panel=GPU),
]
GpuMemoryUtilization = Annotated[
    float | None,
    typer.Option(
        "--gpu-memory-utilization", help="vLLM's share of the GPU's memory (default 0.92, vLLM 0.33's).", rich_help_panel=GPU
    ),
]
KvCacheMemoryBytes = Annotated[
    str | None,
    typer.Option(
        "--kv-cache-memory-bytes",
        help="vLLM's --kv-cache-memory-bytes: the KV cache per GPU, e.g. 10GiB (exact; the rest is then not estimated).",
        rich_help_panel=GPU,
    ),
]
Mfu = Annotated[float, typer.Option("--mfu", help="Utilisation of peak FLOP/s for the prefill estimate.", rich_help_panel=TIME)]
HostCpus = Annotated[
    int | None,
    typer.Option(
        "--host-cpus",
        help="CPUs of the serving host: LMCache's fs connector reads min(32, CPUs + 4) objects at once per writer "
        "(default: the profile's concurrency).",
        rich_help_panel=TIME,
    ),
]
SharedPrefix = Annotated[
    str | None, typer.Option("--shared-prefix", help="Tokens another prompt shares with this one.", rich_help_panel=TIME)
]
Engine = Annotated[EngineChoice, typer.Option("--engine", help=ENGINE_HELP, rich_help_panel=ENGINE)]
OptionalEngine = Annotated[EngineChoice | None, typer.Option("--engine", help=ENGINE_HELP, rich_help_panel=ENGINE)]
Emit = Annotated[
    EngineChoice | None,
    typer.Option(
        "--emit",
        help="Print the engine's own settings for the recommended or --chunk-size chunk (the engine sized: "
        "LMCache YAML with its LMCACHE_* form, vllm serve flags, SGLang server flags, the DYN_KVBM_* environment ...).",
    ),
]

EMIT = "Emitted settings (--emit)"
EmitDir = Annotated[
    str | None,
    typer.Option(
        "--emit-dir", help="With --emit: the storage directory (absolute), instead of a placeholder.", rich_help_panel=EMIT
    ),
]
EmitBucket = Annotated[
    str | None, typer.Option("--emit-bucket", help="With --emit: the S3 bucket, instead of <bucket>.", rich_help_panel=EMIT)
]
EmitRegion = Annotated[
    str | None, typer.Option("--emit-region", help="With --emit: the S3 region, instead of <region>.", rich_help_panel=EMIT)
]
EmitHost = Annotated[
    str | None,
    typer.Option(
        "--emit-host",
        help="With --emit: the server's host (Redis, Valkey, Mooncake, an S3 endpoint), instead of <host>.",
        rich_help_panel=EMIT,
    ),
]
EmitDiskSize = Annotated[
    str | None,
    typer.Option(
        "--emit-disk-size",
        help="With --emit lmcache: the local disk each worker may fill (500GiB), instead of <GB of disk>.",
        rich_help_panel=EMIT,
    ),
]


def emit_options(
    emit: object, dir: str | None, bucket: str | None, region: str | None, host: str | None, disk: str | None
) -> object:
    """The ``EmitOptions`` the --emit-* flags give (None when none is given); refused without --emit."""
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.errors import KvsizeError
    from kvsize.units import parse_size

    given: dict[str, object] = {"dir": dir, "bucket": bucket, "region": region, "host": host, "disk_bytes": disk}
    named = [name for name, value in given.items() if value is not None]
    if not named:
        return None
    if emit is None:
        flag = {"disk_bytes": "--emit-disk-size"}.get(named[0], f"--emit-{named[0]}")
        raise KvsizeError(f"{flag} fills a setting of --emit: give --emit ENGINE too, or drop {flag}")
    if disk is not None:
        given["disk_bytes"] = parse_size(disk, "--emit-disk-size")
    return EmitOptions(**{name: value for name, value in given.items() if value is not None})  # type: ignore[arg-type]


# check and capacity: the deployment's LMCache settings, and overrides of them.
DeployChunk = Annotated[str | None, typer.Option("--chunk-size", help="Chunk size (else the LMCache config's, else 256).")]
LmcacheConfig = Annotated[
    Path | None,
    typer.Option(
        "--lmcache-config", help="The deployment's LMCache YAML (or LMCACHE_CONFIG_FILE); LMCACHE_* variables apply over it."
    ),
]


def figures(
    latency: str | None,
    stream_bandwidth: str | None,
    aggregate_bandwidth: str | None,
    concurrency: int | None,
    max_requests_per_s: float | None,
    part_size: str | None,
) -> dict[str, Any]:
    """The storage figures given on the command line, parsed into the library's arguments (seconds, bytes/s, bytes)."""
    from kvsize.units import parse_duration, parse_rate, parse_size

    return {
        "latency": parse_duration(latency, "--latency") if latency is not None else None,
        "stream_bandwidth": parse_rate(stream_bandwidth, "--stream-bandwidth") if stream_bandwidth is not None else None,
        "aggregate_bandwidth": parse_rate(aggregate_bandwidth, "--aggregate-bandwidth") if aggregate_bandwidth else None,
        "concurrency": concurrency,
        "max_requests_per_s": max_requests_per_s,
        "part_size": parse_size(part_size, "--part-size") if part_size is not None else None,
    }


def gpu(gpu_name: str | None, memory: float | None, utilization: float | None, kv_bytes: str | None) -> Any:
    """The ``kvsize.Gpu`` group from the GPU flags (only those given are set)."""
    from kvsize.gpu import Gpu
    from kvsize.units import parse_size

    given: dict[str, Any] = {"gpu": gpu_name, "gpu_memory": memory, "gpu_memory_utilization": utilization}
    if kv_bytes is not None:
        given["kv_cache_memory_bytes"] = parse_size(kv_bytes, "--kv-cache-memory-bytes")
    return Gpu(**{name: value for name, value in given.items() if value is not None})


def storage(
    backend: list[str] | None,
    latency: str | None,
    stream_bandwidth: str | None,
    aggregate_bandwidth: str | None,
    concurrency: int | None,
    max_requests_per_s: float | None,
    part_size: str | None,
    search: bool = False,
) -> Any:
    """The ``kvsize.Storage`` group from the storage flags (figures parsed: seconds, bytes/s, bytes)."""
    from kvsize.calls.args import Storage

    return Storage(
        backend=tuple(backend or ()),
        **figures(latency, stream_bandwidth, aggregate_bandwidth, concurrency, max_requests_per_s, part_size),
        search=search,
    )
