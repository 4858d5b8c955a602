"""Everything kvsize emits reads back as exactly what it means: `--emit vllm|sglang|kvbm|lmcache` and
`kvsize probe --emit fio`, fed hostile model names and paths (shell metacharacters, newlines, quotes, `$()`,
backticks, `#`, `:`, unicode), parsed by their readers: `sh` itself and `shlex.split` for shell lines,
`yaml.safe_load` and kvsize's LMCache reader for YAML and its `LMCACHE_*` form, fio's own parser for job files."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvsize
from kvsize.engines import kvbm_settings, sglang_settings, vllm_settings
from kvsize.engines.lmcache_emit import CONNECTOR_SETTINGS, emit_settings, env_text
from kvsize.engines.lmcache_settings import (
    GIB,
    MAX_CHUNK,
    MAX_CPU_GB,
    MAX_TIMEOUT_S,
    read_settings,
)
from kvsize.errors import KvsizeError
from kvsize.quoting import comment_text, env_assignment, exact_number, fio_comment, fio_value, shell_line, yaml_mapping
from kvsize.storage.fio import fio_job
from tests.conftest import CONFIGS
from tests.test_hardening import one_line

SEED = "Qwen/Qwen3-4B-Instruct-2507"
SH = shutil.which("sh")
FIO = shutil.which("fio")
# CI runs a fixed set of examples (derandomized); KVSIZE_FUZZ_EXAMPLES=5000 draws afresh (as tests/test_fuzz.py).
EXAMPLES = int(os.environ.get("KVSIZE_FUZZ_EXAMPLES", "150"))
DERANDOMIZE = "KVSIZE_FUZZ_EXAMPLES" not in os.environ
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOSTILE = "$()`'\"\\;&|<>#:*?!{}[]~ =%\n\r\t\x0b\x0c\x1b\x85\u2028\u2029\u202eé漢🙂-./"
NAMES = st.text(
    alphabet=st.one_of(st.sampled_from(HOSTILE), st.characters(blacklist_categories=["Cs"], blacklist_characters="\0")),
    min_size=1,
    max_size=40,
)
PAYLOADS = ["m$(touch MARK);x", "`touch MARK`", "a b; touch MARK", "m\ntouch MARK #", "x'\"$HOME\\;#", "é 漢\u2028touch MARK"]
STUBS = {
    "vllm": "vllm() { printf '%s\\0' \"$@\"; }\n",
    "sglang": 'python() { printf \'%s\\0\' "$SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR" "$@"; }\n',
    "kvbm": "vllm() { printf '%s\\0' \"$@\" > ARGS; }\n",
}


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (a newline, a terminal escape, ...): never written into a shell
    line, so an emitter that would put it there refuses."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def ran_by_sh(text: str, emit: str, cwd: Path) -> list[str]:
    """What ``sh`` does with the emitted text, pasted as it is: the arguments the engine's command receives (the
    storage directory first for SGLang), or for KVBM the ``DYN_KVBM_*`` variables it exports."""
    after = "\nenv -0 | grep -z ^DYN_KVBM_ | sort -z\n" if emit == "kvbm" else ""
    assert SH is not None
    out = subprocess.run([SH, "-c", STUBS[emit] + text + after], capture_output=True, cwd=cwd, check=True, timeout=30)
    assert out.stderr == b"", out.stderr
    return os.fsdecode(out.stdout).split("\0")[:-1]


def words(text: str) -> list[str]:
    """The words ``shlex.split`` reads from the emitted text, comment lines dropped, continuation lines joined."""
    return shlex.split(text.replace(" \\\n", " "), comments=True)


def one_line_comments(text: str, marker: str = "#") -> None:
    """No comment carries a raw line break or control: every comment line is printable (no ``\\r``, ``\\x85``,
    ``\\u2028`` a reader could take for a line break), and the text ends with a newline. (A quoted shell argument
    may hold them raw: ``sh`` reads them back as they are.)"""
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        if line.startswith(marker):
            assert line.isprintable(), line


# --- the quoting layer ---------------------------------------------------------------------------------------


def test_comment_text_leaves_printable_text_and_escapes_the_rest():
    assert comment_text("Qwen/Qwen3-4B, TP 4 x PP 1: 7 GB (it's 漢字)") == "Qwen/Qwen3-4B, TP 4 x PP 1: 7 GB (it's 漢字)"
    assert comment_text("a\nb") == "a\\nb"
    assert comment_text("a\\nb\n") == "a\\\\nb\\n"  # once escaped, a backslash is doubled: both read apart
    assert comment_text("\r\t\x1b[2J\x85\u2028\u2029\u202e\udcff") == "\\r\\t\\x1b[2J\\x85\\u2028\\u2029\\u202e\\udcff"
    assert comment_text("\U000e0001") == "\\U000e0001"


def test_exact_number():
    assert [exact_number(v) for v in (7, 7.0, 1441950.0, 1.5, 2**60, 0.1)] == ["7", "7", "1441950", "1.5", str(2**60), "0.1"]


def test_shell_values():
    assert shell_line(["vllm", "serve", SEED, "--block-size", "16"]) == f"vllm serve {SEED} --block-size 16"
    assert shell_line(["a b; echo x", "$(x)", ""]) == "'a b; echo x' '$(x)' ''"
    assert env_assignment("X", "<DIR>") == "X='<DIR>'" and env_assignment("N", "8") == "N=8"
    for control in ("a\0b", "a\nb", "\x1b[2J", "\r", "\x85"):
        with pytest.raises(KvsizeError, match="holds the control character"):
            shell_line(["vllm", control])
    with pytest.raises(ValueError):
        env_assignment("A B", "1")


def test_fio_values():
    assert fio_value("/mnt/kv", "t") == "/mnt/kv" and fio_value("/a:b\\:c", "t") == "/a\\:b\\\\:c"
    for bad, why in [
        ("/a\n[global]", "control character '\\n'"),
        ("/a;b", "comment"),
        ("/a#b", "comment"),
        ("/${HOME}", "substitutes"),
        ("/a[1]", "section"),
        ("/a ", "space"),
        ("", "empty"),
        ("/" + "a" * 4095, "longer than 4,095 bytes"),
    ]:
        with pytest.raises(KvsizeError, match=re.escape(why)):
            fio_value(bad, "the target")
    assert len(fio_comment("'" * 9000).encode()) <= 8191


@PROPERTY
@given(words_=st.lists(NAMES, max_size=5), value=NAMES)
def test_shell_quoting_round_trips(words_, value):
    if any(map(has_control, words_)):
        with pytest.raises(KvsizeError, match="holds the control character"):
            shell_line(words_)
    else:
        assert shlex.split(shell_line(words_)) == words_
    if has_control(value):
        with pytest.raises(KvsizeError, match="holds the control character"):
            env_assignment("NAME", value)
    else:
        assert shlex.split(env_assignment("NAME", value)) == [f"NAME={value}"]


@PROPERTY
@given(text=NAMES)
def test_comment_text_is_one_printable_line(text):
    line = comment_text(text)
    assert line.isprintable() and len(f"# {line}\n".splitlines()) == 1
    assert (line == text) == text.isprintable()
    if not text.isprintable():  # repr-like: the escapes read back to the text
        assert line.encode("ascii", "backslashreplace").decode("unicode_escape") == text


@PROPERTY
@given(
    mapping=st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.one_of(NAMES, st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.lists(NAMES, max_size=2)),
        max_size=5,
    ),
    comments=st.lists(NAMES, max_size=3),
)
def test_yaml_mapping_round_trips(mapping, comments):
    text = yaml_mapping(mapping, comments)
    assert yaml.safe_load(text) == (mapping or {})
    one_line_comments(text)


# --- hostile model names through the CLI: a local directory and a catalog entry -------------------------------

EMITS = {"vllm": ("--engine", "vllm"), "sglang": ("--engine", "sglang"), "kvbm": ("--engine", "kvbm"), "lmcache": ()}


def local_model(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    shutil.copy(CONFIGS / "Qwen__Qwen3-4B-Instruct-2507.json", directory / "config.json")
    return directory


def hostile_catalog(tmp_path: Path, names: list[str]) -> Path:
    config = json.loads((CONFIGS / "Qwen__Qwen3-4B-Instruct-2507.json").read_text())
    catalog = tmp_path / "mine.yaml"
    models = {name: {"source": "a test entry", "config": config} for name in names}
    catalog.write_text(yaml.safe_dump({"version": 1, "models": models}), encoding="utf-8")
    return catalog


def expected_words(emit: str, model: str) -> list[str]:
    """What sh runs for the emit at chunk 256, TP 4: the engine's arguments (SGLang: its directory first), or
    KVBM's exports."""
    if emit == "kvbm":  # 4 workers hold 390 blocks of 9,437,184 B each a prompt: 14.72 GB x 2 margin, in whole GB: 30
        return [
            "DYN_KVBM_CPU_CACHE_GB=30",
            "DYN_KVBM_DISK_CACHE_DIR=/dev/null/<local disk path>",
            "DYN_KVBM_DISK_CACHE_GB=30",
        ]
    if emit == "sglang":
        flags = ["--tp-size", "4", "--pp-size", "1", "--page-size", "256", "--enable-hierarchical-cache"]
        flags += ["--hicache-storage-backend", "file", "--hicache-mem-layout", "page_first"]
        return [
            "/dev/null/<shared mount path>",
            "-m",
            "sglang.launch_server",
            "--model-path",
            model,
            *flags,
            "--hicache-storage-prefetch-policy",
            "timeout",
        ]
    tier = {"type": "fs", "root_dir": "/dev/null/<ROOT_DIR: a directory every vLLM instance shares>"}
    extra = {"spec_name": "TieringOffloadingSpec", "block_size": 256, "secondary_tiers": [tier]}
    config = {"kv_connector": "OffloadingConnector", "kv_role": "kv_both", "kv_connector_extra_config": extra}
    # 390 objects of 36 MiB = 13.71 GiB a prompt, x 2 margin = 27.4: 28 GiB.
    flags = ["--tensor-parallel-size", "4", "--pipeline-parallel-size", "1", "--block-size", "16", "--kv-offloading-size", "28"]
    return ["serve", model, *flags, "--kv-transfer-config", json.dumps(config, separators=(",", ":"))]


