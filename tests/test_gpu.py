"""The first tier, GPU memory, as vLLM 0.33 sizes it (``--kv-cache-memory-bytes``: exact; ``--gpu``: an estimate):
blocks, tokens that fit and the "Maximum concurrency" line, derived by hand from vLLM's code
(``v1/core/kv_cache_planning.py`` ``_get_kv_cache_bytes_per_block`` and ``get_kv_cache_configs``;
``kv_cache_utils.py`` ``get_max_concurrency_for_kv_cache_config``; ``kv_cache_interface.py``
``max_admission_blocks_per_request``); the weights against published totals; the CLI and its bad input."""

from __future__ import annotations

import json
import math

import pytest

import kvsize
from kvsize.calls.gpu_memory import OVERHEAD_BYTES

GIB = 2**30
TEN = 10 * GIB
SEED = "Qwen/Qwen3-4B-Instruct-2507"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def gpu_of(
    model: str, engine: str = "vllm", tp: int = 1, prompt: int = 131_072, **gpu: object
) -> kvsize.calls.gpu_memory.GpuReport:
    result = kvsize.size(
        model,
        serving=kvsize.Serving(tp=tp),
        engine=engine,
        workload=kvsize.Workload(prompt=prompt),
        gpu=kvsize.Gpu(**gpu),
        chunk_sizes=[256],
    )
    assert result.gpu is not None
    return result.gpu


def test_full_attention_qwen3_4b():
    # P = 36 layers x (2 x 16 tokens x 8 heads x 128 x 2 B) = 2,359,296; 10 GiB // P = 4,551 blocks = 72,816 tokens.
    page = 36 * 2 * 16 * 8 * 128 * 2
    blocks = TEN // page
    for engine in ("vllm", "lmcache", "kvbm"):
        report = gpu_of(SEED, engine, prompt=65_536, kv_cache_memory_bytes=TEN)
        assert (report.bytes_per_block, report.num_blocks, report.tokens_that_fit) == (page, blocks, blocks * 16)
        assert (blocks, blocks * 16) == (4_551, 72_816)
        # one group at max_model_len 65,536: 4,096 blocks per request; vLLM logs "72,816 tokens ... 1.11x"
        assert report.blocks_per_request == 65_536 // 16
        assert report.max_concurrency == blocks / 4_096 and f"{report.max_concurrency:.2f}" == "1.11"
        assert report.kv_cache_size_tokens == int(blocks / 4_096 * 65_536) == 72_816


def test_sliding_window_gemma3_27b_keeps_its_groups_under_vllm_native():
    # 6 sliding groups (9, 9, 9, 9, 8, 8 layers) + 1 full (10): P = 10 x 131,072 = 1,310,720; 8,192 blocks.
    page = 16 * 2 * 16 * 128 * 2
    blocks = TEN // (10 * page)
    assert blocks == 8_192
    # on an H100 vllm serve batches 8,192 tokens, 2 in flight: a sliding group reserves
    # cdiv(min(1,023 + 16,384, 16,384), 16) + 1 = 1,025 blocks, the full one 1,024: 18,708 tokens, 1.14x
    report = gpu_of("google/gemma-3-27b-it", prompt=16_384, gpu="h100", kv_cache_memory_bytes=TEN)
    per_request = 6 * (cdiv(min(1023 + 16_384, 16_384), 16) + 1) + 16_384 // 16
    assert (report.num_blocks, report.tokens_that_fit, report.blocks_per_request) == (blocks, blocks * 16, per_request)
    assert (report.kv_cache_size_tokens, f"{report.max_concurrency:.2f}") == (18_708, "1.14")
    assert report.kv_cache_groups == 7 and report.max_num_batched_tokens == 8_192
    # without a GPU vLLM falls back to 2,048 batched tokens: at 32,768, 67,547 tokens, 2.06x
    report = gpu_of("google/gemma-3-27b-it", prompt=32_768, kv_cache_memory_bytes=TEN)
    per_request = 6 * (cdiv(1023 + 4_096, 16) + 1) + 32_768 // 16
    assert (report.blocks_per_request, report.kv_cache_size_tokens, f"{report.max_concurrency:.2f}") == (
        per_request,
        67_547,
        "2.06",
    )


