"""What LMCache 0.5.6 needs from a config to start each storage connector and store with it: the keys, how it
reads them, the URL forms its parsers take; ``--emit lmcache`` writes its connector lines from ``CONNECTOR_KEYS``
and ``kvsize check --lmcache-config`` refuses what fails these rules (``problems``).

From the lmcache 0.5.6 wheel (``lmcache/v1/...``). Where a rule fails decides how loud the failure is: a
config value that does not convert is dropped (``config_base.py`` ``_apply_env_converter_safely``); an assert
in a storage backend's constructor is caught by ``LMCacheManager.post_init`` (``v1/manager.py``), which logs an
ERROR and stores nothing from then on; one in a remote connector's adapter is caught by
``RemoteBackend.init_connection`` (``remote_backend.py``), which logs a warning and retries forever while the
default ``fallback_policy`` turns the whole cache off. vLLM keeps serving in every case: nothing is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from kvsize.engines.emit_options import Key, unfilled
from kvsize.errors import shown

S3_ALIGN = 4096
"""LMCache's pinned-memory alignment (``memory_management.py`` ``ALIGN_BYTES``): every CPU allocation is rounded up
to it, and the S3 connector uploads a chunk only when that rounded size equals the chunk's byte count."""
MOONCAKE_MASTER_PORT = 50051
MOONCAKE_METADATA_PORT = 8080
"""Mooncake's default master and HTTP metadata ports (LMCache's mooncake.rst), not LMCache code."""
MOONCAKE_SEGMENT_BYTES = 3_355_443_200
"""``global_segment_size`` LMCache passes when none is set (``mooncakestore_connector.py`` ``_SETUP_DEFAULTS``)."""
MOONCAKE_BUFFER_BYTES = 1_073_741_824
"""``local_buffer_size`` likewise."""
REDIS_PORT = 6379


_S3 = "lmcache/v1/storage_backend/connector/s3_adapter.py S3ConnectorAdapter.create_connector"
_GDS = "lmcache/v1/storage_backend/gds_backend.py GdsBackend"
_MOONCAKE = "lmcache/v1/storage_backend/connector/mooncakestore_connector.py MooncakeStoreConfig.load_from_lmcache_config"
_URL = "lmcache/v1/storage_backend/connector/__init__.py parse_remote_url"
_SERDE = Key(
    "remote_serde",
    "naive",
    False,
    "lmcache/v1/storage_backend/naive_serde/__init__.py CreateSerde",
    "naive, kivi or cachegen; anything else raises ValueError and the remote tier stores nothing",
)

