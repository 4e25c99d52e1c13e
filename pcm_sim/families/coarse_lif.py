"""``coarse_lif_fmnist``: a coarse-scale LIF convolutional network (Yanguas-Gil 2020) on
Fashion-MNIST.

Bernoulli rate-coded images ``(T, B, 1, 28, 28)`` (``T`` = 4 to 8 steps) drive a LeNet-like
:class:`~pcm_sim.nn.coarse_lif.CoarseLIFConvNet`; the prediction is the output layer's spike
count (ties broken by membrane potential).  Training: backpropagation through the ``T`` steps
with the surrogate gradient ``beta σ(beta(v-1))(1 - σ(beta(v-1)))``, cross-entropy on
``readout_scale * logits``.

Evaluation modes: ``default`` runs the coarse-scale model; ``continuous`` runs the same synapses
with continuous-time LIF neurons on a fine grid of ``dt_s`` (each input spike placed at a
uniformly random fine step of the first ``data.input_jitter`` fraction of its window, 0: at its
start; refractory period ``model.refractory_s``, reset ``model.reset``; synapse kernel
``model.synapse_tau_s`` or ``model.synapse_window_s``; max-pool units refractory for a window
with ``model.refractory_pool``; the network then runs ``model.settle_s`` with no input and its
output spikes are counted over the whole run), from the same coarse input spikes as ``default``
for a given generator (:func:`continuous_params`).
"""

from __future__ import annotations

import torch
from torch import Generator, Tensor, nn

from pcm_sim.data.encoding import bernoulli_rate_code
from pcm_sim.families.base import Limit, Recipe, Scores, image_classifier
from pcm_sim.families.data import EVAL_CHUNK, accuracy, image_split
from pcm_sim.families.schema import FASHION_DATA, IMAGE_TRAINING, Field, RecipeSchema
from pcm_sim.functional.lif import ContinuousLIFParams, refine_spike_train
from pcm_sim.nn.coarse_lif import CoarseLIFConvNet
from pcm_sim.seeds import timing_generator
from pcm_sim.training.batches import SampleData, cross_entropy

__all__ = ["COARSE_LIF_FASHION", "continuous_params", "image_spikes", "score_split"]

IMAGE_SHAPE = (1, 28, 28)
CONTINUOUS_CHUNK = 50
"""Test images run at once in continuous time (bounds im2col memory on chips)."""
SCHEMA: RecipeSchema = {
    "model": {
        "channels": Field("ints", 1, 4096, length=(2, 2)),
        "hidden": Field("int", 1, 100_000),
        "classes": Field("int", 10, 10),
        "tau": Field("float", 0.0, 1e4, above=True),
        "beta": Field("float", 0.0, 1e3, above=True),
        "detach_reset": Field("bool"),
        "readout_scale": Field("float", 0.0, 1e3, above=True),
        "refractory_s": Field("float", 0.0, 1e3),
        "synapse_tau_s": Field("float", 0.0, 1e3),
        "synapse_window_s": Field("float", 0.0, 1e3),
        "reset": Field("str", choices=("zero", "subtract")),
        "refractory_pool": Field("bool"),
        "settle_s": Field("float", 0.0, 1e4),
    },
    "data": {
        **FASHION_DATA,
        "steps": Field("int", 1, 10_000, required=True),
        "dt_s": Field("float", 0.0, 1.0, above=True),
        "input_jitter": Field("float", 0.0, 1.0),
    },
    "training": IMAGE_TRAINING,
}


def image_spikes(images: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """``(B, 784)`` intensities -> Bernoulli spikes ``(T, B, 1, 28, 28)``."""
    spikes = bernoulli_rate_code(images, steps, generator)  # (T, B, 784)
    return spikes.reshape(steps, images.shape[0], *IMAGE_SHAPE)


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network (parameters drawn from torch's global generator)."""
    m = recipe["model"]
    c1, c2 = (int(c) for c in m.get("channels", (16, 32)))
    return CoarseLIFConvNet(
        (c1, c2),
        int(m.get("hidden", 256)),
        int(m.get("classes", 10)),
        float(m.get("tau", 2.0)),
        float(m.get("beta", 5.0)),
        bool(m.get("detach_reset", False)),
    )


def training_data(recipe: Recipe) -> SampleData:
    """The training split (at most ``training.train_limit`` samples) in batches of
    ``training.batch_size``."""
    images, labels = image_split(recipe, "train")
    steps = int(recipe["data"]["steps"])
    objective = cross_entropy(float(recipe["model"].get("readout_scale", 2.0)))
    batch = int(recipe["training"]["batch_size"])
    return SampleData(images, labels, batch, objective, lambda x, g: image_spikes(x, steps, g))


def continuous_params(recipe: Recipe) -> ContinuousLIFParams:
    """The continuous-time LIF of the recipe's transfer (``model`` fields and ``data.dt_s``)."""
    m = recipe["model"]
    return ContinuousLIFParams(
        tau=float(m.get("tau", 2.0)),
        dt_s=float(recipe["data"].get("dt_s", 0.05)),
        refractory_s=float(m.get("refractory_s", 1.0)),
        synapse_tau_s=float(m.get("synapse_tau_s", 0.0)),
        synapse_window_s=float(m.get("synapse_window_s", 0.0)),
        reset=str(m.get("reset", "zero")),
        settle_s=float(m.get("settle_s", 0.0)),
        refractory_pool=bool(m.get("refractory_pool", True)),
    )


def score_split(
    model: nn.Module,
    recipe: Recipe,
    generator: torch.Generator,
    mode: str,
    limit: int | None,
    split: str = "test",
) -> dict[str, float]:
    """Accuracy on ``split`` (``test``; ``train`` to choose transfer settings) in ``mode``."""
    assert isinstance(model, CoarseLIFConvNet)
    images, labels = image_split(recipe, split, limit)
    steps = int(recipe["data"]["steps"])
    params = continuous_params(recipe)
    jitter = float(recipe["data"].get("input_jitter", 1.0))
    timing = timing_generator(generator)

    def predict(x: Tensor) -> Tensor:
        spikes = image_spikes(x, steps, generator)
        if mode == "default":
            return model(spikes).argmax(-1)
        fine = refine_spike_train(spikes, params.substeps, timing, jitter)
        return model.forward_continuous(fine, params).argmax(-1)

    chunk = EVAL_CHUNK if mode == "default" else CONTINUOUS_CHUNK
    return {"accuracy": accuracy(predict, images, labels, chunk)}


def score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    """Test accuracy (coarse-scale or continuous-time ``mode``) of the first ``limit`` samples."""
    return score_split(model, recipe, gen, mode, limit)


COARSE_LIF_FASHION = image_classifier(
    "the coarse-scale LIF network",
    SCHEMA,
    build,
    score,
    training_data,
    modes=("default", "continuous"),
)
