"""``ssnu_chorales`` and ``lstm_chorales``: next-frame prediction on Bach chorales.

Frames ``(T, B, 88)`` go in, the logit of each key at the next frame comes out; the loss and the
metric are the Bernoulli frame NLL (nats per frame, summed over the 88 keys,
:func:`pcm_sim.data.frame_nll`).  Training clips the gradient norm at 5 and keeps the learning
rate constant.  The sSNU (:class:`~pcm_sim.nn.snu.SSNUSequence`) has analog synapses; the LSTM
(:class:`~pcm_sim.nn.lstm.LSTMSequence`) is its software baseline with the same budget, so its
recipe has no hardware-aware keys.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Generator, nn

from pcm_sim.data import batch_sequences, frame_nll
from pcm_sim.families.base import Family, Limit, Recipe, Scores
from pcm_sim.families.data import chorale_split, chorale_training_data
from pcm_sim.families.schema import (
    CHORALE_DATA,
    CHORALE_KEYS,
    COMMON_TRAINING,
    HWA_TRAINING,
    Field,
    RecipeSchema,
)
from pcm_sim.nn.lstm import LSTMSequence
from pcm_sim.nn.snu import SSNUSequence

__all__ = ["LSTM_CHORALES", "SSNU_CHORALES", "sequence_nll"]

EVAL_BATCH = 32
"""Pieces scored at once."""
GRADIENT_CLIP = 5.0
"""Largest gradient norm of a training step."""
SSNU_SCHEMA: RecipeSchema = {
    "model": {
        "keys": CHORALE_KEYS,
        "hidden": Field("int", 1, 100_000, required=True),
        "decay": Field("float", 0.0, 1.0),
        "output_bias": Field("float", -100.0, 100.0),
        "hidden_leak": Field("float", 0.0, 1.0),
        "output_leak": Field("float", 0.0, 1.0),
        "trainable_decay": Field("bool"),
        "recurrent": Field("bool"),
    },
    "data": CHORALE_DATA,
    "training": {**COMMON_TRAINING, **HWA_TRAINING},
}
LSTM_SCHEMA: RecipeSchema = {
    "model": {
        "keys": CHORALE_KEYS,
        "hidden": Field("int", 1, 100_000, required=True),
        "output_bias": Field("float", -100.0, 100.0),
    },
    "data": CHORALE_DATA,
    "training": COMMON_TRAINING,  # software only: no analog layers, no hardware-aware keys
}


def sequence_nll(
    model: nn.Module, recipe: Recipe, split: str = "test", limit: int | None = None
) -> dict[str, float]:
    """Frame-level NLL (nats per frame, summed over 88 keys) on a chorale split."""
    model.eval()
    pieces = chorale_split(recipe, split)
    if limit:
        pieces = pieces[:limit]
    if not pieces:
        raise ValueError(f"chorales: the {split} split is empty (expected at least one piece)")
    total, frames = 0.0, 0.0
    with torch.no_grad():
        for b in batch_sequences(pieces, EVAL_BATCH, None):
            n = float(b.mask.sum())
            total += float(frame_nll(model(b.inputs), b.targets, b.mask)) * n
            frames += n
    return {"nll": total / frames}


def _score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    return sequence_nll(model, recipe, "test", limit)


def _build_ssnu(recipe: Recipe) -> nn.Module:
    m = recipe["model"]
    return SSNUSequence(
        int(m.get("keys", 88)),
        int(m["hidden"]),
        float(m.get("decay", 0.8)),
        float(m.get("output_bias", -3.0)),
        float(m.get("hidden_leak", 0.0)),
        float(m.get("output_leak", 0.0)),
        bool(m.get("trainable_decay", False)),
        bool(m.get("recurrent", False)),
    )


def _build_lstm(recipe: Recipe) -> nn.Module:
    m = recipe["model"]
    return LSTMSequence(int(m.get("keys", 88)), int(m["hidden"]), float(m.get("output_bias", -3.0)))


SSNU_CHORALES = Family(
    title="the sSNU",
    metric="nll",
    higher_is_better=False,
    schema=SSNU_SCHEMA,
    build=_build_ssnu,
    score=_score,
    training_data=chorale_training_data,
    schedule="constant",
    clip_grad_norm=GRADIENT_CLIP,
    loss_name="train_nll",
)
LSTM_CHORALES = dataclasses.replace(
    SSNU_CHORALES, title="the LSTM", schema=LSTM_SCHEMA, build=_build_lstm
)