def test_sliding_layers_count_as_full_attention_under_lmcache():
    # LMCache's in-process connector turns the hybrid allocator off: one group of all 62 layers
    report = gpu_of("google/gemma-3-27b-it", "lmcache", prompt=16_384, kv_cache_memory_bytes=TEN)
    page = 16 * 2 * 16 * 128 * 2
    assert (report.bytes_per_block, report.num_blocks, report.kv_cache_groups) == (62 * page, TEN // (62 * page), 1)


def test_gpt_oss_20b_two_groups():
    # 12 sliding (window 128) + 12 full layers, 8 KV heads x 64: P = 12 x 32,768 = 393,216; 27,306 blocks
    report = gpu_of("openai/gpt-oss-20b", gpu="h100", kv_cache_memory_bytes=TEN)
    assert (report.bytes_per_block, report.num_blocks, report.tokens_that_fit) == (393_216, 27_306, 436_896)
    per_request = cdiv(min(127 + 16_384, 131_072), 16) + 1 + 131_072 // 16
    assert report.blocks_per_request == per_request
    assert (report.kv_cache_size_tokens, f"{report.max_concurrency:.2f}") == (387_973, "2.96")


@pytest.mark.parametrize(("block", "blocks", "tokens"), [(16, 9_549, 152_784), (32, 4_774, 152_768), (64, 2_387, 152_768)])
def test_mla_deepseek_v3_one_latent_per_gpu(block, blocks, tokens):
    # 61 MLA layers x block x 576 x 2 B per GPU at TP 8 (every GPU holds the whole latent)
    result = kvsize.size(
        "deepseek-ai/DeepSeek-V3",
        serving=kvsize.Serving(tp=8),
        engine=kvsize.engines.Vllm(gpu_block_size=block),
        workload=kvsize.Workload(prompt=131_072),
        gpu=kvsize.Gpu(kv_cache_memory_bytes=TEN),
        chunk_sizes=[block * 16],
    )
    report = result.gpu
    assert report is not None
    assert (report.bytes_per_block, report.num_blocks, report.tokens_that_fit) == (61 * block * 576 * 2, blocks, tokens)
    assert f"{report.max_concurrency:.2f}" == "1.17"


def test_the_estimate_on_an_h100():
    # vLLM may use ceil(0.92 x memory); the weights (4,022,272,000 x 2 B) over TP 4, then the runtime overhead
    report = gpu_of(SEED, "lmcache", tp=4, prompt=100_000, gpu="h100")
    memory = round(79.19 * GIB)
    requested = math.ceil(memory * 0.92)
    weights = cdiv(4_022_272_000 * 2, 4)
    kv = requested - weights - OVERHEAD_BYTES
    page = 36 * 2 * 16 * 2 * 128 * 2  # 2 KV heads per rank at TP 4
    assert (report.gpu_memory_bytes, report.requested_bytes, report.weights_bytes_per_gpu) == (memory, requested, weights)
    assert (report.kv_cache_bytes, report.num_blocks, report.kv_cache_bytes_exact) == (kv, kv // page, False)
    assert report.gpu_memory_utilization == 0.92
    assert any("vLLM 0.33's default" in note for note in report.notes)


PUBLISHED = {  # parameters as published (model cards): the count must come within 1.5%
    SEED: 4.02e9,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03e9,
    "meta-llama/Llama-3.1-70B-Instruct": 70.6e9,
    "Qwen/Qwen3-30B-A3B": 30.5e9,
    "Qwen/Qwen3-235B-A22B": 235e9,
    "deepseek-ai/DeepSeek-V3": 671e9,
    "openai/gpt-oss-20b": 20.9e9,
    "openai/gpt-oss-120b": 116.8e9,
    "mistralai/Mixtral-8x7B-v0.1": 46.7e9,
    "google/gemma-3-27b-it": 27.0e9,  # the language model (27.4 B with the vision tower)
}


@pytest.mark.parametrize("model", list(PUBLISHED))
def test_weights_against_published_totals(model):
    weights = kvsize.resolve_model(model).weights
    assert weights is not None and abs(weights.parameters / PUBLISHED[model] - 1) < 0.015


def test_weights_follow_the_quantization_config():
    oss = kvsize.resolve_model("openai/gpt-oss-20b").weights
    ds = kvsize.resolve_model("deepseek-ai/DeepSeek-V3").weights
    assert oss is not None and ds is not None and "mxfp4" in oss.rule and "fp8" in ds.rule
    # gpt-oss-20b: 24 layers x 32 experts x 3 x 2,880 x 2,880 at 4.25 bits, the rest at 2 B
    experts = 24 * 32 * 3 * 2880 * 2880
    assert oss.bytes == experts * 17 // 32 + (oss.parameters - experts) * 2
    assert ds.bytes < ds.parameters * 1.01  # fp8: about a byte a parameter


def test_cli_header_and_json_only_with_a_gpu(run):
    plain = run(SEED, "--tp", "4")
    assert plain.exit_code == 0 and "KV cache" not in plain.stdout and "GPU" not in plain.stdout
    data = json.loads(run(SEED, "--tp", "4", "--format", "json").stdout)
    assert data["gpu"] is None
    shown = run(SEED, "--tp", "4", "--gpu", "H100")
    assert shown.exit_code == 0, shown.stderr
    assert "GPU h100: 79.19 GiB as CUDA reports it, 0.92 of it for vLLM" in shown.stdout
    assert "tokens fit; maximum concurrency" in shown.stdout
    markdown = run(SEED, "--tp", "4", "--kv-cache-memory-bytes", "10GiB", "--format", "markdown").stdout
    blocks = TEN // (36 * 2 * 16 * 2 * 128 * 2)  # 2 KV heads per rank at TP 4
    assert f"KV cache 10 GiB per GPU (given, exact): {blocks:,} blocks of 16 tokens" in markdown
    data = json.loads(run(SEED, "--gpu", "b200", "--kv-cache-memory-bytes", "10GiB", "--format", "json").stdout)
    assert data["gpu"]["kv_cache_bytes"] == TEN and data["gpu"]["tokens_that_fit"] == 72_816
    assert data["gpu"]["max_num_batched_tokens"] == 16_384 and data["gpu"]["max_concurrency"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--gpu", "tpu"), "unknown --gpu 'tpu'"),
        (("--gpu", "\udcff" * 50), "unknown --gpu"),
        (("--gpu", "h100", "--gpu-memory", "80"), "give --gpu or --gpu-memory, not both"),
        (("--gpu-memory", "-1"), "--gpu-memory must be more than 0"),
        (("--gpu-memory", "nan"), "--gpu-memory must be a finite number"),
        (("--gpu-memory", "inf"), "--gpu-memory must be a finite number"),
        (("--gpu-memory", "1e9"), "--gpu-memory must be at most"),
        (("--gpu", "h100", "--gpu-memory-utilization", "1.5"), "--gpu-memory-utilization must be at most 1"),
        (("--gpu", "h100", "--gpu-memory-utilization", "0"), "--gpu-memory-utilization must be more than 0"),
        (("--gpu", "h100", "--gpu-memory-utilization", "nan"), "--gpu-memory-utilization must be a finite number"),
        (("--gpu-memory-utilization", "0.5"), "give --gpu or --gpu-memory too"),
        (("--kv-cache-memory-bytes", "0"), "--kv-cache-memory-bytes must be"),
        (("--kv-cache-memory-bytes", "-5GiB"), "--kv-cache-memory-bytes"),
        (("--kv-cache-memory-bytes", "lots"), "--kv-cache-memory-bytes 'lots' is not a number"),
        (("--kv-cache-memory-bytes", "9" * 30), "too large"),
        (("--kv-cache-memory-bytes", "2PiB"), "--kv-cache-memory-bytes must be 1 to"),
        (("--kv-cache-memory-bytes", "1MiB"), "holds 0 blocks"),
        (("--gpu", "l4", "--tp", "1", "meta-llama/Llama-3.1-70B-Instruct"), "does not fit on L4"),
        (("--gpu", "h100", "--engine", "sglang"), "SGLang sizes its KV pool"),
        (("--gpu", "h100", "--engine", "kvbm", "--kvbm-engine", "trtllm"), "free_gpu_memory_fraction"),
    ],
)
def test_bad_gpu_input_is_one_line(run, args, message):
    model = [arg for arg in args if "/" in arg] or [SEED]
    result = run(model[0], *(arg for arg in args if "/" not in arg))
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_state_models_refuse_a_gpu(run):
    result = run("ai21labs/AI21-Jamba-1.5-Mini", "--engine", "vllm", "--gpu", "h100")
    assert result.exit_code == 2 and "state layers" in result.stderr
