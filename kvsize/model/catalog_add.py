"""``kvsize catalog add``: normalise configs (Hub repos, local files) and write them into a catalog file of your own."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kvsize.errors import KvsizeError
from kvsize.model import hub
from kvsize.model.catalog import CATALOG_ENV, CatalogEntry, dump_catalog, load_catalog_file
from kvsize.model.config import read_config
from kvsize.model.normalize import spec_from_config
from kvsize.model.sources import catalog_entry, config_file
from kvsize.model.spec import ModelSpec


def _entry(model: str, name: str | None, revision: str | None, offline: bool) -> tuple[str, str, CatalogEntry]:
    """``(entry name, origin, entry)`` for a local config or a Hub repo."""
    path = Path(model).expanduser()
    if path.exists() and revision is None:
        file = config_file(path)
        entry = catalog_entry(read_config(file), source=f"local file {file.resolve()}", origin=str(file))
        return name or file.resolve().parent.name, str(file), entry
    if not hub.looks_like_repo_id(model):
        config_file(path)  # raises the missing-file error
    raw, defaults, commit, _ = hub.fetch_config(model, revision or "main", offline=offline or hub.offline_from_env())
    import transformers

    entry = CatalogEntry(
        source=f"{hub.endpoint()}/{model} config.json at commit {commit}",
        revision=commit,
        filled_by=f"transformers {transformers.__version__}",
        config=raw,
        defaults=defaults,
    )
    return name or model, f"{model}@{commit[:12]}", entry


def add_models(
    models: Sequence[str],
    *,
    catalog: Path | str | None = None,
    name: str | None = None,
    revision: str | None = None,
    offline: bool = False,
) -> tuple[Path, list[ModelSpec]]:
    """Write ``models`` into ``catalog`` (or ``KVSIZE_CATALOG``); each must size exactly as its source does."""
    from_env = not catalog and bool(os.environ.get(CATALOG_ENV))
    target = Path(catalog) if catalog else Path(os.environ[CATALOG_ENV]) if from_env else None
    if target is None:
        raise KvsizeError(f"catalog add needs a file to write: give `catalog` PATH or set {CATALOG_ENV}", field="catalog")
    if name is not None and len(models) != 1:
        raise KvsizeError("`name` names one entry: give one MODEL with it", field="name")
    entries: dict[str, CatalogEntry] = dict(load_catalog_file(target, from_env=from_env)) if target.exists() else {}
    added = []
    for model in models:
        entry_name, origin, entry = _entry(model, name, revision, offline)
        # Fail closed before writing: the entry must size exactly as the source does.
        added.append(spec_from_config(entry.config, name=entry_name, origin=origin, defaults=entry.defaults))
        entries[entry_name] = entry
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(dump_catalog(entries, "# kvsize catalog (written by 'kvsize catalog add')\n"), encoding="utf-8")
    temporary.replace(target)
    return target, added
