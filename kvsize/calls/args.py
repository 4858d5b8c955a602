"""The library calls' argument groups, as httpx takes ``timeout=`` objects: ``Serving`` (how vLLM serves the model,
``kvsize.engines.base``), the engine's own settings (``kvsize.engines.Vllm(tier="obj")``), ``Workload`` (the prompt
and who loads it) and ``Storage`` (the backends and their figures).

The flat keywords of earlier releases (``tp=4, concurrent_prompts=20, backend=["s3"]``) still work for one release,
with a ``DeprecationWarning`` naming the group each belongs in; ``grouped`` merges them into the groups.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from kvsize.engines.base import MAX_PARALLEL, Checked, EngineSettings, Serving
from kvsize.engines.registry import DEFAULT_ENGINE, settings_for
from kvsize.errors import KvsizeError, shown

if TYPE_CHECKING:
    from kvsize.model.spec import ModelSpec

GIB = 2**30
MAX_TOKENS = 1_000_000_000
MAX_PROMPTS = 1_000_000
MAX_BACKENDS = 16


class Workload(Checked):
    """The prompt sized, and who loads it: prompts at once, instances, a shared prefix, the prefill rate."""

    prompt: int = Field(default=100_000, ge=1, le=MAX_TOKENS, json_schema_extra={"unit": "tokens"})
    """Prompt tokens."""
    concurrent_prompts: int = Field(default=1, ge=1, le=MAX_PROMPTS)
    """Prompts loading at once from the same storage, over all serving instances."""
    instances: int = Field(default=1, ge=1, le=MAX_PROMPTS)
    """Serving instances the concurrent prompts are spread over."""
    shared_prefix: int | None = Field(default=None, ge=1, le=MAX_TOKENS, json_schema_extra={"unit": "tokens"})
    """Tokens another prompt shares with this one."""
    prefill_tps: float | None = Field(default=None, ge=1, le=1e12)
    """Measured prefill tokens/s, for the recompute cost (else estimated from the config)."""
    gpu: str = "h100"
    """The GPU of the prefill estimate."""
    mfu: float = Field(default=0.4, gt=0, le=1)
    """Utilisation of peak FLOP/s for the prefill estimate."""
    host_cpus: int | None = Field(default=None, ge=1, le=MAX_PARALLEL)
    """CPUs of the serving host (an engine whose client's threads follow them reads it)."""


class Storage(Checked):
    """The storage backends a load is timed on (presets, profile files or ``BackendProfile`` objects) and figures
    that override theirs."""

    backend: tuple[Any, ...] = ()
    """Preset names (``s3``), profile YAML files, or ``BackendProfile`` objects; one or several."""
    latency: float | None = Field(default=None, ge=0, le=3600)
    """Seconds per operation."""
    stream_bandwidth: float | None = Field(default=None, gt=0, le=1e18)
    """Bytes/s of one stream."""
    aggregate_bandwidth: float | None = Field(default=None, gt=0, le=1e18)
    """Bytes/s shared by all writers and prompts."""
    concurrency: int | None = Field(default=None, ge=1, le=MAX_PARALLEL)
    """Requests in flight per writer."""
    max_requests_per_s: float | None = Field(default=None, gt=0, le=1e18)
    """The storage's request-rate cap."""
    part_size: int | None = Field(default=None, ge=1, le=2**40)
    """Bytes per part of a multipart client (S3)."""
    search: bool = False
    """Also search every multiple of the engine's block between the candidates."""

    @field_validator("backend", mode="before")
    @classmethod
    def _backends(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)) or not isinstance(value, (list, tuple)):
            value = (value,)
        if len(value) > MAX_BACKENDS:
            raise KvsizeError(f"`backend` is given {len(value)} times; compare at most {MAX_BACKENDS} in one run")
        for item in value:
            if isinstance(item, (str, Path)):
                if not str(item).strip():
                    raise KvsizeError("`backend` is empty: name a preset (s3) or a profile file", field="backend")
                continue
            from kvsize.storage.backends import BackendProfile  # only for a profile object: the time model is needed

            if not isinstance(item, BackendProfile):
                raise KvsizeError(f"`backend` must name a preset or a profile file, got {shown(item)}", field="backend")
        return tuple(str(item) if isinstance(item, Path) else item for item in value)

    @property
    def overrides(self) -> dict[str, Any]:
        """The figures given explicitly, as ``BackendProfile`` fields."""
        names = {
            "latency": "latency_s",
            "stream_bandwidth": "stream_bytes_per_s",
            "aggregate_bandwidth": "aggregate_bytes_per_s",
            "concurrency": "concurrency",
            "max_requests_per_s": "max_requests_per_s",
            "part_size": "part_size_bytes",
        }
        return {field: getattr(self, name) for name, field in names.items() if getattr(self, name) is not None}

    @property
    def timed(self) -> bool:
        return bool(self.backend) or bool(self.overrides)


