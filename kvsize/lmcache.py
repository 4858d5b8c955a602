"""LMCache settings: read a deployment's config (file + ``LMCACHE_*`` environment), and emit one.

LMCache 0.5.x loads ``LMCACHE_CONFIG_FILE`` and then applies the environment on top
(``lmcache_get_config``: ``LMCacheEngineConfig.from_file(...)`` then
``update_config_from_env()``: env overrides file). Environment values are stripped of
white space and of one pair of surrounding quotes. ``max_local_cpu_size`` is in GB, read
as GiB (x 1024**3). Only the keys that change what is stored or when a load fails are read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from kvsize.errors import KvsizeError
from kvsize.files import read_yaml

if TYPE_CHECKING:
    from kvsize.plan import Sweep
    from kvsize.storage import StoragePlan

GIB = 2**30
TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}

# remote_url scheme -> kvsize connector (lmcache/v1/storage_backend/connector/*_adapter.py)
SCHEMES = {
    "s3": "s3",
    "fs": "fs",
    "redis": "redis",
    "rediss": "redis",
    "redis-sentinel": "redis",
    "valkey": "valkey",
    "resp": "resp",
    "mooncakestore": "mooncakestore",
}

# What kvsize writes for each connector: the settings that select it, with placeholders.
CONNECTOR_SETTINGS: dict[str, dict[str, Any]] = {
    "s3": {"remote_url": "s3://<bucket>", "remote_serde": "naive"},
    "fs": {"remote_url": "fs:///<shared mount path>", "remote_serde": "naive"},
    "redis": {"remote_url": "redis://<host>:6379", "remote_serde": "naive"},
    "valkey": {"remote_url": "valkey://<host>:6379", "remote_serde": "naive"},
    "resp": {"remote_url": "resp://<host>:6379", "remote_serde": "naive"},
    "mooncakestore": {"remote_url": "mooncakestore://<host>:<port>/", "remote_serde": "naive"},
    "local-disk": {"local_disk": "file:///<local disk path>/", "max_local_disk_size": "<GB of disk>"},
    "gds": {"gds_path": "<GDS mount path>"},
    "weka": {"weka_path": "<WekaFS mount path>"},
    "cpu": {},
}


class LMCacheSettings(BaseModel):
    """The LMCache settings kvsize sizes against, and where each came from."""

    model_config = ConfigDict(frozen=True)

    chunk_size: int = 256
    save_unfull_chunk: bool = False
    use_layerwise: bool = False
    blocking_timeout_secs: float = 10.0
    max_local_cpu_size_bytes: int = 5 * GIB
    connector: str | None = None
    """From remote_url / gds_path / weka_path / local_disk; "cpu" when a config names none; None with no config."""
    s3_max_inflight_reqs: int = 64
    sources: dict[str, str] = {}
    warnings: tuple[str, ...] = ()


def _strip(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value


def _as_bool(key: str, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise KvsizeError(f"{where}: {key} = {value!r} is not true or false")


def _as_number(key: str, value: Any, where: str, *, whole: bool) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or number <= 0 or (whole and number != int(number)):
        kind = "a positive whole number" if whole else "a positive number"
        raise KvsizeError(f"{where}: {key} = {value!r} is not {kind}")
    return number


def read_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> LMCacheSettings:
    """The file (or ``LMCACHE_CONFIG_FILE``) with the ``LMCACHE_*`` environment on top, as LMCache applies them."""
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    if path is None and environ.get("LMCACHE_CONFIG_FILE"):
        path = Path(_strip(environ["LMCACHE_CONFIG_FILE"]))
    if path is not None:
        data = read_yaml(path, "LMCache config")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise KvsizeError(f"LMCache config {path} must be a mapping of settings (chunk_size: 256, ...)")
        raw.update({key: (value, str(path)) for key, value in data.items()})
    keys = (
        "chunk_size",
        "save_unfull_chunk",
        "use_layerwise",
        "blocking_timeout_secs",
        "max_local_cpu_size",
        "remote_url",
        "local_disk",
        "gds_path",
        "weka_path",
        "extra_config",
    )
    for key in keys:
        variable = f"LMCACHE_{key.upper()}"
        if variable in environ:
            raw[key] = (_strip(environ[variable]), f"env {variable}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []

    def take(key: str) -> tuple[Any, str] | None:
        found = raw.get(key)
        if found is not None and found[0] is not None and found[0] != "":
            sources[key] = found[1]
            return found
        return None

    if found := take("chunk_size"):
        values["chunk_size"] = int(_as_number("chunk_size", found[0], found[1], whole=True))
    for key in ("save_unfull_chunk", "use_layerwise"):
        if found := take(key):
            values[key] = _as_bool(key, found[0], found[1])
    if found := take("blocking_timeout_secs"):
        values["blocking_timeout_secs"] = _as_number("blocking_timeout_secs", found[0], found[1], whole=False)
    if found := take("max_local_cpu_size"):
        values["max_local_cpu_size_bytes"] = int(_as_number("max_local_cpu_size", found[0], found[1], whole=False) * GIB)
    if path is not None or raw:  # a deployment config that names no remote tier serves from CPU memory
        values["connector"] = _connector(take)
    if found := take("extra_config"):
        extra = found[0]
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                raise KvsizeError(f"{found[1]}: extra_config is not a JSON object") from None
        if not isinstance(extra, dict):
            raise KvsizeError(f"{found[1]}: extra_config must be a mapping")
        if "s3_max_inflight_reqs" in extra:  # lmcache s3 adapter: extra_config, default 64
            values["s3_max_inflight_reqs"] = int(
                _as_number("extra_config.s3_max_inflight_reqs", extra["s3_max_inflight_reqs"], found[1], whole=True)
            )
        if "save_chunk_meta" in extra and not _as_bool("extra_config.save_chunk_meta", extra["save_chunk_meta"], found[1]):
            warnings.append(
                "extra_config.save_chunk_meta is false: kvsize still counts the connector's metadata "
                "bytes per object (an upper bound by 28 B, or 8 KiB on gds)"
            )
    return LMCacheSettings(**values, sources=sources, warnings=tuple(warnings))


def _connector(take: Any) -> str:
    if found := take("remote_url"):
        url = str(found[0])
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in SCHEMES:
            raise KvsizeError(
                f"{found[1]}: remote_url {url!r} is not a connector kvsize knows "
                f"({', '.join(scheme + '://' for scheme in SCHEMES)})"
            )
        return SCHEMES[scheme]
    for key, name in (("gds_path", "gds"), ("weka_path", "weka"), ("local_disk", "local-disk")):
        if take(key):
            return name
    return "cpu"


def emit_settings(
    *,
    chunk_size: int,
    connector: str,
    save_unfull_chunk: bool,
    layerwise: bool,
    blocking_timeout_secs: float,
    max_local_cpu_size_gb: float,
    comments: list[str],
) -> str:
    """LMCache YAML for these settings, with the environment form as trailing comments."""
    settings: dict[str, Any] = {
        "chunk_size": chunk_size,
        "save_unfull_chunk": save_unfull_chunk,
        "use_layerwise": layerwise,
        "blocking_timeout_secs": blocking_timeout_secs,
        "local_cpu": True,
        "max_local_cpu_size": max_local_cpu_size_gb,
        **CONNECTOR_SETTINGS[connector],
    }
    lines = [f"# {line}" for line in comments]
    for key, value in settings.items():
        lines.append(f"{key}: {_yaml_scalar(value)}")
    lines.append("")
    lines.append("# The same as environment variables (LMCache applies these over the file):")
    for key, value in settings.items():
        text = _yaml_scalar(value) if isinstance(value, (bool, int, float)) else str(value)
        lines.append(f"# LMCACHE_{key.upper()}={text}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(value)  # a quoted string is valid YAML


def settings_for(sweep: Sweep, plan: StoragePlan | None, chunk: int, margin: float) -> tuple[str, list[str]]:
    """The LMCache YAML for one chunk size of a sweep, sized with ``margin`` over the prediction, and warnings.

    ``blocking_timeout_secs`` covers the predicted load (with a backend) and ``max_local_cpu_size``
    one writer's bytes, each times ``margin`` and never below LMCache's defaults (10 s, 5 GB).
    """
    from kvsize.storage import per_writer_bytes
    from kvsize.units import format_iec

    index = next(i for i, row in enumerate(sweep.rows) if row.chunk_tokens == chunk)
    row = sweep.rows[index]
    layout = sweep.layout
    writer_bytes = per_writer_bytes(row, layout)
    cpu_gb = max(5.0, float(math.ceil(writer_bytes * margin / GIB)))
    comments = [
        f"LMCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, connector {layout.connector.name}.",
        f"chunk_size {chunk:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt.",
        f"max_local_cpu_size {cpu_gb:g} GB: one writer loads {format_iec(writer_bytes)} per prompt, x {margin:g} margin "
        "(LMCache default 5).",
    ]
    warnings: list[str] = []
    timeout = 10.0
    if plan is not None:
        timing = plan.timings[index]
        timeout = max(10.0, float(math.ceil(timing.load_seconds * margin)))
        prompts = plan.options.concurrent_prompts
        comments.append(
            f"blocking_timeout_secs {timeout:g}: predicted load {timing.load_seconds:.2f} s on {plan.backend.name} with "
            f"{prompts} prompt{'s' if prompts != 1 else ''} at once, x {margin:g} margin (LMCache default 10)."
        )
        warnings += [
            f"chunk {chunk:,} breaks an engine limit no setting here fixes: {risk.detail}"
            for risk in timing.risk_list
            if risk.name in ("max_value_size", "int32_header", "pinned_memory")
        ]
    else:
        comments.append("blocking_timeout_secs 10: LMCache's default; no backend given, so no load was predicted.")
    comments.append("Replace the <placeholders> with your deployment's values.")
    text = emit_settings(
        chunk_size=chunk,
        connector=layout.connector.name,
        save_unfull_chunk=layout.options.save_unfull_chunk,
        layerwise=layout.options.layerwise,
        blocking_timeout_secs=timeout,
        max_local_cpu_size_gb=cpu_gb,
        comments=comments,
    )
    return text, warnings
