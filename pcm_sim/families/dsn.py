"""``dsn_fmnist``: a deep spiking network (O'Connor & Welling 2016) on Fashion-MNIST.

A ``784-200-200-10`` :class:`~pcm_sim.nn.dsn.DeepSpikingNetwork`: herded input spikes, spiking
forward pass over ``steps`` time steps, error spikes back through ``W^T`` and spike-count
outer-product updates (applied with Adam; cosine learning-rate schedule).  No autograd is
involved in training: the gradients are the spike counts of
:meth:`~pcm_sim.nn.dsn.DeepSpikingNetwork.learn`; the reported loss is the cross-entropy of the
spiking logits ``u_L,T / T``.  Hardware-aware training samples each layer's chip once per batch
for the forward and the transposed reads.  On a chip both reads go through the crossbars.
Herding is deterministic: the input generator is unused in scoring.
"""

from __future__ import annotations

from torch import Generator, Tensor, nn

from pcm_sim.families.base import Limit, Recipe, Scores, image_classifier
from pcm_sim.families.data import accuracy, image_split
from pcm_sim.families.schema import FASHION_DATA, IMAGE_TRAINING, Field, RecipeSchema
from pcm_sim.nn.dsn import DeepSpikingNetwork
from pcm_sim.training.batches import BatchLoss, SampleData

__all__ = ["DSN_FASHION", "spike_count_objective"]

SCHEMA: RecipeSchema = {
    "model": {
        "sizes": Field("ints", 1, 100_000, required=True, length=(2, 16), first=784, last=10),
        "steps": Field("int", 1, 10_000),
        "error_scale": Field("float", 0.0, 1e6, above=True),
    },
    "data": FASHION_DATA,
    "training": IMAGE_TRAINING,
}


def spike_count_objective(model: nn.Module, images: Tensor, labels: Tensor) -> BatchLoss:
    """Write the spike-count gradients of one batch; report the logits' cross-entropy."""
    if not isinstance(model, DeepSpikingNetwork):
        raise ValueError(f"model: expected a DeepSpikingNetwork, got {type(model).__name__}")
    logits = model.learn(images, labels).logits
    loss = nn.functional.cross_entropy(logits, labels)
    correct = int((logits.argmax(-1) == labels).sum())
    return BatchLoss(loss, len(labels), correct, gradients_set=True)


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network (parameters drawn from torch's global generator)."""
    m = recipe["model"]
    return DeepSpikingNetwork(
        list(m["sizes"]), int(m.get("steps", 16)), float(m.get("error_scale", 16.0))
    )


def training_data(recipe: Recipe) -> SampleData:
    """The training split (at most ``training.train_limit`` samples) in batches of
    ``training.batch_size``."""
    images, labels = image_split(recipe, "train")
    batch = int(recipe["training"]["batch_size"])
    return SampleData(images, labels, batch, spike_count_objective)


def score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    """Test accuracy of the first ``limit`` test samples."""
    images, labels = image_split(recipe, "test", limit)
    return {"accuracy": accuracy(lambda x: model(x).argmax(-1), images, labels)}


DSN_FASHION = image_classifier("the deep spiking network", SCHEMA, build, score, training_data)
