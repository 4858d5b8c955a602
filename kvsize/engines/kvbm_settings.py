"""``--emit kvbm``: the ``DYN_KVBM_*`` environment of Dynamo KVBM (the kvbm wheel, v1 connector) at one block size,
and the ``vllm serve`` line that loads it.

From the kvbm 1.6.1 wheel and the dynamo source it was built from:

- the leader reads ``DYN_KVBM_CPU_CACHE_GB`` / ``DYN_KVBM_DISK_CACHE_GB`` as GB = 1e9 bytes (f64) for the whole
  instance and divides them by one block's bytes summed over all TP x PP workers
  (``lib/bindings/kvbm/src/block_manager/distributed/leader.rs`` ``get_blocks_config``,
  ``lib/llm/src/block_manager/distributed/leader.rs`` ``compute_num_blocks``: ``workers.iter().map(|w|
  w.bytes_per_block).sum()``); every worker then allocates that many blocks of its own slice
  (``worker.rs`` ``perform_allocation_and_build_handler``). ``config.rs`` ``should_bypass_cpu_cache`` parses the
  same variables as u64: write whole numbers;
- no released kvbm (0.7.0 to 1.6.1) reads any ``DYN_KVBM_OBJECT_*`` variable: the object tier (G4) exists only in
  dynamo's unreleased v2 connector, so kvsize writes no settings for it;
- under vLLM the connector is ``DynamoConnector`` from ``kvbm.vllm_integration.connector`` and KVBM's block is
  vLLM's ``--block-size``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from kvsize.engines.emit_options import LOCAL_DIR, EmitOptions, unfilled
from kvsize.engines.stack_settings import model_argument, prompts_per_instance, unused
from kvsize.errors import KvsizeError
from kvsize.quoting import comment, env_assignment, exact_number, shell_line
from kvsize.units import format_iec

if TYPE_CHECKING:
    from kvsize.engines.base import SweepRow
    from kvsize.plan import Sweep
    from kvsize.storage import TimeOptions

_LEADER = "lib/bindings/kvbm/src/block_manager/distributed/leader.rs get_blocks_config"
_DISK = "lib/llm/src/block_manager/storage/disk.rs DiskStorage::new"
VARIABLES: dict[str, tuple[str, str]] = {
    "DYN_KVBM_CPU_CACHE_GB": ("0.7.0", f"{_LEADER}; distributed/leader.rs compute_num_blocks"),
    "DYN_KVBM_CPU_CACHE_OVERRIDE_NUM_BLOCKS": ("0.7.0", _LEADER),
    "DYN_KVBM_DISK_CACHE_GB": ("0.7.0", f"{_LEADER}; distributed/leader.rs compute_num_blocks"),
    "DYN_KVBM_DISK_CACHE_OVERRIDE_NUM_BLOCKS": ("0.7.0", _LEADER),
    "DYN_KVBM_DISK_CACHE_DIR": ("0.7.0", _DISK),
    "DYN_KVBM_DISK_ZEROFILL_FALLBACK": ("0.7.0", "lib/llm/src/block_manager/storage/disk.rs allocate_file"),
    "DYN_KVBM_DISK_DISABLE_O_DIRECT": ("0.8.0", _DISK),
    "DYN_KVBM_DISK_ALLOCATOR_TYPE": ("1.1.0", "lib/llm/src/block_manager/storage/disk.rs disk_open_strategy_from_env"),
    "DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER": ("0.7.0", "lib/bindings/kvbm/src/block_manager.rs create_disk_offload_filter"),
    "DYN_KVBM_LEADER_WORKER_INIT_TIMEOUT_SECS": ("0.7.0", f"{_LEADER} get_leader_init_timeout_secs"),
    "DYN_KVBM_LEADER_ZMQ_HOST": ("0.7.0", "lib/bindings/kvbm/src/block_manager/distributed/utils.rs"),
    "DYN_KVBM_LEADER_ZMQ_PUB_PORT": ("0.7.0", "lib/bindings/kvbm/src/block_manager/distributed/utils.rs"),
    "DYN_KVBM_LEADER_ZMQ_ACK_PORT": ("0.7.0", "lib/bindings/kvbm/src/block_manager/distributed/utils.rs"),
    "DYN_KVBM_MAX_CONCURRENT_TRANSFERS": ("1.1.0", "lib/llm/src/block_manager/offload.rs max_concurrent_transfers"),
    "DYN_KVBM_MAX_TRANSFER_BATCH_SIZE": ("1.1.0", "lib/llm/src/block_manager/offload.rs max_transfer_batch_size"),
    "DYN_KVBM_METRICS": ("0.7.0", "lib/bindings/kvbm"),
    "DYN_KVBM_METRICS_PORT": ("0.7.0", "lib/bindings/kvbm/src/block_manager/vllm/connector/leader.rs"),
}
"""The variables a released kvbm reads: the first kvbm wheel that reads each (of 0.7.0, 0.8.0, 0.9.0, 1.0.0, 1.1.0,
1.2.0.post1, 1.4.0, 1.5.0, 1.6.0, 1.6.1), and the dynamo source that reads it."""
UNRELEASED = (
    "DYN_KVBM_OBJECT_ENABLED",
    "DYN_KVBM_OBJECT_BUCKET",
    "DYN_KVBM_OBJECT_ENDPOINT",
    "DYN_KVBM_OBJECT_REGION",
    "DYN_KVBM_OBJECT_ACCESS_KEY",
    "DYN_KVBM_OBJECT_SECRET_KEY",
    "DYN_KVBM_OBJECT_NUM_BLOCKS",
    "DYN_KVBM_TRANSFER_BATCH_SIZE",
)
"""Declared in dynamo's ``environment_names.rs`` but read by no released kvbm (0.7.0 to 1.6.1)."""
CONNECTOR = {
    "kv_connector": "DynamoConnector",
    "kv_role": "kv_both",
    "kv_connector_module_path": "kvbm.vllm_integration.connector",
}
"""vLLM's ``--kv-transfer-config`` for KVBM (``lib/bindings/kvbm/README.md``; ``kvbm/vllm_integration/connector``)."""
TRTLLM_CONNECTOR = {
    "connector_module": "kvbm.trtllm_integration.connector",
    "connector_scheduler_class": "DynamoKVBMConnectorLeader",
    "connector_worker_class": "DynamoKVBMConnectorWorker",
}
NO_OBJECT = (
    "KVBM's object tier (G4) is in no released kvbm: kvbm 1.6.1 (and every wheel since 0.7.0) reads no "
    "DYN_KVBM_OBJECT_* variable, so those settings would give a CPU-only KVBM; only dynamo's unreleased v2 connector "
    "has G4"
)


