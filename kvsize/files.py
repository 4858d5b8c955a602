"""Reading the files users hand kvsize (YAML settings, JSON configs): one error line naming the file and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvsize.errors import ConfigError

MAX_FILE_BYTES = 64 * 2**20
"""Largest settings or config file read: a model config is kilobytes, a catalog a few megabytes."""


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; any failure (missing, unreadable, a folder, not UTF-8, huge) is one line.

    ``what`` names the file in errors ("config", "backend profile ...")."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}; check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_FILE_BYTES // 2**20} MiB; point kvsize at the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML of ``path`` (C loader when available); ``what`` names the file in errors."""
    import yaml

    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {path} is not valid YAML{where}; fix the file") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be a settings file; fix the file") from None
    except ValueError:  # an integer past Python's digit limit, a date out of range
        raise ConfigError(f"{what} {path} holds a value too large to read; fix the file") from None
