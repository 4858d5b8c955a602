"""kvsize: size LMCache KV-cache offloading for LLM serving.

>>> import kvsize
>>> spec = kvsize.resolve_model("Qwen/Qwen3-4B-Instruct-2507")
>>> sweep = kvsize.plan_sweep(spec, kvsize.EngineOptions(tp=4), 100_000, (256, 2048))
>>> [(row.chunk_tokens, row.objects) for row in sweep.rows]
[(256, 1560), (2048, 192)]
"""

from kvsize.catalog import Catalog, CatalogEntry
from kvsize.errors import KvsizeError
from kvsize.layout import CONNECTORS, Connector, EngineOptions, Layout, Stage, plan_layout, pp_split
from kvsize.normalize import spec_from_config
from kvsize.plan import DEFAULT_CHUNK_SIZES, Sweep, SweepRow, plan_row, plan_sweep
from kvsize.sources import resolve_model, spec_from_path
from kvsize.spec import LayerKind, ModelSpec
from kvsize.units import format_iec, parse_count, parse_duration, parse_rate, parse_size

__version__ = "0.1.0"

__all__ = [
    "CONNECTORS",
    "DEFAULT_CHUNK_SIZES",
    "Catalog",
    "CatalogEntry",
    "Connector",
    "EngineOptions",
    "KvsizeError",
    "LayerKind",
    "Layout",
    "ModelSpec",
    "Stage",
    "Sweep",
    "SweepRow",
    "__version__",
    "format_iec",
    "parse_count",
    "parse_duration",
    "parse_rate",
    "parse_size",
    "plan_layout",
    "plan_row",
    "plan_sweep",
    "pp_split",
    "resolve_model",
    "spec_from_config",
    "spec_from_path",
]