CONNECTOR_KEYS: dict[str, tuple[Key, ...]] = {
    "s3": (
        Key(
            "remote_url",
            "s3://{bucket}.s3.{region}.amazonaws.com",
            True,
            f"{_S3}; s3_connector.py S3Connector",
            "sent as the HTTP Host header after s3://: a virtual-hosted bucket host, nothing after it",
        ),
        _SERDE,
        Key(
            "extra_config.s3_region",
            "{region}",
            True,
            _S3,
            "asserted not None ('s3_region is required'): without it the connector is never made",
        ),
    ),
    "fs": (
        Key(
            "remote_url",
            "fs://localhost:1{shared_dir}",
            True,
            f"lmcache/v1/storage_backend/connector/fs_adapter.py FsConnectorAdapter.create_connector; {_URL}",
            "fs://HOST:PORT/path: host and port are asserted and unused; the path is created (mkdir -p)",
        ),
        _SERDE,
    ),
    "redis": (
        Key(
            "remote_url",
            "redis://{host}:" + str(REDIS_PORT),
            True,
            "lmcache/v1/storage_backend/connector/redis_connector.py RedisConnector (redis.ConnectionPool.from_url)",
            "a redis-py URL; the pool connects lazily, so a wrong host fails every operation, not the start",
        ),
        _SERDE,
    ),
    "valkey": (
        Key(
            "remote_url",
            "valkey://{host}:" + str(REDIS_PORT),
            True,
            f"lmcache/v1/storage_backend/connector/valkey_adapter.py ValkeyConnectorAdapter.create_connector; {_URL}",
            "valkey://HOST:PORT; the worker pool connects at start",
        ),
        _SERDE,
        Key(
            "save_unfull_chunk",
            False,
            True,
            "valkey_adapter.py ValkeyConnectorAdapter.create_connector",
            "must be false: true raises ValueError and the connector is never made",
        ),
    ),
    "resp": (
        Key(
            "remote_url",
            "resp://{host}:" + str(REDIS_PORT),
            True,
            f"lmcache/v1/storage_backend/connector/redis_adapter.py RESPConnectorAdapter.create_connector; {_URL}",
            "resp://HOST:PORT; the native client connects in its worker threads",
        ),
        _SERDE,
        Key(
            "save_unfull_chunk",
            False,
            True,
            "redis_adapter.py RESPConnectorAdapter.create_connector",
            "must be false: asserted, and the connector is never made",
        ),
    ),
    "mooncakestore": (
        Key(
            "remote_url",
            "mooncakestore://{host}:" + str(MOONCAKE_MASTER_PORT) + "/",
            True,
            "lmcache/v1/storage_backend/connector/mooncakestore_adapter.py (selects the connector; never parsed)",
            "selects the connector by its scheme; the host and port are not read",
        ),
        _SERDE,
        Key("extra_config.local_hostname", "{host}", True, _MOONCAKE, "this node's address, passed to Mooncake's setup"),
        Key(
            "extra_config.metadata_server",
            "http://{host}:" + str(MOONCAKE_METADATA_PORT) + "/metadata",
            True,
            _MOONCAKE,
            "Mooncake's metadata service",
        ),
        Key(
            "extra_config.master_server_address",
            "{host}:" + str(MOONCAKE_MASTER_PORT),
            True,
            _MOONCAKE,
            "mooncake_master's address",
        ),
        Key("extra_config.protocol", "tcp", False, _MOONCAKE, "tcp or rdma (default tcp)"),
        Key(
            "extra_config.global_segment_size",
            "{segment_bytes}",
            False,
            _MOONCAKE,
            "bytes this worker gives the store (default 3,355,443,200); a bad value silently becomes 0",
            number=True,
        ),
        Key("extra_config.local_buffer_size", MOONCAKE_BUFFER_BYTES, False, _MOONCAKE, "bytes (default 1,073,741,824)"),
    ),
    "local-disk": (
        Key(
            "local_disk",
            "{local_dir}",
            True,
            "lmcache/v1/config_base.py _parse_local_disk; storage_backend/local_disk_backend.py LocalDiskBackend",
            "a path (or comma-separated paths), created with os.makedirs",
        ),
        Key(
            "max_local_disk_size",
            "{disk_gb}",
            True,
            "lmcache/v1/storage_backend/__init__.py CreateStorageBackends (config.max_local_disk_size > 0)",
            "GB read as GiB per worker; missing or 0 creates no disk tier, silently; text raises TypeError",
            number=True,
        ),
    ),
    "gds": (
        Key(
            "gds_path",
            "{gds_dir}",
            True,
            f"{_GDS}.__init__ (get_fstype)",
            "an absolute path on a GDS mount; a relative one raises 'Unable to detect fstype'",
        ),
        Key(
            "gds_buffer_size",
            "{gds_mib}",
            True,
            f"{_GDS}.initialize_allocator",
            "MiB of GPU memory per worker, asserted not None; a batch that does not fit is not stored",
            number=True,
        ),
    ),
    "weka": (  # 0.5.6 has no weka_path: GdsBackend serves WekaFS through gds_path when get_fstype says wekafs
        Key(
            "gds_path",
            "{weka_dir}",
            True,
            f"{_GDS}.__init__ (wekafs branch)",
            "an absolute path under a wekafs mount; use_gds must stay true there",
        ),
        Key(
            "gds_buffer_size",
            "{gds_mib}",
            True,
            f"{_GDS}.initialize_allocator",
            "MiB of GPU memory per worker, asserted not None",
            number=True,
        ),
    ),
    "cpu": (),
}
"""Per connector, the settings it reads beyond the common ones (chunk_size, max_local_cpu_size, ...)."""

CACHE_POLICIES = ("LRU", "LFU", "FIFO", "MRU")
"""``storage_backend/cache_policy/__init__.py`` ``POLICY_MAPPING`` (case-insensitive)."""
SERDES = ("naive", "kivi", "cachegen")
GDS_BACKENDS = ("cufile", "hipfile")
"""``gds_backend.py`` ``GdsBackend.__init__``: anything else raises ValueError."""
S3_IGNORED = ("s3_max_inflight_reqs", "s3_max_io_concurrency", "s3_file_prefix", "s3_part_size", "endpoint_url")
"""``extra_config`` keys LMCache's S3 documentation names that no 0.5.6 code reads."""
S3_TRUTHY = ("s3_prefer_http2", "s3_enable_s3express", "disable_tls", "save_chunk_meta")
"""Read with ``bool(...)`` by the S3 adapter: the text ``"false"`` is true."""


