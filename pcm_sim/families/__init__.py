"""Network families: how a recipe becomes a model, is trained and is scored.

Each family implements :class:`Family`; :data:`FAMILIES` maps recipe ``family`` keys to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from pcm_sim.recipes import RecipeSchema

__all__ = ["FAMILIES", "Family", "Metric"]

ProgressFn = Callable[[str], None]


class Metric(dict[str, float]):
    """Scores of one evaluation, e.g. ``{"accuracy": 0.89}``."""


class Family(Protocol):
    """What every network family provides."""

    metric: str
    higher_is_better: bool
    schema: RecipeSchema
    """Fields of the recipe's ``model``, ``data`` and ``training`` (see :mod:`pcm_sim.recipes`)."""

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        """A fresh model for the recipe (its synapses are AnalogLinear/AnalogConv2d)."""
        ...

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        """Train in software (hardware-aware if the recipe says so); returns per-epoch history."""
        ...

    def evaluate(
        self,
        model: nn.Module,
        recipe: dict[str, Any],
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        """Score the model on the test split (``limit`` samples at most)."""
        ...


def _registry() -> dict[str, Family]:
    from pcm_sim.families.cartpole import CartPoleFamily
    from pcm_sim.families.coarse_lif import CoarseLIFFashionFamily
    from pcm_sim.families.dsn import DSNFashionFamily
    from pcm_sim.families.lstm import LSTMChoralesFamily
    from pcm_sim.families.phasor import PhasorFashionFamily
    from pcm_sim.families.snu import SNUChoralesFamily, SNUFashionFamily

    return {
        "snu_fmnist": SNUFashionFamily(),
        "ssnu_chorales": SNUChoralesFamily(),
        "lstm_chorales": LSTMChoralesFamily(),
        "dsn_fmnist": DSNFashionFamily(),
        "coarse_lif_fmnist": CoarseLIFFashionFamily(),
        "coarse_lif_cartpole": CartPoleFamily(),
        "phasor_fmnist": PhasorFashionFamily(),
    }


FAMILIES: dict[str, Family] = _registry()
