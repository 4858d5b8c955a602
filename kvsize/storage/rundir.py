"""A probe run's folder in a directory target, handled without ever following a symbolic link.

The folder is made and opened once, relative to a descriptor of the target directory (``O_NOFOLLOW |
O_DIRECTORY``); every file in it is created, read and removed relative to the folder's descriptor, and the folder
is removed relative to the target's: no path is resolved twice, so a folder swapped for a symbolic link mid-run
changes nothing. Its marker (``kvsize.storage.leftovers.MARKER``: the run's name, host, pid and a random token) is
written first and removed last.

``clean_folder`` (``kvsize probe DIR --clean``) removes an earlier run's folder only when it is a real folder (not
a symbolic link) holding a valid marker that names it, and in it only the files a probe writes (regular files named
``*.data`` or ``*.tmp``); anything else stays, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

from kvsize.storage.leftovers import MARKER, MARKER_LIMIT, marker, marker_problem

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PAUSE_VARIABLE = "KVSIZE_TEST_CLEANUP_PAUSE"
"""A test seam: seconds (0 to 1) to wait before each file a clean-up removes, so that a test can signal a probe
while it cleans up. Unset (or not such a number): no wait."""


def open_directory(path: Path) -> int:
    """A descriptor of the target directory, as its user named it (a symbolic link given as the target is followed)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def cleanup_pause() -> float:
    """The test seam's wait per removed file (``PAUSE_VARIABLE``), 0 unless set to a number from 0 to 1."""
    try:
        pause = float(os.environ.get(PAUSE_VARIABLE, "0"))
    except ValueError:
        return 0.0
    return pause if 0 < pause <= 1 else 0.0  # NaN fails both comparisons


def _read_marker(folder: int) -> bytes | None:
    """The marker's bytes (at most ``MARKER_LIMIT`` + 1), or None when there is no regular file by that name."""
    try:
        fd = os.open(MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, MARKER_LIMIT + 1)
    finally:
        os.close(fd)


class RunFolder:
    """One run's folder, open for the run: its files are created, read and removed relative to it."""

    def __init__(self, base: Path, name: str) -> None:
        self.name = name
        self.pause = cleanup_pause()
        self.base = open_directory(base)
        try:
            os.mkdir(name, dir_fd=self.base)  # fails if it exists: never reuse a folder this run did not create
            self.fd = os.open(name, _FOLDER, dir_fd=self.base)
            self.marker = marker(name)
            fd = self.open(MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                os.write(fd, self.marker)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=self.base)
            os.close(self.base)
            raise

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``os.open`` of a file in the folder (never through a symbolic link)."""
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def opener(self, name: str, flags: int) -> int:
        """For ``open(name, mode, opener=...)``: the file in the folder."""
        return self.open(name, flags)

    def replace(self, source: str, final: str) -> None:
        os.replace(source, final, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        """Remove one of the run's files (gone already: fine)."""
        if self.pause:
            time.sleep(self.pause)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def close(self, names: Iterable[str]) -> list[str]:
        """Remove ``names`` (the run's files), then its marker and the folder when nothing else is in it; the names
        it could not remove (the marker then stays, so that ``--clean`` can finish the job)."""
        left = []
        for name in names:
            try:
                self.unlink(name)
            except OSError:
                left.append(name)
        try:
            if not left and _read_marker(self.fd) == self.marker:
                os.unlink(MARKER, dir_fd=self.fd)
                _remove_folder(self.base, self.name, os.fstat(self.fd))
        finally:
            os.close(self.fd)
            os.close(self.base)
        return left


def _remove_folder(base: int, name: str, folder: os.stat_result) -> None:
    """Remove the folder ``name`` if it is still ``folder`` and empty; else leave it (moved away, replaced, or holding
    someone else's files)."""
    with contextlib.suppress(OSError):
        now = os.stat(name, dir_fd=base, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (folder.st_dev, folder.st_ino):
            os.rmdir(name, dir_fd=base)


def clean_folder(base_path: Path, name: str, *, dry_run: bool = False) -> str | None:
    """Remove an earlier run's folder ``name`` in ``base_path``: its probe files, then the marker and the folder; None
    when all is gone, else why what stays was left in place. ``dry_run``: only say whether it would be removed."""
    base = open_directory(base_path)
    try:
        try:
            found = os.stat(name, dir_fd=base, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(found.st_mode):
            return "a symbolic link, which kvsize never follows"
        if not stat.S_ISDIR(found.st_mode):
            return "not a folder"
        try:
            folder = os.open(name, _FOLDER, dir_fd=base)
        except OSError:
            return "it changed while kvsize looked at it"
        try:
            return marker_problem(name, _read_marker(folder)) if dry_run else _empty(base, name, folder)
        finally:
            os.close(folder)
    finally:
        os.close(base)


def _empty(base: int, name: str, folder: int) -> str | None:
    problem = marker_problem(name, _read_marker(folder))
    if problem is not None:
        return problem
    pause = cleanup_pause()
    others = 0
    with os.scandir(folder) as entries:
        for entry in list(entries):
            if entry.name == MARKER:
                continue
            if entry.is_file(follow_symlinks=False) and entry.name.endswith((".data", ".tmp")):
                if pause:
                    time.sleep(pause)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=folder)
            else:
                others += 1
    if others:
        return f"it holds entries a probe does not write ({others:,}; its probe files were removed)"
    os.unlink(MARKER, dir_fd=folder)
    _remove_folder(base, name, os.fstat(folder))
    return None
