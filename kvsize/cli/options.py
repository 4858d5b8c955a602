"""Every command-line option, declared once (typer ``Annotated`` aliases), and the enums of its choices."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

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


class EmitFormat(str, Enum):
    lmcache = "lmcache"
    vllm = "vllm"
    sglang = "sglang"
    kvbm = "kvbm"


class EngineChoice(str, Enum):
    lmcache = "lmcache"
    vllm = "vllm"
    llmd_fs = "llmd-fs"
    sglang = "sglang"
    kvbm = "kvbm"


class SglangBackendChoice(str, Enum):
    file = "file"
    mooncake = "mooncake"
    nixl = "nixl"
    hf3fs = "hf3fs"


class KvbmEngineChoice(str, Enum):
    vllm = "vllm"
    trtllm = "trtllm"


class KvbmTierChoice(str, Enum):
    disk = "disk"
    object = "object"


class TierChoice(str, Enum):
    cpu = "cpu"
    fs = "fs"
    obj = "obj"


class ProbeEmit(str, Enum):
    fio = "fio"


class KvDtypeChoice(str, Enum):
    auto = "auto"
    bfloat16 = "bfloat16"
    float16 = "float16"
    fp8 = "fp8"
    fp8_e4m3 = "fp8_e4m3"
    fp8_e5m2 = "fp8_e5m2"


CONNECTOR_HELP = "LMCache backend: s3 (default), fs, redis, valkey, resp, mooncakestore, gds, weka, local-disk, cpu."
ENGINE = "Offloading engine"

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
PinnedMemory = Annotated[
    str | None, typer.Option("--pinned-memory", help="Pinned memory available, for LMCache's S3 rule.", rich_help_panel=TIME)
]
PrefillTps = Annotated[
    float | None,
    typer.Option("--prefill-tps", help="Measured prefill tokens/s, for the recompute cost.", rich_help_panel=TIME),
]
Gpu = Annotated[
    str, typer.Option("--gpu", help="GPU for the prefill estimate: a100, h100, h200, l40s, b200.", rich_help_panel=TIME)
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
Engine = Annotated[
    EngineChoice,
    typer.Option(
        "--engine",
        help="Offloading stack: lmcache (default), vllm (vLLM's native OffloadingConnector), llmd-fs (llm-d's fs "
        "connector), sglang (SGLang HiCache), kvbm (Dynamo KVBM). See 'kvsize engines'.",
        rich_help_panel=ENGINE,
    ),
]
Tier = Annotated[
    TierChoice | None,
    typer.Option("--tier", help="--engine vllm: the tier objects go to: cpu, fs (default), obj.", rich_help_panel=ENGINE),
]
GpuBlockSize = Annotated[
    int | None,
    typer.Option(
        "--gpu-block-size",
        help="--engine vllm/llmd-fs: vLLM's GPU block in tokens (default 16; say 32 or 64 for a backend that forces it).",
        rich_help_panel=ENGINE,
    ),
]
KvOffloadingSize = Annotated[
    float | None,
    typer.Option(
        "--kv-offloading-size",
        help="--engine vllm: vLLM's --kv-offloading-size in GiB (its CPU tier); one prompt's objects must fit.",
        rich_help_panel=ENGINE,
    ),
]
SglangBackend = Annotated[
    SglangBackendChoice | None,
    typer.Option(
        "--sglang-backend",
        help="--engine sglang: HiCache's L3 backend: file (default), mooncake, nixl, hf3fs.",
        rich_help_panel=ENGINE,
    ),
]
KvbmEngine = Annotated[
    KvbmEngineChoice | None,
    typer.Option(
        "--kvbm-engine",
        help="--engine kvbm: the engine under KVBM: vllm (16-token blocks, default), trtllm (32).",
        rich_help_panel=ENGINE,
    ),
]
KvbmTier = Annotated[
    KvbmTierChoice | None,
    typer.Option("--kvbm-tier", help="--engine kvbm: disk (G3, default) or object (G4).", rich_help_panel=ENGINE),
]


def engine_flags(
    engine: EngineChoice,
    tier: TierChoice | None,
    gpu_block_size: int | None,
    sglang_backend: SglangBackendChoice | None,
    kvbm_engine: KvbmEngineChoice | None,
    kvbm_tier: KvbmTierChoice | None,
) -> dict[str, Any]:
    """The engine flags as the library's arguments."""
    return {
        "engine": engine.value,
        "tier": tier.value if tier else None,
        "gpu_block_size": gpu_block_size,
        "sglang_backend": sglang_backend.value if sglang_backend else None,
        "kvbm_engine": kvbm_engine.value if kvbm_engine else None,
        "kvbm_tier": kvbm_tier.value if kvbm_tier else None,
    }


# check and capacity: the deployment's LMCache settings, and overrides of them.
DeployChunk = Annotated[str | None, typer.Option("--chunk-size", help="Chunk size (else the LMCache config's, else 256).")]
DeployConnector = Annotated[
    str | None, typer.Option("--connector", help="LMCache backend (else from the LMCache config's remote_url).")
]
DeployUnfull = Annotated[
    bool | None, typer.Option("--save-unfull-chunk/--no-save-unfull-chunk", help="Override save_unfull_chunk.")
]
DeployLayerwise = Annotated[bool | None, typer.Option("--layerwise/--no-layerwise", help="Override use_layerwise.")]
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
