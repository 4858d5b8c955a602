"""The bundled catalog: covers every reference config, matches the local-file path, loads fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kvsize
from kvsize.model.catalog import Catalog, bundled_catalog_path, dump_catalog, load_catalog_file
from kvsize.model.sources import catalog_entry
from tests.conftest import CONFIGS, SHARED_CONFIGS, reference_config, reference_models

MODELS = reference_models()


def test_catalog_covers_every_reference_config():
    catalog = Catalog()
    assert len(MODELS) == 32
    for name in MODELS:
        assert catalog.find(name) == name
        assert catalog.entries[name].source.startswith(f"{name} config.json")


@pytest.mark.parametrize("name", MODELS)
def test_catalog_entry_matches_the_local_config(name):
    """Each catalog entry keeps the published fields and sizes exactly like the file through transformers."""
    entry = Catalog().entries[name]
    assert entry.config == reference_config(name)
    from_catalog = kvsize.resolve_model(name)
    from_file = kvsize.spec_from_path(CONFIGS / (name.replace("/", "__", 1) + ".json"))
    for field in ("layer_kinds", "num_attention_heads", "num_kv_heads", "head_size", "config_dtype", "draft_layers"):
        assert getattr(from_catalog, field) == getattr(from_file, field), field
    options = kvsize.EngineOptions()
    assert kvsize.plan_sweep(from_catalog, options, 100_000).rows == kvsize.plan_sweep(from_file, options, 100_000).rows


# Bytes per token at TP 1, derived by hand: layers x (2 K/V | 1 MLA) x KV heads x head size x 2 B
EXPECTED_BYTES_PER_TOKEN = {
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": 24 * 2 * 32 * 64 * 2,
    "HuggingFaceTB/SmolLM3-3B": 36 * 2 * 4 * 128 * 2,
    "MiniMaxAI/MiniMax-M2": 62 * 2 * 8 * 128 * 2,
    "Qwen/Qwen2.5-72B-Instruct": 80 * 2 * 8 * 128 * 2,
    "Qwen/Qwen3-0.6B": 28 * 2 * 8 * 128 * 2,
    "Qwen/Qwen3-235B-A22B": 94 * 2 * 4 * 128 * 2,
    "Qwen/Qwen3-30B-A3B": 48 * 2 * 4 * 128 * 2,
    "Qwen/Qwen3-32B": 64 * 2 * 8 * 128 * 2,
    "Qwen/Qwen3-4B-Instruct-2507": 147_456,
    "Qwen/Qwen3-8B": 36 * 2 * 8 * 128 * 2,
    "Qwen/Qwen3-Next-80B-A3B-Instruct": 12 * 2 * 2 * 256 * 2,
    "ai21labs/AI21-Jamba-1.5-Mini": 4 * 2 * 8 * 128 * 2,
    "deepseek-ai/DeepSeek-R1": 61 * 576 * 2,
    "deepseek-ai/DeepSeek-V3": 61 * 576 * 2,
    "google/gemma-3-12b-it": 48 * 2 * 8 * 256 * 2,
    "google/gemma-3-1b-it": 26 * 2 * 1 * 256 * 2,
    "google/gemma-3-27b-it": 62 * 2 * 16 * 128 * 2,
    "meta-llama/Llama-3.1-405B": 126 * 2 * 8 * 128 * 2,
    "meta-llama/Llama-3.1-70B-Instruct": 80 * 2 * 8 * 128 * 2,
    "meta-llama/Llama-3.1-8B-Instruct": 32 * 2 * 8 * 128 * 2,
    "meta-llama/Llama-3.2-1B": 16 * 2 * 8 * 64 * 2,
    "meta-llama/Llama-3.2-3B": 28 * 2 * 8 * 128 * 2,
    "meta-llama/Llama-3.3-70B-Instruct": 80 * 2 * 8 * 128 * 2,
    "microsoft/Phi-4-mini-instruct": 32 * 2 * 8 * 128 * 2,
    "microsoft/phi-4": 40 * 2 * 10 * 128 * 2,
    "mistralai/Mistral-7B-Instruct-v0.3": 32 * 2 * 8 * 128 * 2,
    "mistralai/Mistral-Small-24B-Instruct-2501": 40 * 2 * 8 * 128 * 2,
    "mistralai/Mixtral-8x7B-v0.1": 32 * 2 * 8 * 128 * 2,
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": 6 * 2 * 2 * 128 * 2,
    "openai/gpt-oss-120b": 36 * 2 * 8 * 64 * 2,
    "openai/gpt-oss-20b": 24 * 2 * 8 * 64 * 2,
    "zai-org/GLM-4.5": 92 * 2 * 8 * 128 * 2,
}


def test_expected_table_covers_the_catalog():
    assert sorted(EXPECTED_BYTES_PER_TOKEN) == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_bytes_per_token_by_hand(run_json, name):
    assert run_json(name)["bytes_per_token"] == EXPECTED_BYTES_PER_TOKEN[name]


def test_configs_without_dtype_warn(run):
    for name in (
        "openai/gpt-oss-20b",
        "zai-org/GLM-4.5",
        "MiniMaxAI/MiniMax-M2",
        "mistralai/Mistral-Small-24B-Instruct-2501",
    ):
        result = run(name)
        assert "names no dtype: sized as bfloat16" in result.stderr, name


def test_short_name_resolves_when_unique(run_json):
    assert run_json("qwen3-4b-instruct-2507")["model"] == "Qwen/Qwen3-4B-Instruct-2507"


def test_dump_round_trips(tmp_path: Path):
    entries = load_catalog_file(bundled_catalog_path())
    copy = tmp_path / "copy.yaml"
    copy.write_text(dump_catalog(entries))
    assert load_catalog_file(copy) == entries


def test_catalog_entry_records_defaults_for_omitted_keys():
    entry = catalog_entry(reference_config("google/gemma-3-12b-it"), source="test")
    assert entry.defaults["text_config"]["head_dim"] == 256
    assert entry.filled_by and entry.filled_by.startswith("transformers ")


def test_bundled_catalog_is_current_with_the_reference_configs():
    """models.yaml was built from these configs (tools/build_catalog.py)."""
    entries = load_catalog_file(bundled_catalog_path())
    for file in CONFIGS.glob("*.json"):
        name = file.stem.replace("__", "/", 1)
        assert entries[name].config == json.loads(file.read_text())


@pytest.mark.skipif(not SHARED_CONFIGS.is_dir(), reason="the shared reference set is not beside this checkout")
def test_test_data_matches_the_shared_reference_set():
    shared = {f.name: json.loads(f.read_text()) for f in SHARED_CONFIGS.glob("*.json")}
    local = {f.name: json.loads(f.read_text()) for f in CONFIGS.glob("*.json")}
    assert shared == local


def test_catalog_path_imports_neither_transformers_nor_huggingface_hub():
    code = (
        "import sys\n"
        "from kvsize.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['Qwen/Qwen3-4B-Instruct-2507', '--tp', '4', '--format', 'json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'huggingface_hub', 'torch'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_local_config_of_a_known_type_imports_no_transformers(tmp_path):
    """The defaults table covers a known type: the local path is as light as the catalog path."""
    code = (
        "import sys\n"
        "from kvsize.cli import main\n"
        "sys.argv = ['kvsize', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('IMPORTED', 'transformers' in sys.modules)\n"
    )
    for name in ("google__gemma-3-12b-it.json", "Qwen__Qwen3-4B-Instruct-2507.json", "openai__gpt-oss-20b.json"):
        result = subprocess.run([sys.executable, "-c", code, str(CONFIGS / name)], capture_output=True, text=True, check=True)
        assert result.stdout.strip().endswith("IMPORTED False"), name
    # a type the table does not know still goes through transformers (and says so)
    (tmp_path / "config.json").write_text(
        '{"model_type": "kvsize_test", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 256}'
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("IMPORTED True")
