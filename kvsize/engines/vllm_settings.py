"""``--emit vllm``: the ``vllm serve`` line of vLLM 0.33's native offloading at one chunk size, complete for its tier
(``TIER_KEYS``), sized with a margin over the prediction.

What vLLM 0.33 reads (``tests/data/vllm-0.33.0-offloading-keys.json`` keeps the keys and types, with their
sources): ``--kv-transfer-config`` is ``KVTransferConfig`` (``vllm/config/kv_transfer.py``);
``kv_connector_extra_config`` is read by ``build_offloading_config`` (``block_size``), the tiering spec
(``spec_name``, ``secondary_tiers``) and each tier's manager. ``--kv-offloading-size`` GiB becomes
``cpu_bytes_to_use`` = GiB x 2**30 and replaces any ``cpu_bytes_to_use`` in the JSON
(``config/vllm.py`` ``_post_init_kv_transfer_config``); the CPU tier is one region in ``/dev/shm``
(``v1/kv_offload/cpu/shared_offload_region.py``), checked for free space at start, and holds
``cpu_bytes_to_use // object`` chunks (``v1/kv_offload/cpu/spec.py`` ``CPUOffloadingSpec``): none below one object,
silently.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from kvsize.engines.emit_options import BUCKET, REGION, ROOT_DIR, EmitOptions, Key
from kvsize.engines.stack_settings import model_argument, prompts_per_instance, unused
from kvsize.quoting import comment, exact_number, shell_line
from kvsize.units import format_iec

if TYPE_CHECKING:
    from kvsize.engines.base import SweepRow
    from kvsize.plan import Sweep
    from kvsize.storage import TimeOptions

GIB = 2**30
_FS = "vllm/v1/kv_offload/tiering/fs/manager.py FileSystemTierManager.__init__"
_OBJ = "vllm/v1/kv_offload/tiering/obj/config.py ObjStoreConfig; tiering/obj/manager.py ObjectStoreSecondaryTierManager"
TIER_KEYS: dict[str, tuple[Key, ...]] = {
    "fs": (
        Key("type", "fs", True, "vllm/v1/kv_offload/tiering/factory.py", "selects the tier manager"),
        Key(
            "root_dir",
            "{root_dir}",
            True,
            _FS,
            "required positional (TypeError without it); created with os.makedirs, so a placeholder left as it is "
            "becomes a directory unless it cannot be made (/dev/null/...)",
        ),
    ),
    "obj": (
        Key("type", "obj", True, "vllm/v1/kv_offload/tiering/factory.py", "selects the tier manager"),
        Key("store_config.bucket", "{bucket}", True, _OBJ, "required (TypeError without it)"),
        Key(
            "store_config.endpoint_override",
            "{endpoint}",
            True,
            _OBJ,
            "required (TypeError without it); the manager probes it at start (RuntimeError when unreachable)",
        ),
        Key("store_config.scheme", "https", False, _OBJ, "default http: AWS wants https"),
        Key("store_config.region", "{region}", False, _OBJ, "default empty"),
    ),
}
"""Per secondary tier, the keys of its ``secondary_tiers`` entry (``store_config.NAME`` inside ``store_config``)."""
USES = {"cpu": (), "fs": ("dir",), "obj": ("bucket", "region", "host")}


def tier_entry(tier: str, fill: dict[str, Any]) -> dict[str, Any]:
    """One ``secondary_tiers`` entry from ``TIER_KEYS``, filled from ``fill``."""
    entry: dict[str, Any] = {}
    for item in TIER_KEYS[tier]:
        if item.key.startswith("store_config."):
            entry.setdefault("store_config", {})[item.key.removeprefix("store_config.")] = item.value(fill)
        else:
            entry[item.key] = item.value(fill)
    return entry


def _fill(given: EmitOptions) -> dict[str, Any]:
    region = given.region or REGION
    return {
        "root_dir": given.directory(ROOT_DIR),
        "bucket": given.bucket or BUCKET,
        "region": region,
        "endpoint": given.host or f"s3.{region}.amazonaws.com",
    }


def transfer_config(tier: str, chunk_tokens: int, given: EmitOptions | None = None) -> dict[str, Any]:
    """The ``--kv-transfer-config`` object for one tier and chunk size."""
    extra: dict[str, Any] = {"block_size": chunk_tokens}
    if tier != "cpu":
        entry = tier_entry(tier, _fill(given or EmitOptions()))
        extra = {"spec_name": "TieringOffloadingSpec", **extra, "secondary_tiers": [entry]}
    return {"kv_connector": "OffloadingConnector", "kv_role": "kv_both", "kv_connector_extra_config": extra}


def offloading_gib(row: SweepRow, prompts: int, margin: float) -> int:
    """Whole GiB of CPU tier that hold ``prompts`` prompts' objects, times ``margin``."""
    return max(1, math.ceil(row.total_bytes * prompts * margin / GIB))


