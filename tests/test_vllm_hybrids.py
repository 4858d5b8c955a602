"""State models (Mamba, Gated DeltaNet) under vLLM 0.33's native offloading: the states each state group stores for a
prompt, what an identical resend reloads, and the GPU block, per GPU generation (``--gpu-arch``) and prefill budget
(``--max-num-batched-tokens``).

The rule (docs/engines.md, "State layers"), from vLLM 0.33.0's code:

- ``mamba_cache_mode`` is "align" with prefix caching on (``MambaModelConfig.verify_and_update_config``), and
  ``Scheduler._mamba_block_aligned_split`` (``v1/core/sched/scheduler.py``) cuts every non-final prefill chunk to a
  block multiple and stops the last one at ``lcp = floor((N - 1) / B) x B`` (``get_mamba_prefill_checkpoint_position``);
  with a budget T >= B the non-final chunks end at ``j x S``, ``S = B x floor(T / B)``, ``j <= cdiv(N - T, S)``;
- ``MambaManager.cache_blocks`` (``v1/core/single_type_kv_cache_manager.py``) hands the connector the state at each
  of those ends, at ``lcp``, at ``N`` when B divides it, and, for Mamba2 (``MambaMixer2.get_kv_cache_spec``) and
  FlashInfer's Gated DeltaNet (``QwenGatedDeltaNetAttention.get_kv_cache_spec``), at ``j x S - B`` of every chunk of
  at least 2B (``is_mamba_prefill_checkpoint_valid``, ``v1/kv_cache_interface.py``);
- ``OffloadingConnectorScheduler._build_aligned_boundary_store_jobs`` stores one only at a multiple of the chunk C;
  ``_lookup_complete_chunks`` reloads up to the last stored state at or below ``round_down(N - 1, C)``, else nothing.

The expected numbers are what vLLM 0.33.0's own ``Scheduler``, ``MambaManager``, ``OffloadingConnectorScheduler`` and
``CPUOffloadingManager`` produced on CPU for one 100,000-token prompt prefilled alone, then sent again after a GPU
prefix-cache reset (45 runs; the block from ``Platform._align_hybrid_block_size`` run on the three configs).
"""

from __future__ import annotations

from typing import Any

import pytest

import kvsize
from tests.test_hardening import one_line

JAMBA = "ai21labs/AI21-Jamba-1.5-Mini"
QWEN_NEXT = "Qwen/Qwen3-Next-80B-A3B-Instruct"
NEMOTRON = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
SEED = "Qwen/Qwen3-4B-Instruct-2507"
PROMPT = 100_000
BUDGETS = {"ampere": 2_048, "hopper": 8_192, "blackwell": 16_384}
"""``vllm serve``'s default max_num_batched_tokens (``get_batch_defaults``): A100, H100/H200, B200."""
STATE_GROUPS = {JAMBA: 7, QWEN_NEXT: 3, NEMOTRON: 4}
"""Jamba: 28 Mamba layers in groups of 4; Qwen3-Next: 36 GDN layers in groups of 12; Nemotron-3-Nano: 23 in groups of
6 (``_get_kv_cache_groups_uniform_page_size``); each beside one attention group."""

