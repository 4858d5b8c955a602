"""Reading the YAML files users hand kvsize: one error line naming the file and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvsize.errors import KvsizeError


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML of ``path`` (C loader when available); ``what`` names the file in errors."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise KvsizeError(f"cannot read {what} {path}: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KvsizeError(f"{what} {path} is not valid YAML{where}; fix the file") from None