LMCACHE_KEYS = ["chunk_size", "save_unfull_chunk", "use_layerwise", "blocking_timeout_secs", "local_cpu", "max_local_cpu_size"]


def check_emitted(text: str, emit: str, model: str, cwd: Path) -> None:
    one_line_comments(text)
    if emit == "lmcache":
        settings = yaml.safe_load(text)
        assert list(settings) == [*LMCACHE_KEYS, "remote_url", "remote_serde", "extra_config"]  # nothing injected
        assert settings["chunk_size"] == 256 and settings["remote_url"] == "s3://<bucket>.s3.<region>.amazonaws.com"
        assert settings["extra_config"] == {"s3_region": "<region>"}
        return
    assert ran_by_sh(text, emit, cwd) == expected_words(emit, model)
    assert not (cwd / "MARK").exists()
    if emit == "kvbm":  # the vllm line that loads KVBM gets the model as one argument
        assert (cwd / "ARGS").read_bytes().split(b"\0")[1] == os.fsencode(model)
    expected = expected_words(emit, model)
    if " \\\n" in model:  # words() joins continuation lines: a name holding one is read by sh alone
        return
    if emit == "vllm":
        assert words(text) == ["vllm", *expected]
    if emit == "sglang":
        assert words(text) == [
            "export",
            "SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR=/dev/null/<shared mount path>",
            "python",
            *expected[1:],
        ]


