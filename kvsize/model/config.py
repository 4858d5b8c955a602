"""Reading a model's ``config.json`` and the defaults its transformers config class fills.

Shared by every source (local files, the Hub, catalog tools): no module above this one
is needed to read a config, so sources and hub import it and never each other.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvsize.errors import ConfigError, shown
from kvsize.files import read_text
from kvsize.model.defaults import missing
from kvsize.model.reader import LAYER_FIELDS, MAX_LAYERS, TEXT_CONFIG_KEYS


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


def class_defaults(raw: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], tuple[str, ...], str]:
    """``(defaults, warnings, filled_by)``: the class defaults for the KV fields the file omits, from kvsize's table
    when it covers the config (no transformers import), else from transformers itself."""
    from kvsize.model.defaults import table, table_defaults

    filled = table_defaults(raw)
    if filled is not None:
        return filled, (), f"kvsize table of transformers {table()['transformers']}"
    defaults, warnings = transformers_defaults(raw, origin)
    return defaults, warnings, transformers_version()


def transformers_version() -> str:
    """The installed transformers' version (without importing it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "none"


def _sane_layer_counts(raw: Mapping[str, Any]) -> bool:
    """A config class builds per-layer lists from the layer count: a count past any model's would hang it."""
    for part in (raw, *(raw[key] for key in TEXT_CONFIG_KEYS if isinstance(raw.get(key), Mapping))):
        for field in LAYER_FIELDS:
            value = part.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and not 0 < value <= MAX_LAYERS:
                return False
    return True


def transformers_defaults(raw: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What the model's transformers config class fills for the KV fields the file omits.

    vLLM reads the config object, defaults included, so kvsize does too. A model
    type transformers does not know is sized from its raw fields, with a warning.
    """
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not _sane_layer_counts(raw):
        return {}, ()  # the normaliser says what is wrong with the config, in one line
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
        raise ConfigError(
            f"{origin}: transformers rejects this {shown(model_type)} config "
            f"({type(error).__name__}: {shown(str(error), 100)}); fix the config"
        ) from None
    text_key = next((key for key in TEXT_CONFIG_KEYS if isinstance(raw.get(key), Mapping)), None)
    try:
        if text_key is None:
            return missing(raw, config.to_dict()), ()
        filled = missing(raw[text_key], config.get_text_config().to_dict())
    except Exception as error:  # an odd text_config the config class keeps as a plain dict, and the like
        raise ConfigError(
            f"{origin}: transformers cannot read this {shown(model_type)} config's {text_key or 'fields'} "
            f"({type(error).__name__}); fix the config"
        ) from None
    return ({text_key: filled} if filled else {}), ()
