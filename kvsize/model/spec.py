"""The normalized architecture: what kvsize knows of a model once its config is read.

Layer kinds are small types that know their own byte rule, after vLLM's
``vllm/v1/kv_cache_interface.py`` (one spec per kind). Family quirks never live
here: ``kvsize.model.normalize`` turns a raw config into a ``ModelSpec``.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict

from kvsize.errors import ConfigError, UnsupportedModelError
from kvsize.model.state import StateShape


class LayerKind(str, Enum):
    """What one decoder layer keeps per token."""

    FULL = "full_attention"
    SLIDING = "sliding_attention"
    CHUNKED = "chunked_attention"
    MLA = "mla"
    MAMBA = "mamba"
    LINEAR = "linear_attention"
    CONV = "conv"
    MLP = "mlp"

    @property
    def keeps_kv(self) -> bool:
        """True when the layer has a KV cache that grows with every token."""
        return self in _KV_KINDS

    @property
    def kv_factor(self) -> int:
        """Tensors per token: K and V (2), or one latent for MLA (1); 0 when no KV grows.

        LMCache's ``kv_shape`` uses ``1 if use_mla else 2``
        (``lmcache/integration/vllm/vllm_service_factory.py``).
        """
        if self is LayerKind.MLA:
            return 1
        return 2 if self.keeps_kv else 0

    def bytes_per_token(self, heads: int, head_size: int, dtype_bytes: int) -> int:
        """KV bytes this layer adds per token for ``heads`` KV heads of ``head_size``."""
        return self.kv_factor * heads * head_size * dtype_bytes


_KV_KINDS = frozenset({LayerKind.FULL, LayerKind.SLIDING, LayerKind.CHUNKED, LayerKind.MLA})


class FieldSource(BaseModel):
    """Where a spec value came from: the config field(s) and the file."""

    model_config = ConfigDict(frozen=True)

    value: str
    field: str
    origin: str


class Weights(BaseModel):
    """The weights vLLM loads for a model: parameters and bytes, and how they were counted."""

    model_config = ConfigDict(frozen=True)

    parameters: int
    """Every parameter of the language model (all experts; embedding and LM head once each, or once when tied)."""
    bytes: int
    """What the weights take in GPU memory over all ranks."""
    rule: str
    """The dtype or quantization applied, in words."""


class ModelSpec(BaseModel):
    """A model's KV-relevant architecture, independent of how it is served."""

    model_config = ConfigDict(frozen=True)

    name: str
    model_type: str
    source: str
    layer_kinds: tuple[LayerKind, ...]
    num_attention_heads: int
    num_kv_heads: int
    head_size: int
    config_dtype: str | None
    kv_cache_quant: str | None = None
    draft_layers: int = 0
    active_params: int | None = None
    """Parameters one token passes through (for the prefill estimate); None when the config does not tell."""
    weights: Weights | None = None
    """The weights vLLM loads (every parameter, in the checkpoint's dtype or quantization); None when unknown."""
    weights_problem: str | None = None
    """Why ``weights`` could not be counted (the field), when it is None."""
    revision: str | None = None
    local_path: str | None = None
    """The model directory of a local config, as given and made absolute (what ``vllm serve`` loads); None for
    catalog and Hub models."""
    architectures: tuple[str, ...] = ()
    """The config's ``architectures`` (vLLM picks its model class from them)."""
    max_position_embeddings: int | None = None
    """The model's context length (text config's ``max_position_embeddings``), None when not given."""
    sliding_window: int | None = None
    """Tokens a sliding-window layer attends to (``sliding_window``); None without such layers or a usable value."""
    attention_chunk_size: int | None = None
    """Tokens of a chunked-local layer's chunk (``attention_chunk_size``, Llama 4); None without such layers."""
    state: StateShape | None = None
    """A state layer's shape (Mamba, Gated DeltaNet) for engines that store it; None without state layers."""
    state_problem: str | None = None
    """Why ``state`` could not be read (the fields), when the model has state layers."""
    fields: dict[str, FieldSource] = {}
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._check()

    def _check(self) -> None:
        """A spec built by hand is as legal as one the normaliser builds (fail closed, naming the field)."""
        if not self.layer_kinds:
            raise UnsupportedModelError("`layer_kinds` is empty: a model has at least one layer", field="layer_kinds")
        if not any(kind.keeps_kv for kind in self.layer_kinds):
            raise UnsupportedModelError("no layer keeps a per-token KV cache: nothing to store", field="layer_kinds")
        if self.use_mla and any(kind.keeps_kv and kind is not LayerKind.MLA for kind in self.layer_kinds):
            raise UnsupportedModelError(
                "MLA layers mixed with other attention layers: kvsize will not guess", field="layer_kinds"
            )
        for name, value in (("num_attention_heads", self.num_attention_heads), ("num_kv_heads", self.num_kv_heads)):
            if value < 1:
                raise ConfigError(f"`{name}` must be at least 1, got {value}", field=name)
        if self.use_mla and self.num_kv_heads != 1:
            raise ConfigError("an MLA model keeps one latent per token: `num_kv_heads` must be 1", field="num_kv_heads")
        if not self.use_mla and (self.num_kv_heads > self.num_attention_heads or self.num_attention_heads % self.num_kv_heads):
            raise ConfigError("`num_kv_heads` must divide `num_attention_heads`", field="num_kv_heads")
        if self.head_size < 1 or self.draft_layers < 0:
            raise ConfigError("`head_size` must be at least 1 and `draft_layers` at least 0", field="head_size")

    @property
    def num_layers(self) -> int:
        return len(self.layer_kinds)

    @property
    def kv_layers(self) -> int:
        """Layers whose KV grows per token: the layers LMCache stores."""
        return sum(1 for kind in self.layer_kinds if kind.keeps_kv)

    @property
    def use_mla(self) -> bool:
        return LayerKind.MLA in self.layer_kinds

    @property
    def is_hybrid(self) -> bool:
        """True for Mamba / linear-attention / conv hybrids (layers with state, not per-token KV)."""
        return any(kind in (LayerKind.MAMBA, LayerKind.LINEAR, LayerKind.CONV) for kind in self.layer_kinds)

    def kind_counts(self) -> dict[LayerKind, int]:
        counts: dict[LayerKind, int] = {}
        for kind in self.layer_kinds:
            counts[kind] = counts.get(kind, 0) + 1
        return counts
