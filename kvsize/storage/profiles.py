"""Backend profile files: the YAML ``kvsize probe --save-profile`` writes and ``--backend FILE`` reads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kvsize.errors import BackendError, shown
from kvsize.files import read_yaml
from kvsize.storage.backends import PRESETS, BackendProfile, figure_problem
from kvsize.units import parse_duration, parse_rate, parse_size

_PROFILE_FIELDS = {
    "latency": ("latency_s", parse_duration),
    "per_object": ("per_object_s", parse_duration),
    "stream_bandwidth": ("stream_bytes_per_s", parse_rate),
    "aggregate_bandwidth": ("aggregate_bytes_per_s", parse_rate),
    "concurrency": ("concurrency", None),
    "max_requests_per_s": ("max_requests_per_s", None),
    "write_max_requests_per_s": ("write_max_requests_per_s", None),
    "part_size": ("part_size_bytes", parse_size),
    "max_value_size": ("max_value_bytes", parse_size),
}


def load_profile(path: Path) -> BackendProfile:
    """A backend profile YAML (written by ``kvsize probe``, or by hand).

    Keys: name, source, latency (``200us``), per_object (``65us``), stream_bandwidth (``650MB/s``),
    aggregate_bandwidth, concurrency, max_requests_per_s, write_max_requests_per_s,
    part_size (``8MiB``), max_value_size; ``ranges``: each figure's measured or published ``[low, high]``
    (``ranges: {latency: [150us, 250us]}``). Bare numbers are seconds, bytes/s or bytes.
    """
    data = read_yaml(path, "backend profile")
    if not isinstance(data, dict):
        raise BackendError(f"backend profile {path} must be a mapping of figures (latency, stream_bandwidth, ...)")
    values: dict[str, Any] = {"name": str(data.get("name") or path.stem), "source": str(data.get("source") or path)}
    figures: dict[str, str] = {}
    clients = data.get("clients_measured")
    if clients is not None and (isinstance(clients, bool) or not isinstance(clients, int) or not 1 <= clients <= 100_000):
        raise BackendError(f"backend profile {path}: clients_measured must be a whole number 1 to 100,000, got {shown(clients)}")
    levels = data.get("aggregate_bandwidth_by_concurrency")
    if levels is not None:
        values["aggregate_by_concurrency"] = _levels(path, levels)
    by_size = data.get("aggregate_bandwidth_by_object_size")
    if by_size is not None:
        if not isinstance(by_size, dict) or not by_size or len(by_size) > 64:
            raise BackendError(f"backend profile {path}: aggregate_bandwidth_by_object_size must map object sizes to levels")
        values["aggregate_by_object_size"] = {
            int(_profile_value(path, "aggregate_bandwidth_by_object_size", size, parse_size, "max_value_bytes")): _levels(
                path, levels_
            )
            for size, levels_ in by_size.items()
        }
    if data.get("ranges") is not None:
        values["ranges"] = _ranges(path, data["ranges"])
    for key, raw in data.items():
        if key in ("name", "source", "figures", "missing", "clients_measured", "ranges") or key.startswith(
            "aggregate_bandwidth_by_"
        ):
            continue
        if key not in _PROFILE_FIELDS:
            raise BackendError(f"backend profile {path}: unknown figure {shown(key)}; use {', '.join(_PROFILE_FIELDS)}")
        field, parser = _PROFILE_FIELDS[key]
        values[field] = _profile_value(path, key, raw, parser, field)
        figures[field] = f"{raw} ({values['source']})"
    if clients:
        for field in ("aggregate_bytes_per_s", "max_requests_per_s"):
            if field in figures:
                figures[field] += f", measured by {clients} clients at once"
    return BackendProfile(**values, figures=figures)


def _ranges(path: Path, raw: Any) -> dict[str, tuple[float, float]]:
    """``ranges``: each figure's ``[low, high]``, in the figure's own units (``[150us, 250us]``)."""
    if not isinstance(raw, dict) or len(raw) > len(_PROFILE_FIELDS):
        raise BackendError(f"backend profile {path}: ranges must map figures to [low, high], e.g. {{latency: [1ms, 3ms]}}")
    out: dict[str, tuple[float, float]] = {}
    for key, bounds in raw.items():
        if key not in _PROFILE_FIELDS:
            raise BackendError(f"backend profile {path}: ranges names {shown(key)}; use {', '.join(_PROFILE_FIELDS)}")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise BackendError(f"backend profile {path}: ranges.{key} must be [low, high], got {shown(bounds)}")
        field, parser = _PROFILE_FIELDS[key]
        low, high = (float(_profile_value(path, f"ranges.{key}", value, parser, field)) for value in bounds)
        out[field] = (low, high)
    return out


def _levels(path: Path, raw: Any) -> dict[int, float]:
    """``aggregate_bandwidth_by_concurrency``: a mapping of requests in flight to bytes/s (or ``650MB/s``)."""
    if not isinstance(raw, dict) or not raw or len(raw) > 64:
        raise BackendError(
            f"backend profile {path}: aggregate_bandwidth_by_concurrency must map 1 to 64 levels to rates, e.g. {{1: 650MB/s}}"
        )
    out: dict[int, float] = {}
    for level, rate in raw.items():
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 100_000:
            raise BackendError(
                f"backend profile {path}: aggregate_bandwidth_by_concurrency level {shown(level)} is not 1 to 100,000"
            )
        key = f"aggregate_bandwidth_by_concurrency[{level}]"
        out[level] = float(_profile_value(path, key, rate, parse_rate, "aggregate_bytes_per_s"))
    return out


def _profile_value(path: Path, key: str, raw: Any, parser: Any, field: str) -> float | int:
    """``raw`` read as the figure ``field``: a finite number in its physical range (``FIGURE_RANGES``), else one line
    naming the file, the key and the value."""
    if isinstance(raw, bool) or raw is None:
        raise BackendError(f"backend profile {path}: {key} = {shown(raw)} is not a figure")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw):
            raise BackendError(f"backend profile {path}: {key} = {shown(raw)} is not a finite figure; give a number", field=key)
        value: float | int = raw
    elif parser is None:
        raise BackendError(f"backend profile {path}: {key} = {shown(raw)} must be a number")
    else:
        value = parser(str(raw), f"{path}: {key}")
    if value < 0 or (value == 0 and field not in ("latency_s", "per_object_s")):  # a fitted latency may be 0
        raise BackendError(f"backend profile {path}: {key} must be more than 0, got {shown(raw)}")
    if key == "concurrency" and (not isinstance(value, int) or isinstance(value, bool)):
        raise BackendError(f"backend profile {path}: concurrency must be a whole number, got {shown(raw)}")
    if field.endswith("_bytes") and isinstance(value, float) and value.is_integer():
        value = int(value)  # bytes: 8388608.0 is 8 MiB
    if problem := figure_problem(field, value):
        raise BackendError(f"backend profile {path}: {key} = {shown(raw)} {problem}", field=key)
    return value


def resolve_backend(name_or_path: str | None, overrides: dict[str, Any]) -> BackendProfile:
    """A preset name or a profile file, with explicit flag overrides on top (labelled as such)."""
    if name_or_path is None:
        if not overrides:
            raise BackendError("no backend: give `backend` with a preset or a profile file", field="backend")
        base = BackendProfile(name="custom", source="command-line figures")
    elif name_or_path in PRESETS:
        base = PRESETS[name_or_path]
    elif name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        base = load_profile(Path(name_or_path))
    else:
        raise BackendError(f"unknown backend {shown(name_or_path)}: use a preset ({', '.join(PRESETS)}) or a profile YAML file")
    if not overrides:
        return base
    figures = dict(base.figures)
    missing = dict(base.missing)
    for field in overrides:
        figures[field] = "given on the command line"
        missing.pop(field, None)
    return base.model_copy(update={**overrides, "figures": figures, "missing": missing})
