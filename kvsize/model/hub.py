"""Models from the Hugging Face Hub (or a mirror), through the real ``huggingface_hub`` client.

Only ``config.json`` is downloaded. The client honours ``HF_TOKEN``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``, ``HF_HOME`` and ``HF_HUB_ETAG_TIMEOUT``. kvsize keeps a spec cache
keyed by endpoint, repo and commit (the raw config plus the transformers defaults it
needed), and the commit each revision last resolved to, so that:

- a second run online makes one revision check (the client's HEAD) and imports neither
  transformers nor re-downloads anything;
- offline (``HF_HUB_OFFLINE=1`` or ``--offline``) a model seen before resolves with no
  network at all and without importing huggingface_hub.

No code from a model repository is ever run (no ``trust_remote_code``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from kvsize.errors import HubError, KvsizeError, shown
from kvsize.files import read_text

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
CACHE_ENV = "KVSIZE_CACHE"


def looks_like_repo_id(name: str) -> bool:
    return bool(REPO_ID.match(name)) and ".." not in name


def endpoint() -> str:
    """``HF_ENDPOINT`` (else the Hub), checked: an http(s) URL with a host, printable and without spaces."""
    value = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    problem = _endpoint_problem(value)
    if problem:
        raise HubError(
            f"HF_ENDPOINT {shown(value)} {problem}; set it to the Hub's URL, like {DEFAULT_ENDPOINT}, or unset it",
            field="HF_ENDPOINT",
        )
    return value.rstrip("/")


def _endpoint_problem(url: str) -> str | None:
    from urllib.parse import urlsplit

    if not url.isascii() or not url.isprintable() or any(char.isspace() for char in url):
        return "holds a space, a control or a non-ASCII character"
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number 0 to 65535 raises here
    except ValueError as error:
        return f"is not a URL ({error})"
    if parts.scheme not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    return None


def offline_from_env() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``), read as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"}


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kvsize"


class SpecCache:
    """``<root>/hub/<endpoint hash>/<org>--<name>/``: ``commits/<sha>.json`` and ``refs/<revision>``."""

    def __init__(self, root: Path, hub_endpoint: str, repo_id: str) -> None:
        tag = hashlib.sha256(hub_endpoint.encode()).hexdigest()[:12]
        self.folder = root / "hub" / tag / repo_id.replace("/", "--")

    def _ref_path(self, revision: str) -> Path:
        return self.folder / "refs" / hashlib.sha256(revision.encode()).hexdigest()[:16]

    def commit_for(self, revision: str) -> str | None:
        if COMMIT.match(revision):
            return revision
        try:
            commit = read_text(self._ref_path(revision), "cache entry").strip()
        except KvsizeError:
            return None
        return commit if COMMIT.match(commit) else None

    def load(self, commit: str) -> dict[str, Any] | None:
        try:
            data = json.loads(read_text(self.folder / "commits" / f"{commit}.json", "cache entry"))
        except (ValueError, RecursionError):  # KvsizeError is a ValueError
            return None  # absent or damaged: fetch again
        return data if isinstance(data, dict) and isinstance(data.get("config"), dict) else None

    def store(self, revision: str, commit: str, entry: dict[str, Any]) -> None:
        """Best effort: a cache that cannot be written only costs speed."""
        try:
            for path, text in (
                (self.folder / "commits" / f"{commit}.json", json.dumps(entry)),
                (self._ref_path(revision), commit),
            ):
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
                temporary.write_text(text, encoding="utf-8")
                temporary.replace(path)
        except OSError:
            pass


def fetch_config(repo_id: str, revision: str, *, offline: bool) -> tuple[dict[str, Any], dict[str, Any], str, tuple[str, ...]]:
    """``(raw config, defaults, commit, warnings)`` for a Hub repo at a revision."""
    hub = endpoint()
    cache = SpecCache(cache_root(), hub, repo_id)
    commit = cache.commit_for(revision)
    if commit is not None and (offline or COMMIT.match(revision)):
        entry = _current(cache.load(commit))
        if entry is not None:
            return entry["config"], entry.get("defaults") or {}, commit, tuple(entry.get("warnings") or ())

    path = _download(repo_id, revision, offline=offline, hub=hub)
    commit = path.parent.name
    entry = _current(cache.load(commit)) if COMMIT.match(commit) else None
    if entry is None:
        from kvsize.model.config import class_defaults, read_config

        raw = read_config(path, f"{repo_id}@{commit[:12]} config.json")
        defaults, warnings, filled_by = class_defaults(raw, f"{repo_id}@{commit[:12]}")
        entry = {
            "repo": repo_id,
            "commit": commit,
            "endpoint": hub,
            "config": raw,
            "defaults": defaults,
            "warnings": list(warnings),
            "filled_by": filled_by,
        }
    cache.store(revision, commit, entry)
    return entry["config"], entry.get("defaults") or {}, commit, tuple(entry.get("warnings") or ())


def _current(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cached spec whose defaults were filled by the installed transformers (else normalise again)."""
    from kvsize.model.config import transformers_version
    from kvsize.model.defaults import table

    current = {transformers_version(), f"kvsize table of transformers {table()['transformers']}"}
    return entry if entry is not None and entry.get("filled_by") in current else None


