"""Probe runs killed before they could clean up (SIGKILL, a lost machine): find them, and remove them.

Every probe run writes under a name of its own, ``kvsize-probe-<host>-<pid>-<8 hex>`` (a folder in a
directory target, a key prefix on S3 and Redis), and first of all a marker there (``MARKER``: the name, host,
pid and a random token). A later probe of the same target lists such names and says which are left over;
``kvsize probe TARGET --clean`` removes those whose owning process is gone (on this host and no process with
that pid) and which hold a valid marker naming them. A run of another host, or a live process, is never
touched; nor is anything without a marker (a symbolic link, a folder or prefix a probe did not make).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket

from pydantic import BaseModel, ConfigDict

PREFIX = "kvsize-probe-"
_NAME = re.compile(r"^kvsize-probe-(?:(?P<host>[A-Za-z0-9.-]+)-)?(?P<pid>[0-9]{1,10})-(?P<tag>[0-9a-f]{8})$")


MARKER = ".kvsize-probe"
MARKER_LIMIT = 4096
"""Longest marker read: a probe's is about 120 bytes."""
PROBE_KEY = re.compile(r"^(?:obj[0-9]{5}|c[0-9]{1,6}-s[0-9]{1,6}-[0-9]{5}|odirect-check)$")
"""The keys a probe writes its objects under (one machine: ``obj00042``; a fleet client: ``c1-s0-00042``)."""


def host_tag() -> str:
    """This host's name as it goes into a run name (letters, digits, dots and dashes)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:63] or "host"


def run_name() -> str:
    """A fresh run name for this process."""
    return f"{PREFIX}{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}"


class Leftover(BaseModel):
    """One earlier run's name found on the target, and whether its owner is gone."""

    model_config = ConfigDict(frozen=True)

    name: str
    host: str | None
    pid: int
    owner_gone: bool
    why: str
    kept: str | None = None
    """Why ``--clean`` leaves it in place whoever owns it (a symbolic link, no probe's marker), or None."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # a process we may not signal is alive; a pid past the range is not ours to judge
    return True


def classify(name: str) -> Leftover | None:
    """The run a name belongs to, or None when it is not a probe run's name."""
    match = _NAME.match(name)
    if match is None:
        return None
    host, pid = match.group("host"), int(match.group("pid"))
    if host is not None and host != host_tag():
        return Leftover(name=name, host=host, pid=pid, owner_gone=False, why=f"written by host {host}: kvsize cannot tell")
    if pid == os.getpid():
        return None
    if _alive(pid):
        return Leftover(name=name, host=host, pid=pid, owner_gone=False, why=f"process {pid} is still running")
    return Leftover(name=name, host=host, pid=pid, owner_gone=True, why=f"process {pid} is gone")


def marker(name: str) -> bytes:
    """The marker of run ``name``, written by this process: one JSON line."""
    fields = {"kvsize_probe": name, "host": host_tag(), "pid": os.getpid(), "token": secrets.token_hex(16)}
    return json.dumps(fields).encode() + b"\n"


def marker_problem(name: str, data: bytes | None) -> str | None:
    """Why ``data`` is not a valid marker of run ``name`` (so what holds it stays), or None when it is."""
    if data is None:
        return f"no {MARKER} marker: not made by a probe (or by a kvsize before markers)"
    try:
        fields = json.loads(data.decode("utf-8")) if len(data) <= MARKER_LIMIT else None
    except (UnicodeDecodeError, ValueError):
        fields = None
    match = _NAME.match(name)
    if (
        not isinstance(fields, dict)
        or match is None
        or fields.get("kvsize_probe") != name
        or str(fields.get("pid")) != match.group("pid")
        or not isinstance(fields.get("token"), str)
    ):
        return f"its {MARKER} marker is not this run's"
    return None
