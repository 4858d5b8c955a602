"""``--emit vllm|sglang|kvbm``: each engine's serving settings at one chunk size (vLLM: the ``vllm serve`` flags of
native offloading; SGLang: the HiCache server flags; KVBM: the ``DYN_KVBM_*`` environment).

What vLLM 0.33 reads (``tests/data/vllm_0_33_offloading_keys.json`` keeps the keys and types, with
their sources): ``--kv-transfer-config`` is ``KVTransferConfig`` (``vllm/config/kv_transfer.py``);
``kv_connector_extra_config`` is read by ``build_offloading_config`` (``block_size``), the tiering spec
(``spec_name``, ``secondary_tiers``) and each tier's manager (``fs``: ``root_dir``; ``obj``:
``store_config`` with ``bucket`` and ``endpoint_override``). ``--kv-offloading-size`` GiB becomes
``cpu_bytes_to_use`` = GiB x 2**30 (``config/vllm.py`` ``_post_init_kv_transfer_config``).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from kvsize.errors import KvsizeError, shown
from kvsize.quoting import comment, env_assignment, exact_number, shell_line
from kvsize.units import format_iec

if TYPE_CHECKING:
    from kvsize.engines.base import SweepRow
    from kvsize.plan import Sweep
    from kvsize.storage import TimeOptions

GIB = 2**30
PLACEHOLDERS = {
    "fs": {"type": "fs", "root_dir": "<ROOT_DIR: a directory every vLLM instance shares>"},
    "obj": {"type": "obj", "store_config": {"bucket": "<BUCKET>", "endpoint_override": "<ENDPOINT: e.g. s3.amazonaws.com>"}},
}


def transfer_config(tier: str, chunk_tokens: int) -> dict[str, Any]:
    """The ``--kv-transfer-config`` object for one tier and chunk size."""
    extra: dict[str, Any] = {"block_size": chunk_tokens}
    if tier != "cpu":
        extra = {"spec_name": "TieringOffloadingSpec", **extra, "secondary_tiers": [PLACEHOLDERS[tier]]}
    return {"kv_connector": "OffloadingConnector", "kv_role": "kv_both", "kv_connector_extra_config": extra}


def offloading_gib(row: SweepRow, prompts: int, margin: float) -> int:
    """Whole GiB of CPU tier that hold ``prompts`` prompts' objects, times ``margin``."""
    return max(1, math.ceil(row.total_bytes * prompts * margin / GIB))


def model_argument(sweep: Sweep) -> str:
    """What the engine loads for the sized model: the directory of a local config (as the user gave it, made
    absolute), else the catalog or Hub name (a Hub id for the bundled catalog). A name that begins with ``-`` is
    refused: the engine's command line would read it as an option."""
    model = sweep.spec.local_path or sweep.spec.name
    if model.startswith("-"):
        raise KvsizeError(
            f"`emit`: the model name {shown(model)} begins with '-', which the engine's command line reads as an "
            "option; rename the catalog entry",
            field="emit",
        )
    return model


