"""Where a model's config comes from: the catalog, a local file, (later) the Hub.

Resolution order: catalog name → local path. Each source yields a raw config and
the defaults for its omitted keys; ``kvsize.normalize`` turns both into a spec.
transformers is imported only when a config must be normalised (a local file),
never on the catalog path.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvsize.catalog import Catalog, CatalogEntry
from kvsize.errors import ConfigError, HubError, KvsizeError, shown
from kvsize.files import read_text
from kvsize.normalize import ALIAS_GROUPS, FILL_FIELDS, TEXT_CONFIG_KEYS, spec_from_config
from kvsize.spec import ModelSpec


def resolve_model(
    model: str,
    *,
    catalog: Catalog | None = None,
    catalog_path: Path | None = None,
    revision: str | None = None,
    offline: bool | None = None,
) -> ModelSpec:
    """A catalog name (case-insensitive), a ``config.json`` path or a directory holding one,
    else a Hugging Face Hub repo ``ORG/NAME``, in that order. A ``revision`` goes to the Hub directly.
    ``offline`` defaults to ``HF_HUB_OFFLINE``.
    """
    from kvsize import hub

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
    defaults, warnings = transformers_defaults(raw, str(file))
    return spec_from_config(raw, name=_local_name(file), origin=str(file), defaults=defaults, warnings=warnings)


def read_config(file: Path, label: str | None = None) -> dict[str, Any]:
    """A ``config.json`` as a dict; every way it can be unreadable or malformed is one line naming
    ``label`` (default: the path)."""
    text = read_text(file, "config")
    file = Path(label) if label else file
    if not text.strip():
        raise ConfigError(f"{file} is empty: it should hold the model's config.json")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{file} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except RecursionError:
        raise ConfigError(f"{file} is nested too deeply to be a model config; point kvsize at the model's config.json") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise ConfigError(f"{file} holds a number too large to be a config value (over 4,300 digits); fix the config") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file} is JSON but not an object: a config.json is a {{...}} of fields")
    return raw


def _local_name(file: Path) -> str:
    """A readable name for a local config: the directory holding a ``config.json``, else the file's own name."""
    if file.name != "config.json":
        return file.stem or file.name
    return file.resolve().parent.name or str(file)


def transformers_defaults(raw: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What the model's transformers config class fills for the KV fields the file omits.

    vLLM reads the config object, defaults included, so kvsize does too. A model
    type transformers does not know is sized from its raw fields, with a warning.
    """
    model_type = raw.get("model_type")
    if not isinstance(model_type, str):
        return {}, ()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        return {}, (
            f"transformers {transformers.__version__} does not know model_type {shown(model_type)}: sized from the "
            "config's own fields, with no class defaults for omitted keys",
        )
    try:
        config = CONFIG_MAPPING[model_type].from_dict(copy.deepcopy(dict(raw)))
    except Exception as error:  # transformers validates fields; any failure is the config's
        raise KvsizeError(
            f"{origin}: transformers rejects this {shown(model_type)} config "
            f"({type(error).__name__}: {shown(str(error), 100)}); fix the config"
        ) from None
    text_key = next((key for key in TEXT_CONFIG_KEYS if isinstance(raw.get(key), Mapping)), None)
    try:
        if text_key is None:
            return _missing(raw, config.to_dict()), ()
        filled = _missing(raw[text_key], config.get_text_config().to_dict())
    except Exception as error:  # an odd text_config the config class keeps as a plain dict, and the like
        raise ConfigError(
            f"{origin}: transformers cannot read this {shown(model_type)} config's {text_key or 'fields'} "
            f"({type(error).__name__}); fix the config"
        ) from None
    return ({text_key: filled} if filled else {}), ()


def _missing(raw: Mapping[str, Any], filled: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    grouped = {field: group for group in ALIAS_GROUPS for field in group}
    for key in FILL_FIELDS:
        if raw.get(key) is not None or filled.get(key) is None:
            continue
        group = grouped.get(key)
        if group and any(raw.get(alias) is not None or alias in out for alias in group):
            continue
        out[key] = filled[key]
    return out


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
