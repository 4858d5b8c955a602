"""``kvsize replay`` through the CLI: the shipped trace (a slice in CI), the library call's JSON, a generated workload
and its written trace, the outputs, and every bad input as one line naming the line, exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import kvsize
from tests.conftest import DATA

SEED = "Qwen/Qwen3-4B-Instruct-2507"
SLICE = DATA / "traces" / "mooncake-conversation-slice.jsonl"
GOOD = {"timestamp": 0, "input_length": 1300, "output_length": 5, "hash_ids": [1, 2, 3]}


def test_the_shipped_trace_replays_through_the_cli(run):
    result = run("replay", SEED, str(SLICE), "--tp", "4", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["trace"]["requests"] == 600 and data["trace"]["trace_block"] == 512
    assert [row["chunk_tokens"] for row in data["rows"]] == [256, 512, 1024, 2048, 4096]
    for row in data["rows"]:
        assert row["objects_stored"] % 4 == 0 and row["objects_loaded"] % 4 == 0  # every TP rank's objects
        assert 0 < row["hit_tokens"] <= row["input_tokens"] and row["storage_needed_bytes"] == row["bytes_stored"]
        assert row["capacity_90_bytes"] <= row["capacity_99_bytes"] <= row["storage_needed_bytes"]
        for key in ("chunk_tokens", "requests", "hit_tokens", "objects_stored", "objects_loaded", "bytes_stored", "bytes_loaded"):
            assert isinstance(row[key], int)
    hits = [row["hit_tokens"] for row in data["rows"]]
    assert hits == sorted(hits, reverse=True)  # a larger chunk never hits more here: coarser reuse


def test_the_library_call_is_the_command_json(run):
    args = (
        "--tp",
        "2",
        "--backend",
        "s3",
        "--gpu",
        "h100",
        "--cpu-tier",
        "4GiB",
        "--storage",
        "2TiB",
        "--chunk-sizes",
        "256,2048",
    )
    cli = run("replay", SEED, str(SLICE), *args, "--format", "json")
    assert cli.exit_code == 0, cli.stderr
    call = kvsize.replay(
        SEED,
        SLICE,
        serving=kvsize.Serving(tp=2),
        storage=kvsize.Storage(backend="s3"),
        gpu=kvsize.Gpu(gpu="h100"),
        options=kvsize.Replay(cpu_tier=4 * 2**30, storage_capacity=2 * 2**40),
        chunk_sizes=[256, 2048],
    )
    assert json.loads(cli.stdout) == json.loads(json.dumps(call.model_dump(mode="json")))
    assert call.recommended_chunk_tokens in (256, 2048) and call.gpu is not None
    row = call.rows[0]
    assert row.load_seconds_median is not None and row.past_timeout_share is not None and row.cpu_tier_chunks
    assert row.hit_tokens == row.gpu_hit_tokens + row.cpu_hit_tokens + row.storage_hit_tokens


def test_table_and_markdown(run):
    table = run("replay", SEED, str(SLICE), "--backend", "nvme", "--chunk-sizes", "512,2048")
    assert table.exit_code == 0, table.stderr
    assert "Hits and storage traffic" in table.stdout and "Loads on nvme" in table.stdout and " * " in table.stdout
    markdown = run("replay", SEED, str(SLICE), "--format", "markdown", "--chunk-sizes", "512")
    assert markdown.stdout.startswith("## Trace replay: Qwen/Qwen3-4B-Instruct-2507")
    assert "### Assumptions and sources" in markdown.stdout and "Reuse rule:" in markdown.stdout


def test_plot(run, tmp_path: Path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "replay.png"
    result = run("replay", SEED, str(SLICE), "--backend", "s3", "--chunk-sizes", "256,1024", "--plot", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run("replay", SEED, str(SLICE), "--plot", str(tmp_path / "x.txt")).exit_code == 2


def test_a_generated_workload_is_seeded_and_written_as_a_trace(run, tmp_path: Path):
    flags = ("--requests", "300", "--rate", "4", "--prompt-lengths", "2k:3,8k:1", "--shared-prefix", "1500", "--turns", "3")
    first = run("replay", SEED, *flags, "--seed", "7", "--format", "json")
    again = run("replay", SEED, *flags, "--seed", "7", "--format", "json")
    other = run("replay", SEED, *flags, "--seed", "8", "--format", "json")
    assert first.exit_code == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout != other.stdout
    data = json.loads(first.stdout)
    assert data["trace"]["source"] == "generated" and data["trace"]["generated"]["turns"] == 3
    assert data["rows"][0]["hit_tokens"] > 0  # the shared prefix and the turns reuse
    written = tmp_path / "trace.jsonl"
    emitted = run("replay", SEED, *flags, "--seed", "7", "--emit-trace", str(written), "--format", "json")
    assert emitted.exit_code == 0 and len(written.read_text().splitlines()) == 300
    replayed = json.loads(run("replay", SEED, str(written), "--format", "json").stdout)
    assert replayed["rows"] == data["rows"]
    again = run("replay", SEED, *flags, "--emit-trace", str(written))
    assert again.exit_code == 2 and "exists; give a new file name" in again.stderr


def test_the_generator_keeps_the_trace_format():
    trace = kvsize.SyntheticTrace(requests=50, rate=2.0, prompt_lengths=[(700, 1), (1500, 2)], shared_prefix=600, turns=4)
    lines = [json.loads(line) for line in trace.lines()]
    assert len(lines) == 50
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)
    for line in lines:
        assert len(line["hash_ids"]) == -(-line["input_length"] // 512) and line["hash_ids"][0] == 0  # the shared block
        assert all(0 <= h < 2**53 for h in line["hash_ids"])


def _write(tmp_path: Path, *lines: str | bytes) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(line if isinstance(line, bytes) else line.encode() + b"\n" for line in lines))
    return path


GOOD_LINE = json.dumps(GOOD)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((GOOD_LINE, "{not json"), "line 2: not JSON"),
        ((GOOD_LINE, "[1, 2]"), "line 2: not a JSON object"),
        (('{"timestamp": 0, "input_length": -5, "output_length": 1, "hash_ids": []}',), "line 1: input_length must be 1 to"),
        (('{"timestamp": 0, "input_length": NaN, "output_length": 1, "hash_ids": []}',), "line 1: not JSON (NaN is not a number"),
        (('{"timestamp": 0, "input_length": 1e3, "output_length": 1, "hash_ids": [1, 2]}',), "must be a whole number"),
        (('{"timestamp": 0, "input_length": true, "output_length": 1, "hash_ids": [1]}',), "must be a whole number, got True"),
        (('{"timestamp": Infinity, "input_length": 5, "output_length": 1, "hash_ids": [1]}',), "not JSON (Infinity"),
        (('{"timestamp": -1, "input_length": 5, "output_length": 1, "hash_ids": [1]}',), "line 1: timestamp must be 0 to"),
        (('{"timestamp": 0, "input_length": 1300, "output_length": 1, "hash_ids": [1, 2]}',), "too short for input_length 1,300"),
        (('{"timestamp": 0, "input_length": 1300, "output_length": 1, "hash_ids": [1, 2, 3, 4]}',), "too long for input_length"),
        (('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}',), "must hold whole numbers"),
        (('{"timestamp": 0, "input_length": 5, "hash_ids": [1]}',), "line 1: no output_length"),
        ((GOOD_LINE, json.dumps({**GOOD, "timestamp": -0.5})), "line 2: timestamp must be 0"),
        ((json.dumps({**GOOD, "timestamp": 5000}), GOOD_LINE), "line 2: timestamp 0 ms is before the previous line's 5000"),
        ((GOOD_LINE, b'{"timestamp": 1, "caf\xe9": 1}\n'), "line 2 is not UTF-8 (byte"),
        (("[" * 100_000,), "line 1: it is nested too deeply"),
        (('{"timestamp": 0, "input_length": ' + "9" * 5000 + "}",), "line 1: not JSON"),
    ],
)
def test_bad_lines_are_one_line_naming_the_line(run, tmp_path: Path, lines, message):
    result = run("replay", SEED, str(_write(tmp_path, *lines)))
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_1_gb_file_is_refused_at_its_first_line_without_reading_it(run, tmp_path: Path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write((GOOD_LINE + "\n").encode())
        handle.truncate(2**30)  # sparse: a gigabyte of zero bytes after one good line
    result = run("replay", SEED, str(path))
    assert result.exit_code == 2 and "line 2 is longer than 16 MiB" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.jsonl",), "cannot read trace missing.jsonl"),
        ((".",), "is not a regular file"),
        (("EMPTY",), "the trace has no requests"),
        (("GOOD", "--chunk-sizes", "384"), "a replay needs 512 % chunk == 0 or chunk % 512 == 0"),
        (("GOOD", "--trace-block", "0"), "--trace-block must be 1 to"),
        (("GOOD", "--cpu-tier", "-1GiB"), "--cpu-tier"),
        (("GOOD", "--storage", "nan"), "--storage"),
        (("GOOD", "--storage", "\udcff"), "--storage"),
        (("GOOD", "--requests", "5"), "give TRACE or the workload flags, not both"),
        (("--requests", "0"), "--requests must be 1 to"),
        (("--rate", "nan"), "--rate must be a finite number"),
        (("--rate", "-2"), "--rate must be more than 0"),
        (("--prompt-lengths", "2k:-1"), "--prompt-lengths weight must be more than 0"),
        (("--prompt-lengths", "2k:inf"), "--prompt-lengths weight must be a finite number"),
        (("--prompt-lengths", "lots"), "--prompt-lengths 'lots' is not a number"),
        (("--turns", "0"), "--turns must be 1 to"),
        (("GOOD", "--trace-block", str(2**30)), "--trace-block must be 1 to 1,048,576 tokens"),
        (("GOOD", "--cpu-tier", "nan"), "--cpu-tier 'nan' is not a number"),
        (("GOOD", "--cpu-tier", "\udcff"), "--cpu-tier '\\udcff' is not a number"),
        (("--prompt-lengths", "\udcff"), "--prompt-lengths '\\udcff' is not a number"),
        (("--prompt-lengths", "1e400"), "--prompt-lengths '1e400' is not a number"),
        (("--prompt-lengths", ",".join(["1k"] * 70)), "--prompt-lengths must be 1 to 64"),
        (("--output-tokens", "-1"), "--output-tokens must be at least 1"),
        (("--seed", "-1"), "--seed must be 0 to"),
        (("--shared-prefix", "inf"), "--shared-prefix 'inf' is not a number"),
        (("--requests", str(10**12)), "--requests must be 1 to 10,000,000"),
        (("--rate", "inf"), "--rate must be a finite number"),
        (("--requests", "3", "--emit-trace", "/nonexistent/dir/t.jsonl"), "cannot write --emit-trace"),
        ((), "give a TRACE file, or the workload flags"),
        (("GOOD", "--prompt", "5"), "No such option: --prompt"),
    ],
)
def test_bad_arguments_are_one_line(run, tmp_path: Path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").write_text("\n\n")
    (tmp_path / "GOOD").write_text(GOOD_LINE + "\n")
    result = run("replay", SEED, *args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(run, tmp_path: Path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = run("replay", SEED, str(fifo))
    assert result.exit_code == 2 and "is not a regular file" in result.stderr


def test_library_arguments_are_checked():
    with pytest.raises(kvsize.KvsizeError, match="`prompt` does not apply to a replay"):
        kvsize.replay(SEED, SLICE, workload=kvsize.Workload(prompt=5))
    with pytest.raises(kvsize.KvsizeError, match="`trace` must be a JSONL file"):
        kvsize.replay(SEED, 42)  # type: ignore[arg-type]
    with pytest.raises(kvsize.KvsizeError, match=r"`options` must be kvsize\.Replay"):
        kvsize.replay(SEED, SLICE, options={"cpu_tier": 5})  # type: ignore[arg-type]
    with pytest.raises(kvsize.KvsizeError, match="`storage_capacity` must be"):
        kvsize.Replay(storage_capacity=0)
    with pytest.raises(kvsize.KvsizeError, match="`prompt_lengths`"):
        kvsize.SyntheticTrace(prompt_lengths=[])


def test_a_progress_bar_only_on_a_terminal_after_a_second(monkeypatch):
    import sys

    from kvsize.cli import replay as command

    clock = [100.0]
    monkeypatch.setattr(command.time, "monotonic", lambda: clock[0])
    bar = command.Progress()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar(10, 100)
    assert bar.bar is None  # under a second: nothing shown
    clock[0] += 1.5
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    bar(20, 100)
    assert bar.bar is None  # not a terminal: nothing shown
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar(30, 100)
    assert bar.bar is not None and bar.bar.tasks[0].completed == 30
    bar.close()
