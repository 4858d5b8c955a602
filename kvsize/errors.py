"""The errors kvsize raises for input it cannot size, and how values are echoed in them.

Every error is a ``KvsizeError`` (a ``ValueError``): one line that names what is wrong and
how to fix it. The CLI prints it on stderr and exits with code 2. Subclasses let a library
caller catch one kind; ``field`` names the parameter, option or config field at fault.
"""

from __future__ import annotations

import math

MAX_MESSAGE = 280
"""Longest error line: an echoed value never turns an error into a page of text."""
_HEAD, _TAIL = 190, 87


class KvsizeError(ValueError):
    """Bad input: a value, a config or a model that kvsize cannot size.

    The message is one line that names what is wrong and how to fix it.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        # One line, always: a multi-line message from a library is folded, a long one cut in the
        # middle so that the fix (at the end) stays.
        line = " ".join(message.split())
        if len(line) > MAX_MESSAGE:
            line = f"{line[:_HEAD]} … {line[-_TAIL:]}"
        super().__init__(line)
        self.field = field


class ConfigError(KvsizeError):
    """A model config (or a YAML file a user gave) that cannot be read or is malformed."""


class UnsupportedModelError(KvsizeError):
    """A well-formed config of a model kvsize will not size (fail closed)."""


class ParallelismError(KvsizeError):
    """A TP / PP / partition that vLLM would reject or kvsize cannot place."""


class BackendError(KvsizeError):
    """A storage backend, profile or time-model figure that is missing or malformed."""


class HubError(KvsizeError):
    """The Hugging Face Hub (or a mirror) cannot give the config."""


class ProbeError(KvsizeError):
    """A storage probe that cannot run or finish; what it wrote has been removed."""


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` for an error line, cut to ``limit`` characters (huge integers summarised)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-3:]


def finite(value: float, what: str, *, low: float | None = None, low_open: bool = False, high: float | None = None) -> float:
    """``value`` when it is a finite number in range, else an error naming ``what`` (a `parameter` in backticks: the
    error's ``field`` is the parameter's name)."""
    field = what[1:-1] if len(what) > 2 and what[0] == what[-1] == "`" else what
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise KvsizeError(f"{what} must be a finite number, got {shown(value)}", field=field)
    given = f"{value:g}" if isinstance(value, float) else shown(value)  # an int may be past float's range
    if low is not None and (value < low or (low_open and value == low)):
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        raise KvsizeError(f"{what} must be {bound}, got {given}", field=field)
    if high is not None and value > high:
        raise KvsizeError(f"{what} must be at most {high:g}, got {given}", field=field)
    return value


def whole(value: int, name: str, low: int, high: int) -> int:
    """``value`` when it is an integer in [low, high], else one line naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise KvsizeError(f"`{name}` must be {low:,} to {high:,}, got {shown(value)}", field=name)
    return value
