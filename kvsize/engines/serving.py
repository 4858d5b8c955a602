"""vLLM's own rules, whatever engine offloads its KV cache: which TP and PP it accepts, how it splits
layers over pipeline stages, which KV-cache dtype it serves, and which architectures it still serves
(vLLM 0.33.0: ``vllm/config/model.py``, ``vllm/distributed/utils.py``, ``vllm/model_executor/models/registry.py``).
"""

from __future__ import annotations

from kvsize.errors import ParallelismError, UnsupportedModelError, shown
from kvsize.model.spec import ModelSpec

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


# vLLM 0.33.0 vllm/model_executor/models/registry.py, _PREVIOUSLY_SUPPORTED_MODELS: architecture -> the last
# vLLM version that served it. ModelRegistry._raise_for_unsupported refuses a config none of whose
# architectures is served, naming this version.
RETIRED_ARCHITECTURES: dict[str, str] = {
    "MotifForCausalLM": "0.10.2",
    "Phi3SmallForCausalLM": "0.9.2",
    "Phi4FlashForCausalLM": "0.10.2",
    "Phi4MultimodalForCausalLM": "0.12.0",
    "JAISLMHeadModel": "0.22.0",
    "ErnieModel": "0.23.0",
    "ErnieForSequenceClassification": "0.23.0",
    "ErnieForTokenClassification": "0.23.0",
    "InternLM2VEForCausalLM": "0.23.0",
    "QWenLMHeadModel": "0.23.0",
    "QwenVLForConditionalGeneration": "0.23.0",
    "InternLMForCausalLM": "0.23.0",
    "DonutForConditionalGeneration": "0.10.2",
    "MllamaForConditionalGeneration": "0.10.2",
    "XverseForCausalLM": "0.23.0",
    "Dots1ForCausalLM": "0.23.0",
    "BambaForCausalLM": "0.23.0",
    "MiniMaxForCausalLM": "0.23.0",
    "MiniMaxText01ForCausalLM": "0.23.0",
    "MiniMaxM1ForCausalLM": "0.23.0",
    "MiniMaxVL01ForConditionalGeneration": "0.23.0",
    "BaiChuanForCausalLM": "0.23.0",
    "BaichuanForCausalLM": "0.23.0",
    "AquilaModel": "0.24.0",
    "AquilaForCausalLM": "0.24.0",
    "Grok1ModelForCausalLM": "0.24.0",
    "Grok1ForCausalLM": "0.24.0",
    "TarsierForConditionalGeneration": "0.24.0",
    "Tarsier2ForConditionalGeneration": "0.23.0",
    "MantisForConditionalGeneration": "0.24.0",
    "MusicFlamingoForConditionalGeneration": "0.24.0",
    "AyaVisionForConditionalGeneration": "0.24.0",
    "TeleChatForCausalLM": "0.25.0",
    "PersimmonForCausalLM": "0.25.0",
    "FuyuForCausalLM": "0.25.0",
    "Plamo2ForCausalLM": "0.26.0",
    "OuroForCausalLM": "0.26.0",
    "ArcticForCausalLM": "0.28.0",
    "ChameleonForConditionalGeneration": "0.28.0",
    "Cheers": "0.28.0",
    "CheersForConditionalGeneration": "0.28.0",
    "Fairseq2LlamaForCausalLM": "0.28.0",
    "FireRedLIDForConditionalGeneration": "0.28.0",
    "GritLM": "0.28.0",
    "HCXVisionForCausalLM": "0.28.0",
    "MPTForCausalLM": "0.28.0",
    "MptForCausalLM": "0.28.0",
    "RWForCausalLM": "0.28.0",
    "StableLMEpochForCausalLM": "0.28.0",
    "PrithviGeoSpatialMAE": "0.28.0",
}


