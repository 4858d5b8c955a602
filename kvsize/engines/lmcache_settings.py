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

from kvsize.engines.base import Connector, Deployment, EngineSettings, Flag
from kvsize.errors import ConfigError, KvsizeError, shown
from kvsize.files import read_yaml

if TYPE_CHECKING:
    pass

GIB = 2**30
# LMCache 0.5.6 defaults, in one place (lmcache/v1/config.py _CONFIG_DEFINITIONS; the S3 adapter's extra_config).
DEFAULT_CHUNK_TOKENS = 256  # chunk_size
DEFAULT_BLOCKING_TIMEOUT_S = 10.0  # blocking_timeout_secs
DEFAULT_CPU_BUFFER_BYTES = 5 * GIB  # max_local_cpu_size 5.0 (GB, read as GiB)
DEFAULT_S3_MAX_INFLIGHT_REQS = 64  # extra_config s3_max_inflight_reqs
ConnectorName = Literal["s3", "fs", "redis", "valkey", "resp", "mooncakestore", "gds", "weka", "local-disk", "cpu"]


CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector(
            name="s3",
            url="s3://",
            layout="raw bytes, one object; only whole chunks are uploaded",
            source="lmcache/v1/storage_backend/connector/s3_connector.py",
            multipart=True,
            pinned_memory_rule=True,
            transport="object",
        ),
        Connector(
            name="fs",
            url="fs://",
            header_bytes=28,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes, one file (tmp write + rename)",
            source="lmcache/v1/storage_backend/connector/fs_connector.py",
        ),
        Connector(
            name="mooncakestore",
            url="mooncakestore://",
            header_bytes=28,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes",
            source="lmcache/v1/storage_backend/connector/mooncakestore_connector.py",
            transport="other",
        ),
        Connector(
            name="redis",
            url="redis://",
            header_bytes=28,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="two keys per chunk: <key>kv_bytes (raw) and <key>metadata (28 bytes)",
            source="lmcache/v1/storage_backend/connector/redis_connector.py",
            # RedisConnector has no batched get, so RemoteBackend.batched_get_blocking submits one get per key, and
            # each runs on the connector's AsyncPQExecutor (job_executor/pq_executor.py, max_workers=4): 4 gets in
            # flight per writer, each a metadata GET then a kv_bytes GET.
            io_threads=4,
            io_note=(
                "4 requests in flight per writer: LMCache's redis connector runs each load through its "
                "AsyncPQExecutor of 4 workers (redis_connector.py, job_executor/pq_executor.py), whatever the "
                "profile's concurrency; each is a metadata GET, then a kv_bytes GET"
            ),
            transport="kv",
        ),
        Connector(
            name="valkey",
            url="valkey://",
            # Its adapter refuses save_unfull_chunk (lmcache_requirements): no partial chunk is ever stored.
            stores_partial_chunks=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/valkey_connector.py",
            transport="kv",
        ),
        Connector(
            name="resp",
            url="resp://",
            # Its adapter refuses save_unfull_chunk (lmcache_requirements): no partial chunk is ever stored.
            stores_partial_chunks=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/resp_connector.py",
            transport="kv",
        ),
        Connector(
            name="local-disk",
            url="local_disk",
            stores_partial_chunks=True,
            layout="raw bytes, one file",
            source="lmcache/v1/storage_backend/local_disk_backend.py",
        ),
        Connector(
            name="gds",
            url="gds_path",
            header_bytes=8192,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="4,096-byte header inside the data file + a 4,096-byte .metadata file (two files per chunk)",
            source="lmcache/v1/storage_backend/gds_backend.py",
        ),
        Connector(
            name="weka",
            url="gds_path",
            header_bytes=8192,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="as gds: 4,096-byte header in the data file + a 4,096-byte .metadata file",
            # 0.5.6 has no Weka backend of its own: GdsBackend serves WekaFS when get_fstype says wekafs (.weka1 files).
            source="lmcache/v1/storage_backend/gds_backend.py",
        ),
        Connector(
            name="cpu",
            url="local_cpu",
            stores_partial_chunks=True,
            layout="pinned CPU memory, one buffer per chunk",
            source="lmcache/v1/storage_backend/local_cpu_backend.py",
            transport="memory",
        ),
    )
}


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
    gds_buffer_bytes: int | None = Field(default=None, ge=1, le=2**60)
    """``gds_buffer_size`` in bytes (MiB x 2**20): the GPU buffer every GDS store and load passes through (None: not
    checked)."""


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
    gds_buffer_bytes: int | None = None
    problems: tuple[tuple[str, str], ...] = ()
    """What LMCache 0.5.6 cannot start or store with, each as its key and a sentence (``lmcache_requirements``)."""
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


MAX_GDS_MIB = 2**40