def cache_gb(row: SweepRow, prompts: int, margin: float) -> int:
    """Whole GB (1e9 B) for the instance that hold ``prompts`` prompts x ``margin``: KVBM divides it by one block of
    every worker (``row.total_bytes`` is the prompt's blocks of all workers)."""
    return max(1, math.ceil(row.total_bytes * prompts * margin / 1e9))


def kvbm_env(
    sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float, given: EmitOptions | None = None
) -> tuple[str, list[str]]:
    """The ``DYN_KVBM_*`` environment for a KVBM tier that holds the prompts ``row`` sizes, the engine's line, and
    warnings. The object tier is refused: no released kvbm has one."""
    given = given or EmitOptions()
    layout = sweep.layout
    framework = getattr(layout.options.settings, "framework", "vllm")
    if layout.connector.name != "disk":
        raise KvsizeError(f"`emit` kvbm: {NO_OBJECT}; size `kvbm_tier` disk", field="kvbm_tier")
    prompts = prompts_per_instance(options)
    gb = cache_gb(row, prompts, margin)
    blocks = math.floor(gb * 1e9 / (row.total_bytes / max(1, row.full_chunks))) if row.full_chunks else 0
    per_worker = row.total_bytes // max(1, layout.writers)
    env = [
        ("DYN_KVBM_CPU_CACHE_GB", str(gb)),
        ("DYN_KVBM_DISK_CACHE_GB", str(gb)),
        ("DYN_KVBM_DISK_CACHE_DIR", given.directory(LOCAL_DIR)),
    ]
    lines = [
        f"Dynamo KVBM settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, under {framework} (confidence medium).",
        f"block {row.chunk_tokens:,} tokens: {row.objects:,} transfers of {format_iec(row.object_bytes)} per prompt; "
        f"all {layout.writers} workers hold {format_iec(row.total_bytes)} a prompt ({format_iec(per_worker)} each).",
        f"DYN_KVBM_CPU_CACHE_GB and DISK_CACHE_GB {gb}: GB of 1e9 B for the whole instance, which KVBM divides by one "
        f"block of every worker: {blocks:,} blocks, {prompts} prompt(s) x {exact_number(margin)} margin.",
        "Only blocks offloaded twice within 600 s reach the disk tier (KVBM's frequency filter); "
        "DYN_KVBM_DISABLE_DISK_OFFLOAD_FILTER=true sends every block.",
    ]
    if options is not None and options.instances > 1:
        lines.append(
            "Several instances on one host: give each its own DYN_KVBM_LEADER_ZMQ_PUB_PORT and DYN_KVBM_LEADER_ZMQ_ACK_PORT "
            "(kvbm >= 0.7.0; defaults 56001 and 56002, ACK unlike PUB), e.g. 56001 + 2i and 56002 + 2i for instance i."
        )
    if unfilled(env[2][1]):
        lines.append(f"Replace the whole {env[2][1]} (KVBM cannot create it, so it fails at start), or give --emit-dir.")
    text = "".join(comment(line) + "\n" for line in lines)
    for name, value in env:
        version, source = VARIABLES[name]
        text += comment(f"kvbm >= {version} ({source})") + "\n" + f"export {env_assignment(name, value)}\n"
    text += _engine_line(sweep, row, framework)
    warnings = unused(given, ("dir",), "KVBM's settings")
    block = layout.block_tokens or 16
    if row.chunk_tokens != block:
        warnings.append(
            f"KVBM moves the engine's block: the line sets {framework}'s block size to {row.chunk_tokens} ({block} by default)"
        )
    return text, warnings


