"""Pooling of transformer hidden states into one feature vector per text.

A :class:`Pooling` names the methods (``cls``, ``mean``, ``max``) and hidden-state layers whose
poolings are concatenated, written as e.g. ``cls@-1`` (the classic recipe: last layer's
``[CLS]``) or ``mean@-1,-2``. Layer indices address ``hidden_states`` (0 = embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by whoever runs the model; parsing a spec must not need it
    import torch

METHODS = ("cls", "mean", "max")


@dataclass(frozen=True)
class Pooling:
    """Which poolings of which layers make the feature vector, in concatenation order."""

    methods: tuple[str, ...] = ("cls",)
    layers: tuple[int, ...] = (-1,)

    def __post_init__(self) -> None:
        if (
            not self.methods
            or any(m not in METHODS for m in self.methods)
            or len(set(self.methods)) != len(self.methods)
        ):
            raise ValueError(f"pooling methods must be distinct names from {METHODS}, got {self.methods}")
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"pooling layers must be distinct, got {self.layers}")

    @classmethod
    def parse(cls, spec: str) -> Pooling:
        """Parse ``"cls+mean@-1,-2"``; the layer part defaults to ``-1``."""
        methods, _, layers = spec.strip().partition("@")
        try:
            layer_ids = tuple(int(x) for x in layers.split(",")) if layers else (-1,)
        except ValueError:
            raise ValueError(f"invalid pooling {spec!r}: layers must be integers like '-1,-2'") from None
        return cls(tuple(m.strip() for m in methods.split("+")), layer_ids)

    def __str__(self) -> str:
        return "+".join(self.methods) + "@" + ",".join(str(layer) for layer in self.layers)

    @property
    def needs_all_layers(self) -> bool:
        """Whether pooling reads any layer other than the last."""
        return self.layers != (-1,)

    def output_dim(self, hidden_size: int) -> int:
        """Length of the pooled vector for a model of ``hidden_size``."""
        return hidden_size * len(self.methods) * len(self.layers)

    def __call__(self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor) -> torch.Tensor:
        """Pool ``hidden_states`` ([batch, seq, hidden] each) into [batch, output_dim] float32."""
        import torch

        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        parts = []
        for layer in self.layers:
            states = hidden_states[layer].to(torch.float32)
            for method in self.methods:
                if method == "cls":
                    parts.append(states[:, 0])
                elif method == "mean":
                    parts.append((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))
                else:
                    parts.append(states.masked_fill(mask == 0, float("-inf")).amax(1))
        return torch.cat(parts, dim=-1)
