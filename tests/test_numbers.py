"""The number grammar of every count, size, rate and duration: a comma or an underscore separates thousands only, in
groups of three; a decimal comma (``1,5k``) is refused with the fix, never read as another number."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvsize import KvsizeError, parse_count, parse_duration, parse_rate, parse_size

M = "Qwen/Qwen3-4B-Instruct-2507"
# CI draws a fixed set (derandomized); KVSIZE_FUZZ_EXAMPLES=5000 explores afresh.
EXAMPLES = int(os.environ.get("KVSIZE_FUZZ_EXAMPLES", "300"))
FIXED = settings(max_examples=EXAMPLES, derandomize="KVSIZE_FUZZ_EXAMPLES" not in os.environ, deadline=None)


@pytest.mark.parametrize(
    ("args", "shown", "fix"),
    [
        ((M, "--prompt", "1,5k"), "'1,5k'", "1.5k"),
        (("check", M, "--max-object-size", "1,5GiB"), "'1,5GiB'", "1.5GiB"),
        ((M, "--backend", "s3", "--cpu-buffer", "7,5GiB"), "'7,5GiB'", "7.5GiB"),
        (("check", M, "--cpu-buffer", "7,5GiB"), "'7,5GiB'", "7.5GiB"),
        ((M, "--stream-bandwidth", "1,5GB/s", "--latency", "1ms", "--concurrency", "4"), "'1,5GB/s'", "1.5GB/s"),
        ((M, "--latency", "1,5ms", "--stream-bandwidth", "1GB/s", "--concurrency", "4"), "'1,5ms'", "1.5ms"),
        (("capacity", M, "--storage", "2,5TiB"), "'2,5TiB'", "2.5TiB"),
        (("capacity", M, "--prompts", "10", "--shared-prefix", "2,5k"), "'2,5k'", "2.5k"),
    ],
)
def test_a_decimal_comma_is_refused_with_the_fix(run, args, shown, fix):
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = result.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("kvsize: error: --") and shown in line, line
    assert "separates thousands only" in line and line.endswith(f"write a point: {fix}"), line


@pytest.mark.parametrize("text", ["1,0k", "10,00", "1_0", "1,000_000", "12,34,567", "1,000,", "1,5.5k", "1__000"])
def test_separators_out_of_groups_of_three_are_refused(run, text):
    result = run(M, "--prompt", text)
    assert result.exit_code == 2 and f"--prompt {text!r}" in result.stderr and "groups of three" in result.stderr


@pytest.mark.parametrize(("text", "tokens"), [("100,000", 100_000), ("1,234,567", 1_234_567), ("100_000", 100_000)])
def test_thousands_separators_still_read(run_json, text, tokens):
    assert run_json(M, "--prompt", text)["prompt_tokens"] == tokens


def test_a_grouped_limit_reads(run):
    result = run("check", M, "--max-object-size", "1,024MiB", "--format", "json")
    assert json.loads(result.stdout)["limits"]["max_object_bytes"] == 1024 * 2**20


@pytest.mark.parametrize("value", [True, 1, 1.5, None, b"1k", ["1k"]])
def test_the_parsers_take_text_only(value):
    for parse in (parse_count, parse_size, parse_rate, parse_duration):
        with pytest.raises(KvsizeError, match="must be given as text"):
            parse(value)


def _grouped(n: int, mark: str) -> str:
    return f"{n:,}".replace(",", mark)


SCALES = {"": 1, "k": 10**3, "M": 10**6, "Ki": 2**10, "Mi": 2**20}
SIZES = {"": 1, "B": 1, "kB": 10**3, "MB": 10**6, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@FIXED
@given(n=st.integers(1, 10**20), mark=st.sampled_from([",", "_"]), unit=st.sampled_from(sorted(SCALES)))
def test_grouped_counts_round_trip(n, mark, unit):
    assert parse_count(_grouped(n, mark) + unit) == n * SCALES[unit]


@FIXED
@given(
    n=st.integers(0, 10**15),
    fraction=st.integers(0, 999),
    mark=st.sampled_from([",", "_"]),
    unit=st.sampled_from(sorted(SIZES)),
    space=st.sampled_from(["", " "]),
)
def test_grouped_sizes_rates_and_durations_round_trip(n, fraction, mark, unit, space):
    text = f"{_grouped(n, mark)}.{fraction:03d}"
    exact = Decimal(f"{n}.{fraction:03d}")
    if exact * SIZES[unit] == int(exact * SIZES[unit]) and exact > 0:
        assert parse_size(text + space + unit) == int(exact * SIZES[unit])
    if exact > 0 and unit not in ("", "B"):
        assert parse_rate(f"{text}{space}{unit}/s") == float(exact * SIZES[unit])
    if exact > 0:
        assert parse_duration(f"{text}{space}ms") == float(exact * Decimal("0.001"))


@st.composite
def separated(draw: st.DrawFn) -> tuple[str, bool]:
    """Digits cut into groups by one separator; valid only when every group after the first has three digits."""
    mark = draw(st.sampled_from([",", "_"]))
    groups = draw(st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=2, max_size=5))
    groups[0] = str(draw(st.integers(1, 9))) + groups[0][1:]
    valid = len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])
    return mark.join(groups), valid


@FIXED
@given(case=separated(), unit=st.sampled_from(["", "k", "Mi"]), tail=st.sampled_from(["", ".5"]))
def test_only_groups_of_three_are_read(case, unit, tail):
    text, valid = case
    if valid:
        exact = Decimal(text.replace(",", "").replace("_", "") + tail) * SCALES[unit]
        if exact == int(exact):
            assert parse_count(f"{text}{tail}{unit}") == exact
        else:
            with pytest.raises(KvsizeError, match="not a whole number"):
                parse_count(f"{text}{tail}{unit}")
    else:
        for parse in (parse_count, parse_size, parse_rate, parse_duration):
            with pytest.raises(KvsizeError, match="separates thousands only, in groups of three digits"):
                parse(f"{text}{tail}{unit}")


@FIXED
@given(text=st.text(max_size=30))
def test_any_text_parses_or_is_one_line(text):
    for parse in (parse_count, parse_size, parse_rate, parse_duration):
        try:
            value = parse(text)
        except KvsizeError as error:
            assert "\n" not in str(error) and len(str(error)) < 300
        else:
            assert value > 0 and value == value and value != float("inf")
