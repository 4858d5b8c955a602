"""Every error names its source: the flag, or the environment variable as a variable (never as a flag it is not),
or the file; malformed, huge, non-finite and non-UTF-8 values alike."""

from __future__ import annotations

from pathlib import Path

import pytest

M = "Qwen/Qwen3-4B-Instruct-2507"


def one_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvsize: error: ") and len(lines[0]) <= 320, result.stderr
    return lines[0]


@pytest.mark.parametrize("version", ["1.²", "０.９", "1.٣", "v1.x", "9" * 400, "\udcff", "1..2", "nan"])
def test_a_version_that_is_not_one_names_the_flag(run, version):
    line = one_line(run(M, "--vllm-version", version))
    assert line.startswith("kvsize: error: --vllm-version ") and "is not a version: write it like 0.23.0" in line


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("ftp://mirror.example", "is not an http:// or https:// URL"),
        ("not a url", "holds a space, a control or a non-ASCII character"),
        ("mirror.example", "is not an http:// or https:// URL"),
        ("http://", "has no host"),
        ("https://mirror.example:port", "is not a URL"),
        ("https://mirror.example:99999", "is not a URL"),
        ("http://a\x01b", "holds a space, a control or a non-ASCII character"),
        ("https://mïrror.example", "holds a space, a control or a non-ASCII character"),
        ("https://\udcff", "holds a space, a control or a non-ASCII character"),
        ("https://" + "a" * 5000, None),
    ],
)
def test_a_bad_hf_endpoint_is_named_as_the_variable(run, endpoint, problem):
    line = one_line(run("acme/not-in-the-catalog", env={"HF_ENDPOINT": endpoint}))
    if problem is None:  # a long but well-formed URL: offline, so the cache is asked, and the error names the model
        assert "acme/not-in-the-catalog" in line
        return
    assert "HF_ENDPOINT " in line and problem in line and "unset it" in line, line


@pytest.mark.parametrize("gigabytes", ["1e-12", "0.0000000001"])
def test_lmcache_environment_is_named_as_the_variable_not_a_flag(run, gigabytes):
    line = one_line(run("check", M, env={"LMCACHE_MAX_LOCAL_CPU_SIZE": gigabytes}))
    assert "env LMCACHE_MAX_LOCAL_CPU_SIZE: max_local_cpu_size" in line and "less than one byte" in line
    assert "--cpu-buffer" not in line
    line = one_line(run("capacity", M, "--storage", "1TiB", env={"LMCACHE_MAX_LOCAL_CPU_SIZE": gigabytes}))
    assert "env LMCACHE_MAX_LOCAL_CPU_SIZE" in line and "--cpu-buffer" not in line


def test_lmcache_file_value_is_named_with_its_file(run, tmp_path: Path):
    config = tmp_path / "lmcache.yaml"
    config.write_text("max_local_cpu_size: 1.0e-12\n")
    line = one_line(run("check", M, "--lmcache-config", str(config)))
    assert f"{config}: max_local_cpu_size" in line and "--cpu-buffer" not in line


def test_lmcache_config_file_variable_is_named(run, tmp_path: Path):
    line = one_line(run("check", M, env={"LMCACHE_CONFIG_FILE": str(tmp_path / "none.yaml")}))
    assert "LMCache config (LMCACHE_CONFIG_FILE)" in line and "--lmcache-config" not in line
    line = one_line(run("check", M, env={"LMCACHE_CONFIG_FILE": str(tmp_path)}))
    assert "LMCache config (LMCACHE_CONFIG_FILE)" in line and "is a folder" in line


@pytest.mark.parametrize("value", ["{tmp}/none.yaml", "{tmp}", "\udcff/none.yaml", "/dev/null", "{tmp}/" + "x" * 300])
def test_kvsize_catalog_is_named_as_the_variable(run, tmp_path: Path, value):
    line = one_line(run(M, env={"KVSIZE_CATALOG": value.format(tmp=tmp_path)}))
    assert "catalog (KVSIZE_CATALOG)" in line and "--catalog" not in line, line


def test_kvsize_catalog_bad_content_is_named_as_the_variable(run, tmp_path: Path):
    catalog = tmp_path / "mine.yaml"
    catalog.write_bytes(b"version: 1\nmodels: \xff\n")
    line = one_line(run(M, env={"KVSIZE_CATALOG": str(catalog)}))
    assert "catalog (KVSIZE_CATALOG)" in line and "is not UTF-8" in line


def test_the_catalog_flag_is_still_named_as_the_flag(run, tmp_path: Path):
    line = one_line(run(M, "--catalog", str(tmp_path / "none.yaml")))
    assert "check the --catalog path or KVSIZE_CATALOG" in line