SERVING_KEYS = ("tp", "pp", "kv_dtype", "draft_layers", "pp_partition", "vllm_version")
WORKLOAD_KEYS = tuple(Workload.model_fields)
STORAGE_KEYS = tuple(Storage.model_fields)


def grouped(
    flat: Mapping[str, Any],
    *,
    serving: Serving | None,
    engine: str | EngineSettings | None,
    workload: Workload | None,
    storage: Storage | None,
    call: str,
    given_engine_options: Mapping[str, Any] | None = None,
) -> tuple[Serving, EngineSettings, Workload, Storage]:
    """The four groups, with the flat keywords of earlier releases (those not None) merged in; a keyword given both
    flat and in its group is refused, and the flat ones are named in one ``DeprecationWarning``."""
    used = {name: value for name, value in flat.items() if value is not None}
    engine_flat = {name: value for name, value in (given_engine_options or {}).items() if value is not None}
    deprecated = [*used, *(name for name, value in engine_flat.items() if value is not False)]
    if deprecated:
        warnings.warn(
            f"kvsize.{call}: flat keywords are deprecated and go in the next release: give "
            + ", ".join(f"{name} in {_group_of(name)}" for name in deprecated),
            DeprecationWarning,
            stacklevel=4,
        )
    serving = _merge(Serving, serving, {k: v for k, v in used.items() if k in SERVING_KEYS}, "serving")
    workload = _merge(Workload, workload, {k: v for k, v in used.items() if k in WORKLOAD_KEYS}, "workload")
    storage = _merge(Storage, storage, {k: v for k, v in used.items() if k in STORAGE_KEYS}, "storage")
    if engine is not None and not isinstance(engine, (str, EngineSettings)):
        raise KvsizeError(f"`engine` must be an engine name or its settings, got {shown(engine)}", field="engine")
    settings = settings_for(engine if engine is not None else DEFAULT_ENGINE, **engine_flat)
    return serving, settings, workload, storage


def _group_of(name: str) -> str:
    for group, keys in (("Serving", SERVING_KEYS), ("Workload", WORKLOAD_KEYS), ("Storage", STORAGE_KEYS)):
        if name in keys:
            return f"kvsize.{group}"
    return "the engine's settings (kvsize.engines)"


def _merge(cls: Any, group: Any, flat: dict[str, Any], name: str) -> Any:
    if group is not None and not isinstance(group, cls):
        raise KvsizeError(f"`{name}` must be kvsize.{cls.__name__}, got {shown(group)}", field=name)
    if group is None:
        return cls(**flat)
    both = set(flat) & group.model_fields_set
    if both:
        key = sorted(both)[0]
        raise KvsizeError(f"`{key}` is given twice: flat and in `{name}`; give it once", field=key)
    return cls(**(group.model_dump() | flat)) if flat else group


def resolve_spec(model: str, catalog: str | Path | None, revision: str | None, offline: bool) -> ModelSpec:
    """The model's spec (catalog, local config or the Hub), with the arguments checked."""
    from kvsize.model.sources import resolve_model

    if not isinstance(model, str):
        raise KvsizeError(f"`model` must be a name or a path, got {shown(model)}", field="model")
    if catalog is not None and not isinstance(catalog, (str, Path)):
        raise KvsizeError(f"`catalog` must be a path, got {shown(catalog)}", field="catalog")
    if revision is not None and not isinstance(revision, str):
        raise KvsizeError(f"`revision` must be a branch, tag or commit, got {shown(revision)}", field="revision")
    if not isinstance(offline, bool):
        raise KvsizeError(f"`offline` must be True or False, got {shown(offline)}", field="offline")
    path = Path(catalog) if catalog is not None else None
    return resolve_model(model, catalog_path=path, revision=revision, offline=offline or None)


def draft_layers(spec: ModelSpec, serving: Serving, mtp: bool) -> Serving:
    """``serving`` with the draft layers ``mtp`` asks for (the config's ``num_nextn_predict_layers``)."""
    if not isinstance(mtp, bool):
        raise KvsizeError(f"`mtp` must be True or False, got {shown(mtp)}", field="mtp")
    if not mtp:
        return serving
    if serving.draft_layers:
        raise KvsizeError("give `mtp` or `draft_layers`, not both", field="mtp")
    if not spec.draft_layers:
        raise KvsizeError(f"`mtp`: {spec.name}'s config has no num_nextn_predict_layers; give `draft_layers` N", field="mtp")
    return serving.model_copy(update={"draft_layers": spec.draft_layers})
