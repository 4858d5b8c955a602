"""What the serving-stack emitters share (``--emit vllm|sglang|kvbm``, each in its engine's ``*_settings`` module):
the model argument the engine loads, the prompts one instance holds, and warnings for emit options a stack does
not use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvsize.errors import KvsizeError, shown

if TYPE_CHECKING:
    from kvsize.engines.emit_options import EmitOptions
    from kvsize.plan import Sweep
    from kvsize.storage import TimeOptions

FLAGS = {
    "dir": "--emit-dir",
    "bucket": "--emit-bucket",
    "region": "--emit-region",
    "host": "--emit-host",
    "disk_bytes": "--emit-disk-size",
}
"""Each emit option's flag."""


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


def prompts_per_instance(options: TimeOptions | None) -> int:
    """The prompts one serving instance holds at once: the concurrent prompts over the instances, rounded up."""
    return -(-options.concurrent_prompts // options.instances) if options else 1


def unused(given: EmitOptions, used: tuple[str, ...], where: str) -> list[str]:
    """A warning for each emit option given that ``where``'s settings have no place for."""
    return [
        f"{FLAGS[name]} has no place in {where}: not used"
        for name in FLAGS
        if getattr(given, name) is not None and name not in used
    ]
