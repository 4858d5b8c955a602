"""Quoting for everything kvsize emits: shell lines, environment assignments, comments, YAML and fio job values.

Each function returns text that its reader reads back as exactly the value given (POSIX ``sh``, a YAML loader,
fio's job-file parser), or refuses a value that reader cannot carry. Emitters build their output from these and
never format a name, a path or a placeholder into a line themselves. Ordinary values (``Qwen/Qwen3-4B``, ``2048``,
``/mnt/kv``) come out as they are; only what a reader would misread is quoted or escaped.
"""

from __future__ import annotations

import functools
import re
import shlex
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kvsize.errors import KvsizeError, shown

if TYPE_CHECKING:
    from yaml import SafeDumper

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
FIO_LINE_BYTES = 8191
"""Longest line fio's job parser reads as one (``fgets`` into ``OPT_LEN_MAX`` = 8,192 bytes, ``init.c``
``__parse_jobs_ini``); the rest of a longer line would be read as a line of its own."""
FIO_VALUE_BYTES = 4095
"""Longest fio path value kvsize writes: Linux's ``PATH_MAX`` less the final NUL, well inside one fio line."""


def shell_line(words: Sequence[str], stdout: str | None = None) -> str:
    """One shell command line that ``sh`` (and ``shlex.split``) reads back as exactly ``words``: each word through
    ``shlex.quote`` (``shlex.join``). Words made only of letters, digits and ``@%+=:,./_-`` stay bare, so flags,
    numbers and Hub ids read as they are; anything else is single-quoted (``'a b; echo x'``). A word holding a
    control character is refused with one line: a newline would spread the command over several lines, a terminal
    escape could redraw what the reader sees, and no command line carries a NUL. With ``stdout``, the command's
    output goes to that file (`` > FILE``, the name quoted the same way)."""
    line = " ".join(_shell_word(word) for word in words)
    return line if stdout is None else f"{line} > {_shell_word(stdout)}"


def _shell_word(word: str) -> str:
    for char in word:
        if unicodedata.category(char) == "Cc":
            raise KvsizeError(
                f"{shown(word)} holds the control character {shown(char)}, which kvsize does not write into a shell "
                "line (a newline splits the command, an escape redraws the terminal); rename it"
            )
    return shlex.quote(word)


def env_assignment(name: str, value: str) -> str:
    """``NAME=value`` that ``sh`` reads as setting ``NAME`` to exactly ``value`` (``shlex.quote``: a placeholder
    ``<DIR>`` is written ``'<DIR>'``, as ``<`` would be a redirection). Prefix ``export`` for an export line.
    LMCache strips one pair of surrounding quotes from an environment value itself (``_parse_quoted_string``),
    so the quoted form also reads the same when pasted into an env file. A value holding a control character is
    refused, as in ``shell_line``."""
    if not _ENV_NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return f"{name}={_shell_word(value)}"


def comment_text(text: str) -> str:
    """``text`` as one line a comment can carry. Unchanged when every character is printable (``str.isprintable``:
    what kvsize writes, ordinary names and paths); else escaped as ``repr`` escapes a string (``\\n``, ``\\x1b``,
    ``\\u2028``, a backslash doubled), so no newline, carriage return, Unicode line separator or terminal control
    in a name can end the comment, start a line of settings or hide what follows."""
    if text.isprintable():
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    point = ord(char)
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def comment(text: str, marker: str = "#") -> str:
    """A comment line: ``marker``, a space, and ``text`` through ``comment_text``."""
    return f"{marker} {comment_text(text)}"


