"""One test per layer kind and per config-field variant (docs/rules.md), numbers derived by hand.

Reference configs go through the local-file path (transformers defaults applied);
the minimal configs written here cover what the reference set does not have.
"""

from __future__ import annotations

import pytest

from tests.conftest import CONFIGS

BASE = {
    "model_type": "kvsize_test",
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "hidden_size": 512,
    "torch_dtype": "bfloat16",
}


def base(**fields: object) -> dict[str, object]:
    """The minimal test config (2 layers, 8 heads of 64, bf16) with ``fields`` changed; None removes a field."""
    merged = {**BASE, **fields}
    return {key: value for key, value in merged.items() if value is not None}


def config_path(name: str) -> str:
    return str(CONFIGS / (name.replace("/", "__", 1) + ".json"))


def test_full_attention_llama(run_json):
    # 32 layers x 2 (K,V) x 8 heads x 128 (4096 / 32) x 2 B = 131,072
    data = run_json(config_path("meta-llama/Llama-3.1-8B-Instruct"))
    assert data["bytes_per_token"] == 131_072
    assert data["kv_layers"] == 32


def test_sliding_window_layer_types_all_stored_gpt_oss(run_json, run):
    # 24 layers (12 sliding, 12 full) all stored in full: 24 x 2 x 8 x 64 x 2 = 49,152; no dtype -> bf16 warning
    result = run(config_path("openai/gpt-oss-20b"), "--format", "json")
    assert result.exit_code == 0
    assert "names no dtype: sized as bfloat16" in result.stderr
    data = run_json(config_path("openai/gpt-oss-20b"))
    assert data["bytes_per_token"] == 49_152
    assert any("12 sliding-window" in note for note in data["notes"])


def test_gemma3_text_config_defaults_and_sliding_layers(run_json):
    # text_config omits head_dim: Gemma3TextConfig's default 256 applies (not 3840 / 16 = 240).
    # 48 layers (40 sliding + 8 full, all stored) x 2 x 8 x 256 x 2 = 393,216
    data = run_json(config_path("google/gemma-3-12b-it"))
    assert data["head_size"] == 256
    assert data["bytes_per_token"] == 393_216
    assert data["kv_layers"] == 48


def test_gemma3_27b_stores_all_62_layers(run_json):
    # 62 x 2 x 16 x 128 x 2 = 507,904 (not the 10 global layers)
    assert run_json(config_path("google/gemma-3-27b-it"))["bytes_per_token"] == 507_904


def test_model_wide_sliding_window_without_layer_types(write_config, run_json):
    config = base(model_type="mistral", num_hidden_layers=4, torch_dtype="float16", num_key_value_heads=2, sliding_window=4096)
    data = run_json(str(write_config(config)), "--explain")
    # 4 x 2 x 2 x 64 x 2 = 2,048; sliding layers are promoted to full with LMCache in-process
    assert data["bytes_per_token"] == 2_048
    assert any("sliding_attention" in line for line in data["explain"])


def test_qwen_use_sliding_window_from_max_window_layers(write_config, run_json):
    config = base(
        model_type="qwen2",
        num_hidden_layers=6,
        num_attention_heads=4,
        hidden_size=256,
        num_key_value_heads=2,
        sliding_window=1024,
        use_sliding_window=True,
        max_window_layers=4,
    )
    data = run_json(str(write_config(config)), "--explain")
    assert any("2 sliding_attention" in line and "4 full_attention" in line for line in data["explain"])
    assert data["bytes_per_token"] == 6 * 2 * 2 * 64 * 2


def test_qwen_sliding_window_ignored_without_use_sliding_window(run_json):
    data = run_json(config_path("Qwen/Qwen2.5-72B-Instruct"), "--explain")
    # 80 x 2 x 8 x 128 x 2 = 327,680; sliding_window 131072 is off
    assert data["bytes_per_token"] == 327_680
    assert not data["notes"]


def test_llama4_chunked_local_layers(write_config, run_json):
    # Llama 4: no_rope_layers[i] == 1 with attention_chunk_size -> chunked local; all stored
    config = {
        "model_type": "llama4",
        "architectures": ["Llama4ForConditionalGeneration"],
        "torch_dtype": "bfloat16",
        "text_config": {
            "model_type": "llama4_text",
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 128,
            "hidden_size": 1024,
            "attention_chunk_size": 8192,
            "no_rope_layers": [1, 1, 1, 0],
        },
    }
    data = run_json(str(write_config(config)), "--explain")
    assert any("3 chunked_attention, 1 full_attention" in line for line in data["explain"])
    assert data["bytes_per_token"] == 4 * 2 * 2 * 128 * 2
    assert any("3 sliding-window or chunked-local" in note for note in data["notes"])


