"""The data glue the families share: image splits, chorale splits, accuracy in chunks.

Images: the recipe's IDX files (``data.data_dir``), ``(N, 784)`` in ``[0, 1]`` with labels
``(N,)``; the training split stops at ``training.train_limit`` samples when it is set, a test
split at ``limit``.  Chorales: music21's Bach chorales (``data.cache_dir``,
``data.max_pieces``), piano rolls ``(frames, 88)`` per piece, split into train/valid/test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from pcm_sim.data import load_chorales
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.training.batches import SequenceData

__all__ = ["accuracy", "chorale_split", "chorale_training_data", "image_split"]

EVAL_CHUNK = 1000
"""Test samples scored at once."""


def image_split(
    recipe: dict[str, Any], split: str, limit: int | None = None
) -> tuple[Tensor, Tensor]:
    """``(images (N, 784), labels (N,))`` of ``split``: the first ``limit`` samples, and for the
    training split at most ``training.train_limit``."""
    images, labels = load_fashion_mnist(recipe["data"].get("data_dir"), split)  # type: ignore[arg-type]
    if split == "train" and recipe["training"].get("train_limit"):
        limit = int(recipe["training"]["train_limit"])
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def accuracy(
    predict: Callable[[Tensor], Tensor], inputs: Tensor, labels: Tensor, chunk: int = EVAL_CHUNK
) -> float:
    """Fraction of ``inputs`` whose predicted class ``predict(inputs[i:i+chunk])`` ``(n,)`` is the
    label, scored ``chunk`` samples at a time."""
    correct = 0
    for start in range(0, len(inputs), chunk):
        hits = predict(inputs[start : start + chunk]) == labels[start : start + chunk]
        correct += int(hits.sum())
    return correct / len(inputs)


def chorale_split(recipe: dict[str, Any], split: str, show_progress: bool = True) -> list[Any]:
    """The piano rolls of ``split`` (``train``, ``valid`` or ``test``)."""
    data = recipe["data"]
    pieces = load_chorales(data.get("cache_dir"), data.get("max_pieces"), progress=show_progress)
    return pieces[split]


def chorale_training_data(recipe: dict[str, Any]) -> SequenceData:
    """The training split in batches of ``training.batch_size`` pieces."""
    return SequenceData(chorale_split(recipe, "train"), int(recipe["training"]["batch_size"]))
