"""The GPUs kvsize knows, with sources: the memory CUDA reports (what vLLM multiplies by
``gpu_memory_utilization``) and the dense BF16 peak (what the prefill estimate divides by), and ``Gpu``, the argument
group that says which GPU serves the model and how much of it vLLM gives the KV cache.

Memory is ``torch.cuda.mem_get_info()`` total (``cudaMemGetInfo``), which is vLLM's ``total_gpu_memory``: below
the marketed size and below ``nvidia-smi``'s total. The figures come from public PyTorch out-of-memory messages and
vLLM start-up logs; they move by about 0.1 GiB with the driver and ECC. "probable" marks a figure seen in logs not
tied to the GPU's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from kvsize.engines.options import Checked
from kvsize.errors import KvsizeError, shown

GIB = 2**30
DEFAULT_MEMORY_UTILIZATION = 0.92
"""vLLM 0.33's ``gpu_memory_utilization`` default (``vllm/config/cache.py``: ``Field(default=0.92)``; 0.9 before)."""
MAX_GPU_MEMORY_GIB = 65_536.0
MAX_KV_CACHE_BYTES = 2**50
_LOGS = "public PyTorch OOM messages and vLLM start-up logs"


@dataclass(frozen=True)
class GpuModel:
    """One GPU: its name as the user gives it, its memory as CUDA reports it, its dense BF16 peak, and the sources."""

    name: str
    label: str
    memory_gib: float
    memory_source: str
    bf16_flops: float
    flops_source: str

    @property
    def memory_bytes(self) -> int:
        return round(self.memory_gib * GIB)


GPUS: dict[str, GpuModel] = {
    gpu.name: gpu
    for gpu in (
        GpuModel("a100", "A100 80GB", 79.15, _LOGS, 312e12, "NVIDIA A100 datasheet: 312 TFLOP/s dense BF16"),
        GpuModel("a100-40gb", "A100 40GB", 39.39, _LOGS, 312e12, "NVIDIA A100 datasheet: 312 TFLOP/s dense BF16"),
        GpuModel("h100", "H100 SXM 80GB", 79.19, _LOGS, 989e12, "NVIDIA H100 SXM datasheet: 989 TFLOP/s dense BF16"),
        GpuModel(
            "h100-pcie", "H100 PCIe 80GB", 79.19, f"{_LOGS} (probable)", 756e12, "NVIDIA H100 datasheet: 756 TFLOP/s dense BF16"
        ),
        GpuModel("h100-nvl", "H100 NVL", 93.10, f"{_LOGS} (probable)", 835e12, "NVIDIA H100 datasheet: 835 TFLOP/s dense BF16"),
        GpuModel("h200", "H200 SXM", 139.81, _LOGS, 989e12, "NVIDIA H200 datasheet: 989 TFLOP/s dense BF16"),
        GpuModel("b200", "B200 (HGX)", 178.35, _LOGS, 2.25e15, "NVIDIA B200 (HGX B200 datasheet): 2.25 PFLOP/s dense BF16"),
        GpuModel("gb200", "GB200 (per GPU)", 184.31, _LOGS, 2.5e15, "NVIDIA GB200 NVL72: 360 PFLOP/s sparse BF16 / 72 / 2"),
        GpuModel("l40s", "L40S", 44.39, _LOGS, 362e12, "NVIDIA L40S datasheet: 362 TFLOP/s dense BF16"),
        GpuModel("l4", "L4", 22.05, f"{_LOGS} (probable)", 121e12, "NVIDIA L4 datasheet: 242 TFLOP/s sparse BF16 / 2"),
        GpuModel(
            "mi300x",
            "MI300X",
            191.69,
            "rocm-smi VRAM total 205,822,885,888 B",
            1307.4e12,
            "AMD MI300X data sheet: 1,307.4 TFLOP/s BF16",
        ),
    )
}


def gpu_model(name: str, field: str = "gpu") -> GpuModel:
    """The GPU called ``name`` (any case), or one line naming the choices."""
    found = GPUS.get(name.lower()) if isinstance(name, str) else None
    if found is None:
        raise KvsizeError(
            f"unknown `{field}` {shown(name)}: use one of {', '.join(GPUS)}, or give `gpu_memory` (GiB) for another GPU",
            field=field,
        )
    return found


def default_batched_tokens(memory_bytes: int, name: str | None) -> int:
    """``max_num_batched_tokens`` of ``vllm serve`` on this GPU (``EngineArgs.get_batch_defaults``, the API server):
    16,384 from 160 GiB, 8,192 from 70 GiB (not on an A100), else 2,048."""
    if memory_bytes >= 160 * GIB:
        return 16_384
    if memory_bytes >= 70 * GIB and "a100" not in (name or ""):
        return 8_192
    return 2_048


class Gpu(Checked):
    """The GPU that serves the model and what vLLM gives the KV cache on it: ``kvsize.Gpu(gpu="h100")``, or the
    exact figure vLLM takes (``kvsize.Gpu(kv_cache_memory_bytes=10 * 2**30)``).

    ``kv_cache_memory_bytes`` (vLLM's ``--kv-cache-memory-bytes``, per GPU) is exact; otherwise the KV memory is an
    estimate: ``gpu_memory_utilization`` x the GPU's memory, less the weights and vLLM's runtime overhead.
    """

    gpu: str | None = None
    """A GPU of the table (``kvsize.gpu.GPUS``: h100, h200, b200, a100, l40s, ...); also the prefill estimate's GPU."""
    gpu_memory: float | None = Field(default=None, gt=0, le=MAX_GPU_MEMORY_GIB, json_schema_extra={"unit": "GiB"})
    """The GPU's memory in GiB as CUDA reports it (``torch.cuda.mem_get_info``), for a GPU not in the table."""
    gpu_memory_utilization: float = Field(default=DEFAULT_MEMORY_UTILIZATION, gt=0, le=1)
    """The share of the GPU's memory vLLM may use (``--gpu-memory-utilization``; vLLM 0.33's default 0.92)."""
    kv_cache_memory_bytes: int | None = Field(default=None, ge=1, le=MAX_KV_CACHE_BYTES)
    """vLLM's ``--kv-cache-memory-bytes``: the KV cache per GPU, exact (it ignores ``gpu_memory_utilization``)."""

    @model_validator(mode="after")
    def _known(self) -> Gpu:
        if self.gpu is not None:
            gpu_model(self.gpu)
        if self.gpu is not None and self.gpu_memory is not None:
            raise KvsizeError("give `gpu` or `gpu_memory`, not both", field="gpu_memory")
        if "gpu_memory_utilization" in self.model_fields_set and self.gpu is None and self.gpu_memory is None:
            raise KvsizeError(
                "`gpu_memory_utilization` is a share of a GPU's memory: give `gpu` or `gpu_memory` too",
                field="gpu_memory_utilization",
            )
        return self

    @property
    def given(self) -> bool:
        """True when it names a GPU or a memory figure: what the GPU header and the GPU tier need."""
        return self.gpu is not None or self.gpu_memory is not None or self.kv_cache_memory_bytes is not None

    @property
    def memory_bytes(self) -> int | None:
        """The GPU's memory as CUDA reports it, in bytes (None without a GPU or a memory figure)."""
        if self.gpu is not None:
            return gpu_model(self.gpu).memory_bytes
        return None if self.gpu_memory is None else round(self.gpu_memory * GIB)

    @property
    def label(self) -> str:
        if self.gpu is not None:
            return gpu_model(self.gpu).label
        if self.gpu_memory is not None:
            return f"a GPU of {self.gpu_memory:g} GiB"
        return "the GPU"
