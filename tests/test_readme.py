"""The README's example output is what kvsize prints (so the docs never drift)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_output_is_current(run):
    text = README.read_text()
    block = re.search(r"    \$ kvsize (Qwen/\S+ --tp 4 --prompt 100000)\n((?:    .*\n)+)", text)
    assert block, "README lost its example"
    expected = [line[4:].rstrip() for line in block.group(2).splitlines()]
    result = run(*block.group(1).split(), env={"COLUMNS": "80"})
    assert [line.rstrip() for line in result.stdout.splitlines()] == expected


def test_readme_quick_start_has_two_commands():
    text = README.read_text()
    assert "    pip install . && kvsize Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000\n" in text
    assert "    pip install '.[test]' && pytest\n" in text
