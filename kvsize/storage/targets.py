"""Probe targets: a directory, an S3 prefix or a Redis server, written and read the way LMCache's connectors do.

A directory: one file per object (a temp file, then a rename, as ``FSConnector.put``), read with
``readv`` (O_DIRECT with ``direct``; else the page cache is dropped with ``posix_fadvise``). S3: one
PUT and one GET per object. Redis: two keys per chunk, ``<key>kv_bytes`` and ``<key>metadata``
(28 bytes), as LMCache's redis connector stores them. Each run writes under a name of its own and
removes only what it wrote.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import queue
import shutil
import threading
from pathlib import Path
from typing import Protocol

from kvsize.errors import ProbeError, shown
from kvsize.storage.leftovers import PREFIX, run_name

REDIS_METADATA_BYTES = 28  # LMCache RemoteMetadata, stored as a second key by the redis connector
DIRECT_ALIGN = 4096


class Interrupted(Exception):
    """The run was stopped (Ctrl-C or SIGTERM) and has cleaned up."""


class Target(Protocol):
    name: str
    cache_note: str | None

    def prepare(self, planned_bytes: int) -> None: ...
    def write(self, key: str, data: memoryview) -> None: ...
    def read(self, key: str, size: int) -> int: ...
    def drop(self, keys: list[str]) -> None: ...
    def warm(self, level: int, size: int) -> None: ...
    def remove(self, keys: list[str]) -> None: ...
    def close(self) -> None: ...
    def leftovers(self) -> list[str]: ...
    def clean(self, name: str) -> str | None: ...


class DirectoryTarget:
    """A directory (local disk, NFS or pNFS mount): one file per object, written as LMCache's fs connector does."""

    def __init__(self, path: Path, direct: bool) -> None:
        if not path.is_dir():
            raise ProbeError(
                f"probe target {path} is not a directory: give an existing directory, s3://bucket/prefix or redis://host:port"
            )
        self.base = path
        self.direct = direct
        self.name = str(path)
        self.run_dir: Path | None = None
        self.cache_note: str | None = None
        self._written: set[str] = set()
        self._local = threading.local()
        self._pool: queue.SimpleQueue[mmap.mmap] | None = None
        self._pool_length = 0

    def prepare(self, planned_bytes: int) -> None:
        free = shutil.disk_usage(self.base).free
        if free < planned_bytes * 1.1:
            raise ProbeError(
                f"{self.base} has {free:,} B free; the probe writes up to {planned_bytes:,} B at a time (plus 10%): "
                "free space or lower --max-bytes"
            )
        if self.direct and not hasattr(os, "O_DIRECT"):
            raise ProbeError("`direct` needs O_DIRECT, which this OS does not offer; drop `direct`")
        self.run_dir = self.base / run_name()
        self.run_dir.mkdir()  # fails if it exists: never reuse a folder this run did not create
        if self.direct:
            self.write("odirect-check", memoryview(bytes(DIRECT_ALIGN)))
            try:
                self.read("odirect-check", DIRECT_ALIGN)
            except OSError as error:
                raise ProbeError(
                    f"{self.base} does not take O_DIRECT reads ({error.strerror}; tmpfs, for one, does not): drop `direct`"
                ) from None
            finally:
                self.remove(["odirect-check"])

    def _path(self, key: str) -> Path:
        assert self.run_dir is not None
        return self.run_dir / f"{key}.data"

    def write(self, key: str, data: memoryview) -> None:
        final = self._path(key)
        temporary = final.with_suffix(".tmp")
        self._written.add(temporary.name)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = data
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._written.add(final.name)
        os.replace(temporary, final)
        self._written.discard(temporary.name)

    def warm(self, level: int, size: int) -> None:
        """Allocate and touch ``level`` read buffers of ``size`` before a read pass, as LMCache reads into its CPU
        buffer, allocated and touched when the engine starts: a buffer first touched inside a timed read would time
        its page faults (a 288 MiB object's are a third of its read here)."""
        length = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
        pool: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
        for _ in range(level):
            buffer = mmap.mmap(-1, length)
            ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(buffer)), 1, length)
            pool.put(buffer)
        self._pool, self._pool_length = pool, length

    def _buffer(self, size: int) -> mmap.mmap:
        """A warmed buffer from the pool (``warm``), else a page-aligned one per worker thread, reused as LMCache
        reuses its pinned buffers (and as O_DIRECT needs alignment)."""
        length = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
        if self._pool is not None and self._pool_length >= length:
            return self._pool.get()
        buffer: mmap.mmap | None = getattr(self._local, "buffer", None)
        if buffer is None or len(buffer) < length:
            if buffer is not None:
                buffer.close()
            buffer = mmap.mmap(-1, length)
            self._local.buffer = buffer
        return buffer

    def _release(self, buffer: mmap.mmap) -> None:
        if self._pool is not None and len(buffer) == self._pool_length:
            self._pool.put(buffer)

    def read(self, key: str, size: int) -> int:
        flags = os.O_RDONLY | (os.O_DIRECT if self.direct else 0)
        fd = os.open(self._path(key), flags)
        buffer = self._buffer(size)
        view = memoryview(buffer)
        try:
            total = 0
            while total < size:
                # O_DIRECT reads whole aligned blocks: ask for the rounded length, count what comes
                got = os.readv(fd, [view[total:]])
                if got == 0:
                    break
                total += got
            return total
        finally:
            view.release()
            os.close(fd)
            self._release(buffer)

    def drop(self, keys: list[str]) -> None:
        if self.direct:
            return
        if not hasattr(os, "posix_fadvise"):
            self.cache_note = "could not drop the page cache (no posix_fadvise here): reads may come from memory"
            return
        for key in keys:
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        self.cache_note = (
            "page cache dropped with posix_fadvise(DONTNEED) before each read pass; a network "
            "file system may still serve from its client cache (use --direct to be sure)"
        )

    def remove(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            for name in (path.name, path.with_suffix(".tmp").name):
                if name in self._written:
                    (path.parent / name).unlink(missing_ok=True)
                    self._written.discard(name)

    def leftovers(self) -> list[str]:
        """Names of earlier probe runs' folders in the target directory."""
        try:
            return sorted(entry.name for entry in os.scandir(self.base) if entry.name.startswith(PREFIX) and entry.is_dir())
        except OSError:
            return []

    def clean(self, name: str) -> str | None:
        """Remove an earlier run's folder: only its ``.data`` and ``.tmp`` files, then the folder; what stays, or None."""
        folder = self.base / name
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and entry.name.endswith((".data", ".tmp")):
                os.unlink(entry.path)
        try:
            folder.rmdir()
        except OSError:
            return f"{folder} holds files a probe does not write: left in place"
        return None

    def close(self) -> None:
        """Remove what this run wrote (and only that), then its run folder if it is empty."""
        if self.run_dir is None:
            return
        for name in list(self._written):
            (self.run_dir / name).unlink(missing_ok=True)
            self._written.discard(name)
        with contextlib.suppress(OSError):  # something else was put there: leave it
            self.run_dir.rmdir()


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

    def prepare(self, planned_bytes: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as error:
            raise ProbeError(
                f"cannot reach bucket {shown(self.bucket)}: {error}; check the name, `endpoint_url` and the AWS credentials"
            ) from None

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

    def clean(self, name: str) -> str | None:
        while True:
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._run_prefix(name)).get("Contents", [])
            if not listed:
                return None
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": item["Key"]} for item in listed]})


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

    def prepare(self, planned_bytes: int) -> None:
        import redis

        try:
            self.client.ping()
        except redis.RedisError as error:
            raise ProbeError(f"cannot reach {self.name}: {error}") from None

    def write(self, key: str, data: memoryview) -> None:
        name = f"{self.prefix}:{key}"
        self._written.update({name + "kv_bytes", name + "metadata"})
        self.client.set(name + "kv_bytes", bytes(data))
        self.client.set(name + "metadata", b"\0" * REDIS_METADATA_BYTES)

    def read(self, key: str, size: int) -> int:
        name = f"{self.prefix}:{key}"
        self.client.get(name + "metadata")
        value = self.client.get(name + "kv_bytes")
        return len(value) if value is not None else 0

    def warm(self, level: int, size: int) -> None:
        """Nothing to warm: the client allocates its own buffers per response."""

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

    def leftovers(self) -> list[str]:
        """Names of earlier probe runs that still have keys on the server."""
        try:
            names = {key.decode().split(":", 1)[0] for key in self.client.scan_iter(match=f"{PREFIX}*:*", count=1000)}
        except Exception:  # an unreachable server: prepare() says so, in one line
            return []
        return sorted(names)

    def clean(self, name: str) -> str | None:
        keys = list(self.client.scan_iter(match=f"{name}:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])
        return None


def open_target(target: str, *, direct: bool, endpoint_url: str | None) -> Target:
    if target.startswith("s3://"):
        if direct:
            raise ProbeError("`direct` applies to a directory target, not S3")
        return S3Target(target, endpoint_url)
    if target.startswith(("redis://", "rediss://")):
        if direct:
            raise ProbeError("`direct` applies to a directory target, not Redis")
        return RedisTarget(target)
    if "://" in target:
        raise ProbeError(f"probe target {shown(target)}: give a directory, s3://bucket/prefix or redis://host:port")
    return DirectoryTarget(Path(target).expanduser(), direct)
