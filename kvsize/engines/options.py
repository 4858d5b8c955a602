"""The arguments every engine shares: how vLLM serves the model (``Serving``), an engine's own settings
(``EngineSettings``, each field with its command-line flag) and the two together (``EngineOptions``); and the
one-line error a refused value becomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from kvsize.errors import KvsizeError, ParallelismError, shown

KvDtype = Literal["auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2"]
VLLM_VERSION = "0.33.0"
"""The vLLM kvsize reads its rules from (and serves the model, unless `vllm_version` says otherwise)."""
MAX_PARALLEL = 100_000
MAX_DRAFT_LAYERS = 10_000


def pydantic_problem(error: ValidationError, model: type[BaseModel] | None = None) -> KvsizeError:
    """One line naming the first argument pydantic refused (`name` must ..., got ...), as a ``KvsizeError``: a range
    as the field declares it (``1 to 100,000 tokens``), a choice with its choices."""
    problem = error.errors()[0]
    name = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
    given = shown(problem.get("input"))
    if problem["type"] == "extra_forbidden":
        return KvsizeError(f"`{name}` is not an argument here", field=name or None)
    if problem["type"] == "value_error":
        original = problem.get("ctx", {}).get("error")
        if isinstance(original, KvsizeError):
            return original
        return KvsizeError(str(problem["msg"]).removeprefix("Value error, "), field=name or None)
    if problem["type"] == "literal_error":
        choices = str(problem.get("ctx", {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
        return KvsizeError(f"unknown `{name}` {given}: use one of {choices}", field=name)
    field = model.model_fields.get(name) if model is not None else None
    if problem["type"] == "finite_number":
        return KvsizeError(f"`{name}` must be a finite number, got {given}", field=name)
    if field is not None and problem["type"] in _BOUNDS:
        return KvsizeError(f"`{name}` must be {_range(field, problem['type'])}, got {given}", field=name)
    message = str(problem["msg"]).replace("Input should be", "must be")
    return KvsizeError(f"`{name}` {message}, got {given}", field=name or None)


_BOUNDS = {"greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than", "less_than_equal": "at most"}
_BOUND_OF = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}


def _range(field: Any, kind: str) -> str:
    """The bound broken, in words: a whole number's range (``1 to 100,000 tokens``), else the one bound
    (``at least 1``, ``at most 1``)."""
    bounds = {type(item).__name__.lower(): getattr(item, type(item).__name__.lower(), None) for item in field.metadata}
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    unit = f" {extra['unit']}" if extra.get("unit") else ""

    def number(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else f"{value:g}"

    if isinstance(bounds.get("ge"), int) and isinstance(bounds.get("le"), int):
        return f"{number(bounds['ge'])} to {number(bounds['le'])}{unit}"
    return f"{_BOUNDS[kind]} {number(bounds[_BOUND_OF[kind]])}{unit}"


class Checked(BaseModel):
    """A frozen, strict argument group: a value of the wrong type or range is one ``KvsizeError`` naming it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise pydantic_problem(error, type(self)) from None


class Serving(Checked):
    """How vLLM serves the model, whatever engine offloads its KV cache."""

    tp: int = 1
    """Tensor-parallel size."""
    pp: int = 1
    """Pipeline-parallel size."""
    kv_dtype: KvDtype = "auto"
    """The KV-cache dtype; auto follows the checkpoint."""
    draft_layers: int = 0
    """MTP/EAGLE draft layers stored beside the model's (only with speculative decoding on)."""
    pp_partition: tuple[int, ...] | None = None
    """Layers per stage, as ``VLLM_PP_LAYER_PARTITION`` sets them; None = vLLM's default split."""
    vllm_version: str = VLLM_VERSION
    """The vLLM serving the model: an architecture it no longer serves is refused."""

    @field_validator("pp_partition", mode="before")
    @classmethod
    def _partition(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _ranges(self) -> Serving:
        from kvsize.engines.serving import version_tuple

        if not (1 <= self.tp <= MAX_PARALLEL and 1 <= self.pp <= MAX_PARALLEL):
            raise ParallelismError(
                f"`tp` and `pp` must be 1 to {MAX_PARALLEL:,}, got TP {shown(self.tp)}, PP {shown(self.pp)}",
                field="tp" if not 1 <= self.tp <= MAX_PARALLEL else "pp",
            )
        if not 0 <= self.draft_layers <= MAX_DRAFT_LAYERS:
            raise KvsizeError(
                f"`draft_layers` must be 0 to {MAX_DRAFT_LAYERS:,}, got {shown(self.draft_layers)}", field="draft_layers"
            )
        if self.pp_partition is not None and (len(self.pp_partition) != self.pp or min(self.pp_partition) < 1):
            raise ParallelismError(f"`pp_partition` must give {self.pp} stages of at least one layer", field="pp_partition")
        version_tuple(self.vllm_version, "`vllm_version`")
        return self


@dataclass(frozen=True)
class Flag:
    """How one engine setting is given on the command line."""

    name: str
    """The flag, ``--tier``."""
    help: str
    kind: Literal["choice", "bool", "int", "float", "size", "duration"] = "choice"
    """How the flag's text becomes the setting: a choice, a switch (``--x/--no-x``), a whole number, a number,
    a byte size (``5GiB``) or a duration (``10s``)."""
    metavar: str | None = None


class EngineSettings(Checked):
    """An engine's own settings: the knobs that change what it stores or when a load fails.

    Each engine subclasses it; ``FLAGS`` names each field's command-line flag (the CLI builds its engine
    flags from them), and a field left at its default is the engine's own default.
    """

    ENGINE: ClassVar[str] = ""
    """The engine these settings belong to (its registry name)."""
    FLAGS: ClassVar[Mapping[str, Flag]] = {}
    ALIASES: ClassVar[Mapping[str, str]] = {}
    """Library keywords of earlier releases that set a field (``sglang_backend`` for ``backend``)."""

    @classmethod
    def engine_name(cls) -> str:
        return cls.ENGINE

    def given(self) -> dict[str, Any]:
        """The settings set explicitly (what the user gave), by field name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class EngineOptions(BaseModel):
    """How the model is served (``serving``) and which engine stores it, with its settings (``settings``).

    The flat keywords of earlier releases (``EngineOptions(tp=4, engine="vllm", tier="obj")``) still build it:
    each engine option is checked against the engine named, so another engine's option is refused by name.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    serving: Serving
    settings: EngineSettings
    engine: str

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "serving" in data:
            return data
        from kvsize.engines.registry import settings_for

        flat = dict(data)
        engine = flat.pop("engine", None)
        serving = Serving(**{name: flat.pop(name) for name in list(flat) if name in Serving.model_fields})
        settings = settings_for(engine, **flat)
        return {"serving": serving, "settings": settings, "engine": type(settings).engine_name()}

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise pydantic_problem(error) from None

    @property
    def tp(self) -> int:
        return self.serving.tp

    @property
    def pp(self) -> int:
        return self.serving.pp

    @property
    def kv_dtype(self) -> str:
        return self.serving.kv_dtype

    @property
    def draft_layers(self) -> int:
        return self.serving.draft_layers

    @property
    def pp_partition(self) -> tuple[int, ...] | None:
        return self.serving.pp_partition

    @property
    def vllm_version(self) -> str:
        return self.serving.vllm_version

    def __getattr__(self, name: str) -> Any:
        # The flat engine options of earlier releases (options.connector, options.tier), read from the settings.
        settings = self.__dict__.get("settings")
        if settings is not None and name in type(settings).model_fields:
            return getattr(settings, name)
        return super().__getattr__(name)  # type: ignore[misc]
