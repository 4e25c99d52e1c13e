"""``snu_fmnist``: a rate-coded SNU classifier (:class:`~pcm_sim.nn.snu.SNUClassifier`) on
Fashion-MNIST.

Images ``(B, 784)`` become Bernoulli spike trains ``(T, B, 784)`` of ``data.steps`` steps drawn
from the generator (for training and for scoring alike); the loss is the cross-entropy of the
logits, the metric the test accuracy of ``argmax(logits)``.
"""

from __future__ import annotations

from torch import Generator, Tensor, nn

from pcm_sim.data import bernoulli_rate_code
from pcm_sim.families.base import Limit, Recipe, Scores, image_classifier
from pcm_sim.families.data import accuracy, image_split
from pcm_sim.families.schema import FASHION_DATA, IMAGE_TRAINING, Field, RecipeSchema
from pcm_sim.nn.snu import SNUClassifier
from pcm_sim.training.batches import Encoder, SampleData, cross_entropy

__all__ = ["SNU_FASHION"]

SCHEMA: RecipeSchema = {
    "model": {
        "sizes": Field("ints", 1, 100_000, required=True, length=(2, 16), first=784, last=10),
        "decay": Field("float", 0.0, 1.0),
        "threshold_init": Field("float", -100.0, 100.0),
    },
    "data": {**FASHION_DATA, "steps": Field("int", 1, 10_000, required=True)},
    "training": IMAGE_TRAINING,
}


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network (parameters drawn from torch's global generator)."""
    m = recipe["model"]
    return SNUClassifier(
        list(m["sizes"]), float(m.get("decay", 0.8)), float(m.get("threshold_init", -1.0))
    )


def _rate_code(recipe: Recipe) -> Encoder:
    steps = int(recipe["data"]["steps"])
    return lambda images, generator: bernoulli_rate_code(images, steps, generator)


def training_data(recipe: Recipe) -> SampleData:
    """The training split (at most ``training.train_limit`` samples) in batches of
    ``training.batch_size``."""
    images, labels = image_split(recipe, "train")
    batch = int(recipe["training"]["batch_size"])
    return SampleData(images, labels, batch, cross_entropy(), _rate_code(recipe))


def score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    """Test accuracy of the first ``limit`` test samples."""
    images, labels = image_split(recipe, "test", limit)
    encode = _rate_code(recipe)

    def predict(x: Tensor) -> Tensor:
        return model(encode(x, gen)).argmax(-1)

    return {"accuracy": accuracy(predict, images, labels)}


SNU_FASHION = image_classifier("the SNU classifier", SCHEMA, build, score, training_data)
