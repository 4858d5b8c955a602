"""LMCache's own config: read a deployment's (file + ``LMCACHE_*`` environment), and emit one.

LMCache 0.5.x loads ``LMCACHE_CONFIG_FILE`` and then applies the environment on top
(``lmcache_get_config``: ``LMCacheEngineConfig.from_file(...)`` then
``update_config_from_env()``: env overrides file). Environment values are stripped of
white space and of one pair of surrounding quotes. ``max_local_cpu_size`` is in GB, read
as GiB (x 1024**3). Only the keys that change what is stored or when a load fails are read.
"""

from __future__ import annotations

import ast
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from kvsize.engines.base import Deployment, EngineSettings, Flag, per_writer_bytes
from kvsize.errors import ConfigError, KvsizeError, shown
from kvsize.files import read_yaml

if TYPE_CHECKING:
    from kvsize.plan import Sweep

GIB = 2**30
# LMCache 0.5.6 defaults, in one place (lmcache/v1/config.py _CONFIG_DEFINITIONS; the S3 adapter's extra_config).
DEFAULT_CHUNK_TOKENS = 256  # chunk_size
DEFAULT_BLOCKING_TIMEOUT_S = 10.0  # blocking_timeout_secs
DEFAULT_CPU_BUFFER_BYTES = 5 * GIB  # max_local_cpu_size 5.0 (GB, read as GiB)
DEFAULT_S3_MAX_INFLIGHT_REQS = 64  # extra_config s3_max_inflight_reqs
ConnectorName = Literal["s3", "fs", "redis", "valkey", "resp", "mooncakestore", "gds", "weka", "local-disk", "cpu"]


class LMCache(EngineSettings):
    """LMCache as the engine, with its settings that change what is stored or when a load fails:
    ``kvsize.size(model, engine=kvsize.engines.LMCache(connector="fs"))``."""

    ENGINE: ClassVar[str] = "lmcache"
    FLAGS: ClassVar[Mapping[str, Flag]] = {
        "connector": Flag(
            "--connector",
            "LMCache backend: s3 (default), fs, redis, valkey, resp, mooncakestore, gds, weka, local-disk, cpu.",
        ),
        "save_unfull_chunk": Flag(
            "--save-unfull-chunk", "Store the tail past the last whole chunk (LMCache <= 0.3.10 default).", "bool"
        ),
        "layerwise": Flag("--layerwise", "LMCache use_layerwise: one object per layer per chunk.", "bool"),
        "blocking_timeout_s": Flag(
            "--blocking-timeout", "LMCache blocking_timeout_secs (default 10s, or the LMCache config's).", "duration"
        ),
        "cpu_buffer_bytes": Flag(
            "--cpu-buffer", "LMCache max_local_cpu_size per worker (default 5GiB, or the LMCache config's).", "size"
        ),
        "pinned_memory_bytes": Flag("--pinned-memory", "Pinned memory available, for LMCache's S3 rule.", "size"),
    }
    ALIASES: ClassVar[Mapping[str, str]] = {
        "blocking_timeout": "blocking_timeout_s",
        "cpu_buffer": "cpu_buffer_bytes",
        "pinned_memory": "pinned_memory_bytes",
    }

    connector: ConnectorName = "s3"
    """The LMCache backend (``remote_url``'s scheme, ``local_disk``, ``gds_path``; cpu alone)."""
    layerwise: bool = False
    """``use_layerwise``: one object per layer per chunk."""
    save_unfull_chunk: bool = False
    """Store the tail past the last whole chunk (the default until 0.3.10)."""
    blocking_timeout_s: float = Field(default=DEFAULT_BLOCKING_TIMEOUT_S, gt=0, le=1e7)
    """``blocking_timeout_secs``: a load still running after it fails."""
    cpu_buffer_bytes: int = Field(default=DEFAULT_CPU_BUFFER_BYTES, ge=1, le=2**60)
    """``max_local_cpu_size`` per worker, in bytes."""
    pinned_memory_bytes: int | None = Field(default=None, ge=1, le=2**60)
    """Pinned memory available, for the S3 rule (None: not checked)."""
    s3_max_inflight_reqs: int = Field(default=DEFAULT_S3_MAX_INFLIGHT_REQS, ge=1, le=10**6)
    """``extra_config.s3_max_inflight_reqs``."""


