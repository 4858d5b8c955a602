"""Output that never fails: any terminal width (``COLUMNS=0``, ``1``, text, negative) and any stream encoding (an ASCII
locale, ``PYTHONIOENCODING=ascii``, Latin-1): the real executable on a pseudo-terminal and through pipes."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

M = "Qwen/Qwen3-4B-Instruct-2507"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "KVSIZE_CATALOG")}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


def on_terminal(*args: str, **env: str) -> tuple[int, str]:
    """``kvsize ARGS`` with stdout and stderr on a pseudo-terminal: its exit code and what it showed."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "kvsize", *args], stdin=follower, stdout=follower, stderr=follower, env=environment(**env)
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = process.wait(timeout=120)
    os.close(leader)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")


@pytest.mark.parametrize("columns", ["0", "1", "5", "abc", "-3", "", "\udcff", "9" * 400, "9999999", "٨٠"])
def test_any_columns_on_a_terminal_shows_the_whole_table(columns):
    code, shown = on_terminal(M, "--prompt", "10k", COLUMNS=columns)
    assert code == 0, shown
    assert "147,456 B/token" in shown
    for row in ("│   256 │     39 │    16 dropped │  36 MiB │", "│ 4,096 │      2 │ 1,808 dropped │ 576 MiB │"):
        assert row in shown, shown


def test_check_on_a_zero_width_terminal_names_the_limit():
    code, shown = on_terminal("check", M, "--max-objects", "10", COLUMNS="0")
    assert code == 1
    assert "max_objects: 390 objects per prompt > --max-objects 10" in shown, shown


@pytest.mark.parametrize("columns", ["0", "9" * 30, "9999999"])
def test_help_on_any_width_terminal(columns):
    code, shown = on_terminal("check", "--help", COLUMNS=columns)
    assert code == 0 and "--max-object-size" in shown and len(shown) < 1_000_000, shown[:300]


def run_piped(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kvsize", *args], env=environment(**env), capture_output=True, timeout=120)


@pytest.mark.parametrize(
    "env",
    [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}, {"LC_ALL": "C"}],
    ids=["PYTHONIOENCODING=ascii", "ascii-locale", "C-locale-utf8-mode"],
)
@pytest.mark.parametrize(
    "args",
    [
        (M, "--prompt", "10k", "--backend", "s3", "--explain"),
        ("check", M, "--max-objects", "10", "--backend", "s3"),
        ("models",),
        ("inspect", M),
        ("capacity", M, "--storage", "1TiB"),
        ("engines", M),
        ("--help",),
    ],
)
def test_an_ascii_stream_gets_ascii_output(env, args):
    result = run_piped(*args, **env)
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout and result.stderr.decode("ascii", "strict") is not None
    if env.get("PYTHONIOENCODING") == "ascii" or env.get("PYTHONUTF8") == "0":
        result.stdout.decode("ascii")  # every byte ASCII: tables drawn with + - |, bars with #


def test_an_ascii_stream_table_is_drawn_in_ascii():
    text = run_piped(M, "--prompt", "10k", "--backend", "s3", PYTHONIOENCODING="ascii").stdout.decode("ascii")
    assert "|   256 |     39 |    16 dropped |  36 MiB |      39 | 1.37 GiB |   1.0x |" in text
    assert "| 4,096 | ########## 6.81 s | waves |" in text


def test_a_latin1_stream_keeps_what_it_can_encode():
    result = run_piped(M, "--prompt", "10k", "--backend", "s3", PYTHONIOENCODING="latin-1")
    assert result.returncode == 0
    text = result.stdout.decode("latin-1")
    assert "|   256 |" in text and "┃" not in text


@pytest.mark.parametrize("value", ["x" * 400, "ünïcödé" * 40, "\udcff" * 50])
def test_errors_on_an_ascii_stream_are_one_ascii_line(value):
    result = run_piped(M, "--prompt", value, PYTHONIOENCODING="ascii")
    assert result.returncode == 2
    line = result.stderr.decode("ascii")
    assert line.startswith("kvsize: error: --prompt") and line.count("\n") == 1 and "Traceback" not in line