# (model, TP, arch) -> GPU block, states handed over per state group, and for chunks of 1, 4 and 64 blocks:
# (states stored per state group, attention objects, objects in all, tokens an identical resend reloads).
CASES: dict[tuple[str, int, str], tuple[int, int, tuple[tuple[int, int, int, int], ...]]] = {
    (JAMBA, 1, "ampere"): (80, 51, ((51, 1_250, 1_607, 99_920), (12, 312, 396, 96_000), (0, 19, 19, 0))),
    (JAMBA, 1, "hopper"): (80, 14, ((14, 1_250, 1_348, 99_920), (6, 312, 354, 97_920), (0, 19, 19, 0))),
    (JAMBA, 1, "blackwell"): (80, 8, ((8, 1_250, 1_306, 99_920), (6, 312, 354, 97_920), (0, 19, 19, 0))),
    (JAMBA, 4, "ampere"): (80, 51, ((51, 1_250, 1_607, 99_920), (12, 312, 396, 96_000), (0, 19, 19, 0))),
    (JAMBA, 4, "hopper"): (80, 14, ((14, 1_250, 1_348, 99_920), (6, 312, 354, 97_920), (0, 19, 19, 0))),
    (JAMBA, 4, "blackwell"): (80, 8, ((8, 1_250, 1_306, 99_920), (6, 312, 354, 97_920), (0, 19, 19, 0))),
    (QWEN_NEXT, 1, "ampere"): (544, 61, ((61, 183, 366, 99_552), (15, 45, 90, 97_920), (0, 2, 2, 0))),
    (QWEN_NEXT, 1, "hopper"): (576, 25, ((25, 173, 248, 99_648), (6, 43, 61, 96_768), (0, 2, 2, 0))),
    (QWEN_NEXT, 1, "blackwell"): (576, 13, ((13, 173, 212, 99_648), (6, 43, 61, 96_768), (0, 2, 2, 0))),
    (QWEN_NEXT, 4, "ampere"): (272, 53, ((53, 367, 526, 99_824), (13, 91, 130, 99_008), (0, 5, 5, 0))),
    (QWEN_NEXT, 4, "hopper"): (320, 25, ((25, 312, 387, 99_840), (7, 78, 99, 99_840), (0, 4, 4, 0))),
    (QWEN_NEXT, 4, "blackwell"): (320, 13, ((13, 312, 351, 99_840), (3, 78, 87, 99_840), (0, 4, 4, 0))),
    (NEMOTRON, 1, "ampere"): (2_096, 47, ((47, 47, 235, 98_512), (11, 11, 55, 92_224), (0, 0, 0, 0))),
    (NEMOTRON, 1, "hopper"): (2_096, 31, ((31, 47, 171, 98_512), (7, 11, 39, 92_224), (0, 0, 0, 0))),
    (NEMOTRON, 1, "blackwell"): (2_096, 13, ((13, 47, 99, 98_512), (2, 11, 19, 58_688), (0, 0, 0, 0))),
    (NEMOTRON, 4, "ampere"): (1_056, 94, ((94, 94, 470, 99_264), (23, 23, 115, 97_152), (1, 1, 5, 67_584))),
    (NEMOTRON, 4, "hopper"): (1_056, 27, ((27, 94, 202, 99_264), (6, 23, 47, 88_704), (0, 1, 1, 0))),
    (NEMOTRON, 4, "blackwell"): (1_056, 13, ((13, 94, 146, 99_264), (2, 23, 31, 63_360), (0, 1, 1, 0))),
}


def _sweep(run_json: Any, model: str, tp: int, block: int, *args: str) -> dict[str, Any]:
    chunks = f"{block},{4 * block},{64 * block}"
    data: dict[str, Any] = run_json(
        model, "--engine", "vllm", "--tp", str(tp), "--prompt", str(PROMPT), "--chunk-sizes", chunks, *args
    )
    return data


@pytest.mark.parametrize(("model", "tp", "arch"), list(CASES))
def test_states_stored_match_vllms_own_scheduler(run_json, model, tp, arch):
    block, handed, cells = CASES[(model, tp, arch)]
    data = _sweep(run_json, model, tp, block, "--gpu-arch", arch)
    options = data["engine_options"]
    assert (options["gpu_block_size"], options["gpu_arch"], options["max_num_batched_tokens"]) == (
        block,
        arch,
        BUDGETS[arch],
    )
    assert [row["chunk_tokens"] for row in data["rows"]] == [block, 4 * block, 64 * block]
    for row, (stored, attention, objects, hit) in zip(data["rows"], cells, strict=True):
        states = [g for g in row["groups"] if g["kind"] in ("mamba", "linear_attention")]
        (full,) = [g for g in row["groups"] if g["kind"] == "full_attention"]
        assert len(states) == STATE_GROUPS[model]
        assert {(g["objects"], g["states_handed_over"]) for g in states} == {(stored, handed)}, row["chunk_tokens"]
        assert (full["objects"], full["states_handed_over"]) == (attention, None)
        assert row["objects"] == objects == STATE_GROUPS[model] * stored + attention
        assert {g["resend_hit_tokens"] for g in row["groups"]} == {hit}


