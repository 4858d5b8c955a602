"""Probe targets on the network: an S3 prefix and a Redis server, written and read the way LMCache's connectors do.

S3: one PUT and one GET per object. Redis: two keys per chunk, ``<key>kv_bytes`` and ``<key>metadata`` (28 bytes),
as LMCache's redis connector stores them, read back as its ``_get`` does (the metadata, then the value, copied into
a CPU buffer). Each run writes under a name of its own, a marker first (``kvsize.storage.leftovers``), and removes
only what it wrote. ``clean`` removes an earlier run's keys only under a valid marker naming that run, and only the
keys a probe writes; the run's name (letters, digits, dots and dashes) can match no other run's prefix.
"""

from __future__ import annotations

import queue
import re

from kvsize.errors import ProbeError, shown
from kvsize.storage.leftovers import MARKER, MARKER_LIMIT, PREFIX, PROBE_KEY, marker, marker_problem, run_name

REDIS_METADATA_BYTES = 28  # LMCache RemoteMetadata, stored as a second key by the redis connector


class S3Target:
    """An S3 bucket and prefix (boto3): one PUT and one GET per object, as LMCache's S3 connector stores them."""

    def __init__(self, url: str, endpoint_url: str | None) -> None:
        try:
            import boto3
        except ImportError:
            raise ProbeError("probing S3 needs boto3: pip install 'kvsize[s3]'") from None
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ProbeError(f"{shown(url)} names no bucket: write s3://bucket/prefix")
        self.bucket = bucket
        self.root = prefix.strip("/")
        self.prefix = f"{self.root}/{run_name()}".lstrip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)
        self.name = url
        self.cache_note: str | None = None
        self._written: set[str] = set()
        self._marker: str | None = None

    def prepare(self, planned_bytes: int, buffer_bytes: int = 0) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise ProbeError(
                f"cannot reach bucket {shown(self.bucket)}: {error}; check the name, `endpoint_url` and the AWS credentials"
            ) from None
        self._marker = self._key(MARKER)
        self.client.put_object(Bucket=self.bucket, Key=self._marker, Body=marker(self.prefix.rsplit("/", 1)[-1]))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def write(self, key: str, data: memoryview) -> None:
        self._written.add(self._key(key))
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data))

    def read(self, key: str, size: int) -> int:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return len(body.read())

    def warm(self, level: int, size: int) -> None:
        """Nothing to warm: the client allocates its own buffers per response."""

    def drop(self, keys: list[str]) -> None:
        pass

    def remove(self, keys: list[str]) -> None:
        names = [self._key(key) for key in keys if self._key(key) in self._written]
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch]})
            self._written.difference_update(batch)

    def close(self) -> None:
        if self._written:
            self.remove([name.rsplit("/", 1)[1] for name in list(self._written)])
        if self._marker is not None:  # last: a run that could not finish keeps it, for --clean
            self.client.delete_object(Bucket=self.bucket, Key=self._marker)
            self._marker = None

    def _run_prefix(self, name: str) -> str:
        return f"{self.root}/{name}/".lstrip("/")

    def leftovers(self) -> list[str]:
        """Names of earlier probe runs' prefixes under the target prefix."""
        base = f"{self.root}/{PREFIX}".lstrip("/")
        try:
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=base, Delimiter="/").get("CommonPrefixes", [])
        except Exception:  # an unreachable bucket: prepare() says so, in one line
            return []
        return sorted(entry["Prefix"].rstrip("/").rsplit("/", 1)[-1] for entry in found)

    def check_run(self, name: str) -> str | None:
        """Why ``clean`` would leave run ``name`` in place (no valid marker), or None."""
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._run_prefix(name) + MARKER, Range=f"bytes=0-{MARKER_LIMIT}")
        except self.client.exceptions.NoSuchKey:
            return marker_problem(name, None)
        return marker_problem(name, got["Body"].read(MARKER_LIMIT + 1))

    def clean(self, name: str) -> str | None:
        """Remove run ``name``'s objects (only keys a probe writes, under a valid marker), then the marker."""
        if problem := self.check_run(name):
            return problem
        prefix, others = self._run_prefix(name), 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [item["Key"] for item in page.get("Contents", [])]
            ours = [key for key in keys if PROBE_KEY.match(key[len(prefix) :])]
            others += len(keys) - len(ours) - (prefix + MARKER in keys)
            for start in range(0, len(ours), 1000):
                batch = [{"Key": key} for key in ours[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        if others:
            return f"it holds keys a probe does not write ({others:,}; its probe objects were removed)"
        self.client.delete_object(Bucket=self.bucket, Key=prefix + MARKER)
        return None


class RedisTarget:
    """A Redis server: two keys per chunk, as LMCache's redis connector stores them."""

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise ProbeError("probing Redis needs redis-py: pip install 'kvsize[redis]'") from None
        self.client = redis.Redis.from_url(url)
        self.name = url
        self.prefix = run_name()
        self.cache_note: str | None = None
        self._written: set[str] = set()
        self._pool: queue.SimpleQueue[bytearray] | None = None
        self._pool_length = 0
        self._marker: str | None = None

    def prepare(self, planned_bytes: int, buffer_bytes: int = 0) -> None:
        import redis

        try:
            self.client.ping()
        except redis.RedisError as error:
            raise ProbeError(f"cannot reach {self.name}: {error}") from None
        self._marker = f"{self.prefix}:{MARKER}"
        self.client.set(self._marker, marker(self.prefix), nx=True)

    def write(self, key: str, data: memoryview) -> None:
        name = f"{self.prefix}:{key}"
        self._written.update({name + "kv_bytes", name + "metadata"})
        self.client.set(name + "kv_bytes", bytes(data))
        self.client.set(name + "metadata", b"\0" * REDIS_METADATA_BYTES)

    def read(self, key: str, size: int) -> int:
        """The metadata GET, then the kv_bytes GET, copied into a CPU buffer: LMCache's ``RedisConnector._get``."""
        name = f"{self.prefix}:{key}"
        self.client.get(name + "metadata")
        reply = self.client.get(name + "kv_bytes")
        if reply is None:
            return 0
        value = reply if isinstance(reply, bytes) else str(reply).encode()
        buffer = self._pool.get() if self._pool is not None and self._pool_length >= len(value) else bytearray(len(value))
        try:
            memoryview(buffer)[: len(value)] = value
        finally:
            if self._pool is not None and len(buffer) == self._pool_length:
                self._pool.put(buffer)
        return len(value)

    def warm(self, level: int, size: int) -> None:
        """``level`` CPU buffers of ``size``, touched before the read pass (LMCache's are, at engine start)."""
        pool: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(level):
            pool.put(bytearray(b"\x01") * size)
        self._pool, self._pool_length = pool, size

    def drop(self, keys: list[str]) -> None:
        pass

    def remove(self, keys: list[str]) -> None:
        names = [f"{self.prefix}:{key}{part}" for key in keys for part in ("kv_bytes", "metadata")]
        names = [name for name in names if name in self._written]
        if names:
            self.client.delete(*names)
            self._written.difference_update(names)

    def close(self) -> None:
        if self._written:
            self.client.delete(*self._written)
            self._written.clear()
        if self._marker is not None:  # last: a run that could not finish keeps it, for --clean
            self.client.delete(self._marker)
            self._marker = None

    def leftovers(self) -> list[str]:
        """Names of earlier probe runs that still have keys on the server."""
        try:
            names = {key.decode().split(":", 1)[0] for key in self.client.scan_iter(match=f"{PREFIX}*:*", count=1000)}
        except Exception:  # an unreachable server: prepare() says so, in one line
            return []
        return sorted(names)

    def check_run(self, name: str) -> str | None:
        """Why ``clean`` would leave run ``name`` in place (no valid marker), or None."""
        data = self.client.get(f"{name}:{MARKER}")
        return marker_problem(name, data if isinstance(data, bytes) or data is None else str(data).encode())

    def clean(self, name: str) -> str | None:
        """Remove run ``name``'s keys (only the two a probe writes per object, under a valid marker), then the marker."""
        if problem := self.check_run(name):
            return problem
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", name) + ":*"  # a run name has no glob characters; escaped all the same
        ours, others = [], 0
        for raw in self.client.scan_iter(match=pattern, count=1000):
            key = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            rest = key[len(name) + 1 :]
            if rest.endswith(("kv_bytes", "metadata")) and PROBE_KEY.match(rest[:-8]):
                ours.append(raw)
            elif rest != MARKER:
                others += 1
        for start in range(0, len(ours), 1000):
            self.client.delete(*ours[start : start + 1000])
        if others:
            return f"it holds keys a probe does not write ({others:,}; its probe keys were removed)"
        self.client.delete(f"{name}:{MARKER}")
        return None
