"""What a state layer (Mamba, Gated DeltaNet) keeps per sequence, read from the config as vLLM 0.33 reads it.

vLLM stores it as ``MambaSpec`` shapes (``vllm/model_executor/layers/mamba/mamba_utils.py``
``MambaStateShapeCalculator``), from each model class's ``get_mamba_state_shape_from_config``:

- mamba1 (``jamba.py``): ``intermediate = mamba_expand x hidden_size``; conv ``(intermediate / tp,
  mamba_d_conv - 1)``, ssm ``(intermediate / tp, mamba_d_state)``;
- mamba2 (``nemotron_h.py``: ``intermediate = mamba_num_heads x mamba_head_dim``; ``granitemoehybrid.py``:
  ``mamba_expand x hidden_size``): ``groups = n_groups (+ tp - n_groups when tp does not divide it)``;
  conv ``((intermediate + 2 x groups x state) / tp, conv_kernel - 1)``, ssm ``(heads / tp, head_dim, state)``;
- gated delta net (``qwen3_next.py``): conv ``((k_dim x k_heads x 2 + v_dim x v_heads) / tp, kernel - 1)``,
  ssm ``(v_heads / tp, v_dim, k_dim)``.

Here only the config's numbers are read; ``kvsize.engines.vllm_state`` does the per-rank arithmetic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # the reader imports the spec, which holds a StateShape
    from kvsize.model.reader import Reader

StateKind = Literal["mamba1", "mamba2", "gated_delta_net"]

# (state kind, {our name: config keys, first present wins}) per model type.
_MAMBA1: dict[str, tuple[str, ...]] = {
    "expand": ("mamba_expand",),
    "hidden": ("hidden_size",),
    "state": ("mamba_d_state",),
    "conv_kernel": ("mamba_d_conv",),
}
_NEMOTRON_H: dict[str, tuple[str, ...]] = {
    "heads": ("mamba_num_heads",),
    "head_dim": ("mamba_head_dim",),
    "groups": ("n_groups",),
    "state": ("ssm_state_size",),
    "conv_kernel": ("conv_kernel",),
}
_GRANITE: dict[str, tuple[str, ...]] = {
    "expand": ("mamba_expand",),
    "hidden": ("hidden_size",),
    "heads": ("mamba_n_heads",),
    "head_dim": ("mamba_d_head",),
    "groups": ("mamba_n_groups",),
    "state": ("mamba_d_state",),
    "conv_kernel": ("mamba_d_conv",),
}
_GDN: dict[str, tuple[str, ...]] = {
    "k_heads": ("linear_num_key_heads",),
    "v_heads": ("linear_num_value_heads",),
    "k_dim": ("linear_key_head_dim",),
    "v_dim": ("linear_value_head_dim",),
    "conv_kernel": ("linear_conv_kernel_dim",),
}
RULES: dict[str, tuple[StateKind, dict[str, tuple[str, ...]], str]] = {
    "jamba": ("mamba1", _MAMBA1, "vllm/model_executor/models/jamba.py"),
    "nemotron_h": ("mamba2", _NEMOTRON_H, "vllm/model_executor/models/nemotron_h.py"),
    "granitemoehybrid": ("mamba2", _GRANITE, "vllm/model_executor/models/granitemoehybrid.py"),
    "qwen3_next": ("gated_delta_net", _GDN, "vllm/model_executor/models/qwen3_next.py"),
}
SSM_FLOAT32_TYPES = frozenset({"nemotron_h"})
"""``NemotronHForCausalLMConfig.DEFAULT_MAMBA_SSM_CACHE_DTYPE = "float32"`` (``model_executor/models/config.py``),
unless the config names ``mamba_ssm_cache_dtype``."""


class StateShape(BaseModel):
    """A state layer's dimensions, as its config gives them (unsharded)."""

    model_config = ConfigDict(frozen=True)

    kind: StateKind
    dims: dict[str, int]
    ssm_dtype: str | None
    """The SSM state's dtype when vLLM does not use the model's (NemotronH: float32); None = the model's."""
    fields: tuple[str, ...]
    """The config fields read."""
    source: str


def read_state(reader: Reader, model_type: str) -> StateShape | str:
    """The state layers' shape, or why it cannot be read (the missing or unusable fields)."""
    rule = RULES.get(model_type)
    if rule is None:
        return f"kvsize has no state rule for model_type {model_type} (it knows {', '.join(sorted(RULES))})"
    kind, keys, source = rule
    dims: dict[str, int] = {}
    missing: list[str] = []
    fields: list[str] = []
    for name, aliases in keys.items():
        found = reader.get(*aliases)
        value = found[1] if found else None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**7:
            missing.append(reader.path(aliases[0]))
            continue
        dims[name] = value
        fields.append(found[0] if found else aliases[0])
    if missing:
        return f"{', '.join(missing)} missing or not a positive whole number"
    ssm = reader.value("mamba_ssm_cache_dtype")
    ssm_dtype = ssm if isinstance(ssm, str) and ssm != "auto" else ("float32" if model_type in SSM_FLOAT32_TYPES else None)
    return StateShape(kind=kind, dims=dims, ssm_dtype=ssm_dtype, fields=tuple(fields), source=source)
