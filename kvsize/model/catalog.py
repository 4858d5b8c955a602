"""The bundled model catalog (``models.yaml``) and user catalogs layered over it.

An entry holds a model's published ``config.json`` fields as they are, the
defaults its transformers config class fills for keys the file omits (so the
catalog path never imports transformers), and where the fields came from.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from kvsize.errors import KvsizeError
from kvsize.files import read_yaml

CATALOG_ENV = "KVSIZE_CATALOG"


class CatalogEntry(BaseModel):
    """One model: its config fields, the defaults filled for omitted keys, and their source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    revision: str | None = None
    filled_by: str | None = None
    """The transformers version whose config class filled ``defaults``."""
    config: dict[str, Any]
    defaults: dict[str, Any] = {}
    supplement: dict[str, Any] = {}
    """Published config.json fields the copied ``config`` lacks (FFN, vocabulary and Mamba mixer sizes), from
    ``supplement_source``: for the prefill estimate, for a Mamba layer's state under ``--engine vllm``, and for the
    weights in GPU memory (``tie_word_embeddings``, ``quantization_config``); they never change an attention layer's
    bytes."""
    supplement_source: str | None = None

    def published(self) -> dict[str, Any]:
        """``config`` with the ``supplement`` merged in (a supplement never replaces a field of ``config``)."""
        return _merged(self.config, self.supplement)


def _merged(config: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        elif key not in out:
            out[key] = value
    return out


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    models: dict[str, CatalogEntry]


def bundled_catalog_path() -> Path:
    """``models.yaml`` inside the installed package, else at the source checkout's root."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "models.yaml"
    return packaged if packaged.is_file() else package.parent / "models.yaml"


@lru_cache(maxsize=8)
def _load_file(path: str, mtime_ns: int, what: str) -> dict[str, CatalogEntry]:
    data = read_yaml(Path(path), what)
    try:
        return CatalogFile.model_validate(data).models
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise KvsizeError(f"{what} {path}: {location}: {first['msg']}; fix the entry") from None


def load_catalog_file(path: Path, *, from_env: bool = False) -> dict[str, CatalogEntry]:
    """Read and validate one catalog file (``from_env``: named by ``KVSIZE_CATALOG``, which errors then name)."""
    what = f"catalog ({CATALOG_ENV})" if from_env else "catalog"
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        fix = f"check {CATALOG_ENV}" if from_env else f"check the `catalog` path or {CATALOG_ENV}"
        raise KvsizeError(f"{what} {path} does not exist; {fix}") from None
    return _load_file(str(path), mtime, what)


class Catalog:
    """The bundled catalog, with a user catalog's entries taking precedence by name."""

    def __init__(self, user_path: Path | str | None = None) -> None:
        from_env = user_path is None and bool(os.environ.get(CATALOG_ENV))
        user_path = Path(os.environ[CATALOG_ENV]) if from_env else Path(user_path) if user_path is not None else None
        self.bundled_path = bundled_catalog_path()
        self.user_path = user_path
        entries = dict(load_catalog_file(self.bundled_path))
        self.user_names: frozenset[str] = frozenset()
        if user_path is not None:
            user_entries = load_catalog_file(user_path, from_env=from_env)
            self.user_names = frozenset(user_entries)
            entries.update(user_entries)
        self.entries = entries
        self._by_lower = {name.lower(): name for name in entries}

    def origin(self, name: str) -> str:
        if name in self.user_names:
            return f"catalog {self.user_path}"
        return "bundled catalog"

    def find(self, query: str) -> str | None:
        """The catalog name for ``query``: case-insensitive, or a unique name without its org."""
        exact = self._by_lower.get(query.lower())
        if exact:
            return exact
        if "/" not in query:
            tails = [name for lower, name in self._by_lower.items() if lower.split("/", 1)[-1] == query.lower()]
            if len(tails) == 1:
                return tails[0]
        return None

    def suggest(self, query: str, n: int = 3, *, close_only: bool = False) -> list[str]:
        """Catalog names like ``query``; ``close_only``: only near-identical names (a typo), at most two."""
        import difflib  # only on the error path: kept out of start-up

        lowered = list(self._by_lower)
        if close_only:
            close = difflib.get_close_matches(query.lower(), lowered, n=2, cutoff=0.85)
            return [self._by_lower[low] for low in close]
        close = difflib.get_close_matches(query.lower(), lowered, n=n, cutoff=0.5)
        if not close:
            tail = query.lower().split("/")[-1]
            close = [low for low in lowered if tail and tail in low][:n]
        return [self._by_lower[low] for low in close]


def dump_catalog(models: dict[str, CatalogEntry], header: str = "") -> str:
    """YAML text for a catalog; loads back to the same entries."""
    data = {"version": 1, "models": {name: _entry_dict(entry) for name, entry in models.items()}}
    body = yaml.dump(data, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    return header + body


def _entry_dict(entry: CatalogEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"source": entry.source}
    if entry.revision is not None:
        out["revision"] = entry.revision
    if entry.filled_by is not None:
        out["filled_by"] = entry.filled_by
    out["config"] = entry.config
    if entry.defaults:
        out["defaults"] = entry.defaults
    if entry.supplement:
        out["supplement"] = entry.supplement
        out["supplement_source"] = entry.supplement_source
    return out