def test_mla_deepseek_latent(run_json):
    # 61 layers x 1 x (512 + 64) x 2 B = 70,272
    data = run_json(config_path("deepseek-ai/DeepSeek-V3"))
    assert (data["use_mla"], data["head_size"], data["bytes_per_token"]) == (True, 576, 70_272)


def test_jamba_attention_period_offset(run_json, run):
    # layers 4, 12, 20, 28 are attention: 4 x 2 x 8 x 128 x 2 = 16,384
    data = run_json(config_path("ai21labs/AI21-Jamba-1.5-Mini"))
    assert (data["kv_layers"], data["bytes_per_token"]) == (4, 16_384)
    warning = run(config_path("ai21labs/AI21-Jamba-1.5-Mini")).stderr
    assert "LMCacheMPConnector" in warning and "cannot serve it" in warning


def test_qwen3_next_linear_attention(run_json):
    # full_attention_interval 4: 12 of 48 layers; 12 x 2 x 2 x 256 x 2 = 24,576
    data = run_json(config_path("Qwen/Qwen3-Next-80B-A3B-Instruct"))
    assert (data["kv_layers"], data["bytes_per_token"]) == (12, 24_576)
    assert any("hybrid" in w for w in data["warnings"])


def test_nemotron_h_pattern(run_json):
    # 6 '*' layers of 52: 6 x 2 x 2 x 128 x 2 = 6,144
    data = run_json(config_path("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"))
    assert (data["layers"], data["kv_layers"], data["bytes_per_token"]) == (52, 6, 6_144)


def test_minimax_attn_type_list(write_config, run_json):
    config = base(
        model_type="minimax",
        num_hidden_layers=8,
        hidden_size=1024,
        num_key_value_heads=8,
        head_dim=128,
        attn_type_list=[0, 0, 0, 1, 0, 0, 0, 1],
    )
    data = run_json(str(write_config(config)))
    assert (data["kv_layers"], data["bytes_per_token"]) == (2, 2 * 2 * 8 * 128 * 2)


def test_conv_hybrid_layer_types(write_config, run_json):
    config = base(
        model_type="lfm2",
        num_hidden_layers=4,
        num_key_value_heads=4,
        layer_types=["conv", "full_attention", "conv", "full_attention"],
    )
    data = run_json(str(write_config(config)))
    assert (data["kv_layers"], data["bytes_per_token"]) == (2, 2 * 2 * 4 * 64 * 2)


def test_falcon_multi_query_has_one_kv_head(write_config, run_json):
    # Falcon-7B: multi_query without new_decoder_architecture -> 1 KV head whatever num_kv_heads says
    config = base(
        model_type="falcon",
        num_hidden_layers=32,
        num_attention_heads=71,
        hidden_size=4544,
        multi_query=True,
        new_decoder_architecture=False,
        num_kv_heads=71,
    )
    data = run_json(str(write_config(config)))
    assert (data["kv_heads"], data["head_size"]) == (1, 64)
    assert data["bytes_per_token"] == 32 * 2 * 1 * 64 * 2


def test_falcon_new_decoder_architecture_uses_num_kv_heads(write_config, run_json):
    config = base(
        model_type="falcon",
        num_hidden_layers=60,
        num_attention_heads=128,
        hidden_size=8192,
        multi_query=True,
        new_decoder_architecture=True,
        num_kv_heads=8,
    )
    data = run_json(str(write_config(config)))
    assert data["kv_heads"] == 8
    assert data["bytes_per_token"] == 60 * 2 * 8 * 64 * 2


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("n_head_kv", {}),
        ("num_kv_heads", {}),
        ("multi_query_group_num", {}),
        ("num_attention_groups", {}),
    ],
)
def test_kv_head_aliases(write_config, run_json, field, extra):
    config = base(**{field: 2, **extra})
    data = run_json(str(write_config(config)))
    assert data["kv_heads"] == 2
    assert data["bytes_per_token"] == 2 * 2 * 2 * 64 * 2


