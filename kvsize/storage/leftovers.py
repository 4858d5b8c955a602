"""Probe runs killed before they could clean up (SIGKILL, a lost machine): find them, and remove them.

Every probe run writes under a name of its own, ``kvsize-probe-<host>-<pid>-<8 hex>`` (a folder in a
directory target, a key prefix on S3 and Redis). A later probe of the same target lists such names and
says which are left over; ``kvsize probe TARGET --clean`` removes those whose owning process is gone:
on this host and no process with that pid. A run of another host, or a live process, is never touched.
"""

from __future__ import annotations

import os
import re
import secrets
import socket

from pydantic import BaseModel, ConfigDict

PREFIX = "kvsize-probe-"
_NAME = re.compile(r"^kvsize-probe-(?:(?P<host>[A-Za-z0-9.-]+)-)?(?P<pid>[0-9]{1,10})-(?P<tag>[0-9a-f]{8})$")


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
