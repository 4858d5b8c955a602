"""Printing: rich tables that read well on a terminal and in a pipe, and plain text.

Output never fails on a terminal of any width or a stream of any encoding: a terminal narrower than
``MIN_WIDTH`` (``COLUMNS=0``, ``COLUMNS=1``) gets the pipe's layout, unwrapped; a stream that cannot encode
kvsize's glyphs (``PYTHONIOENCODING=ascii``, a Latin-1 terminal) gets ASCII tables and ASCII stand-ins
(``safe_output``)."""

from __future__ import annotations

import io
import sys
from typing import Any

MIN_WIDTH, MAX_WIDTH = 40, 4096
"""The terminal widths ``COLUMNS`` may set: below, a table breaks every word on its own line; above, help panels
are padded to the width (9,999,999 columns print 280 MB, 10^22 overflow)."""
_STAND_INS = {"…": "...", "µ": "u", "μ": "u", "≥": ">=", "≤": "<=", "×": "x", "→": "->", "·": "*", "█": "#"}
_STAND_INS |= {eighth: "#" if index >= 4 else " " for index, eighth in enumerate(" ▏▎▍▌▋▊▉") if index}
ERRORS = "kvsize-ascii"
"""The codec error handler ``safe_output`` installs: stand-ins for kvsize's glyphs and box lines,
``\\xNN`` escapes for any other character the stream cannot encode."""


def _stand_in(error: UnicodeError) -> tuple[str, int]:
    import unicodedata

    if not isinstance(error, UnicodeEncodeError):
        raise error
    out = []
    for char in error.object[error.start : error.end]:
        name = unicodedata.name(char, "")
        if char in _STAND_INS:
            out.append(_STAND_INS[char])
        elif name.startswith("BOX DRAWINGS"):  # rich's table lines, should one reach the stream
            is_line = not any(word in name for word in (" AND ", " DOWN", " UP", " LEFT", " RIGHT"))
            out.append(("|" if "VERTICAL" in name else "-") if is_line else "+")
        else:
            out.append(char.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(out), error.end


def safe_output() -> None:
    """Let stdout and stderr write any text: characters their encoding lacks become ASCII stand-ins, never a
    UnicodeEncodeError (a UTF-8 stream is unchanged: it encodes everything). A ``COLUMNS`` that is not a width
    from ``MIN_WIDTH`` to ``MAX_WIDTH`` (``0``, ``1``, ``abc``) is dropped, so that the terminal's own width (80
    when unknown) applies."""
    import codecs
    import os

    columns = os.environ.get("COLUMNS")
    if columns is not None and not (columns.isascii() and columns.isdigit() and MIN_WIDTH <= int(columns) <= MAX_WIDTH):
        del os.environ["COLUMNS"]

    codecs.register_error(ERRORS, _stand_in)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors=ERRORS)


class _Buffer(io.StringIO):
    """The pipe layout's buffer, with the encoding of stdout: rich draws ASCII tables when it is not UTF."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(sys.stdout, "encoding", None) or "utf-8"


class Output:
    """Rich output that reads well on a terminal (its width honoured) and in a pipe or a CI log
    (no hard wraps inside sentences, no name broken, no column dropped, no trailing spaces)."""

    def __init__(self) -> None:
        from rich.console import Console

        probe = Console()
        # A terminal too narrow to lay a table out in (COLUMNS=0 prints nothing) gets the pipe's layout.
        self.terminal = probe.is_terminal and probe.width >= MIN_WIDTH
        self.buffer: io.StringIO | None = None
        if self.terminal:
            self.console = Console(highlight=False)
        else:
            self.buffer = _Buffer()
            self.console = Console(file=self.buffer, highlight=False, width=100_000, color_system=None)

    def print(self, *objects: Any, **options: Any) -> None:
        from rich.table import Table

        for item in objects:
            if isinstance(item, Table) and (item.title or item.caption):
                # A title or caption is a sentence: printed as a line of its own, never wrapped to the table's width.
                title, caption = item.title, item.caption
                item.title = item.caption = None
                if title:
                    self.console.print(str(title), markup=False, soft_wrap=not self.terminal)
                self._table(item, **options)
                if caption:
                    self.console.print(str(caption), markup=False, soft_wrap=not self.terminal)
            elif isinstance(item, Table):
                self._table(item, **options)
            else:
                self.console.print(item, soft_wrap=not self.terminal, **options)

    def _table(self, table: Any, **options: Any) -> None:
        """A table, squeezed to the terminal only when every column keeps its longest word (rich would otherwise
        shrink a column to nothing): else at its natural width, the terminal wrapping the lines."""
        from rich.measure import Measurement

        console = self.console
        unbounded = console.options.update_width(100_000)  # measured against the terminal, a table always "fits"
        if self.terminal and Measurement.get(console, unbounded, table).minimum > console.width:
            from rich.console import Console

            console = Console(highlight=False, width=100_000)
        console.print(table, **options)

    def close(self) -> None:
        if self.buffer is not None:
            sys.stdout.write("".join(line.rstrip() + "\n" for line in self.buffer.getvalue().splitlines()))


def json_text(data: Any) -> str:
    """``data`` as ``--format json`` prints it: indented, and never NaN or infinity (not JSON, and no figure to trust:
    the inputs are bounded so that none arises; should one, this is one error line instead of a broken contract)."""
    import json

    from kvsize.errors import KvsizeError

    try:
        return json.dumps(data, indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise KvsizeError(
            "the result holds a figure that is not finite (NaN or infinity), which JSON cannot carry; nothing was "
            "printed: check the figures given (flags, profile, config) and report the command line if they are sane"
        ) from None
