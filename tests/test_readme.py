"""The README's and the docs' examples are what kvsize prints, and the CLI reference is the real --help
(so the docs never drift)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
ELIDED = "(the chunk table of the README, then)"


def examples() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for command, block in re.findall(r"    \$ kvsize (.+)\n((?:    .*\n|\n(?=    ))+)", text):
            found.append((command, [line[4:].rstrip() for line in block.splitlines()]))
    return found


def test_the_docs_have_the_examples():
    commands = [command for command, _ in examples()]
    assert "Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000" in commands
    assert "Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000 --backend s3 --concurrent-prompts 20" in commands
    assert any(command.startswith("check ") for command in commands)
    assert any(command.startswith("capacity ") for command in commands)
    assert any(command.endswith("--emit lmcache") for command in commands)


def test_example_outputs_are_current(run):
    for command, expected in examples():
        result = run(*command.split(), env={"COLUMNS": "80"})
        expected_code = 1 if command.startswith("check") and "FAILED" in "".join(expected) else 0
        assert result.exit_code == expected_code, (command, result.stderr)
        actual = [line.rstrip() for line in result.stdout.splitlines()]
        if expected and expected[0] == ELIDED:
            expected = expected[1:]
            actual = actual[actual.index(expected[0]) :]
        assert actual == expected, command


def test_cli_reference_is_the_real_help():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        reference = runpy.run_path(str(ROOT / "tools" / "cli_reference.py"))["reference"]()
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert (ROOT / "docs" / "cli.md").read_text() == reference, "regenerate: python tools/cli_reference.py > docs/cli.md"
    assert "## kvsize check" in reference and "--lmcache-config" in reference and "--instances" in reference


def test_library_page_runs(tmp_path: Path):
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "library.md").read_text(), re.S)
    assert code is not None
    source = code.group(1).replace('"/mnt/kv"', repr(str(tmp_path)))
    namespace: dict[str, object] = {}
    exec(compile(source, "docs/library.md", "exec"), namespace)
    assert namespace["result"].recommended_chunk_tokens == 2048  # type: ignore[attr-defined]
    assert namespace["plan"].capacity.prompts_that_fit == 758  # type: ignore[attr-defined]
    assert namespace["report"].ok is False  # type: ignore[attr-defined]


def test_every_doc_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(((?!https?:)[^)#]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_readme_quick_start_has_two_commands():
    text = README.read_text()
    assert "    pip install . && kvsize Qwen/Qwen3-4B-Instruct-2507 --tp 4 --prompt 100000\n" in text
    assert "    pip install '.[test]' && pytest\n" in text
