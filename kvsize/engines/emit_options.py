"""What ``--emit`` cannot know, given by the user (``--emit-dir``, ``--emit-bucket``, ``--emit-region``,
``--emit-host``, ``--emit-disk-size``), and the placeholders written where they are not given.

Every emitter fills a value from these options when one is given, else writes one of ``PLACEHOLDERS`` (the same
spelling in every engine's settings, so that a script can fill it), in the form the engine refuses at start when
it is left as it is: a directory placeholder that the engine would create silently (it calls ``os.makedirs``)
is written under ``/dev/null/``, which no one can create a directory under. ``kvsize check --lmcache-config``
refuses any setting that still holds one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import field_validator

from kvsize.engines.options import Checked
from kvsize.errors import KvsizeError, shown

BUCKET = "<bucket>"
REGION = "<region>"
HOST = "<host>"
PORT = "<port>"
DISK_GB = "<GB of disk>"
SHARED_DIR = "<shared mount path>"
LOCAL_DIR = "<local disk path>"
GDS_DIR = "<GDS mount path>"
WEKA_DIR = "<WekaFS mount path>"
ROOT_DIR = "<ROOT_DIR: a directory every vLLM instance shares>"
PLACEHOLDERS = (BUCKET, REGION, HOST, PORT, DISK_GB, SHARED_DIR, LOCAL_DIR, GDS_DIR, WEKA_DIR)
"""The placeholders kvsize writes, besides ``<ROOT_DIR: ...>`` (matched by its prefix)."""
UNCREATABLE = "/dev/null/"
"""Prefix of a directory placeholder the engine would otherwise create: ``os.makedirs('/dev/null/x')`` fails with
``NotADirectoryError`` (vLLM 0.33 ``FileSystemTierManager``, SGLang 0.5.23 ``HiCacheFile`` and
``NixlFileManager``, LMCache 0.5.6 ``PathSharder`` and ``FSConnector``)."""

_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\Z")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_REGION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
MAX_PATH_BYTES = 4095
GIB = 2**30
MAX_DISK_BYTES = 2**60


def unfilled(value: Any) -> list[str]:
    """The placeholders still in ``value`` (a string, or the strings of a mapping or list, searched through)."""
    if isinstance(value, str):
        found = [holder for holder in PLACEHOLDERS if holder in value]
        return found + (["<ROOT_DIR: ...>"] if "<ROOT_DIR" in value else [])
    if isinstance(value, dict):
        return [holder for item in value.values() for holder in unfilled(item)]
    if isinstance(value, (list, tuple)):
        return [holder for item in value for holder in unfilled(item)]
    return []


@dataclass(frozen=True)
class Key:
    """One setting an engine reads: the value ``--emit`` writes (a template over the fill values, or a fixed value),
    whether the engine needs it to start and store, and where and how it reads it."""

    key: str
    """The key (``extra_config.NAME`` for one inside LMCache's ``extra_config``; a flag, a variable, a JSON key)."""
    emit: str | int | bool
    """What is written: a ``str.format`` template over the emitter's fill values (``{bucket}``), or a fixed value."""
    required: bool
    source: str
    """The engine's file and function that read it."""
    reads: str
    """How the engine reads it, and what happens without it."""
    number: bool = False
    """The template gives a whole number (written as a number when it is filled)."""

    def value(self, fill: Mapping[str, Any]) -> Any:
        """The value written: the template filled from ``fill`` (a number template that stays a placeholder stays
        text), or the fixed value."""
        if not isinstance(self.emit, str):
            return self.emit
        text = self.emit.format_map(fill)
        return int(text) if self.number and not unfilled(text) else text


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise KvsizeError(f"`{name}` must be text, got {shown(value)}", field=name)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise KvsizeError(f"`{name}` {shown(value)} is not valid UTF-8: give it in UTF-8", field=name)
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise KvsizeError(f"`{name}` {shown(value)} holds a control character, which no engine setting carries", field=name)
    return value


class EmitOptions(Checked):
    """The values ``--emit`` writes instead of placeholders: ``kvsize.emit_config(result, emit_options=
    kvsize.EmitOptions(dir="/mnt/kv"))``. Each is optional; what is not given stays a placeholder."""

    dir: str | None = None
    """The storage directory (``--emit-dir``): LMCache's fs, local-disk, gds or weka path, vLLM's ``root_dir``,
    SGLang's file or nixl directory, KVBM's disk directory. Absolute."""
    bucket: str | None = None
    """The S3 bucket (``--emit-bucket``)."""
    region: str | None = None
    """The S3 region (``--emit-region``), e.g. us-east-1."""
    host: str | None = None
    """The server a connector reaches (``--emit-host``): Redis, Valkey, RESP, the Mooncake master, a custom object
    store endpoint (host name or IPv4 address)."""
    disk_bytes: int | None = None
    """The disk each worker may fill (``--emit-disk-size``): LMCache's ``max_local_disk_size``, whole GiB."""

    @field_validator("dir", mode="before")
    @classmethod
    def _dir(cls, value: Any) -> Any:
        if value is None:
            return value
        text = _text(value, "emit_dir")
        problem = _dir_problem(text)
        if problem:
            raise KvsizeError(f"`emit_dir` {shown(text)} {problem}", field="emit_dir")
        return text

    @field_validator("bucket", mode="before")
    @classmethod
    def _bucket(cls, value: Any) -> Any:
        if value is not None and (not _BUCKET.match(_text(value, "emit_bucket")) or ".." in value):
            raise KvsizeError(
                f"`emit_bucket` {shown(value)} is not an S3 bucket name: 3 to 63 lower-case letters, digits, dots "
                "and hyphens, beginning and ending with a letter or digit",
                field="emit_bucket",
            )
        return value

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        if value is not None and not _REGION.match(_text(value, "emit_region")):
            raise KvsizeError(
                f"`emit_region` {shown(value)} is not a region name: lower-case letters, digits and hyphens, like us-east-1",
                field="emit_region",
            )
        return value

    @field_validator("host", mode="before")
    @classmethod
    def _host(cls, value: Any) -> Any:
        if value is not None and (len(_text(value, "emit_host")) > 253 or not _HOSTNAME.match(value)):
            raise KvsizeError(
                f"`emit_host` {shown(value)} is not a host name or IPv4 address (letters, digits, hyphens and dots; "
                "no port, no scheme)",
                field="emit_host",
            )
        return value

    @field_validator("disk_bytes", mode="before")
    @classmethod
    def _disk(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not GIB <= value <= MAX_DISK_BYTES:
            raise KvsizeError(
                f"`emit_disk_size` must be a whole number of bytes from 1 GiB to 1 EiB, got {shown(value)}: LMCache's "
                "max_local_disk_size is whole GB read as GiB",
                field="emit_disk_size",
            )
        return value

    @property
    def disk_gib(self) -> int | None:
        """``disk_bytes`` in whole GiB, rounded down (LMCache reads ``max_local_disk_size`` GB as GiB)."""
        return None if self.disk_bytes is None else self.disk_bytes // GIB

    def directory(self, placeholder: str, uncreatable: bool = True) -> str:
        """The directory given, else ``placeholder``, under ``/dev/null/`` when the engine would create it."""
        if self.dir is not None:
            return self.dir
        return UNCREATABLE + placeholder if uncreatable else placeholder


def _dir_problem(text: str) -> str | None:
    """Why a directory cannot go into every engine's settings as it is, or None."""
    if not text.startswith("/"):
        return "is not absolute: give the full path, beginning with /"
    if text.strip("/") == "":
        return "is the root directory: give the directory the cache goes in"
    if text != text.strip():
        return "begins or ends with white space, which LMCache strips from environment values"
    if len(text.encode("utf-8")) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES:,} bytes (the longest path the system takes)"
    for char, why in (
        (",", "LMCache and SGLang's nixl backend split a path list at commas"),
        ("?", "an fs:// URL would cut the path there"),
        ("#", "an fs:// URL would cut the path there"),
        (";", "an fs:// URL would cut the path there"),
        ("<", "it would read as a placeholder"),
        (">", "it would read as a placeholder"),
    ):
        if char in text:
            return f"holds {char!r}: {why}; give a directory without it"
    return None