def test_jamba_by_hand_on_hopper(run_json):
    """B = 80, T = 8,192: S = 80 x 102 = 8,160, cdiv(100,000 - 8,192, 8,160) = 12 chunk ends (8,160 ... 97,920), then
    99,920 (the last block boundary) and 100,000 (80 divides it): 14 states. At chunk 320 (4 blocks) 8,160 j is a
    multiple of 320 for even j: 6 stored, the last at 97,920, which a resend reloads (99,920 / 320 and 100,000 / 320 are
    not whole). At 5,120 (64 blocks) 8,160 j needs j a multiple of 32 > 12: none; the 19 attention objects are never
    loaded."""
    data = _sweep(run_json, JAMBA, 4, 80)  # hopper is the default
    assert data["engine_options"]["gpu_arch"] == "hopper"
    by_chunk = {row["chunk_tokens"]: row for row in data["rows"]}
    assert by_chunk[320]["groups"][0]["objects"] == 6 and by_chunk[320]["groups"][0]["resend_hit_tokens"] == 97_920
    assert by_chunk[5_120]["objects"] == 19 and by_chunk[5_120]["groups"][-1]["resend_hit_tokens"] == 0
    notes = data["notes"]
    assert any(note.startswith("GPU hopper (the default; --gpu-arch): prefill chunks of at most 8,192 tokens") for note in notes)
    assert any("non-final chunks end every 8,160 tokens" in note for note in notes)
    assert any("chunk 80: 99,920 tokens; chunk 320: 97,920 tokens; chunk 5,120: 0 tokens" in note for note in notes)
    lost = [note for note in notes if note.startswith("chunk 5,120: no state is stored at a boundary a reload can use")]
    assert len(lost) == 1 and "attention objects there (19) are stored but never loaded" in lost[0]


def test_the_table_says_when_a_chunk_stores_no_usable_state(run):
    result = run(JAMBA, "--engine", "vllm", "--tp", "4", "--chunk-sizes", "80,5120")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "chunk 5,120: no state is stored at a boundary a reload can use" in text
    assert "Objects per KV-cache group: chunk 80: 7 x mamba 14 + full_attention 1,250" in text


def test_a_given_budget_replaces_the_arch_default(run_json):
    """Hopper with the A100's 2,048 tokens stores what the A100 does (S = 80 x 25 = 2,000: 49 chunk ends, 99,920,
    100,000), and the note says the budget was given."""
    data = _sweep(run_json, JAMBA, 4, 80, "--max-num-batched-tokens", "2048")
    assert data["engine_options"]["max_num_batched_tokens"] == 2_048 and data["engine_options"]["gpu_arch"] == "hopper"
    assert data["rows"][0]["groups"][0]["states_handed_over"] == 51
    assert any("at most 2,048 tokens (max_num_batched_tokens, given)" in note for note in data["notes"])


def test_a_budget_below_the_block_stops_at_every_block(run_json):
    """Nemotron-3-Nano at TP 1 (B = 2,096) on an A100 (T = 2,048 < B): chunks advance below a block and stop at each
    boundary (``next_block_boundary``), so states at 2,096 m up to 98,512 = 47 x 2,096 (no checkpoints: no chunk is 2B)."""
    data = _sweep(run_json, NEMOTRON, 1, 2_096, "--gpu-arch", "ampere")
    assert data["rows"][0]["groups"][0]["states_handed_over"] == 47 == 98_512 // 2_096
    assert any("a 2,096-token block is more than that, so chunks stop at every block boundary" in n for n in data["notes"])


def test_gdn_block_follows_the_arch(run_json):
    """Qwen3-Next at TP 1: state 8,192 x 3 x 2 + 32 x 128 x 128 x 2 = 1,097,728 B, attention 2 x 2 x 256 x 2 = 2,048 B a
    token. Triton (ampere, ada): 16 x cdiv(1,097,728, 32,768) = 544; FlashInfer (hopper, blackwell; head_k_dim 128):
    alignment lcm(16, 64) = 64, 64 x cdiv(1,097,728, 131,072) = 576."""
    blocks = {}
    for arch in ("ampere", "ada", "hopper", "blackwell"):
        data = run_json(QWEN_NEXT, "--engine", "vllm", "--gpu-arch", arch, "--chunk-sizes", "9792")  # lcm(544, 576)
        blocks[arch] = data["engine_options"]["gpu_block_size"]
        kernel = "FlashInfer (64-token checkpoint alignment)" if arch in ("hopper", "blackwell") else "Triton"
        assert any(f"Gated DeltaNet prefill runs {kernel}" in note for note in data["notes"]), arch
    assert blocks == {"ampere": 544, "ada": 544, "hopper": 576, "blackwell": 576}
    assert (
        run_json(QWEN_NEXT, "--engine", "vllm", "--gpu-arch", "ada", "--chunk-sizes", "544")["engine_options"][
            "max_num_batched_tokens"
        ]
        == 2_048
    )  # L40S


