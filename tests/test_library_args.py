"""Every library argument is validated by the rules of its flag: a bad value (a bool, a negative, zero, NaN,
infinity, a huge integer, text, a fraction where a count is due) is a ``KvsizeError`` whose ``field`` names the
argument, never a TypeError, AttributeError, ValidationError or StopIteration, and never a silently wrong number."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvsize

M = "Qwen/Qwen3-4B-Instruct-2507"
EXAMPLES = int(os.environ.get("KVSIZE_FUZZ_EXAMPLES", "200"))
FIXED = settings(
    max_examples=EXAMPLES,
    derandomize="KVSIZE_FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HUGE = 10**30
# Bad for every argument that is a count or a byte size (whole numbers of at least 1).
BAD_COUNTS: list[Any] = [True, False, -1, 0, 1.5, 2.0, math.nan, math.inf, HUGE, "100k", "4", [4]]
# Bad for every argument that is a float of at least 0 (seconds, rates).
BAD_FIGURES: list[Any] = [True, -1, -0.5, math.nan, math.inf, -math.inf, 1e300, "1ms", [1.0]]

TIMED = {"backend": ["s3"]}
SIZE_COUNTS = {
    "tp": {},
    "pp": {},
    "prompt": {},
    "chunk_size": {},
    "gpu_block_size": {"engine": "vllm"},
    "host_cpus": TIMED,
    "draft_layers": {},
    "concurrency": TIMED,
    "part_size": TIMED,
    "concurrent_prompts": TIMED,
    "instances": TIMED,
    "cpu_buffer": TIMED,
    "pinned_memory": TIMED,
    "shared_prefix": TIMED,
}
SIZE_FIGURES = {
    "latency": TIMED,
    "stream_bandwidth": TIMED,
    "aggregate_bandwidth": TIMED,
    "max_requests_per_s": TIMED,
    "blocking_timeout": TIMED,
    "prefill_tps": TIMED,
    "mfu": TIMED,
    "kv_offloading_size": {"engine": "vllm", "tier": "cpu"},
}
CHECK_COUNTS = {
    "tp": {},
    "pp": {},
    "prompt": {},
    "chunk_size": {},
    "max_objects": {},
    "max_object_size": {},
    "max_total_bytes": {},
    "concurrency": {"backend": "s3"},
    "concurrent_prompts": {"backend": "s3"},
    "instances": {"backend": "s3"},
    "cpu_buffer": {},
    "pinned_memory": {},
    "host_cpus": {"backend": "s3"},
}
CHECK_FIGURES = {
    "max_load_seconds": {"backend": "s3"},
    "latency": {"backend": "s3"},
    "blocking_timeout": {},
    "prefill_tps": {"backend": "s3"},
    "mfu": {"backend": "s3"},
}
CAPACITY_COUNTS = {
    "tp": {"prompts": 10},
    "pp": {"prompts": 10},
    "prompt": {"prompts": 10},
    "chunk_size": {"prompts": 10},
    "storage": {},
    "prompts": {},
    "shared_prefix": {"prompts": 10},
}


def refused(call: Callable[..., Any], field: str, **kwargs: Any) -> kvsize.KvsizeError:
    """``call(**kwargs)`` raises a KvsizeError naming ``field``; any other outcome fails with what happened."""
    try:
        result = call(**kwargs)
    except kvsize.KvsizeError as error:
        assert error.field == field, f"{kwargs}: field {error.field!r}, not {field!r}: {error}"
        assert "\n" not in str(error) and len(str(error)) < 300
        return error
    except Exception as error:  # the point: nothing but a KvsizeError
        raise AssertionError(f"{kwargs}: {type(error).__name__}: {error}") from None
    raise AssertionError(f"{kwargs}: accepted, gave {type(result).__name__}")


def _zero_is_valid(name: str) -> bool:
    return name in ("latency",)  # a fitted latency may be 0


def figures(names: dict[str, dict[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.sampled_from(sorted(names)).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.sampled_from(BAD_FIGURES + ([] if _zero_is_valid(name) else [0, 0.0])),
        )
    )


def counts(names: dict[str, dict[str, Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    return st.tuples(st.sampled_from(sorted(names)), st.sampled_from(BAD_COUNTS))


@FIXED
@given(st.one_of(counts(SIZE_COUNTS), figures(SIZE_FIGURES)))
def test_size_refuses_bad_numbers(case):
    name, value = case
    extra = SIZE_COUNTS.get(name, SIZE_FIGURES.get(name, {}))
    refused(lambda **kw: kvsize.size(M, **kw), name, **extra, **{name: value})


@FIXED
@given(st.one_of(counts(CHECK_COUNTS), figures(CHECK_FIGURES)))
def test_check_refuses_bad_numbers(case):
    name, value = case
    extra = CHECK_COUNTS.get(name, CHECK_FIGURES.get(name, {}))
    refused(lambda **kw: kvsize.check(M, **kw), name, **extra, **{name: value})


@FIXED
@given(counts(CAPACITY_COUNTS))
def test_capacity_refuses_bad_numbers(case):
    name, value = case
    refused(lambda **kw: kvsize.capacity(M, **kw), name, **CAPACITY_COUNTS[name], **{name: value})


@FIXED
@given(
    st.one_of(
        counts({"tp": {}, "pp": {}, "prompt": {}}),
        st.tuples(st.just("chunk_sizes"), st.sampled_from([[value] for value in BAD_COUNTS] + ["256"])),
    )
)
def test_compare_engines_refuses_bad_numbers(case):
    name, value = case
    refused(lambda **kw: kvsize.compare_engines(M, **kw), name, **{name: value})


PROBE_SETS = {"object_sizes": [4096], "concurrency": [1], "objects": 1, "max_bytes": 4096, "time_limit": 5.0}


@FIXED
@given(
    st.one_of(
        counts({"objects": {}, "max_bytes": {}}),
        st.tuples(st.sampled_from(["object_sizes", "concurrency"]), st.sampled_from([[v] for v in BAD_COUNTS] + [[]])),
        st.tuples(st.just("time_limit"), st.sampled_from([*BAD_FIGURES, 0])),
    )
)
def test_probe_refuses_bad_numbers_before_measuring(tmp_path_factory, case):
    name, value = case
    target = tmp_path_factory.mktemp("target")
    refused(lambda **kw: kvsize.probe(str(target), **kw), name, **{**PROBE_SETS, name: value})
    assert list(target.iterdir()) == []


# --- the cases as they were found ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: kvsize.size(M, tp=True), "tp"),
        (lambda: kvsize.size(M, pp=True), "pp"),
        (lambda: kvsize.size(M, prompt=True), "prompt"),
        (lambda: kvsize.size(M, prompt="100k"), "prompt"),
        (lambda: kvsize.size(M, tp=2.0), "tp"),
        (lambda: kvsize.size(M, backend=["s3"], shared_prefix=-1), "shared_prefix"),
        (lambda: kvsize.capacity(M, prompts=10, shared_prefix=-1), "shared_prefix"),
        (lambda: kvsize.capacity(M, storage=-1), "storage"),
        (lambda: kvsize.capacity(M, storage=True), "storage"),
        (lambda: kvsize.check(M, max_object_size=-1), "max_object_size"),
        (lambda: kvsize.check(M, max_object_size=0), "max_object_size"),
        (lambda: kvsize.check(M, max_total_bytes=0), "max_total_bytes"),
        (lambda: kvsize.check(M, max_objects=True), "max_objects"),
        (lambda: kvsize.check(M, backend="s3", max_load_seconds=0), "max_load_seconds"),
        (lambda: kvsize.check(M, backend="s3", max_load_seconds=-1.0), "max_load_seconds"),
        (lambda: kvsize.probe("/nonexistent-kvsize-target", object_sizes=[]), "object_sizes"),
        (lambda: kvsize.probe("/nonexistent-kvsize-target", model=M, chunk_sizes=[]), "chunk_sizes"),
        (lambda: kvsize.size(M, vllm_version=33), "vllm_version"),
        (lambda: kvsize.size(M, chunk_sizes=[]), "chunk_sizes"),
    ],
)
def test_library_arguments_are_checked_like_their_flags(call, field):
    refused(call, field)


def test_one_backend_given_as_text_is_one_backend():
    one = kvsize.size(M, backend="s3", prompt=10_000)
    listed = kvsize.size(M, backend=["s3"], prompt=10_000)
    assert one.model_dump(mode="json") == listed.model_dump(mode="json")
    assert [plan.backend.name for plan in one.plans] == ["s3"]


def test_paths_may_be_text(tmp_path: Path):
    catalog = tmp_path / "mine.yaml"
    catalog.write_text("version: 1\nmodels: {}\n")
    assert kvsize.size(M, catalog=str(catalog), prompt=10_000).sweep.spec.name == M
    lmcache = tmp_path / "lmcache.yaml"
    lmcache.write_text("chunk_size: 512\n")
    assert kvsize.check(M, lmcache_config=str(lmcache)).chunk_tokens == 512
    assert kvsize.capacity(M, lmcache_config=str(lmcache), prompts=2).capacity.chunk_tokens == 512
    target = tmp_path / "target"
    target.mkdir()
    saved = tmp_path / "profile.yaml"
    kvsize.probe(str(target), save_profile=str(saved), **PROBE_SETS)
    assert "stream_bandwidth" in saved.read_text() or "aggregate_bandwidth" in saved.read_text()
    missing = tmp_path / "no-such-folder" / "p.yaml"
    refused(lambda: kvsize.probe(str(target), save_profile=str(missing), **PROBE_SETS), "save_profile")


def test_a_missing_text_path_is_one_line():
    with pytest.raises(kvsize.KvsizeError, match="does not exist"):
        kvsize.size(M, catalog="/nonexistent/kvsize-catalog.yaml")
    with pytest.raises(kvsize.KvsizeError, match="cannot read LMCache config"):
        kvsize.check(M, lmcache_config="/nonexistent/lmcache.yaml")
