"""Fuzz the input contract: mutated reference configs and absurd flags end in exit 0 with sane output,
or exit 2 with one short line on stderr. Never a traceback, never an internal error, never NaN or inf."""

from __future__ import annotations

import json
import math
import os
import re
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kvsize.cli import app
from kvsize.engines.registry import ENGINE_NAMES, engine_for
from tests.conftest import reference_config, reference_models

MODELS = reference_models()
# CI runs a fixed set of examples (derandomized: a red CI is a real regression, not a new draw);
# KVSIZE_FUZZ_EXAMPLES=5000 explores afresh, as a developer does before a release.
FUZZ_EXAMPLES = int(os.environ.get("KVSIZE_FUZZ_EXAMPLES", "150"))
DERANDOMIZE = "KVSIZE_FUZZ_EXAMPLES" not in os.environ
KEYS = [
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_size",
    "model_type",
    "layer_types",
    "sliding_window",
    "use_sliding_window",
    "torch_dtype",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "text_config",
    "architectures",
    "hybrid_override_pattern",
    "full_attention_interval",
    "quantization_config",
    "num_nextn_predict_layers",
]
VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -1, 0, 1.5, 2**63, "", "12", "full_attention", None, True]),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.lists(st.sampled_from(["full_attention", "sliding_attention", "mamba", 1, None]), max_size=70),
    st.just({"text_config": {"text_config": {}}}),
    st.dictionaries(st.sampled_from(KEYS), st.integers(-5, 100), max_size=4),
)
FLAGS = st.lists(
    st.sampled_from(
        [
            ("--tp", "4"),
            ("--tp", "3"),
            ("--tp", "0"),
            ("--pp", "2"),
            ("--prompt", "1e400"),
            ("--prompt", "9" * 40),
            ("--prompt", "300k"),
            ("--prompt", "7"),
            ("--chunk-sizes", "16,256,1Ki"),
            ("--kv-dtype", "fp8"),
            ("--backend", "s3"),
            ("--backend", "nfs"),
            ("--prefill-tps", "nan"),
            ("--prefill-tps", "1e-300"),
            ("--margin", "inf"),
            ("--mfu", "-0"),
            ("--concurrent-prompts", "1000000"),
            ("--instances", "3"),
            ("--max-requests-per-s", "1e400"),
            ("--layerwise", None),
            ("--connector", "redis"),
            ("--save-unfull-chunk", None),
            ("--explain", None),
            ("--format", "json"),
            ("--format", "csv"),
            ("--format", "markdown"),
        ]
    ),
    max_size=4,
)
VALUES_BY_KIND = {
    "bool": [None],
    "int": ["32", "0", "-1", "9" * 40],
    "float": ["0.5", "nan", "-inf", "1e400"],
    "size": ["5GiB", "0", "1e400", "lots"],
    "duration": ["10s", "nan", "-1s", "1e400s"],
}


def engine_flags() -> list[tuple[str, str | None]]:
    """Every registered engine, and each engine's own flags with good and bad values (from its settings' flags)."""
    import typing

    found: list[tuple[str, str | None]] = [("--engine", name) for name in ENGINE_NAMES] + [("--engine", "nope")]
    for name in ENGINE_NAMES:
        settings = engine_for(name).Settings
        for field, flag in settings.FLAGS.items():
            if flag.kind == "bool":
                found += [(flag.name, None), ("--no-" + flag.name[2:], None)]
            elif flag.kind == "choice":
                found += [(flag.name, str(choice)) for choice in typing.get_args(settings.model_fields[field].annotation)]
                found.append((flag.name, "nope"))
            else:
                found += [(flag.name, value) for value in VALUES_BY_KIND[flag.kind]]
    return list(dict.fromkeys(found))


ENGINE_FLAGS = st.lists(st.sampled_from(engine_flags()), max_size=3)
NON_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def check(args: list[str]) -> None:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    if result.exit_code == 1 and args[0] == "check":  # the guard found violated limits: a verdict, not an error
        assert "FAILED" in result.stdout
        return
    if result.exit_code == 0:
        text = result.stdout
        assert not NON_FINITE.search(
            re.sub(r"[\w/.-]*(nan|inf)[\w/.-]*", lambda m: "" if len(m.group()) > 3 else m.group(), text)
        )
        formats = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--format"]
        if formats and formats[-1] == "json":  # the last --format wins
            json.loads(text)
        return
    assert result.exit_code == 2, (args, result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("kvsize: error: ") and len(lines[-1]) < 300, (args, result.stderr)
    assert "Traceback" not in result.stderr


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=timedelta(seconds=30),  # an example past 30 s is a hang, not a slow machine
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    model=st.sampled_from(MODELS),
    edits=st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.just("<delete>"), VALUES)), min_size=1, max_size=3),
    in_text_config=st.booleans(),
    flags=FLAGS,
    engine=st.sampled_from(ENGINE_NAMES),
    more=ENGINE_FLAGS,
)
def test_mutated_configs_and_flags(tmp_path_factory, model, edits, in_text_config, flags, engine, more):
    raw = reference_config(model)
    target = raw["text_config"] if in_text_config and isinstance(raw.get("text_config"), dict) else raw
    for key, value in edits:
        if value == "<delete>":
            target.pop(key, None)
        else:
            target[key] = value
    folder: Path = tmp_path_factory.mktemp("fuzz")
    (folder / "config.json").write_text(json.dumps(raw))  # NaN and Infinity as Python's json writes them
    flags = [("--engine", engine), *flags, *more]  # every engine, and every engine's own flags, good and bad
    args = [str(folder)] + [part for flag in flags for part in flag if part is not None]
    check(args)


@settings(
    max_examples=FUZZ_EXAMPLES // 4,
    derandomize=DERANDOMIZE,
    deadline=timedelta(seconds=30),  # an example past 30 s is a hang, not a slow machine
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.one_of(st.binary(max_size=200), st.just(b"[1, 2]"), st.just(b"\xff\xfe{}"), st.just(b'{"a": ' * 5000)))
def test_garbage_files(tmp_path_factory, data):
    folder: Path = tmp_path_factory.mktemp("garbage")
    (folder / "config.json").write_bytes(data)
    (folder / "profile.yaml").write_bytes(data)
    check([str(folder)])
    check(["Qwen/Qwen3-4B-Instruct-2507", "--backend", str(folder / "profile.yaml")])
    check(["check", "Qwen/Qwen3-4B-Instruct-2507", "--lmcache-config", str(folder / "profile.yaml")])
