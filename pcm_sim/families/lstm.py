"""LSTM baseline for chorale next-frame prediction (software; no analog layers)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.families import ProgressFn
from pcm_sim.families.snu import (
    CHORALE_DATA,
    CHORALE_KEYS,
    evaluate_sequence_model,
    fit_sequence_model,
)
from pcm_sim.recipes import COMMON_TRAINING, Field, RecipeSchema

__all__ = ["LSTMChoralesFamily", "LSTMSequence"]

LSTM_SCHEMA: RecipeSchema = {
    "model": {
        "keys": CHORALE_KEYS,
        "hidden": Field("int", 1, 100_000, required=True),
        "output_bias": Field("float", -100.0, 100.0),
    },
    "data": CHORALE_DATA,
    "training": COMMON_TRAINING,  # software only: no hardware-aware noise
}


class LSTMSequence(nn.Module):
    """``keys -> LSTM(hidden) -> Linear(keys)`` logits of the next frame."""

    def __init__(self, keys: int = 88, hidden: int = 42, output_bias: float = -3.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(keys, hidden)
        self.readout = nn.Linear(hidden, keys)
        nn.init.constant_(self.readout.bias, output_bias)  # base-rate logit, as the sSNU

    def forward(self, frames: Tensor) -> Tensor:
        """``(T, B, 88)`` -> ``(T, B, 88)``."""
        h, _ = self.lstm(frames)
        out: Tensor = self.readout(h)
        return out


class LSTMChoralesFamily:
    """The LSTM baseline of the chorale task."""

    metric = "nll"
    higher_is_better = False
    schema = LSTM_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        return LSTMSequence(
            int(m.get("keys", 88)), int(m["hidden"]), float(m.get("output_bias", -3.0))
        )

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        return fit_sequence_model(model, recipe, generator, log)

    def evaluate(
        self,
        model: nn.Module,
        recipe: dict[str, Any],
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        if mode != "default":
            raise ValueError(f"mode: the LSTM has one mode ('default'), got {mode!r}")
        return evaluate_sequence_model(model, recipe, "test", limit)
