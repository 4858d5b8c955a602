from __future__ import annotations

import pytest

from kvsize import KvsizeError, format_iec, parse_count, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100000", 100_000),
        ("100k", 100_000),
        ("100K", 100_000),
        ("128Ki", 131_072),
        ("1M", 1_000_000),
        ("1Mi", 1_048_576),
        ("1.5k", 1_500),
        ("100,000", 100_000),
        ("100_000", 100_000),
        (" 2k ", 2_000),
    ],
)
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a number"),
        ("abc", "is not a number"),
        ("0", "at least 1"),
        ("-3", "at least 1"),
        ("1.5", "not a whole number"),
        ("1.0001k", "not a whole number"),
        ("5X", "unknown suffix"),
    ],
)
def test_parse_count_rejects(text, message):
    with pytest.raises(KvsizeError, match=message):
        parse_count(text, "--prompt")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9MiB", 9 * 2**20),
        ("72MB", 72_000_000),
        ("4096", 4096),
        ("5GiB", 5 * 2**30),
        ("1.5KiB", 1536),
        ("10 TiB", 10 * 2**40),
        ("2kB", 2000),
    ],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize(("text", "value"), [("10s", 10.0), ("500ms", 0.5), ("80us", 0.00008), ("2", 2.0), ("2min", 120.0)])
def test_parse_duration(text, value):
    assert parse_duration(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "value"), [("90MB/s", 90e6), ("10Gbit/s", 1.25e9), ("1GiB/s", 2**30), ("25GB/s", 25e9)])
def test_parse_rate(text, value):
    assert parse_rate(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (9_437_184, "9 MiB"),
        (14_722_007_040, "13.71 GiB"),
        (75_497_472, "72 MiB"),
    ],
)
def test_format_iec(n, text):
    assert format_iec(n) == text