def version_tuple(text: str, what: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise ParallelismError(f"{what} must be a version string like '0.23.0', got {shown(text)}", field=what.strip("`"))
    parts = text.strip().removeprefix("v").split(".")
    # ASCII digits only: str.isdigit() also takes '²' and other digits int() refuses.
    if not 1 <= len(parts) <= 4 or not all(part.isascii() and part.isdigit() and len(part) <= 6 for part in parts):
        raise ParallelismError(f"{what} {shown(text)} is not a version: write it like 0.23.0", field=what.strip("`"))
    return tuple(int(part) for part in parts)


def check_served(spec: ModelSpec, vllm_version: str) -> None:
    """Refuse a model whose every architecture ``vllm_version`` no longer serves (vLLM's own rule)."""
    version = version_tuple(vllm_version, "`vllm_version`")
    retired = [arch for arch in spec.architectures if arch in RETIRED_ARCHITECTURES]
    if not retired or len(retired) < len(spec.architectures):
        return
    arch, until = retired[0], RETIRED_ARCHITECTURES[retired[0]]
    if version > version_tuple(until, "`vllm_version`"):
        raise UnsupportedModelError(
            f"{spec.name}: vLLM serves architecture {arch} only until v{until} (its registry's previously-supported list), "
            f"so vLLM {vllm_version} refuses it; give `vllm_version` {until} to size it for that vLLM",
            field="architectures",
        )


def pp_split(num_layers: int, pp: int) -> list[int]:
    """Layers per stage, as vLLM's ``get_pp_indices`` (``vllm/distributed/utils.py``) splits them.

    ``n // pp`` each; the remainder goes one layer each to the stages counting back
    from the second-to-last, never the last: 4 at PP 3 → [1, 2, 1]; 61 at PP 4 → [15, 15, 16, 15].
    """
    partitions = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        partitions[-i] += 1
    return partitions


def resolve_kv_dtype(spec: ModelSpec, kv_dtype: str) -> tuple[str, str, list[str]]:
    """The KV-cache dtype LMCache stores, why, and any warning (docs/rules.md)."""
    warnings: list[str] = []

    def field(name: str, fallback: str) -> str:
        source = spec.fields.get(name)
        return source.field if source else fallback

    if kv_dtype != "auto":
        return kv_dtype, "--kv-dtype", warnings
    if spec.kv_cache_quant:
        return spec.kv_cache_quant, field("kv cache quant", "the checkpoint's KV-cache scheme"), warnings
    if spec.config_dtype is None:
        warnings.append(
            "the config names no dtype: sized as bfloat16, as vLLM serves it (falls back to the weights' dtype, "
            "then float32, which current GPUs serve as bf16); pass --kv-dtype if the deployment differs"
        )
        return "bfloat16", "no dtype in config: bfloat16", warnings
    if spec.config_dtype == "float32":
        warnings.append(
            "the config's dtype is float32: sized as bfloat16, as current GPUs serve it; pass --kv-dtype float16 if not"
        )
        return "bfloat16", f"{field('dtype', 'config dtype')} = float32, served as bfloat16", warnings
    return spec.config_dtype, field("dtype", "config dtype"), warnings


def stage_layers(spec: ModelSpec, pp: int, pp_partition: tuple[int, ...] | None) -> list[int]:
    """Layers per pipeline stage: ``pp_partition`` (VLLM_PP_LAYER_PARTITION) when given, else vLLM's split."""
    if pp > spec.num_layers:
        raise ParallelismError(f"`pp` {pp} is more than the model's {spec.num_layers} layers: each stage needs at least one")
    if pp_partition is None:
        return pp_split(spec.num_layers, pp)
    partition = list(pp_partition)
    if len(partition) != pp or sum(partition) != spec.num_layers or min(partition) < 1:
        raise ParallelismError(
            f"`pp_partition` {','.join(map(str, partition))} must give {pp} stages of at least one layer "
            f"that add up to the model's {spec.num_layers} layers"
        )
    return partition


def check_tp(spec: ModelSpec, tp: int) -> None:
    """vLLM rejects a TP that does not divide the attention heads, or that neither divides
    nor is a multiple of the KV heads (``ModelConfig.verify_with_parallel_config``;
    ``QKVParallelLinear``)."""
    heads = spec.num_attention_heads
    if heads % tp:
        options = [n for n in (1, 2, 4, 8, 16, 32, 64, 128) if heads % n == 0]
        raise ParallelismError(
            f"TP {tp} does not divide {spec.name}'s {heads} attention heads, so vLLM rejects it; "
            f"use `tp` {', '.join(map(str, options))}",
            field="tp",
        )
    if spec.use_mla:
        return
    kv = spec.num_kv_heads
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        raise ParallelismError(
            f"TP {tp} neither divides nor is a multiple of {spec.name}'s {kv} KV heads, so vLLM rejects it; "
            "pick a `tp` that divides the KV heads or is a multiple of them",
            field="tp",
        )
