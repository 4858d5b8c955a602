"""``--emit vllm``: the ``vllm serve`` flags that turn on native offloading at one chunk size.

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


def serve_flags(sweep: Sweep, row: SweepRow, options: TimeOptions | None, margin: float) -> tuple[str, list[str]]:
    """The commented ``vllm serve`` line for ``row``'s chunk, and warnings."""
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
        f"# vLLM {layout.options.vllm_version} native offloading from kvsize for {sweep.spec.name}, TP {layout.options.tp} "
        f"x PP {layout.options.pp}, {sweep.prompt_tokens:,}-token prompts, tier {tier}.",
        f"# block_size {row.chunk_tokens:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt "
        f"({len(layout.groups)} KV-cache group(s)).",
        f"# --kv-offloading-size {gib}: the CPU tier holds {prompts} prompt(s) of {format_iec(row.total_bytes)} "
        f"x {margin:g} margin (cpu_bytes_to_use = GiB x 2**30).",
    ]
    if tier != "cpu":
        lines.append("# Replace each <...> placeholder: kvsize cannot know your directory or bucket.")
    lines.append(
        f"vllm serve {sweep.spec.name} --tensor-parallel-size {layout.options.tp} --pipeline-parallel-size "
        f"{layout.options.pp} --block-size {layout.block_tokens} --kv-offloading-size {gib} --kv-transfer-config '{config}'"
    )
    return "\n".join(lines) + "\n", warnings
