"""The command line: formats, routing, width, and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SEED = "Qwen/Qwen3-4B-Instruct-2507"


def test_default_command_and_explicit_size_agree(run):
    implicit = run(SEED, "--tp", "4", "--format", "json")
    explicit = run("size", SEED, "--tp", "4", "--format", "json")
    options_first = run("--tp", "4", SEED, "--format", "json")
    assert implicit.exit_code == explicit.exit_code == options_first.exit_code == 0
    assert implicit.stdout == explicit.stdout == options_first.stdout


SEED_2048_CELLS = ["2,048", "48", "1,696 dropped", "72 MiB", "192", "13.5 GiB", "8.1x"]


def _cells(lines: list[str]) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]


def test_table_is_readable_at_80_columns_on_a_terminal(run):
    result = run(SEED, "--tp", "4", "--prompt", "100000", env={"COLUMNS": "80", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"})
    assert result.exit_code == 0
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in result.stdout.splitlines()]
    assert max(len(line) for line in lines) <= 80
    rows = _cells(lines)
    assert len(rows) == 5
    # every row keeps its cells on one line: chunk, chunks, tail, object, objects, stored, reduction
    assert rows[3] == SEED_2048_CELLS


@pytest.mark.parametrize("command", [["Qwen/Qwen3-4B-Instruct-2507", "--tp", "4", "-b", "s3", "-b", "nfs"], ["models"]])
def test_piped_output_never_wraps_breaks_or_drops(run, command):
    """In a pipe (a CI log): no trailing spaces, sentences on one line, names whole, every column kept."""
    result = run(*command, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert all(line == line.rstrip() for line in lines)
    if command == ["models"]:
        rows = _cells(lines)
        assert len(rows) == 32 and all(len(row) == 7 for row in rows)
        assert "meta-llama/Llama-3.1-70B-Instruct" in [row[0] for row in rows]
        return
    assert _cells(lines)[3] == SEED_2048_CELLS
    # the notes are whole sentences, one per line
    assert any(
        line.startswith("prefill ~23,608 tokens/s estimated") and line.endswith("for a measured figure.") for line in lines
    )
    assert (
        "Backend s3, figures from AWS S3 User Guide, 'Best practices design patterns: optimizing Amazon S3 performance':" in lines
    )
    timing_rows = [row for row in _cells(lines) if len(row) == 6]
    assert len(timing_rows) == 10 and all(row[5] for row in timing_rows)  # the risks column is there for both backends


def test_csv_has_exact_bytes(run):
    result = run(SEED, "--tp", "4", "--chunk-sizes", "256,2048", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["chunk_tokens"], r["objects"], r["total_bytes"]) for r in rows] == [
        ("256", "1560", "14722007040"),
        ("2048", "192", "14495514624"),
    ]


def test_markdown_table(run):
    out = run(SEED, "--tp", "4", "--format", "markdown").stdout
    assert out.startswith(f"### {SEED}\n")
    assert "| 2,048 | 48 | 1,696 dropped | 72 MiB | 192 | 13.5 GiB | 8.1x |" in out


def test_explain_shows_fields_and_formulas(run):
    out = run(SEED, "--tp", "4", "--chunk-size", "256", "--explain", env={"COLUMNS": "200"}).stdout
    assert "kv heads: 8  <- num_key_value_heads" in out
    assert "head size: 128  <- head_dim" in out
    assert "KV dtype: bfloat16 = 2 B  <- torch_dtype" in out
    assert "heads/rank: max(1, 8 // TP 4) = 2" in out
    assert "B/token (model) = (36 KV layers) x 2 x 8 heads x 128 x 2 B = 147,456" in out
    assert "chunks = 100,000 // 256 = 390; tail = 100,000 % 256 = 160 (not stored)" in out
    assert "object = 256 x 36,864 = 9,437,184 B; objects = 4 writers x 390 chunks = 1,560" in out
    assert "bytes = 4 x (390 x 256) x 36,864 = 14,722,007,040" in out


def test_json_contract_keys(run_json):
    data = run_json(SEED, "--tp", "4")
    for key in (
        "model",
        "tp",
        "pp",
        "prompt_tokens",
        "kv_dtype",
        "dtype_bytes",
        "bytes_per_token",
        "bytes_per_token_per_rank",
        "writers",
        "warnings",
        "rows",
    ):
        assert key in data
    for key in (
        "chunk_tokens",
        "full_chunks",
        "tail_tokens",
        "tail_saved",
        "object_bytes",
        "objects",
        "total_bytes",
        "header_bytes",
        "stored_bytes",
    ):
        assert key in data["rows"][0]
    assert all(isinstance(data["rows"][0][k], int) for k in ("object_bytes", "objects", "total_bytes"))


def test_local_directory_and_file_give_the_same_numbers(run_json, write_config):
    from tests.conftest import reference_config

    directory = write_config(reference_config(SEED))
    by_dir = run_json(str(directory), "--tp", "4")
    by_file = run_json(str(directory / "config.json"), "--tp", "4")
    catalog = run_json(SEED, "--tp", "4")
    assert by_dir["rows"] == by_file["rows"] == catalog["rows"]


BAD_INPUT = [
    ((SEED, "--tp", "0"), "--tp and --pp must be 1 to 100,000"),
    ((SEED, "--tp", "-2"), "--tp and --pp must be 1 to 100,000"),
    ((SEED, "--tp", "four"), "Invalid value for '--tp'"),
    ((SEED, "--pp", "0"), "--tp and --pp must be 1 to 100,000"),
    ((SEED, "--prompt", "0"), "--prompt must be at least 1"),
    ((SEED, "--prompt", "-100"), "--prompt must be at least 1"),
    ((SEED, "--prompt", "lots"), "--prompt 'lots' is not a number"),
    ((SEED, "--prompt", "1.5"), "--prompt '1.5' is not a whole number"),
    ((SEED, "--prompt", "10Q"), "unknown suffix 'Q'"),
    ((SEED, "--prompt", "2000000000"), "--prompt must be 1 to 1,000,000,000 tokens"),
    ((SEED, "--chunk-sizes", "256,x"), "--chunk-sizes 'x' is not a number"),
    ((SEED, "--chunk-sizes", ","), "--chunk-sizes is empty"),
    ((SEED, "--chunk-size", "0"), "--chunk-size must be at least 1"),
    ((SEED, "--chunk-size", "256", "--chunk-sizes", "512"), "not both"),
    ((SEED, "--format", "xml"), "'xml' is not one of"),
    ((SEED, "--kv-dtype", "int3"), "unknown --kv-dtype 'int3'"),
    ((SEED, "--bogus"), "No such option: --bogus"),
    ((SEED, "--tp"), "requires an argument"),
    ((SEED, "--draft-layers", "0"), "--draft-layers must be 1 to 10,000"),
    (("Qwen/Qwen3-4B-Instructt",), "unknown model 'Qwen/Qwen3-4B-Instructt'"),
    (("Qwen/Qwen3-4B-Instructt",), "did you mean Qwen/Qwen3-4B-Instruct-2507"),
    (("./missing/config.json",), "no such file './missing/config.json'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(run, args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("kvsize: error: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("{not json", "is not valid JSON (line 1"),
        ("[1, 2]", "is JSON but not an object"),
        ("{}", "the config is empty"),
        ('{"model_type": "llama"}', "config has none of num_hidden_layers"),
        ('{"num_hidden_layers": 2}', "config has no model_type"),
        (
            '{"model_type": "llama", "num_hidden_layers": 100000, "num_attention_heads": 8, "hidden_size": 512}',
            "num_hidden_layers = 100000 is out of range",
        ),
    ],
)
def test_bad_config_files(run, tmp_path: Path, content, message):
    file = tmp_path / "config.json"
    file.write_text(content)
    result = run(str(file))
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_directory_without_config(run, tmp_path: Path):
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert "has no config.json" in result.stderr


def test_no_arguments_shows_help_and_exits_2(run):
    result = run()
    assert result.exit_code == 2
    assert "Usage" in result.stdout + result.stderr


def test_user_catalog_overrides_and_extends(run_json, run, tmp_path: Path):
    catalog = tmp_path / "mine.yaml"
    catalog.write_text(
        "version: 1\nmodels:\n  acme/tiny:\n    source: test\n    config:\n      model_type: llama\n"
        "      num_hidden_layers: 2\n      num_attention_heads: 4\n      num_key_value_heads: 2\n"
        "      hidden_size: 256\n      torch_dtype: float16\n"
    )
    data = run_json("acme/tiny", "--catalog", str(catalog))
    assert data["bytes_per_token"] == 2 * 2 * 2 * 64 * 2
    assert run_json(SEED, "--catalog", str(catalog))["bytes_per_token"] == 147_456  # bundled still there
    via_env = run("ACME/TINY", "--format", "json", env={"KVSIZE_CATALOG": str(catalog)})
    assert json.loads(via_env.stdout)["model"] == "acme/tiny"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("version: 1\nmodels:\n  a/b:\n    config: {}\n", "models.a/b.source: Field required"),
        ("version: 2\nmodels: {}\n", "version"),
        ("version: 1\nmodels: [\n", "is not valid YAML"),
    ],
)
def test_invalid_catalog_is_rejected(run, tmp_path: Path, content, message):
    catalog = tmp_path / "bad.yaml"
    catalog.write_text(content)
    result = run(SEED, "--catalog", str(catalog))
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_catalog_file(run, tmp_path: Path):
    result = run(SEED, "--catalog", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def kvsize_executable() -> str:
    found = shutil.which("kvsize", path=os.path.dirname(sys.executable)) or shutil.which("kvsize")
    assert found, "the kvsize console script is not installed"
    return found


def test_installed_executable_headline_command():
    result = subprocess.run(
        [kvsize_executable(), SEED, "--tp", "4", "--prompt", "100000"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "147,456 B/token" in result.stdout and "1,560" in result.stdout


def test_installed_executable_bad_input():
    result = subprocess.run([kvsize_executable(), SEED, "--tp", "3"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("kvsize: error: TP 3 does not divide")
    assert result.stderr.count("\n") == 1


def test_installed_executable_json():
    result = subprocess.run(
        [kvsize_executable(), "deepseek-ai/DeepSeek-R1", "--tp", "8", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["writers"] == 1