def emitted(connector: str, fill: Mapping[str, Any]) -> dict[str, Any]:
    """The connector's settings from ``CONNECTOR_KEYS``, each template filled from ``fill`` (``extra_config`` keys
    gathered into one mapping). A number template that stays a placeholder stays text."""
    settings: dict[str, Any] = {}
    for item in CONNECTOR_KEYS[connector]:
        value = item.value(fill)
        if item.key.startswith("extra_config."):
            settings.setdefault("extra_config", {})[item.key.removeprefix("extra_config.")] = value
        else:
            settings[item.key] = value
    return settings


def _present(value: Any) -> bool:
    return value is not None and value != ""


def problems(
    raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], connector: str | None, environ: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """What in a config LMCache 0.5.6 cannot start or store with (each as its key and a sentence), and warnings.
    ``raw`` holds each top-level key's value and where it came from; ``extra`` the ``extra_config`` mapping."""
    found: list[tuple[str, str]] = []
    warnings: list[str] = []
    for key, (value, where) in raw.items():
        for holder in dict.fromkeys(unfilled(value) if key != "extra_config" else ()):
            found.append((key, f"{where}: {key} still holds the placeholder {holder}: put in your deployment's value"))
    for key, value in extra.items():
        for holder in dict.fromkeys(unfilled(value)):
            found.append((f"extra_config.{key}", f"extra_config.{key} still holds the placeholder {holder}: put in your value"))
    found += _common(raw)
    if connector is not None:
        rules = {"s3": _s3, "fs": _fs, "resp": _kv, "valkey": _kv, "mooncakestore": _mooncake, "local-disk": _disk, "gds": _gds}
        rule = rules.get(connector)
        if rule is not None:
            got, said = rule(raw, extra, environ)
            found += got
            warnings += said
    return _once(found), warnings