HOST_PORT_SCHEMES = ("fs", "resp", "valkey")
"""remote_url schemes whose LMCache 0.5.6 adapter calls parse_remote_url (host and port required)."""

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
    # LMCache 0.5.6's parse_remote_url needs a host and a port; the fs connector uses only the path.
    "fs": {"remote_url": "fs://localhost:1/<shared mount path>", "remote_serde": "naive"},
    "redis": {"remote_url": "redis://<host>:6379", "remote_serde": "naive"},
    "valkey": {"remote_url": "valkey://<host>:6379", "remote_serde": "naive"},
    "resp": {"remote_url": "resp://<host>:6379", "remote_serde": "naive"},
    "mooncakestore": {"remote_url": "mooncakestore://<host>:<port>/", "remote_serde": "naive"},
    "local-disk": {"local_disk": "file:///<local disk path>/", "max_local_disk_size": "<GB of disk>"},
    "gds": {"gds_path": "<GDS mount path>"},
    # LMCache 0.5.6 has no weka_path: its GDS backend serves WekaFS through gds_path (it detects the file system).
    "weka": {"gds_path": "<WekaFS mount path>"},
    "cpu": {},
}


class LMCacheSettings(BaseModel):
    """The LMCache settings kvsize sizes against, and where each came from."""

    model_config = ConfigDict(frozen=True)

    chunk_size: int = DEFAULT_CHUNK_TOKENS
    save_unfull_chunk: bool = False
    use_layerwise: bool = False
    blocking_timeout_secs: float = DEFAULT_BLOCKING_TIMEOUT_S
    max_local_cpu_size_bytes: int = DEFAULT_CPU_BUFFER_BYTES
    connector: str | None = None
    """From remote_url / gds_path / weka_path / local_disk; "cpu" when a config names none; None with no config."""
    s3_max_inflight_reqs: int = DEFAULT_S3_MAX_INFLIGHT_REQS
    remote_url: str | None = None
    remote_url_problem: str | None = None
    """Why LMCache 0.5.6 cannot use ``remote_url`` (it would store nothing), or None."""
    sources: dict[str, str] = {}
    warnings: tuple[str, ...] = ()


def _parse_quoted(value: str) -> str:
    """LMCache 0.5.6's ``_parse_quoted_string`` (``lmcache/v1/config_base.py``), applied to environment values:
    strip white space; a value quoted at both ends with the same quote is read as a Python string literal
    (escapes applied), else loses the two quotes."""
    if not value:
        return value
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        try:
            evaluated = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value[1:-1]
        if isinstance(evaluated, str):
            return evaluated
    return value


def lmcache_bool(value: Any) -> bool:
    """LMCache 0.5.6's ``_to_bool``: a bool as it is, else true only for ``true`` or ``1`` (any case, stripped)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1")


def _as_bool(key: str, value: Any, where: str, warnings: list[str]) -> bool:
    result = lmcache_bool(value)
    if not isinstance(value, bool) and str(value).strip().lower() not in ("true", "1", "false", "0"):
        warnings.append(
            f"{where}: {key} = {shown(value)} is read by LMCache 0.5.6 as {str(result).lower()} "
            "(only true and 1 are true); write true or false"
        )
    return result


def _fails(key: str, value: Any, where: str, kind: str) -> KvsizeError:
    # LMCache 0.5.6 (_apply_env_converter_safely / update_config_from_env): a file value it cannot convert
    # becomes None (the setting is lost); an environment value is skipped with a warning.
    effect = "ignores the variable with a warning" if where.startswith("env ") else "drops the setting (None)"
    return ConfigError(
        f"{where}: LMCache 0.5.6 cannot read {key} = {shown(value)} as {kind} and {effect}; write {kind}", field=key
    )


def _as_int(key: str, value: Any, where: str, warnings: list[str], high: int) -> int:
    """LMCache's ``int(value)`` (a YAML float is truncated, as LMCache truncates it), then a positive bound."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise _fails(key, value, where, "a whole number") from None
    if isinstance(value, float) and value != number:
        warnings.append(f"{where}: {key} = {shown(value)} is truncated by LMCache 0.5.6 to {number}; write a whole number")
    if not 0 < number <= high:
        raise ConfigError(f"{where}: {key} = {shown(value)} must be a whole number from 1 to {high:,}", field=key)
    return number