def read_settings(path: Path | str | None, environ: Mapping[str, str] | None = None) -> LMCacheSettings:
    """The file (or ``LMCACHE_CONFIG_FILE``) with the ``LMCACHE_*`` environment on top, each value converted
    as LMCache 0.5.6's config loader converts it (``lmcache/v1/config_base.py``: ``_from_file`` then
    ``update_config_from_env``; environment values pass ``_parse_quoted_string`` first), and what in it LMCache
    cannot start or store with (``lmcache_requirements.problems``)."""
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
    if (found := take("gds_buffer_size")) and not _placeholder(found[0]):
        values["gds_buffer_bytes"] = _as_int("gds_buffer_size", found[0], found[1], warnings, MAX_GDS_MIB) * 2**20
    if path is not None or raw:  # a deployment config that names no remote tier serves from CPU memory
        values["connector"] = _connector(take)
        url = raw.get("remote_url", (None, ""))[0]
        if url:
            values["remote_url"] = str(url)
            values["remote_url_problem"] = remote_url_problem(str(url))
    warnings += _unknown_keys(raw)
    extra: dict[str, Any] = {}
    if found := take("extra_config"):
        extra = _extra_mapping(found)
        values |= _extra_config(extra, found[1], warnings)
    from kvsize.engines.lmcache_requirements import problems

    found_problems, said = problems(raw, extra, values.get("connector"), environ)
    warnings += said
    return LMCacheSettings(**values, problems=tuple(found_problems), sources=sources, warnings=tuple(warnings))


def _placeholder(value: Any) -> bool:
    from kvsize.engines.emit_options import unfilled

    return bool(unfilled(value))


def _unknown_keys(raw: Mapping[str, tuple[Any, str]]) -> list[str]:
    """LMCache's own warning for a key it does not know (it ignores the key), naming the Weka doc's keys."""
    from kvsize.engines.lmcache_requirements import KNOWN_KEYS

    warnings = []
    for key, (_, where) in raw.items():
        if key in KNOWN_KEYS:
            continue
        if key in ("weka_path", "cufile_buffer_size"):
            warnings.append(
                f"{where}: {key} is not an LMCache 0.5.6 setting (it warns and ignores it); WekaFS is served through "
                "gds_path and gds_buffer_size, which detect the file system"
            )
        else:
            warnings.append(
                f"{where}: {key} is not an LMCache 0.5.6 setting: it warns 'Unknown configuration key' and ignores it"
            )
    return warnings


ENV_KEYS = (
    "chunk_size",
    "save_unfull_chunk",
    "use_layerwise",
    "blocking_timeout_secs",
    "max_local_cpu_size",
    "remote_url",
    "remote_serde",
    "local_disk",
    "max_local_disk_size",
    "local_disk_path_sharding",
    "gds_path",
    "gds_buffer_size",
    "gds_backend",
    "cache_policy",
    "extra_config",
)
"""The ``LMCACHE_*`` variables kvsize reads (each a key of ``_CONFIG_DEFINITIONS``)."""


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
    for key in ENV_KEYS:
        variable = f"LMCACHE_{key.upper()}"
        if variable in environ:
            raw[key] = (_parse_quoted(environ[variable]), f"env {variable}")
    return path, raw


def _extra_mapping(found: tuple[Any, str]) -> dict[str, Any]:
    """``extra_config`` as LMCache reads it: a mapping as it is, text as JSON (``x if isinstance(x, dict) else
    json.loads(x) if x else None``)."""
    extra = found[0]
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra else None
        except (ValueError, RecursionError):
            raise _fails("extra_config", found[0], found[1], "a JSON object") from None
    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"{found[1]}: extra_config must be a mapping", field="extra_config")
    return extra or {}


def _extra_config(extra: Mapping[str, Any], where: str, warnings: list[str]) -> dict[str, Any]:
    """The ``extra_config`` keys that change what is stored or pinned."""
    values: dict[str, Any] = {}
    if "s3_max_inflight_reqs" in extra:  # LMCache's S3 doc; no 0.5.6 code reads it (lmcache_requirements.S3_IGNORED)
        values["s3_max_inflight_reqs"] = _as_int(
            "extra_config.s3_max_inflight_reqs", extra["s3_max_inflight_reqs"], where, warnings, 10**6
        )
    if "save_chunk_meta" in extra and not _as_bool("extra_config.save_chunk_meta", extra["save_chunk_meta"], where, warnings):
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
        "gds_buffer_bytes": read.gds_buffer_bytes,
    }
    settings = LMCache(**(merged | given.given()))
    return Deployment(
        settings=settings,
        chunk_tokens=chunk_tokens if chunk_tokens is not None else read.chunk_size,
        sources=dict(read.sources),
        warnings=read.warnings,
        problem=read.remote_url_problem,
        violations=read.problems,
        view={
            "blocking_timeout_secs": settings.blocking_timeout_s,
            "max_local_cpu_size_bytes": settings.cpu_buffer_bytes,
            "pinned_memory_bytes": settings.pinned_memory_bytes,
            "save_unfull_chunk": settings.save_unfull_chunk,
            "use_layerwise": settings.layerwise,
        },
    )
