"""Probe targets: a directory, an S3 prefix or a Redis server, written and read the way LMCache's connectors do.

A directory: one file per object, LMCache's 28-byte ``RemoteMetadata`` header then the bytes (a temp file, then a
rename, as ``FSConnector.put``), read back as ``FSConnector.get`` does with ``save_chunk_meta`` (its default): a
buffered file, the header first, then the bytes into a buffer allocated beforehand. The header read matters: it
starts the kernel's readahead before the large read (LMCache's own comment on it), which on a virtual disk measured
here read 9 MiB objects 1.36x and 72 MiB objects 1.16x faster than one large ``readv``. With ``direct`` the file is
the bytes alone, read with O_DIRECT, as LMCache's ``_get_with_odirect`` (used when ``save_chunk_meta`` is off);
otherwise the page cache is dropped with ``posix_fadvise`` before each read pass. S3 and Redis:
``kvsize.storage.network_targets``. Each run writes under a name of its own and removes only what it wrote; in a
directory, through descriptors that never follow a symbolic link (``kvsize.storage.rundir``).
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
from kvsize.stopping import Interrupted
from kvsize.storage.leftovers import PREFIX, run_name
from kvsize.storage.network_targets import RedisTarget, S3Target
from kvsize.storage.rundir import RunFolder, clean_folder

FS_HEADER_BYTES = 28  # the same RemoteMetadata, inside each fs connector file ahead of the bytes
DIRECT_ALIGN = 4096

__all__ = ["DirectoryTarget", "Interrupted", "Target", "open_target", "read_buffer_bytes"]


class Target(Protocol):
    name: str
    cache_note: str | None

    def prepare(self, planned_bytes: int, buffer_bytes: int = 0) -> None: ...
    def write(self, key: str, data: memoryview) -> None: ...
    def read(self, key: str, size: int) -> int: ...
    def drop(self, keys: list[str]) -> None: ...
    def warm(self, level: int, size: int) -> None: ...
    def remove(self, keys: list[str]) -> None: ...
    def close(self) -> None: ...
    def leftovers(self) -> list[str]: ...
    def clean(self, name: str) -> str | None: ...
    def check_run(self, name: str) -> str | None: ...


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
        self._folder: RunFolder | None = None
        self.cache_note: str | None = None
        self._written: set[str] = set()
        self._local = threading.local()
        self._pool: queue.SimpleQueue[memoryview] | None = None
        self._pool_length = 0
        self._arena: mmap.mmap | None = None

    def prepare(self, planned_bytes: int, buffer_bytes: int = 0) -> None:
        available = _available_memory()
        if available is not None and buffer_bytes > 0.8 * available:
            raise ProbeError(
                f"the probe reads into {buffer_bytes:,} B of buffers at once (the highest concurrency x the largest "
                f"object), more than this host's {available:,} B of available memory allows: lower --concurrency or "
                "the object sizes"
            )
        free = shutil.disk_usage(self.base).free
        if free < planned_bytes * 1.1:
            raise ProbeError(
                f"{self.base} has {free:,} B free; the probe writes up to {planned_bytes:,} B at a time (plus 10%): "
                "free space or lower --max-bytes"
            )
        if self.direct and not hasattr(os, "O_DIRECT"):
            raise ProbeError("`direct` needs O_DIRECT, which this OS does not offer; drop `direct`")
        self._folder = RunFolder(self.base, run_name())
        self.run_dir = self.base / self._folder.name
        if buffer_bytes:
            # Every read buffer of the run, allocated and touched now, before anything is written, as LMCache
            # allocates its CPU buffer when the engine starts. Memory first touched just before a read pass made the
            # reads that follow slower on a virtual machine measured (288 MiB objects at 1.8 GiB/s against 3.0 to 3.4).
            self._arena = _touched(buffer_bytes)
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

    @property
    def folder(self) -> RunFolder:
        assert self._folder is not None, "prepare() first"
        return self._folder

    def write(self, key: str, data: memoryview) -> None:
        final, temporary = f"{key}.data", f"{key}.tmp"
        self._written.add(temporary)
        fd = self.folder.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            if not self.direct:
                _write_all(fd, memoryview(bytes(FS_HEADER_BYTES)))
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._written.add(final)
        self.folder.replace(temporary, final)
        self._written.discard(temporary)

    def warm(self, level: int, size: int) -> None:
        """``level`` read buffers of ``size`` for the next read pass, as LMCache reads into its CPU buffer, allocated
        and touched when the engine starts: slices of the run's buffers (``prepare``), else allocated and touched
        here. A buffer first touched inside a timed read would time its page faults."""
        length = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
        if self._arena is None or len(self._arena) < level * length:
            self._close_arena()
            self._arena = _touched(level * length)
        pool: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        whole = memoryview(self._arena)
        for index in range(level):
            pool.put(whole[index * length : (index + 1) * length])
        self._pool, self._pool_length = pool, length

    def _close_arena(self) -> None:
        self._pool = None
        if self._arena is not None:
            with contextlib.suppress(BufferError):  # a slice still held: the memory goes with the last of them
                self._arena.close()
            self._arena = None

    def _buffer(self, size: int) -> memoryview:
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
        return memoryview(buffer)

    def _release(self, view: memoryview) -> None:
        if self._pool is not None and view.obj is self._arena and len(view) == self._pool_length:
            self._pool.put(view)
        else:
            view.release()

    def read(self, key: str, size: int) -> int:
        """Read one object's ``size`` bytes into a warmed buffer; the bytes read (the header not counted)."""
        view = self._buffer(size)
        try:
            if self.direct:
                return self._read_direct(key, size, view)
            with open(f"{key}.data", "rb", opener=self.folder.opener) as file:  # buffered, as aiofiles.open(path, "rb")
                if file.readinto(bytearray(FS_HEADER_BYTES)) != FS_HEADER_BYTES:
                    return 0
                total = 0
                while total < size:
                    got = file.readinto(view[total:size])
                    if not got:
                        break
                    total += got
                return total
        finally:
            self._release(view)

    def _read_direct(self, key: str, size: int, view: memoryview) -> int:
        fd = self.folder.open(f"{key}.data", os.O_RDONLY | os.O_DIRECT)
        try:
            total = 0
            while total < size:
                # O_DIRECT reads whole aligned blocks: ask for the rounded length, count what comes
                got = os.readv(fd, [view[total:]])
                if got == 0:
                    break
                total += got
            return min(total, size)
        finally:
            os.close(fd)

    def drop(self, keys: list[str]) -> None:
        if self.direct:
            return
        if not hasattr(os, "posix_fadvise"):
            self.cache_note = "could not drop the page cache (no posix_fadvise here): reads may come from memory"
            return
        for key in keys:
            fd = self.folder.open(f"{key}.data", os.O_RDONLY)
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
            for name in (f"{key}.data", f"{key}.tmp"):
                if name in self._written:
                    self.folder.unlink(name)
                    self._written.discard(name)

    def leftovers(self) -> list[str]:
        """Names of earlier probe runs' folders in the target directory (and of anything else named like one, such as
        a symbolic link, which ``clean`` then leaves, saying why)."""
        try:
            with os.scandir(self.base) as entries:
                return sorted(entry.name for entry in entries if entry.name.startswith(PREFIX))
        except OSError:
            return []

    def check_run(self, name: str) -> str | None:
        """Why ``clean`` would leave ``name`` in place (a symbolic link, no valid marker), or None."""
        return clean_folder(self.base, name, dry_run=True)

    def clean(self, name: str) -> str | None:
        """Remove an earlier run's folder (``kvsize.storage.rundir.clean_folder``); why what stays was left, or None."""
        return clean_folder(self.base, name)

    def close(self) -> None:
        """Remove what this run wrote (and only that), then its marker and folder if nothing else is in it."""
        self._close_arena()
        folder, self._folder = self._folder, None
        if folder is None:
            return
        left = folder.close(sorted(self._written))
        self._written.clear()
        if left:
            raise ProbeError(f"{len(left):,} of its files left in {self.run_dir}")


def read_buffer_bytes(plan: list[tuple[int, int, int]]) -> int:
    """The read buffers a plan of (size, level, count) sets needs at once: its largest level x size (page-rounded)."""
    return max((level * -(-size // DIRECT_ALIGN) * DIRECT_ALIGN for size, level, _ in plan), default=0)


def _touched(length: int) -> mmap.mmap:
    """Page-aligned memory of ``length`` bytes, every page written once (no first-touch fault left)."""
    memory = mmap.mmap(-1, length)
    ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(memory)), 1, length)
    return memory


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None (not checked)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


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