def _size(row: SweepRow, user: float | None, prompts: int, margin: float) -> tuple[str, list[str], list[str]]:
    """``--kv-offloading-size``: the user's when given (never replaced), else kvsize's; the comment saying why, and a
    warning when the user's holds less than kvsize predicts."""
    predicted = offloading_gib(row, prompts, margin)
    why = f"{prompts} prompt(s) of {format_iec(row.total_bytes)} x {exact_number(margin)} margin"
    if user is None:
        return (
            str(predicted),
            [f"--kv-offloading-size {predicted}: the CPU tier holds {why} (cpu_bytes_to_use = GiB x 2**30)."],
            [],
        )
    text = exact_number(user)
    lines = [f"--kv-offloading-size {text}: yours, as given; kvsize predicts {predicted} GiB for {why}."]
    warnings = []
    slots = int(user * GIB) // row.object_bytes if row.object_bytes else 0
    if user < predicted:
        warnings.append(
            f"--kv-offloading-size {text} GiB (yours, emitted as given) is below the {predicted} GiB kvsize predicts for "
            f"{why}: vLLM's CPU tier holds {slots:,} chunks of {format_iec(row.object_bytes)}"
            + (", so it stores nothing" if slots == 0 else "")
        )
    return text, lines, warnings


def vllm_flags(
    sweep: Sweep,
    row: SweepRow,
    options: TimeOptions | None,
    margin: float,
    given: EmitOptions | None = None,
    batched_tokens: int | None = None,
) -> tuple[str, list[str]]:
    """The commented ``vllm serve`` line for ``row``'s chunk (with ``--max-num-batched-tokens`` when the sizing rests
    on it), and warnings."""
    given = given or EmitOptions()
    layout = sweep.layout
    tier = layout.connector.name
    prompts = prompts_per_instance(options)
    size, size_lines, warnings = _size(row, getattr(layout.options.settings, "kv_offloading_size", None), prompts, margin)
    config = transfer_config(tier, row.chunk_tokens, given)
    lines = [
        f"vLLM {layout.options.vllm_version} native offloading from kvsize for {sweep.spec.name}, TP {layout.options.tp} "
        f"x PP {layout.options.pp}, {sweep.prompt_tokens:,}-token prompts, tier {tier}.",
        f"block_size {row.chunk_tokens:,}: {row.objects:,} objects of {format_iec(row.object_bytes)} per prompt "
        f"({len(getattr(layout, 'groups', ()))} KV-cache group(s)).",
        *size_lines,
        f"The CPU tier lives in /dev/shm, which must have {size} GiB free (docker: --shm-size or --ipc=host); leave "
        "VLLM_USE_SIMPLE_KV_OFFLOAD unset (it swaps in a connector that ignores the tiers).",
    ]
    lines += _tier_lines(tier, config, given)
    warnings += unused(given, USES[tier], f"vLLM's {tier} tier")
    command = ["vllm", "serve", model_argument(sweep), "--tensor-parallel-size", str(layout.options.tp)]
    command += ["--pipeline-parallel-size", str(layout.options.pp), "--block-size", str(layout.block_tokens)]
    if batched_tokens is not None:
        command += ["--max-num-batched-tokens", str(batched_tokens)]
    command += ["--kv-offloading-size", size, "--kv-transfer-config", json.dumps(config, separators=(",", ":"))]
    return "".join(comment(line) + "\n" for line in lines) + shell_line(command) + "\n", warnings


def _tier_lines(tier: str, config: dict[str, Any], given: EmitOptions) -> list[str]:
    from kvsize.engines.emit_options import unfilled

    lines = []
    if tier == "obj":
        lines.append(
            "The obj tier needs the nixl package (NIXL's OBJ plugin) and credentials: AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, an IAM role, or access_key/secret_key in store_config."
        )
    left = sorted(set(unfilled(config)))
    if left:
        flags = {"fs": "--emit-dir", "obj": "--emit-bucket and --emit-region (or --emit-host for another endpoint)"}
        lines.append(
            f"Replace {', '.join(left)} (a directory's whole /dev/null/<...> value), or give {flags[tier]}: left as "
            "they are, vLLM refuses them at start."
        )
    return lines