@pytest.mark.skipif(SH is None, reason="no sh")
@pytest.mark.parametrize("emit", EMITS)
@pytest.mark.parametrize("name", PAYLOADS)
def test_a_hostile_local_directory_is_quoted_in_every_emitter(run, tmp_path: Path, emit: str, name: str):
    directory = local_model(tmp_path, name)
    result = run(str(directory), "--tp", "4", "--chunk-size", "256", *EMITS[emit], "--emit", emit)
    if emit in ("vllm", "sglang", "kvbm") and has_control(name):  # the command line would carry it: refused
        assert "holds the control character" in one_line(result) and not (tmp_path / "MARK").exists()
        return
    assert result.exit_code == 0, result.stderr
    check_emitted(result.stdout, emit, str(directory), tmp_path)


@pytest.mark.skipif(SH is None, reason="no sh")
@pytest.mark.parametrize("emit", EMITS)
def test_a_hostile_catalog_entry_is_quoted_in_every_emitter(run, tmp_path: Path, emit: str):
    catalog = hostile_catalog(tmp_path, PAYLOADS)
    for name in PAYLOADS:
        result = run(name, "--catalog", str(catalog), "--tp", "4", "--chunk-size", "256", *EMITS[emit], "--emit", emit)
        if emit in ("vllm", "sglang", "kvbm") and has_control(name):
            assert "holds the control character" in one_line(result)
            continue
        assert result.exit_code == 0, (name, result.stderr)
        check_emitted(result.stdout, emit, name, tmp_path)
        assert comment_text(name) in result.stdout.splitlines()[0]  # the comment names it, escaped