def test_llmd_fs_takes_the_arch_too(run_json):
    data = run_json(QWEN_NEXT, "--engine", "llmd-fs", "--tp", "4", "--gpu-arch", "ampere", "--chunk-sizes", "272")
    (row,) = data["rows"]
    assert data["engine_options"]["gpu_block_size"] == 272
    # one file per (chunk, group, worker): 4 workers x (3 GDN groups x 53 + 367 attention chunks)
    assert row["objects"] == 4 * (3 * 53 + 367)
    assert {g["resend_hit_tokens"] for g in row["groups"]} == {99_824}


def test_the_approximate_note_goes_when_the_block_given_is_kept(run_json):
    def approximate(*args: str) -> bool:
        notes = run_json(JAMBA, "--engine", "vllm", "--tp", "4", "--chunk-sizes", "1280", *args)["notes"]
        return any(note.startswith("approximate:") for note in notes)

    assert approximate()  # derived: 16 x cdiv(77,824, 16 x 1,024) = 80
    assert not approximate("--gpu-block-size", "80")  # given, and vLLM keeps it
    assert not approximate("--gpu-block-size", "256")
    # Qwen3-Next at TP 4 on Hopper with --gpu-block-size 272: align = lcm(272, 64) = 1,088, raised to 1,088 x
    # cdiv(274,432, 1,088 x 1,024) = 1,088, which is derived, so the note stays.
    data = run_json(QWEN_NEXT, "--engine", "vllm", "--tp", "4", "--gpu-block-size", "272", "--chunk-sizes", "1088")
    assert data["engine_options"]["gpu_block_size"] == 1_088
    assert any(note.startswith("approximate: vLLM raises the GPU block") for note in data["notes"])


def test_library_takes_the_arch_and_budget(run_json):
    result = kvsize.size(
        QWEN_NEXT,
        serving=kvsize.Serving(tp=4),
        engine=kvsize.engines.Vllm(gpu_arch="blackwell", max_num_batched_tokens=16_384),
        chunk_sizes=[1_280],
    )
    (row,) = result.rows
    assert (row.objects, result.engine_options["gpu_block_size"]) == (87, 320)
    cli = run_json(
        QWEN_NEXT, "--engine", "vllm", "--tp", "4", "--gpu-arch", "blackwell", "--max-num-batched-tokens", "16384",
        "--chunk-sizes", "1280",
    )  # fmt: skip
    assert result.model_dump(mode="json") == cli


def test_explain_derives_each_state_count(run):
    result = run(JAMBA, "--engine", "vllm", "--tp", "4", "--chunk-sizes", "320", "--explain")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert (
        "mamba (4 layers): states at the chunk ends every 8,160 tokens, the last block boundary 99,920, the end 100,000: "
        "14 handed over, those at a multiple of 320 stored -> 6 objects"
    ) in text
    assert "an identical resend reloads 97,920 tokens" in text


def test_emit_serves_a_state_model_with_the_budget_sized(run):
    result = run(JAMBA, "--engine", "vllm", "--tp", "4", "--gpu-arch", "ampere", "--chunk-size", "320", "--emit", "vllm")
    assert result.exit_code == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if line.startswith("vllm serve")]
    assert "--block-size 80 --max-num-batched-tokens 2048 " in command