def _as_number(key: str, value: Any, where: str, high: float) -> float:
    """LMCache's ``float(value)``, finite and positive."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _fails(key, value, where, "a number") from None
    if not math.isfinite(number) or not 0 < number <= high:
        raise ConfigError(f"{where}: {key} = {shown(value)} must be a finite number more than 0 and at most {high:g}", field=key)
    return number


def remote_url_problem(url: str) -> str | None:
    """Why LMCache 0.5.6 cannot use ``url``, or None. Its ``parse_remote_url``
    (``lmcache/v1/storage_backend/connector/__init__.py``), used by the fs, resp and valkey adapters, asserts a
    host and a port; a URL without them fails to connect, LMCache logs a warning and stores nothing."""
    from urllib.parse import urlparse

    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in HOST_PORT_SCHEMES:
        return None
    try:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port
    except ValueError as error:
        return f"remote_url {shown(url)} does not parse ({error})"
    if host is None or port is None:
        return (
            f"remote_url {shown(url)} has no {'host' if host is None else 'port'}: LMCache 0.5.6's parse_remote_url "
            f"needs {scheme}://HOST:PORT/... (the fs connector uses only the path: fs://localhost:1/<dir>), "
            "so nothing would be stored"
        )
    return None


MAX_CHUNK = 1_000_000_000
MAX_TIMEOUT_S = 10**7
MAX_CPU_GB = 10**7


def read_settings(path: Path | str | None, environ: Mapping[str, str] | None = None) -> LMCacheSettings:
    """The file (or ``LMCACHE_CONFIG_FILE``) with the ``LMCACHE_*`` environment on top, each value converted
    as LMCache 0.5.6's config loader converts it (``lmcache/v1/config_base.py``: ``_from_file`` then
    ``update_config_from_env``; environment values pass ``_parse_quoted_string`` first)."""
    environ = os.environ if environ is None else environ
    path, raw = _raw_settings(path, environ)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []

    def take(key: str) -> tuple[Any, str] | None:
        found = raw.get(key)
        if found is not None and found[0] is not None:
            sources[key] = found[1]
            return found
        return None

    if found := take("chunk_size"):
        values["chunk_size"] = _as_int("chunk_size", found[0], found[1], warnings, MAX_CHUNK)
    for key in ("save_unfull_chunk", "use_layerwise"):
        if found := take(key):
            values[key] = _as_bool(key, found[0], found[1], warnings)
    if found := take("blocking_timeout_secs"):  # an int in LMCache 0.5.6
        values["blocking_timeout_secs"] = float(_as_int("blocking_timeout_secs", found[0], found[1], warnings, MAX_TIMEOUT_S))
    if found := take("max_local_cpu_size"):
        gigabytes = _as_number("max_local_cpu_size", found[0], found[1], MAX_CPU_GB)
        values["max_local_cpu_size_bytes"] = int(gigabytes * GIB)
        if values["max_local_cpu_size_bytes"] < 1:  # named here, as its source, never as the flag that overrides it
            raise ConfigError(
                f"{found[1]}: max_local_cpu_size = {shown(found[0])} GB is less than one byte; write the GB LMCache "
                "should pin, e.g. 5",
                field="max_local_cpu_size",
            )
    if path is not None or raw:  # a deployment config that names no remote tier serves from CPU memory
        values["connector"] = _connector(take)
        url = raw.get("remote_url", (None, ""))[0]
        if url:
            values["remote_url"] = str(url)
            values["remote_url_problem"] = remote_url_problem(str(url))
    if "weka_path" in raw:
        warnings.append(
            f"{raw['weka_path'][1]}: weka_path is not an LMCache 0.5.6 setting (it warns and ignores it); "
            "WekaFS is served through gds_path, which detects the file system"
        )
    if found := take("extra_config"):
        values |= _extra_config(found, warnings)
    return LMCacheSettings(**values, sources=sources, warnings=tuple(warnings))


def _raw_settings(path: Path | str | None, environ: Mapping[str, str]) -> tuple[Path | None, dict[str, tuple[Any, str]]]:
    """Each key's raw value and where it came from: the file, then the ``LMCACHE_*`` environment over it."""
    raw: dict[str, tuple[Any, str]] = {}
    what = "LMCache config"
    if path is None and environ.get("LMCACHE_CONFIG_FILE"):
        path, what = _parse_quoted(environ["LMCACHE_CONFIG_FILE"]), "LMCache config (LMCACHE_CONFIG_FILE)"
    path = Path(path) if path is not None else None
    if path is not None:
        data = read_yaml(path, what)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"LMCache config {path} must be a mapping of settings (chunk_size: 256, ...)")
        raw.update({key: (value, str(path)) for key, value in data.items() if isinstance(key, str)})
    keys = (
        "chunk_size",
        "save_unfull_chunk",
        "use_layerwise",
        "blocking_timeout_secs",
        "max_local_cpu_size",
        "remote_url",
        "local_disk",
        "gds_path",
        "extra_config",
    )
    for key in keys:
        variable = f"LMCACHE_{key.upper()}"
        if variable in environ:
            raw[key] = (_parse_quoted(environ[variable]), f"env {variable}")
    return path, raw


