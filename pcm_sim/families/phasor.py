"""``phasor_fmnist``: a deep phasor network (:class:`~pcm_sim.nn.phasor.PhasorNet`) on
Fashion-MNIST, one trained network run atemporally or spiking.

Training is atemporal on ``1 - mean cos(pi (yhat - y))`` (true class at phase 0.5, others at 0),
optionally hardware-aware; prediction ``argmin_k |yhat_k - 0.5|``.

Evaluation modes: ``atemporal`` (= ``default``) and ``spiking``: the input phases become one spike
per pixel and cycle for ``cycles`` cycles, every layer runs resonate-and-fire neurons at
``steps_per_cycle`` steps per cycle, and the output phases are decoded per cycle; the accuracy is
that of the last complete output cycle (``accuracy_cycle_<c>`` gives every cycle).  Both
encodings are deterministic: the input generator is unused.

Recipe ``model`` keys: ``conv`` (list of ``{channels, kernel, padding, pool}``, optional),
``hidden`` (dense widths), ``classes``, ``spiking`` (``steps_per_cycle``, ``cycles``,
``batch_size``, ``leakage``, ``threshold``, ``refractory``).
"""

from __future__ import annotations

import torch
from torch import Generator, Tensor, nn

from pcm_sim.families.base import Limit, Recipe, Scores, image_classifier
from pcm_sim.families.data import accuracy, image_split
from pcm_sim.families.schema import FASHION_DATA, IMAGE_TRAINING, Field, RecipeSchema
from pcm_sim.functional.phasor import (
    ResonateFireParams,
    phasor_loss,
    predict_classes,
    target_phases,
)
from pcm_sim.nn.phasor import PhasorNet
from pcm_sim.training.batches import BatchLoss, Objective, SampleData

__all__ = ["PHASOR_FASHION", "spiking_settings"]

SCHEMA: RecipeSchema = {
    "model": {
        "conv": Field(
            "sections",
            length=(0, 8),
            fields={
                "channels": Field("int", 1, 4096, required=True),
                "kernel": Field("int", 1, 28, required=True),
                "padding": Field("int", 0, 28),
                "pool": Field("int", 1, 28),
            },
        ),
        "hidden": Field("ints", 1, 100_000, length=(0, 16)),
        "classes": Field("int", 10, 10, required=True),
        "spiking": Field(
            "section",
            fields={
                "steps_per_cycle": Field("int", 8, 100_000),
                "cycles": Field("int", 1, 10_000),
                "batch_size": Field("int", 1, 1_000_000),
                "leakage": Field("float", -100.0, 0.0),
                "threshold": Field("float", 0.0, 100.0),
                "refractory": Field("float", 0.0, 0.999),
            },
        ),
    },
    "data": FASHION_DATA,
    "training": IMAGE_TRAINING,
}


def spiking_settings(recipe: Recipe) -> tuple[ResonateFireParams, int, int]:
    """``(neuron params, cycles, batch size)`` of the recipe's spiking execution."""
    spec = dict(recipe["model"].get("spiking", {}))
    params = ResonateFireParams(
        steps_per_cycle=int(spec.get("steps_per_cycle", 64)),
        leakage=float(spec.get("leakage", -0.2)),
        threshold=float(spec.get("threshold", 0.03)),
        refractory=float(spec.get("refractory", 0.25)),
    )
    return params, int(spec.get("cycles", 8)), int(spec.get("batch_size", 100))


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network; its signs and initial weights come from ``training.seed``."""
    m = recipe["model"]
    generator = torch.Generator().manual_seed(int(recipe["training"].get("seed", 0)))
    return PhasorNet(
        list(m.get("conv", [])), [int(h) for h in m.get("hidden", [])], int(m["classes"]), generator
    )


def _phase_objective(classes: int) -> Objective:
    def objective(model: nn.Module, images: Tensor, labels: Tensor) -> BatchLoss:
        phases = model(images)
        loss = phasor_loss(phases, target_phases(labels, classes))
        correct = int((predict_classes(phases.detach()) == labels).sum())
        return BatchLoss(loss, len(labels), correct)

    return objective


def training_data(recipe: Recipe) -> SampleData:
    """The training split (at most ``training.train_limit`` samples) in batches of
    ``training.batch_size``."""
    images, labels = image_split(recipe, "train")
    objective = _phase_objective(int(recipe["model"]["classes"]))
    return SampleData(images, labels, int(recipe["training"]["batch_size"]), objective)


def score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    """Test accuracy, atemporal or spiking (the last cycle's, and every cycle's)."""
    images, labels = image_split(recipe, "test", limit)
    if mode != "spiking":
        return {"accuracy": accuracy(lambda x: predict_classes(model(x)), images, labels)}
    assert isinstance(model, PhasorNet)
    params, cycles, batch = spiking_settings(recipe)
    hits: Tensor | None = None
    for s in range(0, len(images), batch):
        phases = model.spiking(images[s : s + batch], params, cycles)  # (c, b, classes)
        right = (predict_classes(phases) == labels[s : s + batch]).sum(dim=1)  # (c,)
        hits = right if hits is None else hits + right
    assert hits is not None
    per_cycle = {f"accuracy_cycle_{c}": int(h) / len(images) for c, h in enumerate(hits)}
    return {"accuracy": int(hits[-1]) / len(images), **per_cycle}


PHASOR_FASHION = image_classifier(
    "the phasor network",
    SCHEMA,
    build,
    score,
    training_data,
    modes=("default", "atemporal", "spiking"),
)
