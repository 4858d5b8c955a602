"""LMCache 0.5.6's connectors: how each backend lays a chunk object out (docs/rules.md).

The vLLM-family engines describe their tiers with the same type (``kvsize.engines.vllm_native``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Connector(BaseModel):
    """How one LMCache backend lays a chunk object out (docs/rules.md, LMCache 0.5.6)."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    header_bytes: int
    """Connector metadata bytes per object (inline header plus any separate metadata key or file)."""
    requests_per_object: int
    """Storage operations per object: 2 for redis's two keys and GDS's two files, else 1."""
    stores_partial_chunks: bool
    int32_header: bool
    """The header's length field is an int32: objects of 2 GiB or more cannot be described."""
    layout: str
    source: str
    multipart: bool = False
    """The client splits an object into parts, each a request on the wire (awscrt on S3)."""
    pinned_memory_rule: bool = False
    """LMCache's S3 pinned-memory rule applies: object x s3_max_inflight_reqs + max_local_cpu_size x TP."""
    io_threads: int | None = None
    """Requests the engine keeps in flight per writer, when the engine fixes it (vLLM's FS tier: 16 read threads);
    None when the storage profile's concurrency applies (LMCache's clients)."""
    io_note: str | None = None
    """The sentence saying where ``io_threads`` comes from (a timing note)."""

    @property
    def inline_header_bytes(self) -> int:
        """Header bytes inside the object itself (a separate metadata key or file is a request of its own)."""
        return self.header_bytes if self.requests_per_object == 1 else 0


CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector(
            name="s3",
            url="s3://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=False,
            int32_header=False,
            layout="raw bytes, one object; only whole chunks are uploaded",
            source="lmcache/v1/storage_backend/connector/s3_connector.py",
            multipart=True,
            pinned_memory_rule=True,
        ),
        Connector(
            name="fs",
            url="fs://",
            header_bytes=28,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes, one file (tmp write + rename)",
            source="lmcache/v1/storage_backend/connector/fs_connector.py",
        ),
        Connector(
            name="mooncakestore",
            url="mooncakestore://",
            header_bytes=28,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=True,
            layout="28-byte RemoteMetadata header + bytes",
            source="lmcache/v1/storage_backend/connector/mooncakestore_connector.py",
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
        ),
        Connector(
            name="valkey",
            url="valkey://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/valkey_connector.py",
        ),
        Connector(
            name="resp",
            url="resp://",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="raw bytes, one key",
            source="lmcache/v1/storage_backend/connector/resp_connector.py",
        ),
        Connector(
            name="local-disk",
            url="local_disk",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
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
            url="weka_path",
            header_bytes=8192,
            requests_per_object=2,
            stores_partial_chunks=True,
            int32_header=True,
            layout="as gds: 4,096-byte header in the data file + a 4,096-byte .metadata file",
            source="lmcache/v1/storage_backend/weka_gds_backend.py",
        ),
        Connector(
            name="cpu",
            url="local_cpu",
            header_bytes=0,
            requests_per_object=1,
            stores_partial_chunks=True,
            int32_header=False,
            layout="pinned CPU memory, one buffer per chunk",
            source="lmcache/v1/storage_backend/local_cpu_backend.py",
        ),
    )
}
