"""Printing: rich tables that read well on a terminal and in a pipe, and plain text."""

from __future__ import annotations

import sys
from typing import Any


class Output:
    """Rich output that reads well on a terminal (its width honoured) and in a pipe or a CI log
    (no hard wraps inside sentences, no name broken, no column dropped, no trailing spaces)."""

    def __init__(self) -> None:
        import io

        from rich.console import Console

        self.terminal = Console().is_terminal
        self.buffer: io.StringIO | None = None
        if self.terminal:
            self.console = Console(highlight=False)
        else:
            self.buffer = io.StringIO()
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
                self.console.print(item, **options)
                if caption:
                    self.console.print(str(caption), markup=False, soft_wrap=not self.terminal)
            else:
                self.console.print(item, soft_wrap=not self.terminal, **options)

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
