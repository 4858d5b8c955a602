"""Parsing counts, sizes, rates and durations; formatting bytes for display.

One parser per kind of quantity, shared by every command. Decimal suffixes
(k, M, G, T; kB, MB, GB, TB) are powers of 1000, binary ones (Ki, Mi, Gi, Ti;
KiB, MiB, GiB, TiB) powers of 1024. Parsing is exact: the result is an integer
wherever the quantity is a count or a byte size.

The number grammar: digits, optionally a decimal point and more digits (``1.5k``), then the
unit. A comma or an underscore separates thousands only, one kind per number and in groups of
three (``100,000``, ``1,234,567``, ``100_000``); anything else (``1,5k``, ``7,5GiB``, ``1_0``) is
refused with the fix, never read as another number.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from kvsize.errors import KvsizeError, shown

_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_NUMBER = re.compile(r"^\s*(-?[0-9][0-9_,]*(?:\.[0-9]+)?)\s*([A-Za-z/µ]*)\s*$")
MAX_DIGITS = 24
"""Digits a quantity may have: ~10^24 is past every count, size and rate kvsize deals in."""


_GROUPED = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+|-?[0-9]{1,3}(?:_[0-9]{3})+")
"""A whole part with separators: one kind (``,`` or ``_``), every group after the first three digits."""


def _whole_part(text: str, number: str, what: str) -> str:
    """``number``'s whole part without its thousands separators; a separator anywhere else is refused, since
    ``1,5k`` read as ``15k`` (a decimal comma taken for a thousands separator) would be a silently wrong count."""
    whole_part = number.split(".")[0]
    if ("," in whole_part or "_" in whole_part) and not _GROUPED.fullmatch(whole_part):
        mark = "," if "," in whole_part else "_"
        if mark == "," and whole_part.count(",") == 1 and "." not in number and "_" not in number:
            fix = f"for a decimal, write a point: {text.strip().replace(',', '.')}"
        else:
            fix = "write it like 100,000, 100_000 or 1.5k"
        raise KvsizeError(f"{what} {shown(text)}: {mark!r} separates thousands only, in groups of three digits; {fix}")
    return number.replace(",", "").replace("_", "")


def _split(text: str, what: str, example: str, noun: str = "number") -> tuple[Decimal, str]:
    if not isinstance(text, str):
        raise KvsizeError(f"{what} must be given as text like {example}, got {shown(text)}")
    match = _NUMBER.match(text) if len(text) <= 64 else None
    if not match:
        hint = "; a comma separates thousands only, write a decimal with a point" if "," in text else ""
        raise KvsizeError(f"{what} {shown(text)} is not a {noun}: write it like {example}{hint}")
    digits = _whole_part(text, match.group(1), what)
    if len(digits.lstrip("-").split(".")[0].lstrip("0")) > MAX_DIGITS:
        raise KvsizeError(f"{what} {shown(text)} is too large: it has more than {MAX_DIGITS} digits")
    try:
        return Decimal(digits), match.group(2)
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        raise KvsizeError(f"{what} {shown(text)} is not a number: write it like {example}") from None


def _whole(value: Decimal, text: str, what: str) -> int:
    if value != value.to_integral_value():
        raise KvsizeError(f"{what} {shown(text)} is not a whole number")
    return int(value)


def parse_count(text: str, what: str = "count") -> int:
    """A positive whole count: ``100000``, ``100k``, ``1M``, ``128Ki``, ``1.5k``."""
    value, suffix = _split(text, what, "100000, 100k, 128Ki or 1M")
    scale = _BINARY.get(suffix) or _DECIMAL.get(suffix)
    if scale is None:
        raise KvsizeError(f"{what} {shown(text)} has an unknown suffix {suffix!r}: use k, M, G (decimal) or Ki, Mi, Gi (binary)")
    count = _whole(value * scale, text, what)
    if count <= 0:
        raise KvsizeError(f"{what} must be at least 1, got {shown(text)}")
    return count


_SIZE_DECIMAL = {"B": 1, "KB": 10**3, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15}
_SIZE_BINARY = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50}


def parse_size(text: str, what: str = "size") -> int:
    """A byte size: ``9MiB``, ``72 MB``, ``5GiB``, ``4096`` (bare = bytes)."""
    value, suffix = _split(text, what, "9MiB, 72MB or 4096")
    if suffix == "":
        scale = 1
    elif suffix in _SIZE_DECIMAL:
        scale = _SIZE_DECIMAL[suffix]
    elif suffix in _SIZE_BINARY:
        scale = _SIZE_BINARY[suffix]
    elif suffix in _BINARY:
        scale = _BINARY[suffix]
    else:
        raise KvsizeError(
            f"{what} {shown(text)} has an unknown unit {suffix!r}: use B, kB, MB, GB, TB (decimal) or KiB, MiB, GiB, TiB (binary)"
        )
    size = _whole(value * scale, text, what)
    if size <= 0:
        raise KvsizeError(f"{what} must be more than 0 bytes, got {shown(text)}")
    return size


_DURATIONS: dict[str, Decimal | int] = {
    "": 1,
    "s": 1,
    "ms": Decimal("0.001"),
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "min": 60,
    "m": 60,
    "h": 3600,
}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds: ``10s``, ``500ms``, ``80us``, ``2min``; a bare number is seconds."""
    value, suffix = _split(text, what, "10s, 500ms or 80us", "duration")
    if suffix not in _DURATIONS:
        raise KvsizeError(f"{what} {shown(text)} is not a duration: write it like 10s, 500ms or 80us")
    seconds = value * Decimal(_DURATIONS[suffix])
    if seconds <= 0:
        raise KvsizeError(f"{what} must be more than 0, got {shown(text)}")
    return float(seconds)


_BITS = {"bit": 1, "Kbit": 10**3, "kbit": 10**3, "Mbit": 10**6, "Gbit": 10**9, "Tbit": 10**12}


def parse_rate(text: str, what: str = "bandwidth") -> float:
    """Bytes per second: ``90MB/s``, ``1.5GiB/s``, ``10Gbit/s``, ``25GB/s``; bare = B/s."""
    value, suffix = _split(text, what, "90MB/s, 1GiB/s or 10Gbit/s")
    suffix = suffix.removesuffix("/s")
    if suffix in _BITS:
        return float(value * _BITS[suffix] / 8)
    scale = {**_SIZE_DECIMAL, **_SIZE_BINARY, "": 1}.get(suffix, 0)
    if not scale:
        raise KvsizeError(f"{what} {shown(text)} has an unknown unit {suffix!r}: write it like 90MB/s, 1GiB/s or 10Gbit/s")
    rate = float(value * scale)
    if rate <= 0:
        raise KvsizeError(f"{what} must be more than 0, got {shown(text)}")
    return rate


MAX_LIST = 64
"""Most entries a list option takes (``--chunk-sizes``): ``--search`` does the fine search."""


def parse_int_list(text: str, what: str, limit: int = MAX_LIST) -> list[int]:
    """A comma-separated list of counts: ``256,512,2k``; at most ``limit`` entries."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise KvsizeError(f"{what} is empty: give comma-separated numbers like 256,2048")
    if len(parts) > limit:
        raise KvsizeError(
            f"{what} has {len(parts):,} entries; give at most {limit} (with a backend, --search finds the best size between them)"
        )
    return [parse_count(part.strip(), what) for part in parts]


def format_iec(n_bytes: float) -> str:
    """``9437184`` → ``9 MiB``; ``14722007040`` → ``13.71 GiB``. For display only."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.2f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_count(n: int) -> str:
    """``1560`` → ``1,560``."""
    return f"{n:,}"
