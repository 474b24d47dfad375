"""A model for bf16 on CPU: its matrix products in bf16 with prepacked weights, everything between them in fp32.

Each Linear layer's weight is cast to bf16 and packed once into oneDNN's blocked layout (torch's plain bf16
Linear repacks it at every call); its input is rounded to bf16 and its output returned in fp32, so the residual
stream, layer norms, attention softmax and pooled hidden states stay fp32. A bf16 residual stream drifts from
fp32 on some texts; this keeps every feature close to the fp32 one. The GELU after a feed-forward up-projection
runs inside that product (on its fp32 accumulator), and the product's output, which only feeds the down-projection,
stays bf16. The ops are those torch's own compiler uses on CPU (``torch.ops.mkldnn``); where this torch build
lacks them, the whole model is cast to bf16 instead.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

#: Rows (tokens) per product the packed layout is chosen for; any row count works with it.
PACK_ROWS_HINT = 512
#: (projection, activation) attribute pairs of a feed-forward block: BERT, MPNet, RoBERTa; DistilBERT.
FEED_FORWARD = (("dense", "intermediate_act_fn"), ("lin1", "activation"))


class PackedLinear(torch.nn.Module):
    """A Linear layer computed in bf16 with its weight packed for oneDNN; with ``gelu``, an exact (erf) GELU fused
    in and the output left in bf16 for the next product, else the output in fp32."""

    def __init__(self, linear: torch.nn.Linear, activation: str = "none") -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().to(torch.bfloat16)
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(weight, PACK_ROWS_HINT)
        self.bias = None if linear.bias is None else linear.bias.detach()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        algorithm = "none" if self.activation == "gelu" else ""  # "none": erf GELU, not the tanh approximation
        out = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), self.packed_weight, self.bias, self.activation, [], algorithm
        )
        return out if self.activation == "gelu" else out.to(torch.float32)


def bf16_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with bf16 matrix products (see the module docstring); the whole model in bf16 where torch cannot."""
    if not _packing_works():
        return model.to(torch.bfloat16)
    with torch.inference_mode():
        _fuse_feed_forward_gelu(model)
        _pack_linear_layers(model)
    return model


def _packing_works() -> bool:
    """Whether this torch build packs and runs a bf16 Linear with a fused GELU (tried on a tiny one)."""
    try:
        with torch.inference_mode():
            PackedLinear(torch.nn.Linear(8, 8), "gelu")(torch.ones(2, 8))
    except (AttributeError, RuntimeError) as error:  # no such ops in this build, or they refuse
        log.warning("bf16 without packed Linear layers (%s: %s)", error.__class__.__name__, error)
        return False
    return True


def _is_exact_gelu(module: torch.nn.Module) -> bool:
    """transformers' ``GELUActivation`` (``nn.functional.gelu``) or ``nn.GELU()``: the erf form oneDNN fuses."""
    if isinstance(module, torch.nn.GELU):
        return module.approximate == "none"
    return getattr(module, "act", None) is torch.nn.functional.gelu


def _parents(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules that hold Linear layers (not the Linear layers themselves, so each is freed once replaced)."""
    return [m for m in model.modules() if any(type(child) is torch.nn.Linear for child in m.children())]


def _fuse_feed_forward_gelu(model: torch.nn.Module) -> None:
    for module in _parents(model):
        for linear_name, activation_name in FEED_FORWARD:
            linear, activation = getattr(module, linear_name, None), getattr(module, activation_name, None)
            if type(linear) is torch.nn.Linear and activation is not None and _is_exact_gelu(activation):
                setattr(module, linear_name, PackedLinear(linear, "gelu"))
                setattr(module, activation_name, torch.nn.Identity())


def _pack_linear_layers(model: torch.nn.Module) -> None:
    for module in _parents(model):
        for name in [name for name, child in module.named_children() if type(child) is torch.nn.Linear]:
            setattr(module, name, PackedLinear(getattr(module, name)))
