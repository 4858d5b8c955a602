"""Reading a request trace, one line at a time (never the whole file), each line checked.

The format is Mooncake's (FAST'25 release): one JSON object per line with ``timestamp`` (ms), ``input_length``,
``output_length`` and ``hash_ids``, the chained hashes of the prompt's blocks of ``trace_block`` tokens
(``len(hash_ids) == ceil(input_length / trace_block)``; equal ``hash_ids[k]`` means equal first k + 1 blocks).
Timestamps never decrease (ties keep the file's order). Any other key is ignored.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from kvsize.errors import KvsizeError, shown

MAX_LINE_BYTES = 16 * 2**20
"""Longest line read: a request of a billion tokens has two million 512-token hashes, about 16 MiB of JSON."""
MAX_TOKENS = 1_000_000_000
MAX_TIMESTAMP_MS = 1e15
"""About 31,000 years of milliseconds: a timestamp past it is not a trace's clock."""


class TraceError(KvsizeError):
    """A trace line that cannot be replayed: the message names the file, the line and the fix."""


class Request(NamedTuple):
    """One request of a trace."""

    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: list[int]
    line: int


def _whole(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number, got {shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"{key} must be {low:,} to {high:,}, got {shown(value)}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a trace can hold")


def parse_line(text: str, trace_block: int) -> tuple[float, int, int, list[int]]:
    """One line's request; ValueError naming what is wrong."""
    try:
        record = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply to be a request") from None
    except ValueError as error:
        raise ValueError(f"not JSON ({str(error).split(':')[0]})") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object, got {shown(record)}")
    missing = [key for key in ("timestamp", "input_length", "output_length", "hash_ids") if key not in record]
    if missing:
        raise ValueError(f"no {missing[0]}")
    timestamp = record["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        raise ValueError(f"timestamp must be a finite number of milliseconds, got {shown(timestamp)}")
    if not 0 <= timestamp <= MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp must be 0 to {MAX_TIMESTAMP_MS:.0e} ms, got {shown(timestamp)}")
    length = _whole(record["input_length"], "input_length", 1, MAX_TOKENS)
    output = _whole(record["output_length"], "output_length", 0, MAX_TOKENS)
    hashes = record["hash_ids"]
    if not isinstance(hashes, list):
        raise ValueError(f"hash_ids must be a list of whole numbers, got {shown(hashes)}")
    blocks = -(-length // trace_block)
    if len(hashes) != blocks:
        side = "short" if len(hashes) < blocks else "long"
        raise ValueError(
            f"hash_ids has {len(hashes):,} hashes, too {side} for input_length {length:,}: ceil({length:,} / "
            f"{trace_block}) = {blocks:,} (are the trace's blocks {trace_block} tokens? give `trace_block`)"
        )
    for value in hashes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"hash_ids must hold whole numbers, got {shown(value)}")
    return float(timestamp), length, output, hashes


def _open(path: Path) -> Any:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise TraceError(f"cannot read trace {path}: {error.strerror or error}; check the path", field="trace") from None
    if not stat.S_ISREG(mode):
        raise TraceError(f"trace {path} is not a regular file; give a JSONL file", field="trace")
    try:
        return path.open("rb")
    except OSError as error:
        raise TraceError(f"cannot read trace {path}: {error.strerror or error}; check its permissions", field="trace") from None


def read_trace(path: Path, trace_block: int = 512, progress: Callable[[int, int], None] | None = None) -> Iterator[Request]:
    """The trace's requests in file order, each line checked (a bad one stops the read with ``TraceError``).

    ``progress(bytes_read, file_bytes)`` is called every 256 requests."""
    with _open(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        number, last, read = 0, -1.0, 0
        while raw := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            read += len(raw)
            where = f"trace {path} line {number:,}"
            if len(raw) > MAX_LINE_BYTES:
                raise TraceError(f"{where} is longer than {MAX_LINE_BYTES // 2**20} MiB: not a request; check the file")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise TraceError(f"{where} is not UTF-8 (byte {error.start + 1}); save the trace as UTF-8") from None
            if not text.strip():
                continue
            try:
                timestamp, length, output, hashes = parse_line(text, trace_block)
            except ValueError as error:
                raise TraceError(f"{where}: {error}; fix the line") from None
            if timestamp < last:
                raise TraceError(
                    f"{where}: timestamp {timestamp:g} ms is before the previous line's {last:g} ms; a trace is in time "
                    "order: sort it by timestamp"
                )
            last = timestamp
            if progress is not None and number % 256 == 0:
                progress(read, size)
            yield Request(timestamp, length, output, hashes, number)
        if progress is not None:
            progress(read, size)
