"""The reference case: Qwen3-4B-Instruct-2507 at TP 4, a 100,000-token prompt (docs/rules.md)."""

from __future__ import annotations

import pytest

import kvsize

SEED = "Qwen/Qwen3-4B-Instruct-2507"


def test_seed_case_exact_numbers_through_the_cli(run_json):
    data = run_json(SEED, "--tp", "4", "--prompt", "100000")
    assert data["model"] == SEED
    assert (data["tp"], data["pp"], data["prompt_tokens"]) == (4, 1, 100_000)
    assert (data["kv_dtype"], data["dtype_bytes"]) == ("bfloat16", 2)
    assert data["bytes_per_token"] == 147_456
    assert data["bytes_per_token_per_rank"] == 36_864
    assert data["writers"] == 4
    rows = {row["chunk_tokens"]: row for row in data["rows"]}
    assert sorted(rows) == [256, 512, 1024, 2048, 4096]
    r256, r2048 = rows[256], rows[2048]
    assert r256["object_bytes"] == 9_437_184
    assert (r256["full_chunks"], r256["tail_tokens"], r256["tail_saved"]) == (390, 160, False)
    assert r256["objects"] == 1_560
    assert r256["total_bytes"] == 14_722_007_040
    assert (r256["header_bytes"], r256["stored_bytes"]) == (0, 14_722_007_040)
    assert r2048["object_bytes"] == 75_497_472
    assert (r2048["full_chunks"], r2048["tail_tokens"]) == (48, 1_696)
    assert r2048["objects"] == 192
    assert round(r2048["reduction_vs_256"], 1) == 8.1
    assert r2048["reduction_vs_256"] == 1560 / 192


def test_seed_case_table_shows_the_figures(run):
    result = run(SEED, "--tp", "4", "--prompt", "100000")
    assert result.exit_code == 0
    out = result.stdout
    for text in (
        "147,456 B/token",
        "36,864 B/token per writer",
        "1,560",
        "192",
        "9 MiB",
        "72 MiB",
        "8.1x",
        "160 dropped",
        "prompt 100,000 tokens",
    ):
        assert text in out, text


def test_seed_case_through_the_library():
    spec = kvsize.resolve_model("qwen/qwen3-4b-instruct-2507")  # case-insensitive
    sweep = kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000, [2048, 256])
    assert [(r.chunk_tokens, r.objects, r.object_bytes) for r in sweep.rows] == [
        (256, 1560, 9_437_184),
        (2048, 192, 75_497_472),
    ]
    assert sweep.layout.bytes_per_token == 147_456


def test_prompt_suffixes_are_echoed_resolved(run_json):
    assert run_json(SEED, "--prompt", "100k")["prompt_tokens"] == 100_000
    assert run_json(SEED, "--prompt", "128Ki")["prompt_tokens"] == 131_072
    assert run_json(SEED, "--prompt", "1M")["prompt_tokens"] == 1_000_000


def test_library_docstring_example_runs():
    import doctest

    results = doctest.testmod(kvsize, verbose=False)
    assert results.attempted >= 3 and results.failed == 0


def test_every_public_name_resolves_and_lazy_ones_load_on_first_use():
    import subprocess
    import sys

    for name in kvsize.__all__:
        assert getattr(kvsize, name) is not None, name
    # the time model is not loaded by importing the library, only by its first use
    script = (
        "import sys, kvsize; print('kvsize.storage' in sys.modules); kvsize.TimeOptions; print('kvsize.storage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        kvsize.nonsense  # noqa: B018