def exact_number(value: float) -> str:
    """A number as text that reads back to the same value: whole numbers without a decimal point (``7``, never
    ``7.0`` or ``%g``'s ``1.44195e+06``), others as Python's shortest exact form (``1.5``)."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else repr(value)


def yaml_mapping(settings: Mapping[str, Any], comments: Sequence[str] = ()) -> str:
    """A YAML mapping written by the YAML dumper (PyYAML's ``SafeDumper``: keys in the order given, one per line,
    numbers and booleans as YAML writes them, every string value double-quoted and escaped), under ``comments`` as
    ``# `` lines through ``comment_text``. ``yaml.safe_load`` of the text gives back exactly ``settings``."""
    import yaml

    return "".join(comment(line) + "\n" for line in comments) + yaml.dump(
        {key: _quoted(value) for key, value in settings.items()},
        Dumper=_dumper(),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31,  # one line per value, however long
    )


@functools.cache
def _dumper() -> type[SafeDumper]:
    """``SafeDumper`` writing ``_Quoted`` strings double-quoted (built on first use: PyYAML loads only to emit)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Quoted, lambda dumper, data: dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"'))
    return Dumper


class _Quoted(str):
    """A string the YAML dumper writes double-quoted (a mapping's values; its keys stay plain)."""


def _quoted(value: Any) -> Any:
    if isinstance(value, str):
        return _Quoted(value)
    if isinstance(value, Mapping):
        return {key: _quoted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_quoted(item) for item in value]
    return value


def fio_value(value: str, what: str, field: str | None = None) -> str:
    """``value`` for a fio job option that fio splits at ``:`` (``directory=``, ``filename=``), with each ``:``
    escaped as ``\\:`` (fio's man page, ``filename``; ``get_next_str`` in ``options.c`` removes the one backslash
    before a colon and keeps every other backslash). Refused with one line naming ``what`` and why when fio would
    read the value otherwise (``init.c`` ``__parse_jobs_ini``, ``parse.c`` ``strip_blank_end``, ``options.c``
    ``fio_option_dup_subs`` and ``fio_keyword_replace``)."""
    problem = _fio_problem(value)
    if problem:
        raise KvsizeError(f"{what} {shown(value)} {problem}; give a path without it", field=field)
    return value.replace(":", "\\:")


def _fio_problem(value: str) -> str | None:
    """Why fio's job parser would not read ``value`` back as it is, or None."""
    if not value:
        return "is empty, and fio would read an empty option"
    for char in value:
        if unicodedata.category(char) == "Cc":
            return f"holds the control character {shown(char)}, which a fio job file cannot carry (a newline starts an option)"
        if unicodedata.category(char) == "Cs" and not 0xDC80 <= ord(char) <= 0xDCFF:  # not a byte of a non-UTF-8 path
            return f"holds {shown(char)}, which is no character a path can hold"
    reasons = {
        ";": "where fio's job parser starts a comment and cuts the value",
        "#": "where fio's job parser starts a comment and cuts the value",
        "$": "which fio substitutes (${VAR}, $ncpus, $pagesize, $mb_memory)",
        "[": "which a fio job file reserves for its [section] headers",
        "]": "which a fio job file reserves for its [section] headers",
    }
    for char, reason in reasons.items():
        if char in value:
            return f"holds {char!r}, {reason}"
    if value != value.strip(" "):
        return "begins or ends with a space, which fio strips"
    if len(_utf8(value)) > FIO_VALUE_BYTES:
        return f"is longer than {FIO_VALUE_BYTES:,} bytes (the longest path the system takes)"
    return None


def _utf8(text: str) -> bytes:
    """``text`` as the bytes a job file holds (a non-UTF-8 path's own bytes kept, as Python keeps them)."""
    return text.encode("utf-8", "surrogateescape")


def fio_comment(text: str) -> str:
    """A fio job-file comment line (``; `` and ``text`` through ``comment_text``), cut with ``…`` when it would be
    longer than the ``FIO_LINE_BYTES`` fio reads as one line (the rest would be read as an option)."""
    line = comment(text, ";")
    if len(_utf8(line)) <= FIO_LINE_BYTES:
        return line
    kept, size = [], len("…".encode())
    for char in line:
        size += len(_utf8(char))
        if size > FIO_LINE_BYTES:
            break
        kept.append(char)
    return "".join(kept) + "…"