def test_kv_head_alias_precedence(write_config, run_json):
    # n_head_kv is read before num_key_value_heads (vLLM get_total_num_kv_heads)
    config = base(n_head_kv=4, num_key_value_heads=2)
    assert run_json(str(write_config(config)))["kv_heads"] == 4


def test_no_kv_head_field_means_multi_head(write_config, run_json):
    config = base()
    assert run_json(str(write_config(config)))["kv_heads"] == 8


@pytest.mark.parametrize(
    ("fields", "head_size"),
    [
        ({"head_dim": 96}, 96),
        ({"attention_head_dim": 80}, 80),
        ({"hidden_size_per_head": 72}, 72),
        ({"head_dim": 0}, 64),  # head_dim must be > 0 to count; falls back to hidden / heads
        ({}, 64),
    ],
)
def test_head_size_variants(write_config, run_json, fields, head_size):
    config = base(num_hidden_layers=1, num_key_value_heads=8, **fields)
    assert run_json(str(write_config(config)))["head_size"] == head_size


def test_unknown_model_type_is_sized_from_raw_fields_with_warning(write_config, run):
    config = base()
    result = run(str(write_config(config)))
    assert result.exit_code == 0
    assert "does not know model_type 'kvsize_test'" in result.stderr


def test_kv_cache_scheme_turns_auto_into_fp8(write_config, run_json):
    config = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "hidden_size": 512,
        "torch_dtype": "bfloat16",
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"},
        },
    }
    data = run_json(str(write_config(config)))
    assert (data["kv_dtype"], data["dtype_bytes"], data["bytes_per_token"]) == ("fp8", 1, 2 * 2 * 2 * 64 * 1)


def test_modelopt_kv_quant_algo_turns_auto_into_fp8(write_config, run_json):
    config = base(
        model_type="llama", num_key_value_heads=2, quantization_config={"quant_method": "modelopt", "kv_cache_quant_algo": "FP8"}
    )
    assert run_json(str(write_config(config)))["kv_dtype"] == "fp8"


def test_float32_config_is_served_as_bf16(write_config, run, run_json):
    config = base(model_type="llama", torch_dtype="float32", num_key_value_heads=2)
    directory = str(write_config(config))
    assert run_json(directory)["kv_dtype"] == "bfloat16"
    assert "float32: sized as bfloat16" in run(directory).stderr


def test_dtype_key_of_transformers_5(write_config, run_json):
    config = base(model_type="llama", torch_dtype=None, num_key_value_heads=2, dtype="float16")
    assert run_json(str(write_config(config)))["kv_dtype"] == "float16"


FAIL_CLOSED = [
    ({"layer_types": ["full_attention", "mystery_attention"]}, "layer_types[1] = 'mystery_attention'"),
    ({"kv_lora_rank": 512, "qk_rope_head_dim": 64}, "kv_lora_rank is set but model_type"),
    ({"index_topk": 2048}, "index_topk is set"),
    ({"num_key_value_heads": [2, 4]}, "per-layer list"),
    ({"hybrid_override_pattern": "*X"}, "hybrid_override_pattern[1] = 'X'"),
    ({"layer_types": ["mamba", "mamba"]}, "no layer of kvsize_test keeps a per-token KV cache"),
    ({"layer_types": ["full_attention"]}, "describes 1 layers but num_hidden_layers = 2"),
    ({"num_key_value_heads": 3}, "does not divide num_attention_heads = 8"),
    ({"torch_dtype": "int4"}, "torch_dtype = 'int4' is not a dtype"),
    ({"num_hidden_layers": 0}, "num_hidden_layers = 0 is out of range"),
    ({"num_hidden_layers": "36"}, "num_hidden_layers = '36' is not a whole number"),
    ({"hidden_size": 500, "num_attention_heads": 8}, "not a multiple of"),
    ({"is_encoder_decoder": True}, "encoder-decoder"),
]


@pytest.mark.parametrize(("change", "message"), FAIL_CLOSED, ids=[m for _, m in FAIL_CLOSED])
def test_fail_closed_names_the_field(write_config, run, change, message):
    config = base(**{"num_key_value_heads": 2, **change})
    result = run(str(write_config(config)))
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_missing_layer_count_names_the_fields(write_config, run):
    result = run(str(write_config({"model_type": "kvsize_test", "num_attention_heads": 8, "hidden_size": 512})))
    assert result.exit_code == 2
    assert "num_hidden_layers, n_layer, num_layers, n_layers" in result.stderr