def _once(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One problem per key (the first found): a placeholder and its consequence are one fix."""
    seen: dict[str, str] = {}
    for key, detail in found:
        seen.setdefault(key, detail)
    return list(seen.items())


def _value(raw: Mapping[str, tuple[Any, str]], key: str) -> Any:
    return raw[key][0] if key in raw else None


def _common(raw: Mapping[str, tuple[Any, str]]) -> list[tuple[str, str]]:
    found = []
    policy = _value(raw, "cache_policy")
    if policy is not None and str(policy).strip().upper() not in CACHE_POLICIES:
        found.append(
            (
                "cache_policy",
                f"cache_policy {shown(policy)} is not one of {', '.join(CACHE_POLICIES)}: "
                "LMCache's get_cache_policy raises ValueError and stores nothing",
            )
        )
    serde = _value(raw, "remote_serde")
    if serde is not None and str(serde) not in SERDES:
        found.append(
            (
                "remote_serde",
                f"remote_serde {shown(serde)} is not one of {', '.join(SERDES)}: LMCache's "
                "CreateSerde raises ValueError and the remote tier stores nothing",
            )
        )
    url = _value(raw, "remote_url")
    if isinstance(url, str) and url.startswith("redis-sentinel://"):
        found.append(
            (
                "remote_url",
                "remote_url redis-sentinel:// stores nothing in LMCache 0.5.6: its "
                "RedisSentinelConnector never awaits its writes (redis_connector.py put), and every lookup "
                "reads as a hit; use redis:// to the master",
            )
        )
    return found


def _s3(raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[list[Any], list[str]]:
    found, warnings = [], []
    if not _present(extra.get("s3_region")):
        found.append(
            (
                "extra_config.s3_region",
                "extra_config.s3_region is missing: LMCache 0.5.6's S3 adapter asserts "
                "it ('s3_region is required'), so the connector is never made and nothing is stored; add "
                "extra_config: {s3_region: <region>}",
            )
        )
    url = str(_value(raw, "remote_url") or "")
    host = url.removeprefix("s3://")
    if not url.startswith("s3://") or "." not in host or any(char in host for char in "/?#") or not host.strip("."):
        found.append(
            (
                "remote_url",
                f"remote_url {shown(url)} is not a bucket host: LMCache 0.5.6 sends what follows "
                "s3:// as the HTTP Host header (s3_connector.py), so write s3://<bucket>.s3.<region>.amazonaws.com "
                "with nothing after the host",
            )
        )
    if "save_chunk_meta" in extra and bool(extra["save_chunk_meta"]):
        found.append(
            (
                "extra_config.save_chunk_meta",
                f"extra_config.save_chunk_meta {shown(extra['save_chunk_meta'])} "
                "is true to bool(): the S3 adapter asserts it is false; remove it",
            )
        )
    for key in S3_IGNORED:
        if key in extra:
            warnings.append(f"extra_config.{key} is not read by LMCache 0.5.6 (its S3 connector ignores it)")
    for key in S3_TRUTHY:
        if key != "save_chunk_meta" and isinstance(extra.get(key), str):
            warnings.append(
                f"extra_config.{key} = {shown(extra[key])} is text, which LMCache's S3 adapter reads with "
                "bool(): any non-empty text is true; write true or false"
            )
    return found, warnings


def _fs(raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[list[Any], list[str]]:
    url = str(_value(raw, "remote_url") or "")
    try:
        path = urlparse(url).path
    except ValueError:
        return [], []  # the host/port check (remote_url_problem) says why
    if path.strip("/") == "":
        where = "the server's working directory" if path == "" else "the root directory"
        return [
            (
                "remote_url",
                f"remote_url {shown(url)} has no directory: LMCache's fs connector would write into "
                f"{where}; write fs://localhost:1/<shared mount path>",
            )
        ], []
    return [], []


def _kv(raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[list[Any], list[str]]:
    found = []
    unfull = _value(raw, "save_unfull_chunk")
    if unfull is not None and str(unfull).strip().lower() in ("true", "1"):
        found.append(
            (
                "save_unfull_chunk",
                "save_unfull_chunk is true: LMCache 0.5.6's resp and valkey adapters refuse "
                "it (assert / ValueError), so the connector is never made and nothing is stored; set it false",
            )
        )
    if str(extra.get("save_chunk_meta", "false")).strip().lower() in ("true", "1"):
        found.append(
            (
                "extra_config.save_chunk_meta",
                "extra_config.save_chunk_meta is true: the resp and valkey adapters refuse it; remove it",
            )
        )
    return found, []


def _mooncake(
    raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[list[Any], list[str]]:
    if environ.get("MOONCAKE_CONFIG_PATH"):
        return [], [
            "MOONCAKE_CONFIG_PATH is set: LMCache's mooncakestore connector reads its settings from that file, "
            "which kvsize does not check"
        ]
    if not extra:
        return [
            (
                "extra_config",
                "extra_config is not set and MOONCAKE_CONFIG_PATH is not either: LMCache's "
                "mooncakestore connector raises 'The extra config is not set.' and stores nothing",
            )
        ], []
    missing = [key for key in ("local_hostname", "metadata_server", "master_server_address") if not _present(extra.get(key))]
    return [
        (
            f"extra_config.{key}",
            f"extra_config.{key} is missing: Mooncake's setup needs it (LMCache passes it on "
            "from extra_config), so the connector is never made",
        )
        for key in missing
    ], []


def _disk(
    raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[list[Any], list[str]]:
    found = []
    size = _value(raw, "max_local_disk_size")
    try:
        gigabytes = float(size) if size is not None else 0.0
    except (TypeError, ValueError):
        gigabytes = float("nan")
    if not gigabytes > 0:
        why = (
            "is missing, so LMCache creates no disk tier, silently"
            if size is None
            else (f"= {shown(size)} is not a number more than 0: LMCache creates no disk tier (or fails with TypeError)")
        )
        found.append(
            (
                "max_local_disk_size",
                f"local_disk is set but max_local_disk_size {why} "
                "(storage_backend/__init__.py CreateStorageBackends); give the GB each worker may fill",
            )
        )
    sharding = _value(raw, "local_disk_path_sharding")
    if sharding is not None and str(sharding) != "by_gpu":
        found.append(
            (
                "local_disk_path_sharding",
                f"local_disk_path_sharding {shown(sharding)} is not by_gpu, the one "
                "strategy LMCache 0.5.6's PathSharder takes (ValueError)",
            )
        )
    return found, []


def _gds(raw: Mapping[str, tuple[Any, str]], extra: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[list[Any], list[str]]:
    found = []
    if _value(raw, "gds_buffer_size") is None:
        found.append(
            (
                "gds_buffer_size",
                "gds_buffer_size is missing: LMCache 0.5.6's GdsBackend.initialize_allocator "
                "asserts it, so the GDS backend fails at start and nothing is stored; give the MiB of GPU memory "
                "per worker (kvsize --emit lmcache sizes it)",
            )
        )
    path = str(_value(raw, "gds_path") or "")
    if not unfilled(path) and not all(part.strip().startswith("/") for part in path.split(",")):
        found.append(
            (
                "gds_path",
                f"gds_path {shown(path)} is not absolute: GdsBackend's get_fstype finds no mount for it "
                "('Unable to detect fstype') and nothing is stored",
            )
        )
    backend = _value(raw, "gds_backend")
    if backend is not None and str(backend) not in GDS_BACKENDS:
        found.append(("gds_backend", f"gds_backend {shown(backend)} is not cufile or hipfile: GdsBackend raises ValueError"))
    return found, []


KNOWN_KEYS = frozenset(
    [
        "chunk_size",
        "local_cpu",
        "max_local_cpu_size",
        "local_cpu_use_hugepages",
        "reserve_local_cpu_size",
        "local_disk",
        "local_disk_path_sharding",
        "max_local_disk_size",
        "remote_url",
        "remote_serde",
        "use_layerwise",
        "save_decode_cache",
        "pre_caching_hash_algorithm",
        "enable_blending",
        "blend_recompute_ratios",
        "blend_thresholds",
        "blend_check_layers",
        "blend_min_tokens",
        "blend_special_str",
        "retrieve_locations",
        "store_location",
        "enable_p2p",
        "p2p_host",
        "p2p_init_ports",
        "p2p_lookup_ports",
        "mp_host",
        "mp_port",
        "enable_controller",
        "lmcache_instance_id",
        "controller_pull_url",
        "controller_reply_url",
        "lmcache_worker_ports",
        "lmcache_worker_ids",
        "lmcache_worker_heartbeat_delay_time",
        "lmcache_worker_heartbeat_time",
        "enable_pd",
        "pd_role",
        "pd_buffer_size",
        "pd_buffer_device",
        "pd_peer_host",
        "pd_peer_init_port",
        "pd_peer_alloc_port",
        "pd_peer_query_port",
        "pd_proxy_host",
        "pd_proxy_port",
        "pd_allocation_timeout_sec",
        "pd_shutdown_timeout_sec",
        "pd_condition_poll_interval_sec",
        "pd_max_prefill_len",
        "pd_backend_mode",
        "pd_skip_proxy_notification",
        "pd_bidirectional",
        "transfer_channel",
        "nixl_backends",
        "nixl_buffer_size",
        "nixl_buffer_device",
        "gds_path",
        "gds_path_sharding",
        "gds_buffer_size",
        "maru_path",
        "maru_pool_size",
        "use_gds",
        "gds_backend",
        "audit_actual_remote_url",
        "internal_api_server_host",
        "extra_config",
        "save_unfull_chunk",
        "blocking_timeout_secs",
        "external_lookup_client",
        "py_enable_gc",
        "cache_policy",
        "numa_mode",
        "enable_async_loading",
        "internal_api_server_enabled",
        "internal_api_server_port_start",
        "priority_limit",
        "internal_api_server_include_index_list",
        "internal_api_server_socket_path_prefix",
        "runtime_plugin_locations",
        "storage_plugins",
        "remote_storage_plugins",
        "lookup_timeout_ms",
        "min_retrieve_tokens",
        "hit_miss_ratio",
        "lookup_server_worker_ids",
        "enable_scheduler_bypass_lookup",
        "script_allowed_imports",
        "run_script_api_enabled",
        "enable_lazy_memory_allocator",
        "lazy_memory_initial_ratio",
        "lazy_memory_expand_trigger_ratio",
        "lazy_memory_step_ratio",
        "lazy_memory_safe_size",
        "enable_chunk_statistics",
        "chunk_statistics_auto_start_statistics",
        "chunk_statistics_auto_exit_timeout_hours",
        "chunk_statistics_auto_exit_target_unique_chunks",
        "chunk_statistics_strategy",
        "enable_kv_events",
        "use_gpu_connector_v3",
        "pin_timeout_sec",
        "pin_check_interval_sec",
        "remote_config_url",
        "app_id",
        "enable_hidden_state_cache",
        "max_hidden_state_cpu_size",
        "hidden_state_layers",
        "hidden_states_retrieve_mode",
    ]
)
"""LMCache 0.5.6's ``_CONFIG_DEFINITIONS`` (``lmcache/v1/config.py``): it warns ``Unknown configuration key`` for
any other key in a file and ignores it (``config_base.py`` ``_resolve_config_aliases``)."""