def _extra_config(found: tuple[Any, str], warnings: list[str]) -> dict[str, Any]:
    """The ``extra_config`` keys that change what is stored or pinned (JSON in the environment, as LMCache reads it)."""
    values: dict[str, Any] = {}
    extra = found[0]
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra else None
        except (ValueError, RecursionError):
            raise _fails("extra_config", found[0], found[1], "a JSON object") from None
    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"{found[1]}: extra_config must be a mapping", field="extra_config")
    extra = extra or {}
    if "s3_max_inflight_reqs" in extra:  # lmcache s3 adapter: extra_config, default 64
        values["s3_max_inflight_reqs"] = _as_int(
            "extra_config.s3_max_inflight_reqs", extra["s3_max_inflight_reqs"], found[1], warnings, 10**6
        )
    if "save_chunk_meta" in extra and not _as_bool("extra_config.save_chunk_meta", extra["save_chunk_meta"], found[1], warnings):
        warnings.append(
            "extra_config.save_chunk_meta is false: kvsize still counts the connector's metadata "
            "bytes per object (an upper bound by 28 B, or 8 KiB on gds)"
        )
    return values


def _connector(take: Any) -> str:
    if found := take("remote_url"):
        url = str(found[0])
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in SCHEMES:
            raise KvsizeError(
                f"{found[1]}: remote_url {shown(url)} is not a connector kvsize knows "
                f"({', '.join(scheme + '://' for scheme in SCHEMES)})"
            )
        return SCHEMES[scheme]
    for key, name in (("gds_path", "gds"), ("local_disk", "local-disk")):
        if take(key):
            return name
    return "cpu"


def emit_settings(
    *,
    chunk_size: int,
    connector: str,
    save_unfull_chunk: bool,
    layerwise: bool,
    blocking_timeout_secs: int,
    max_local_cpu_size_gb: int,
    comments: list[str],
) -> str:
    """LMCache YAML for these settings (through the YAML dumper), with the environment form as trailing comments,
    each ``LMCACHE_NAME=value`` quoted so ``sh`` sets exactly the value the file holds (``read_settings`` reads both
    the same). Numbers are whole: LMCache 0.5.6 reads ``blocking_timeout_secs`` with ``int()``."""
    from kvsize.quoting import comment, env_assignment, yaml_mapping

    settings: dict[str, Any] = {
        "chunk_size": chunk_size,
        "save_unfull_chunk": save_unfull_chunk,
        "use_layerwise": layerwise,
        "blocking_timeout_secs": blocking_timeout_secs,
        "local_cpu": True,
        "max_local_cpu_size": max_local_cpu_size_gb,
        **CONNECTOR_SETTINGS[connector],
    }
    lines = ["", comment("The same as environment variables (LMCache applies these over the file):")]
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(comment(env_assignment(f"LMCACHE_{key.upper()}", text)))
    return yaml_mapping(settings, comments) + "\n".join(lines) + "\n"