CLIENT_INT_VARIABLES = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")
"""Read by huggingface_hub with int() at import: a value it cannot read must be one line, not its traceback."""


def _check_client_environment() -> None:
    for variable in CLIENT_INT_VARIABLES:
        value = os.environ.get(variable)
        if value is None:
            continue
        try:
            seconds = int(value)
        except ValueError:
            seconds = -1
        if not 0 <= seconds <= 86_400:
            raise HubError(
                f"{variable}={shown(value)} is not a whole number of seconds from 0 to 86,400; unset it or give e.g. 10",
                field=variable,
            )


CONNECT_TIMEOUT_S = 5.0
"""How long a first download waits for the endpoint (HF_HUB_ETAG_TIMEOUT overrides it)."""


def _reachable(repo_id: str, revision: str, hub: str) -> None:
    """Fail fast when config.json is not cached and the endpoint does not answer.

    The client retries a failed first download five times with backoff (~25 s); one metadata request
    without retries tells within seconds. A cached config needs no check: the client falls back to it.
    """
    import huggingface_hub
    from huggingface_hub import errors

    if isinstance(huggingface_hub.try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
        return
    timeout = CONNECT_TIMEOUT_S
    with contextlib.suppress(ValueError):  # checked by _check_client_environment
        timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or CONNECT_TIMEOUT_S) or CONNECT_TIMEOUT_S
    url = huggingface_hub.hf_hub_url(repo_id, "config.json", revision=revision, endpoint=hub)
    try:
        huggingface_hub.get_hf_file_metadata(url, timeout=timeout)
    except errors.HfHubHTTPError:
        return  # the Hub answered: hf_hub_download turns the answer into its own error
    except (OSError, errors.OfflineModeIsEnabled) as error:
        raise HubError(
            f"cannot reach {hub} ({type(error).__name__}); check the network or HF_ENDPOINT, or use `offline` "
            "or a local config.json"
        ) from None
    except Exception as error:  # httpx2 transport errors (connect, timeout, TLS) are not OSError
        if "Timeout" in type(error).__name__ or "Connect" in type(error).__name__ or "Network" in type(error).__name__:
            raise HubError(
                f"cannot reach {hub} ({type(error).__name__}); check the network or HF_ENDPOINT, or use `offline` "
                "or a local config.json"
            ) from None
        return


def _download(repo_id: str, revision: str, *, offline: bool, hub: str) -> Path:
    """``config.json`` through ``hf_hub_download``; every failure becomes one line naming the fix."""
    # The client's user-agent telemetry fetches a registry from the endpoint: a sizing run makes
    # only the requests it needs (one revision check, and the download when not cached).
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    _check_client_environment()
    import huggingface_hub
    from huggingface_hub import errors
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # no "Retrying in 8s": kvsize says it once
    where = f"{repo_id} at revision {shown(revision)}"
    if not offline:
        _reachable(repo_id, revision, hub)
    try:
        return Path(
            huggingface_hub.hf_hub_download(
                repo_id,
                "config.json",
                revision=revision,
                local_files_only=offline,
                endpoint=hub,
            )
        )
    except errors.GatedRepoError:
        raise HubError(
            f"{repo_id} is a gated repo on {hub}: accept its terms on the Hub, then set HF_TOKEN to a token of that account"
        ) from None
    except errors.RepositoryNotFoundError:
        raise HubError(f"no repo {repo_id} on {hub} (or it is private: set HF_TOKEN); check the name") from None
    except errors.RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {shown(revision)} on {hub}: give a branch, tag or commit it has") from None
    except errors.LocalEntryNotFoundError as error:
        if offline:
            raise HubError(
                f"{where} is not in the cache and kvsize is offline (HF_HUB_OFFLINE or `offline`): run it once "
                "online, or give a local config.json"
            ) from None
        cause = error.__cause__
        if isinstance(cause, errors.FileMetadataError):
            raise HubError(f"{hub} does not answer like a Hugging Face Hub ({cause}); check HF_ENDPOINT") from None
        reason = "timed out" if "Timeout" in type(cause).__name__ else f"failed ({type(cause).__name__})"
        raise HubError(
            f"reaching {hub} for {where} {reason}, and it is not cached: check the network or HF_ENDPOINT "
            "(HF_HUB_ETAG_TIMEOUT sets the wait), or use a local config.json"
        ) from None
    except errors.EntryNotFoundError:
        raise HubError(
            f"{repo_id} has no config.json at revision {shown(revision)}: it is not a transformers model repo"
        ) from None
    except errors.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise HubError(f"{hub} answered HTTP {status} for {where}; try again later") from None
    except (errors.HFValidationError, ValueError) as error:
        raise HubError(f"{shown(repo_id)} is not a valid Hub repo id ({error})") from None
    except Exception as error:  # network stack errors (proxy, TLS) the client lets through
        raise HubError(f"reaching {hub} for {where} failed ({type(error).__name__}: {error})") from None
