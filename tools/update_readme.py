"""Rewrite the example outputs in README.md (and docs/) from what kvsize prints now.

    python tools/update_readme.py [FILE ...]

Each example is an indented ``$ kvsize ARGS`` line followed by its indented output; the output is
replaced by a fresh run (piped, as tests/test_readme.py runs it). A block that starts with
``(the chunk table above, then)`` keeps that line and only the part of the output from its next line on.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from kvsize.cli import app

ELIDED = "(the chunk table of the README, then)"
EXAMPLE = re.compile(r"(    \$ kvsize (.+)\n)((?:    .*\n|\n(?=    ))+)")


def fresh(match: re.Match[str]) -> str:
    command, block = match.group(2), match.group(3)
    result = CliRunner().invoke(app, command.split(), env={"COLUMNS": "80"})
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    old = [line[4:] for line in block.splitlines()]
    if old and old[0] == ELIDED:
        start = next((i for i, line in enumerate(lines) if line == old[1]), 0) if len(old) > 1 else 0
        lines = [ELIDED, *lines[start:]]
    return match.group(1) + "".join(f"    {line}".rstrip() + "\n" for line in lines)


def main() -> None:
    files = [Path(name) for name in sys.argv[1:]] or [Path("README.md"), *sorted(Path("docs").glob("*.md"))]
    for file in files:
        text = file.read_text(encoding="utf-8")
        updated = EXAMPLE.sub(fresh, text)
        if updated != text:
            file.write_text(updated, encoding="utf-8")
            print(f"updated {file}")


if __name__ == "__main__":
    main()
