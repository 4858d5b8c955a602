"""Run inside a venv holding vllm 0.33.0: read each emitted `vllm serve` line with vLLM's own code (emit_roundtrip.py)."""

import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
import torch
import vllm
from vllm.distributed.kv_transfer.kv_connector.v1.offloading.config import build_offloading_config
from vllm.entrypoints.common.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec, KVCacheTensor
from vllm.v1.kv_offload.factory import OffloadingSpecFactory


def kv_cache_config(vc):
    """Qwen3-4B's one KV-cache group at this TP: 36 layers, 2 KV heads per rank, head 128, bf16."""
    block = vc.cache_config.block_size
    layers = [f"model.layers.{i}.self_attn.attn" for i in range(36)]
    spec = FullAttentionSpec(
        block_size=block, num_kv_heads=8 // vc.parallel_config.tensor_parallel_size, head_size=128, dtype=torch.bfloat16
    )
    page, blocks = spec.page_size_bytes, 64
    tensor = KVCacheTensor(size=blocks * page * 36, layers=layers, layer_stride=page * blocks, block_stride=page)
    return KVCacheConfig(num_blocks=blocks, kv_cache_tensors=[tensor], kv_cache_groups=[KVCacheGroupSpec(layers, spec)])


def read(line, model_dir):
    argv = shlex.split(line)
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    args = parser.parse_args(["--model", model_dir, "--skip-tokenizer-init", "--max-model-len", "32768", *argv[3:]])
    validate_parsed_serve_args(args)
    vc = vllm.AsyncEngineArgs.from_cli_args(args).create_engine_config()
    spec = OffloadingSpecFactory.create_spec(build_offloading_config(vc, kv_cache_config(vc)))
    return vc, spec


def main():
    data = json.loads(Path(sys.argv[1]).read_text())
    model_dir = os.path.join(data["work"], "model")
    for case in data["cases"]:
        (line,) = [row for row in case["text"].splitlines() if row.startswith("vllm serve")]
        tier = case["what"]
        try:
            vc, spec = read(line, model_dir)
            extra = vc.kv_transfer_config.kv_connector_extra_config
            detail = (
                f"{vc.kv_transfer_config.kv_connector}, cpu_bytes_to_use {extra.get('cpu_bytes_to_use'):.0f}, "
                f"{getattr(spec, 'num_chunks', '?')} chunks of {getattr(spec, 'kv_bytes_per_chunk', '?')} B"
            )
        except Exception as error:
            print(
                json.dumps(
                    {
                        "what": tier,
                        "label": case["label"],
                        "verdict": "FAIL",
                        "detail": f"parse/config: {type(error).__name__}: {error}"[:200],
                    }
                )
            )
            continue
        failed = None
        if tier in ("cpu", "fs"):
            manager = None
            try:
                manager = spec.get_manager()
                detail += f"; manager {type(manager).__name__}"
            except Exception as error:
                failed = f"{type(error).__name__}: {error}"
            finally:
                if manager is not None:
                    manager.shutdown()
                region = getattr(spec, "_scheduler_mmap", None)
                if region is not None:
                    region.cleanup()
        else:
            detail += "; manager not built (the obj tier needs nixl and a reachable endpoint)"
        if case["label"] == "filled":
            verdict = "FAIL" if failed else "accepted"
        else:
            verdict = "refused" if failed else ("accepted-silently" if tier == "fs" else "accepted")
        print(json.dumps({"what": tier, "label": case["label"], "verdict": verdict, "detail": (failed or detail)[:200]}))


main()
