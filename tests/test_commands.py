"""`kvsize models` and `kvsize inspect` through the real entry point."""

from __future__ import annotations

import csv
import io
import json

from tests.conftest import CONFIGS, reference_models


def test_models_lists_the_catalog_with_bytes_per_token(run):
    rows = json.loads(run("models", "--format", "json").stdout)
    assert [row["model"] for row in rows] == sorted(reference_models(), key=str.lower)
    by_name = {row["model"]: row for row in rows}
    assert by_name["Qwen/Qwen3-4B-Instruct-2507"]["bytes_per_token"] == 147_456
    assert by_name["deepseek-ai/DeepSeek-V3"]["use_mla"] is True
    assert (by_name["ai21labs/AI21-Jamba-1.5-Mini"]["kv_layers"], by_name["ai21labs/AI21-Jamba-1.5-Mini"]["layers"]) == (4, 32)


def test_models_table_and_csv(run):
    table = run("models", env={"COLUMNS": "120"})
    assert table.exit_code == 0
    assert "32 models" in table.stdout and "147,456" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("models", "--format", "csv").stdout)))
    assert len(rows) == 32


def test_models_includes_a_user_catalog(run, tmp_path):
    catalog = tmp_path / "mine.yaml"
    catalog.write_text(
        "version: 1\nmodels:\n  acme/tiny:\n    source: test\n    config: {model_type: llama, num_hidden_layers: 2,"
        " num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 256, torch_dtype: float16}\n"
    )
    rows = json.loads(run("models", "--format", "json", "--catalog", str(catalog)).stdout)
    assert len(rows) == 33
    assert {"model": "acme/tiny", "bytes_per_token": 1024}.items() <= next(r for r in rows if r["model"] == "acme/tiny").items()


def test_inspect_names_the_field_of_each_value(run):
    data = json.loads(run("inspect", "google/gemma-3-12b-it", "--format", "json").stdout)
    assert data["head_size"] == 256
    assert data["fields"]["head size"]["field"] == "text_config.head_dim (transformers default)"
    assert data["fields"]["kv heads"]["field"] == "text_config.num_key_value_heads"
    assert data["fields"]["dtype"]["field"] == "torch_dtype"
    assert data["layer_kinds"] == {"sliding_attention": 40, "full_attention": 8}


def test_inspect_a_local_file_names_the_file(run):
    path = CONFIGS / "Qwen__Qwen3-Next-80B-A3B-Instruct.json"
    data = json.loads(run("inspect", str(path), "--format", "json").stdout)
    assert data["fields"]["kv heads"]["origin"] == str(path)
    assert data["layer_kinds"] == {"linear_attention": 36, "full_attention": 12}
    table = run("inspect", str(path), env={"COLUMNS": "120"}).stdout
    assert "full_attention_interval = 4" in table


def test_inspect_bad_input(run):
    result = run("inspect", "nope/nothing")
    assert result.exit_code == 2 and "unknown model 'nope/nothing'" in result.stderr
    result = run("inspect", "Qwen/Qwen3-8B", "--format", "csv")
    assert result.exit_code == 2 and "'csv' is not one of 'table', 'json'" in result.stderr


def test_catalog_add_writes_entries_that_load_back_to_the_same_numbers(run, write_config, tmp_path):
    from tests.conftest import reference_config

    gemma = write_config(reference_config("google/gemma-3-12b-it"), name="gemma-local")
    nemotron = write_config(reference_config("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"), name="nemotron-local")
    catalog = tmp_path / "cat" / "mine.yaml"
    result = run("catalog", "add", str(gemma), str(nemotron / "config.json"), "--catalog", str(catalog))
    assert result.exit_code == 0, result.stderr
    assert "added gemma-local" in result.stdout and "added nemotron-local" in result.stdout
    for name, directory in (("gemma-local", gemma), ("nemotron-local", nemotron)):
        from_catalog = json.loads(run(name, "--catalog", str(catalog), "--tp", "2", "--format", "json").stdout)
        from_file = json.loads(run(str(directory), "--tp", "2", "--format", "json").stdout)
        assert from_catalog["rows"] == from_file["rows"]
        assert from_catalog["bytes_per_token"] == from_file["bytes_per_token"]
    # a second add updates the same file and keeps what was there
    again = run("catalog", "add", str(gemma), "--name", "acme/gemma", "--catalog", str(catalog))
    assert again.exit_code == 0
    rows = json.loads(run("models", "--format", "json", "--catalog", str(catalog)).stdout)
    assert {"gemma-local", "nemotron-local", "acme/gemma"} <= {row["model"] for row in rows}


def test_catalog_add_refuses_what_it_cannot_size(run, write_config, tmp_path):
    bad = write_config(
        {
            "model_type": "kvsize_test",
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "hidden_size": 512,
            "layer_types": ["full_attention", "odd_attention"],
        }
    )
    catalog = tmp_path / "mine.yaml"
    result = run("catalog", "add", str(bad), "--catalog", str(catalog))
    assert result.exit_code == 2
    assert "layer_types[1] = 'odd_attention'" in result.stderr
    assert not catalog.exists()


def test_catalog_add_needs_a_target(run, write_config):
    from tests.conftest import reference_config

    result = run("catalog", "add", str(write_config(reference_config("Qwen/Qwen3-8B"))))
    assert result.exit_code == 2
    assert "give --catalog PATH or set KVSIZE_CATALOG" in result.stderr