def _engine_line(sweep: Sweep, row: SweepRow, framework: str) -> str:
    """The ``vllm serve`` line that loads KVBM (kvbm >= 0.7.0); for TensorRT-LLM its LLM API options file."""
    layout = sweep.layout
    if framework == "vllm":
        command = ["vllm", "serve", model_argument(sweep), "--tensor-parallel-size", str(layout.options.tp)]
        command += ["--pipeline-parallel-size", str(layout.options.pp), "--block-size", str(row.chunk_tokens)]
        command += ["--kv-transfer-config", json.dumps(CONNECTOR, separators=(",", ":"))]
        return comment("vLLM with KVBM's connector (kvbm >= 0.7.0: pip install kvbm):") + "\n" + shell_line(command) + "\n"
    options = {"kv_cache_config": {"enable_partial_reuse": False}, "kv_connector_config": TRTLLM_CONNECTOR}
    note = comment(
        f"TensorRT-LLM: pass kvbm_llm_api.yaml as its extra LLM API options, with tokens_per_block {row.chunk_tokens} "
        "(kvbm >= 0.7.0: pip install kvbm; not run by kvsize):"
    )
    return note + "\n" + shell_line(["printf", "%s\\n", json.dumps(options)], stdout="kvbm_llm_api.yaml") + "\n"
