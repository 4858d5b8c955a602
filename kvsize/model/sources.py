"""Where a model's config comes from: the catalog, a local file, (later) the Hub.

Resolution order: catalog name → local path. Each source yields a raw config and
the defaults for its omitted keys; ``kvsize.model.normalize`` turns both into a spec.
transformers is imported only when a config must be normalised (a local file),
never on the catalog path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvsize.errors import HubError, KvsizeError, shown
from kvsize.model.catalog import Catalog, CatalogEntry
from kvsize.model.config import class_defaults, read_config, transformers_defaults
from kvsize.model.normalize import spec_from_config
from kvsize.model.spec import ModelSpec


def resolve_model(
    model: str,
    *,
    catalog: Catalog | None = None,
    catalog_path: Path | str | None = None,
    revision: str | None = None,
    offline: bool | None = None,
) -> ModelSpec:
    """A catalog name (case-insensitive), a ``config.json`` path or a directory holding one,
    else a Hugging Face Hub repo ``ORG/NAME``, in that order. A ``revision`` goes to the Hub directly.
    ``offline`` defaults to ``HF_HUB_OFFLINE``.
    """
    from kvsize.model import hub

    if not model or not model.strip():
        raise KvsizeError("no model given: name a catalog model (see 'kvsize models'), a config.json path or a Hub repo")
    catalog = catalog or Catalog(catalog_path)
    if revision is None:
        name = catalog.find(model)
        if name is not None:
            entry = catalog.entries[name]
            return spec_from_config(
                entry.published(),
                name=name,
                origin=f"{catalog.origin(name)}: {name}",
                defaults=entry.defaults,
                revision=entry.revision,
            )
        path = Path(model).expanduser()
        if path.exists():
            return spec_from_path(path)
        if model.endswith(".json") or model.startswith((".", "/", "~")):
            raise KvsizeError(f"no such file {shown(model)}: give the path of a config.json or of a directory holding one")
    # A did-you-mean only for a real typo of a catalog name (a close match), never a list of guesses.
    suggestions = catalog.suggest(model, close_only=True)
    hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
    if not hub.looks_like_repo_id(model):
        raise KvsizeError(
            f"unknown model {shown(model)}{hint}: not in the catalog ('kvsize models' lists it), not a local path, "
            "and not a Hub repo ORG/NAME"
        )
    is_offline = hub.offline_from_env() if offline is None else offline
    try:
        raw, defaults, commit, warnings = hub.fetch_config(model, revision or "main", offline=is_offline)
    except KvsizeError as error:
        if revision is None:
            raise HubError(f"unknown model {shown(model)}{hint}: not in the catalog, and from the Hub: {error}") from None
        raise
    origin = f"{hub.endpoint()}/{model} at {commit}"
    return spec_from_config(raw, name=model, origin=origin, defaults=defaults, revision=commit, warnings=warnings)


def config_file(path: Path) -> Path:
    """``path`` itself, or the ``config.json`` in the directory ``path``."""
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        if not path.exists():
            raise KvsizeError(f"no such file {shown(str(path))}: give the path of a config.json or of a directory holding one")
        raise KvsizeError(f"{path} has no config.json: point kvsize at a model directory or its config.json")
    return file


def spec_from_path(path: Path) -> ModelSpec:
    """A local ``config.json`` (or a directory holding one), normalised like the real loader."""
    file = config_file(path)
    raw = read_config(file)
    defaults, warnings, _ = class_defaults(raw, str(file))
    spec = spec_from_config(raw, name=_local_name(file), origin=str(file), defaults=defaults, warnings=warnings)
    return spec.model_copy(update={"local_path": str(_model_directory(path, file).absolute())})


def _model_directory(path: Path, file: Path) -> Path:
    """The directory an engine loads for a local config: the folder holding its ``config.json`` (``path`` itself
    when a directory was given); a config file of another name as given, as no engine loads one by that name."""
    return file.parent if file.name == "config.json" else path


def _local_name(file: Path) -> str:
    """A readable name for a local config: the directory holding a ``config.json``, else the file's own name."""
    if file.name != "config.json":
        return file.stem or file.name
    return file.resolve().parent.name or str(file)


def catalog_entry(raw: Mapping[str, Any], *, source: str, revision: str | None = None, origin: str = "config") -> CatalogEntry:
    """A catalog entry for a raw config: its fields as published plus the filled defaults."""
    defaults, _ = transformers_defaults(raw, origin)
    import transformers

    return CatalogEntry(
        source=source,
        revision=revision,
        filled_by=f"transformers {transformers.__version__}",
        config=dict(raw),
        defaults=defaults,
    )