def test_attention_models_keep_their_objects_and_gain_null_keys(run_json):
    """The GPU generation changes nothing for a model without state layers: same block, same objects."""
    for arch in ("ampere", "blackwell"):
        data = run_json(SEED, "--engine", "vllm", "--tp", "4", "--gpu-arch", arch, "--chunk-sizes", "256")
        (row,) = data["rows"]
        assert (row["objects"], data["engine_options"]["gpu_block_size"]) == (390, 16)
        assert row["groups"][0]["states_handed_over"] is None and row["groups"][0]["resend_hit_tokens"] is None
        assert not any("GPU " + arch in note for note in data["notes"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--gpu-arch", "hopper"), "--gpu-arch applies to --engine vllm or llmd-fs, not lmcache"),
        (("--max-num-batched-tokens", "2048"), "--max-num-batched-tokens applies to --engine vllm or llmd-fs, not lmcache"),
        (("--engine", "vllm", "--gpu-arch", "volta"), "unknown --gpu-arch 'volta': use one of ampere, ada, hopper, blackwell"),
        (("--engine", "vllm", "--gpu-arch", ""), "unknown --gpu-arch '': use one of"),
        (("--engine", "vllm", "--gpu-arch", "hopper\udcff"), "unknown --gpu-arch 'hopper\\udcff': use one of"),
        (("--engine", "vllm", "--gpu-arch", "h" * 10_000), "unknown --gpu-arch 'hhhh"),
        (("--engine", "vllm", "--max-num-batched-tokens", "0"), "--max-num-batched-tokens must be 1 to 1,000,000,000, got 0"),
        (("--engine", "vllm", "--max-num-batched-tokens", "-1"), "--max-num-batched-tokens must be 1 to 1,000,000,000"),
        (("--engine", "vllm", "--max-num-batched-tokens", "9" * 20), "--max-num-batched-tokens must be 1 to 1,000,000,000"),
        (("--engine", "vllm", "--max-num-batched-tokens", "1e400"), "Invalid value for '--max-num-batched-tokens'"),
        (("--engine", "vllm", "--max-num-batched-tokens", "nan"), "Invalid value for '--max-num-batched-tokens'"),
        (("--engine", "vllm", "--max-num-batched-tokens", "inf"), "Invalid value for '--max-num-batched-tokens'"),
        (("--engine", "vllm", "--max-num-batched-tokens", "abc"), "Invalid value for '--max-num-batched-tokens'"),
        (("--engine", "vllm", "--max-num-batched-tokens", "2048\udcff"), "Invalid value for '--max-num-batched-tokens'"),
        (("--engine", "llmd-fs", "--max-num-batched-tokens", "0"), "--max-num-batched-tokens must be 1 to 1,000,000,000"),
    ],
)
def test_bad_arch_and_budget_are_one_line(run, args, expected):
    line = one_line(run(JAMBA, *args))
    assert expected in line, line


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"gpu_arch": "volta"}, "unknown `gpu_arch` 'volta': use one of ampere, ada, hopper, blackwell"),
        ({"gpu_arch": 9}, "unknown `gpu_arch` 9: use one of"),
        ({"max_num_batched_tokens": 0}, "`max_num_batched_tokens` must be 1 to 1,000,000,000, got 0"),
        ({"max_num_batched_tokens": 2**40}, "`max_num_batched_tokens` must be 1 to 1,000,000,000"),
        ({"max_num_batched_tokens": 2048.0}, "`max_num_batched_tokens` must be a valid integer"),
        ({"max_num_batched_tokens": True}, "`max_num_batched_tokens` must be a valid integer"),
        ({"max_num_batched_tokens": float("nan")}, "`max_num_batched_tokens` must be a valid integer"),
    ],
)
def test_bad_settings_in_the_library_name_the_field(settings, expected):
    with pytest.raises(kvsize.KvsizeError) as error:
        kvsize.engines.Vllm(**settings)
    assert expected in str(error.value)


def test_a_resend_recomputes_what_it_cannot_reload(run_json):
    """The time model's recompute is the prompt past the reloaded state: 100,000 - 99,920 at chunk 80, 100,000 - 97,920
    at 320, and the whole prompt at 5,120, where nothing reloads (so no chunk that reloads nothing looks cheap)."""
    data = run_json(JAMBA, "--engine", "vllm", "--tp", "4", "--chunk-sizes", "80,320,5120", "-b", "nfs")
    assert {row["chunk_tokens"]: row["recompute_tokens"] for row in data["rows"]} == {80: 80, 320: 2_080, 5_120: 100_000}
    lmcache = run_json(JAMBA, "--tp", "4", "--chunk-sizes", "256", "-b", "nfs")
    assert lmcache["rows"][0]["recompute_tokens"] == 100_000 % 256  # the tail, as before
