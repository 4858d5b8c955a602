"""The README's example outputs are what kvsize prints (so the docs never drift)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
ELIDED = "(the chunk table above, then)"


def examples() -> list[tuple[str, list[str]]]:
    text = README.read_text()
    found = re.findall(r"    \$ kvsize (.+)\n((?:    .*\n|\n(?=    ))+)", text)
    return [(command, [line[4:].rstrip() for line in block.splitlines()]) for command, block in found]


def test_readme_has_the_examples():
    commands = [command for command, _ in examples()]
    assert "Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000" in commands
    assert "Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000 --backend s3 --concurrent-prompts 20" in commands
    assert any(command.startswith("check ") for command in commands)
    assert any(command.startswith("capacity ") for command in commands)
    assert any(command.endswith("--emit lmcache") for command in commands)


def test_readme_example_outputs_are_current(run):
    for command, expected in examples():
        result = run(*command.split(), env={"COLUMNS": "80"})
        expected_code = 1 if command.startswith("check") and "FAILED" in "".join(expected) else 0
        assert result.exit_code == expected_code, (command, result.stderr)
        actual = [line.rstrip() for line in result.stdout.splitlines()]
        if expected and expected[0] == ELIDED:
            expected = expected[1:]
            actual = actual[actual.index(expected[0]) :]
        assert actual == expected, command


def test_readme_quick_start_has_two_commands():
    text = README.read_text()
    assert "    pip install . && kvsize Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000\n" in text
    assert "    pip install '.[test]' && pytest\n" in text