def deployment(config: Path | None, environ: Mapping[str, str] | None, given: LMCache, chunk_tokens: int | None) -> Deployment:
    """The deployment's LMCache settings (the file or ``LMCACHE_CONFIG_FILE``, then the ``LMCACHE_*`` environment),
    with the settings ``given`` explicitly winning; its chunk unless ``chunk_tokens`` is given."""
    read = read_settings(config, environ)
    merged: dict[str, Any] = {
        "connector": read.connector or "s3",
        "layerwise": read.use_layerwise,
        "save_unfull_chunk": read.save_unfull_chunk,
        "blocking_timeout_s": read.blocking_timeout_secs,
        "cpu_buffer_bytes": read.max_local_cpu_size_bytes,
        "s3_max_inflight_reqs": read.s3_max_inflight_reqs,
    }
    settings = LMCache(**(merged | given.given()))
    return Deployment(
        settings=settings,
        chunk_tokens=chunk_tokens if chunk_tokens is not None else read.chunk_size,
        sources=dict(read.sources),
        warnings=read.warnings,
        problem=read.remote_url_problem,
        view={
            "blocking_timeout_secs": settings.blocking_timeout_s,
            "max_local_cpu_size_bytes": settings.cpu_buffer_bytes,
            "pinned_memory_bytes": settings.pinned_memory_bytes,
            "save_unfull_chunk": settings.save_unfull_chunk,
            "use_layerwise": settings.layerwise,
        },
    )


def settings_for(sweep: Sweep, plan: Any, chunk: int, margin: float) -> tuple[str, list[str]]:
    """The LMCache YAML for one chunk size of a sweep, sized with ``margin`` over the prediction, and warnings.

    ``blocking_timeout_secs`` covers the predicted load (with a backend) and ``max_local_cpu_size``
    one writer's bytes, each times ``margin`` and never below LMCache's defaults (10 s, 5 GB).
    """
    from kvsize.quoting import exact_number
    from kvsize.units import format_iec

    index = next(i for i, row in enumerate(sweep.rows) if row.chunk_tokens == chunk)
    row = sweep.rows[index]
    layout = sweep.layout
    settings = layout.options.settings
    assert isinstance(settings, LMCache)
    writer_bytes = per_writer_bytes(row, layout)
    cpu_gb = max(DEFAULT_CPU_BUFFER_BYTES // GIB, math.ceil(writer_bytes * margin / GIB))
    times = exact_number(margin)
    comments = [
        f"LMCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, connector {layout.connector.name}.",
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
    comments.append("Replace the <placeholders> with your deployment's values.")
    _readable(cpu_gb, timeout, times)
    text = emit_settings(
        chunk_size=chunk,
        connector=layout.connector.name,
        save_unfull_chunk=settings.save_unfull_chunk,
        layerwise=settings.layerwise,
        blocking_timeout_secs=timeout,
        max_local_cpu_size_gb=cpu_gb,
        comments=comments,
    )
    return text, warnings


def _readable(cpu_gb: int, timeout: int, margin: str) -> None:
    """Refuse settings past what ``kvsize check`` reads back (``read_settings``'s bounds)."""
    for key, value, high, unit in (
        ("max_local_cpu_size", cpu_gb, MAX_CPU_GB, "GB"),
        ("blocking_timeout_secs", timeout, MAX_TIMEOUT_S, "s"),
    ):
        if value > high:
            raise KvsizeError(
                f"`emit` lmcache: {key} would be {value:,} {unit} (the prediction x `margin` {margin}), past the "
                f"{high:,} {unit} kvsize check reads back: lower `margin`, or size a shorter `prompt`",
                field="margin",
            )
