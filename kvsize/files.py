"""Reading the files users hand kvsize (YAML settings, JSON configs): one error line naming the file and the fix.

Every read is bounded: a file must be a regular file (a FIFO, a device or a folder is refused without blocking on
it), at most ``MAX_FILE_BYTES``, UTF-8; a YAML file's aliases may expand it to at most ``MAX_YAML_NODES`` nodes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from kvsize.errors import ConfigError

MAX_FILE_BYTES = 64 * 2**20
"""Largest settings or config file read: a model config is kilobytes, a catalog a few megabytes."""
MAX_YAML_NODES = 1_000_000
"""Most values a YAML file may hold once its aliases are expanded: a catalog of every model is ~100,000; an alias
bomb (each level repeating the one before) expands to billions, and is refused before anything reads it."""


def read_bytes(path: Path | str, what: str) -> bytes:
    """The bytes of the regular file ``path`` (at most ``MAX_FILE_BYTES``); anything else is one line.

    Opened non-blocking, so a FIFO with no writer (or a device) is refused instead of waited on."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}; check the path and its permissions") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "not a regular file"
            raise ConfigError(f"{what} {path} is {kind}: give a regular file")
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, min(2**20, MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise ConfigError(f"cannot read {what} {path}: {error.strerror or error}; check the path and its permissions") from None
    finally:
        os.close(fd)
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_FILE_BYTES // 2**20} MiB; point kvsize at the right file")
    return b"".join(chunks)


def read_text(path: Path | str, what: str) -> str:
    """The UTF-8 text of ``path``; any failure (missing, unreadable, not a regular file, not UTF-8, huge) is one line.

    ``what`` names the file in errors ("config", "backend profile ...")."""
    data = read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def read_yaml(path: Path | str, what: str) -> Any:
    """The parsed YAML of ``path`` (C loader when available); ``what`` names the file in errors."""
    import yaml

    text = read_text(path, what)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is not None and "&" in text:  # an anchor: its aliases may repeat it (a file without one cannot grow)
            _expanded_nodes(node, path, what)
        return loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what} {path} is not valid YAML{where}; fix the file") from None
    except RecursionError:
        raise ConfigError(f"{what} {path} is nested too deeply to be a settings file; fix the file") from None
    except ValueError as error:  # an integer past Python's digit limit, a date out of range
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{what} {path} holds a value too large to read; fix the file") from None
    finally:
        loader.dispose()


def _expanded_nodes(root: Any, path: Path | str, what: str) -> int:
    """How many nodes ``root`` holds with every alias expanded (each shared node counted once per use, in one pass
    over the composed graph); refused past ``MAX_YAML_NODES`` or when an alias refers to its own anchor."""
    import yaml

    counts: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            counts[key] = 1
            continue
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
        if children_done:
            open_nodes.discard(key)
            counts[key] = 1 + sum(counts[id(child)] for child in children)
            if counts[key] > MAX_YAML_NODES:
                raise ConfigError(
                    f"{what} {path}: its aliases expand it past {MAX_YAML_NODES:,} values (an alias bomb?); "
                    "write the values out or use fewer aliases"
                )
            continue
        if key in counts:
            continue
        if key in open_nodes:
            raise ConfigError(f"{what} {path}: an alias refers to its own anchor (a value that contains itself); fix the file")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in counts)
    return counts[id(root)]