def vllm_flags(
    sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float, batched_tokens: int | None = None
) -> tuple[str, list[str]]:
    """The commented ``vllm serve`` line for ``row``'s chunk (with ``--max-num-batched-tokens`` when the sizing rests
    on it), and warnings."""
    layout = sweep.layout
    tier = layout.connector.name
    prompts = -(-options.concurrent_prompts // options.instances) if options else 1
    gib = offloading_gib(row, prompts, margin)
    warnings: list[str] = []
    if options is not None and options.offload_cpu_bytes is not None:
        given = options.offload_cpu_bytes / GIB
        if given < gib:
            warnings.append(
                f"--kv-offloading-size {given:g} is below the {gib} GiB that {prompts} prompt(s) x {margin:g} margin need; "
                f"emitted {gib}"
            )
    config = json.dumps(transfer_config(tier, row.chunk_tokens), separators=(",", ":"))
    lines = [
        f"vLLM {layout.options.vllm_version} native offloading from kvsize for {sweep.spec.name}, TP {layout.options.tp} "
        f"x PP {layout.options.pp}, {sweep.prompt_tokens:,}-token prompts, tier {tier}.",
        f"block_size {row.chunk_tokens:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt "
        f"({len(getattr(layout, 'groups', ()))} KV-cache group(s)).",
        f"--kv-offloading-size {gib}: the CPU tier holds {prompts} prompt(s) of {format_iec(row.total_bytes)} "
        f"x {exact_number(margin)} margin (cpu_bytes_to_use = GiB x 2**30).",
    ]
    if tier != "cpu":
        lines.append("Replace each <...> placeholder: kvsize cannot know your directory or bucket.")
    command = ["vllm", "serve", model_argument(sweep), "--tensor-parallel-size", str(layout.options.tp)]
    command += ["--pipeline-parallel-size", str(layout.options.pp), "--block-size", str(layout.block_tokens)]
    if batched_tokens is not None:
        command += ["--max-num-batched-tokens", str(batched_tokens)]
    command += ["--kv-offloading-size", str(gib), "--kv-transfer-config", config]
    return "".join(comment(line) + "\n" for line in lines) + shell_line(command) + "\n", warnings


def sglang_flags(sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float) -> tuple[str, list[str]]:
    """The ``sglang.launch_server`` flags that store pages of ``row``'s size in HiCache's L3 (flag names from sglang
    0.5.23's ``srt/arg_groups/fields``), and warnings."""
    layout = sweep.layout
    backend = layout.connector.name
    page = row.chunk_tokens
    command = ["python", "-m", "sglang.launch_server", "--model-path", model_argument(sweep)]
    command += ["--tp-size", str(layout.options.tp), "--pp-size", str(layout.options.pp), "--page-size", str(page)]
    command += ["--enable-hierarchical-cache", "--hicache-storage-backend", backend, "--hicache-mem-layout", "page_first"]
    command += ["--hicache-storage-prefetch-policy", "timeout"]
    lines = [
        comment(
            f"SGLang HiCache settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
            f"{sweep.prompt_tokens:,}-token prompts, backend {backend}."
        ),
        comment(
            f"--page-size {page:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt. The page is also "
            "the GPU attention page: check the attention backend supports it."
        ),
    ]
    if backend == "file":
        lines.append(comment("Replace <DIR>: the directory every server shares (kvsize cannot know it)."))
        lines.append(env_assignment("SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR", "<DIR>") + " \\")
    else:
        extra = "(--hicache-storage-backend-extra-config); see its docs."
        lines.append(comment(f"{backend} needs its own connection settings {extra}"))
    lines.append(shell_line(command))
    del options, margin
    return "\n".join(lines) + "\n", []


def kvbm_env(sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float) -> tuple[str, list[str]]:
    """The ``DYN_KVBM_*`` environment for a KVBM tier that holds the prompts ``row`` sizes (names from ai-dynamo/dynamo
    ``lib/runtime/src/config/environment_names.rs``), and warnings."""
    layout = sweep.layout
    prompts = -(-options.concurrent_prompts // options.instances) if options else 1
    per_worker = row.total_bytes // max(1, layout.writers)
    gb = max(1, math.ceil(per_worker * prompts * margin / 1e9))
    lines = [
        f"Dynamo KVBM settings from kvsize for {sweep.spec.name}, TP {layout.options.tp} x PP {layout.options.pp}, "
        f"{sweep.prompt_tokens:,}-token prompts, under {getattr(layout.options.settings, 'framework', '')} (confidence medium).",
        f"block {row.chunk_tokens:,} tokens: {row.objects:,} transfers of {format_iec(row.object_bytes)} per prompt; "
        f"each worker holds {format_iec(per_worker)} a prompt, x {prompts} prompt(s) x {exact_number(margin)} margin.",
        "Replace each <...> placeholder: kvsize cannot know your directory or bucket.",
    ]
    warnings: list[str] = []
    block = layout.block_tokens or 16
    if row.chunk_tokens != block:
        warnings.append(
            f"KVBM moves the engine's block: set the engine's block size to {row.chunk_tokens} (it is {block} by default)"
        )
    env = [("DYN_KVBM_CPU_CACHE_GB", str(gb))]
    if layout.connector.name == "disk":
        env += [("DYN_KVBM_DISK_CACHE_GB", str(gb)), ("DYN_KVBM_DISK_CACHE_DIR", "<DIR: a local NVMe or shared mount>")]
    else:
        env += [("DYN_KVBM_OBJECT_ENABLED", "1"), ("DYN_KVBM_OBJECT_BUCKET", "<BUCKET>")]
        env += [("DYN_KVBM_OBJECT_ENDPOINT", "<ENDPOINT>")]
    text = "".join(comment(line) + "\n" for line in lines)
    return text + "".join(f"export {env_assignment(name, value)}\n" for name, value in env), warnings
