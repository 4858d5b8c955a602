"""Print the CLI reference (docs/cli.md) from the real ``--help`` of every command.

    python tools/cli_reference.py > docs/cli.md

tests/test_readme.py compares docs/cli.md with this output, so the reference never drifts.
"""

from __future__ import annotations

import re

from typer.testing import CliRunner

from kvsize.cli import app

COMMANDS = [["size"], ["check"], ["capacity"], ["replay"], ["probe"], ["models"], ["inspect"], ["catalog", "add"]]
_BORDER = re.compile(r"[╭╮╰╯│─]")


def help_text(command: list[str]) -> str:
    env = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(app, [*command, "--help"], env=env, prog_name="kvsize")
    lines = [_BORDER.sub(" ", line).rstrip() for line in result.stdout.splitlines()]
    return "\n".join(lines).strip() + "\n"


def reference() -> str:
    out = [
        "# Command-line reference",
        "",
        "Generated from `--help` by `tools/cli_reference.py`; `kvsize MODEL ...` is `kvsize size MODEL ...`.",
        "",
    ]
    for command in COMMANDS:
        out += [f"## kvsize {' '.join(command)}", "", "```", help_text(command).rstrip(), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(reference(), end="")