def test_vllm_and_sglang_serve_the_local_directory_given(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    directory = local_model(tmp_path, "my-model")
    monkeypatch.chdir(tmp_path)
    for model in (str(directory), "my-model", "./my-model", "my-model/config.json", str(directory / "config.json")):
        for emit, at in (("vllm", 2), ("sglang", 6)):
            result = run(model, "--engine", emit, "--chunk-size", "256", "--emit", emit)
            assert result.exit_code == 0, result.stderr
            assert words(result.stdout)[at] == str(directory), (model, emit)  # the path, never the basename
    assert words(run(SEED, "--engine", "vllm", "--chunk-size", "256", "--emit", "vllm").stdout)[2] == SEED


def test_a_model_name_read_as_an_option_is_refused(tmp_path: Path):
    catalog = hostile_catalog(tmp_path, ["--trust-remote-code"])
    for engine, emitter in (("vllm", kvsize.vllm_config), ("sglang", kvsize.sglang_config)):
        result = kvsize.size("--trust-remote-code", catalog=catalog, engine=engine, chunk_sizes=[256])
        with pytest.raises(KvsizeError, match="begins with '-', which the engine's command line reads as an option"):
            emitter(result, chunk_size=256)


@pytest.fixture(scope="module")
def sized() -> dict[str, Any]:
    """A ``size`` result per engine at TP 4, chunk 256 (their emitters are fed names below)."""
    return {engine: kvsize.size(SEED, tp=4, engine=engine, chunk_sizes=[256]) for engine in EMITS}


def emitted(result: Any, engine: str, name: str, local_path: str | None) -> str:
    sweep = result.sweep
    sweep = sweep.model_copy(update={"spec": sweep.spec.model_copy(update={"name": name, "local_path": local_path})})
    if engine == "lmcache":
        return str(kvsize.settings_for(sweep, None, 256, 2.0)[0])
    emitter = {"vllm": vllm_settings.vllm_flags, "sglang": sglang_settings.sglang_flags, "kvbm": kvbm_settings.kvbm_env}
    return emitter[engine](sweep, sweep.rows[0], None, 2.0)[0]


@pytest.mark.skipif(SH is None, reason="no sh")
@PROPERTY
@given(name=NAMES, local=st.booleans())
def test_every_emitter_round_trips_any_model_name(sized, tmp_path_factory, name: str, local: bool):
    cwd = tmp_path_factory.mktemp("sh")
    local_path = f"/models/{name}" if local else None
    model = local_path or name
    for engine, result in sized.items():
        if engine in ("vllm", "sglang", "kvbm") and (model.startswith("-") or has_control(model)):
            with pytest.raises(KvsizeError, match=r"begins with '-'|holds the control character"):
                emitted(result, engine, name, local_path)
            continue
        text = emitted(result, engine, name, local_path)
        check_emitted(text, engine, model, cwd)
        assert text.splitlines()[0].startswith("# ") and comment_text(name) in text.splitlines()[0]


# --- numbers: exact, and the LMCACHE_* form reads back as the YAML does ----------------------------------------

FIELDS = ("chunk_size", "save_unfull_chunk", "use_layerwise", "blocking_timeout_secs", "max_local_cpu_size_bytes")
FIELDS += ("connector", "remote_url", "remote_url_problem")


def env_form(text: str) -> dict[str, str]:
    """The ``LMCACHE_*`` comment lines under the YAML, as ``sh`` would set them (``shlex.split``)."""
    tail = text[text.rindex("# The same as environment variables") :].splitlines()[1:]
    env = {}
    for line in tail:
        assert line.startswith("# LMCACHE_"), line
        (assignment,) = shlex.split(line[2:])
        name, value = assignment.split("=", 1)
        env[name] = value
    return env


def read_both(text: str, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings kvsize's LMCache reader (LMCache 0.5.6's rules) reads from the YAML, and from its env form."""
    file = folder / "lmcache.yaml"
    file.write_text(text, encoding="utf-8")
    from_file, from_env = read_settings(file, {}), read_settings(None, env_form(text))
    return {key: getattr(from_file, key) for key in FIELDS}, {key: getattr(from_env, key) for key in FIELDS}


def test_lmcache_numbers_are_exact_and_both_forms_read_back(run, tmp_path: Path):
    # 200M tokens at TP 4, chunk 256: one writer loads 781,250 objects of 9,437,184 B = 7,372,800,000,000 B;
    # x 1000 margin / 2**30 = 6,866,455.08: 6,866,456 GB (%g wrote 6.86646e+06).
    args = ("--tp", "4", "--prompt", "200M", "--chunk-size", "256", "--backend", "s3", "--margin", "1000")
    result = run(SEED, *args, "--emit", "lmcache")
    assert result.exit_code == 0, result.stderr
    settings = yaml.safe_load(result.stdout)
    timeout = settings["blocking_timeout_secs"]
    assert settings["max_local_cpu_size"] == 6_866_456 and "# max_local_cpu_size 6,866,456 GB" in result.stdout
    assert isinstance(timeout, int) and timeout > 10**6  # past 10**6, %g wrote an exponent that LMCache's int() refuses
    env = env_form(result.stdout)
    assert env["LMCACHE_MAX_LOCAL_CPU_SIZE"] == "6866456" and env["LMCACHE_BLOCKING_TIMEOUT_SECS"] == str(timeout)
    from_file, from_env = read_both(result.stdout, tmp_path)
    assert from_file == from_env
    assert from_env["max_local_cpu_size_bytes"] == 6_866_456 * GIB and from_env["blocking_timeout_secs"] == timeout
    fractional = run(SEED, "--tp", "4", "--chunk-size", "256", "--backend", "s3", "--margin", "1.25", "--emit", "lmcache")
    assert "x 1.25 margin" in fractional.stdout


def test_lmcache_settings_kvsize_check_cannot_read_are_refused(run):
    # 1G tokens at TP 1, chunk 256: 3,906,250 objects of 37,748,736 B x 1000 / 2**30 = 137,329,101.6 GB.
    args = ("--prompt", "1G", "--chunk-size", "256", "--backend", "s3", "--margin", "1000", "--emit", "lmcache")
    result = run(SEED, *args)
    assert result.exit_code == 2 and result.stdout == ""
    *_, line = result.stderr.splitlines()  # after the warning that the prompt passes the model's context
    assert line.startswith("kvsize: error: --emit lmcache: max_local_cpu_size would be 137,329,102 GB")
    assert "lower --margin" in line


@PROPERTY
@given(
    chunk=st.integers(1, MAX_CHUNK),
    unfull=st.booleans(),
    layerwise=st.booleans(),
    timeout=st.integers(10, MAX_TIMEOUT_S),
    cpu=st.integers(5, MAX_CPU_GB),
    connector=st.sampled_from(sorted(CONNECTOR_SETTINGS)),
    comments=st.lists(NAMES, max_size=4),
)
def test_lmcache_yaml_and_env_form_read_back_the_same(
    tmp_path_factory, chunk, unfull, layerwise, timeout, cpu, connector, comments
):
    text = emit_settings(
        chunk_size=chunk,
        connector=connector,
        save_unfull_chunk=unfull,
        layerwise=layerwise,
        blocking_timeout_secs=timeout,
        max_local_cpu_size_gb=cpu,
        comments=comments,
    )
    intended = {
        "chunk_size": chunk,
        "save_unfull_chunk": unfull,
        "use_layerwise": layerwise,
        "blocking_timeout_secs": timeout,
        "local_cpu": True,
        "max_local_cpu_size": cpu,
        **CONNECTOR_SETTINGS[connector],
    }
    assert yaml.safe_load(text) == intended
    one_line_comments(text)
    as_text = {f"LMCACHE_{key.upper()}": env_text(value) for key, value in intended.items()}
    assert env_form(text) == as_text
    from_file, from_env = read_both(text, tmp_path_factory.mktemp("lmcache"))
    assert from_file == from_env
    assert (from_env["chunk_size"], from_env["blocking_timeout_secs"], from_env["max_local_cpu_size_bytes"]) == (
        chunk,
        timeout,
        cpu * GIB,
    )


# --- fio job files ---------------------------------------------------------------------------------------------

# Paths fio must read back: mostly characters it takes (with ':' and '\\', which it splits at and escapes with),
# some it would misread (';', '#', '$', '[', control characters), which must be refused.
FIO_ALPHABET = st.one_of(
    st.sampled_from("`'\"\\&|<>:::*?!{} =%\u2028é漢🙂-./"), st.characters(whitelist_categories=["L", "N", "P", "S", "Zs"])
)
FIO_NAMES = st.text(alphabet=FIO_ALPHABET, min_size=1, max_size=30).filter(
    lambda name: "/" not in name and name.strip(" ") == name and name not in (".", "..")
)


def fio_split(value: str) -> list[str]:
    """fio's ``get_next_str`` (``options.c``), ported: the paths of a ``directory=`` value, split at each colon
    that no backslash escapes; an escaping backslash is removed, a leading colon skipped."""
    out, chars = [], list(value)
    while chars:
        start = pos = 0
        while True:
            try:
                colon = chars.index(":", pos)
            except ValueError:
                out.append("".join(chars[start:]))
                chars = []
                break
            if colon == start:
                start = pos = start + 1
                continue
            if chars[colon - 1] != "\\":
                out.append("".join(chars[start:colon]))
                chars = chars[colon + 1 :]
                break
            del chars[colon - 1]
            pos = colon
    return out


def fio_directories(job: str) -> tuple[list[str], list[str]]:
    """fio's reading of a job file (``init.c`` ``__parse_jobs_ini``, ``parse.c`` ``strip_blank_end``, ``options.c``
    ``fio_option_dup_subs`` and ``fio_keyword_replace``): the directories of ``directory=``, and the comment lines."""
    directories: list[str] = []
    comments = []
    for raw in job.split("\n"):
        line = raw.strip(" \t\n\v\f\r")
        if not line:
            continue
        if line[0] in ";#":
            comments.append(line)
            continue
        if line.startswith("directory="):
            value = line.removeprefix("directory=").split(";")[0].split("#")[0].rstrip(" \t\n\v\f\r")
            value = re.sub(r"\$\{[^}]+\}", "", value)
            for keyword in ("$pagesize", "$mb_memory", "$ncpus"):
                value = value.replace(keyword, "4096")
            directories = fio_split(value)
    return directories, comments


@PROPERTY
@given(directory=st.one_of(NAMES, st.text(alphabet=FIO_ALPHABET, min_size=1, max_size=40)))
def test_fio_job_reads_back_the_directory_or_refuses_it(directory: str):
    try:
        job = fio_job(directory, [4096], [1, 2], objects=4, max_bytes=2**20, direct=False)
    except KvsizeError as error:
        assert "--emit fio: the target directory" in str(error) and "\n" not in str(error)
        return
    directories, comments = fio_directories(job)
    assert directories == [directory]
    assert len(comments) == 3 and all(line.startswith("; ") and line.isprintable() for line in comments)
    ordinary = fio_job("/mnt/kv", [4096], [1, 2], objects=4, max_bytes=2**20, direct=False)
    assert job.count("\n") == ordinary.count("\n")  # as many lines as for any other directory
    hint = comments[2].removeprefix("; then: ")
    if directory.isprintable():
        assert shlex.split(hint) == ["kvsize", "probe", directory, "--from-fio", "result.json"]


def run_fio(job_text: str, cwd: Path) -> list[str]:
    """The files the real fio creates for a job file (its ``--debug=file`` lines), after checking it ran."""
    assert FIO is not None
    job = cwd / "job.fio"
    job.write_text(job_text, encoding="utf-8")
    out = subprocess.run([FIO, "--debug=file", "--output-format=json", str(job)], capture_output=True, cwd=cwd, timeout=120)
    text = os.fsdecode(out.stdout + out.stderr)
    assert out.returncode == 0, text[-2000:]
    return re.findall(r'file\s+\d+\s+file 0x[0-9a-f]+ "(.*)" added at', text)


@pytest.mark.skipif(FIO is None, reason="fio is not installed (.ci/run installs it)")
def test_fio_job_escapes_colons_and_quotes_its_hint(run, tmp_path: Path):
    target = tmp_path / "kv:cache it's"
    target.mkdir()
    result = run("probe", str(target), "--object-sizes", "4KiB", "--concurrency", "1", "--objects", "1", "--emit", "fio")
    assert result.exit_code == 0, result.stderr
    assert "\ndirectory=" + str(target).replace(":", "\\:") + "\n" in result.stdout
    (hint,) = [line for line in result.stdout.splitlines() if line.startswith("; then: ")]
    assert shlex.split(hint.removeprefix("; then: ")) == ["kvsize", "probe", str(target), "--from-fio", "result.json"]
    files = run_fio(result.stdout, tmp_path)
    assert files and all(name.startswith(f"{target}/kvsize-fio.4096-1.") for name in files)
    assert list(target.iterdir()) == []  # written there, then removed by the read phase


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("/tmp/kv\n[global]\nexec_prerun=touch MARK", "holds the control character '\\n'"),
        ("/tmp/kv;exec_prerun=touch MARK", "holds ';'"),
        ("/tmp/${HOME}", "holds '$'"),
    ],
)
def test_fio_job_refuses_a_target_fio_would_misread(run, target: str, why: str):
    line = one_line(run("probe", target, "--emit", "fio"))
    assert "--emit fio: the target directory" in line and why in line and "give a path without it" in line


@pytest.mark.skipif(FIO is None, reason="fio is not installed (.ci/run installs it)")
@settings(
    max_examples=max(6, EXAMPLES // 25),
    derandomize=DERANDOMIZE,
    deadline=timedelta(seconds=60),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(name=FIO_NAMES)
def test_the_real_fio_writes_where_the_job_says(tmp_path_factory, name: str):
    folder = tmp_path_factory.mktemp("fio")
    target = folder / name
    try:
        job = fio_job(str(target), [4096], [1], objects=1, max_bytes=4096, direct=False)
    except KvsizeError:
        assert any(char in name for char in ";#$[]")
        return
    target.mkdir()
    files = run_fio(job, folder)
    assert files and all(file.startswith(f"{target}/kvsize-fio.4096-1.") for file in files), files
    assert list(target.iterdir()) == []
