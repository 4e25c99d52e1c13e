"""Training data as the training loop and hardware-in-the-loop see it: batches and their loss.

A :class:`TrainingData` yields the batches of one epoch (a shuffled pass), draws one random batch
(hardware-in-the-loop fine-tuning) and scores a model on a batch (:class:`BatchLoss`).  Two
kinds cover every family:

* :class:`SampleData`: ``N`` samples ``inputs (N, ...)`` with ``targets (N,)``; an epoch is one
  ``randperm`` of the samples in batches of ``batch_size``; each batch's inputs go through
  ``encode(inputs, generator)`` (e.g. Bernoulli rate coding) right before they are used, and an
  :data:`Objective` gives the batch's loss;
* :class:`SequenceData`: variable-length piano rolls ``(frames, 88)``, padded per batch; the loss
  is the masked frame NLL (nats per frame), weighted by the batch's valid frames.

:class:`BatchTask` turns a :class:`TrainingData` into the task that hardware-in-the-loop
fine-tuning draws its batches from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from pcm_sim.data import batch_sequences, frame_nll

__all__ = [
    "BatchLoss",
    "BatchTask",
    "Encoder",
    "Objective",
    "SampleData",
    "SequenceData",
    "TrainingData",
    "cross_entropy",
]


@dataclass(frozen=True)
class BatchLoss:
    """A model's loss on one batch.

    ``loss``: scalar, the mean over ``weight`` units (samples, or valid frames); ``correct``:
    right predictions among the batch's samples (classification), else ``None``;
    ``gradients_set``: the objective wrote every parameter's ``.grad`` itself (a learning rule
    without autograd, e.g. the deep spiking network's spike counts), so ``loss`` is a report.
    """

    loss: Tensor
    weight: float
    correct: int | None = None
    gradients_set: bool = False


Objective = Callable[[nn.Module, Tensor, Tensor], BatchLoss]
"""``(model, model inputs, targets) -> BatchLoss`` of one batch."""
Encoder = Callable[[Tensor, torch.Generator], Tensor]
"""``(raw inputs of a batch, generator) -> model inputs`` (drawing only from ``generator``)."""


class TrainingData(Protocol):
    """What the training loop and hardware-in-the-loop fine-tuning need from training data."""

    def batches(self) -> int:
        """Batches in one epoch."""
        ...

    def epoch(self, generator: torch.Generator) -> Iterator[Any]:
        """The batches of one shuffled pass over the data."""
        ...

    def sample(self, batch_size: int, generator: torch.Generator) -> Any:
        """One batch of ``batch_size`` randomly drawn samples."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> BatchLoss:
        """The model's loss on ``batch``."""
        ...


def cross_entropy(scale: float = 1.0) -> Objective:
    """Classification by logits ``(B, C)``: cross-entropy of ``scale * logits``; prediction
    ``argmax(logits)``."""

    def objective(model: nn.Module, inputs: Tensor, targets: Tensor) -> BatchLoss:
        logits = model(inputs)
        loss = nn.functional.cross_entropy(scale * logits, targets)
        correct = int((logits.detach().argmax(-1) == targets).sum())
        return BatchLoss(loss, len(targets), correct)

    return objective


class SampleData:
    """``inputs (N, ...)`` and ``targets (N,)`` in batches (see the module docstring)."""

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        batch_size: int,
        objective: Objective,
        encode: Encoder | None = None,
    ) -> None:
        if len(inputs) != len(targets) or not len(inputs):
            raise ValueError(
                f"inputs/targets: expected the same number (>= 1) of samples, got "
                f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.inputs, self.targets, self.batch_size = inputs, targets, batch_size
        self.objective, self.encode = objective, encode

    def batches(self) -> int:
        return math.ceil(len(self.inputs) / self.batch_size)

    def _take(self, index: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = self.inputs[index]
        return (x if self.encode is None else self.encode(x, generator)), self.targets[index]

    def in_order(
        self, order: Tensor, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``batch_size`` consecutive samples of ``order`` ``(N,)``."""
        for start in range(0, len(order), self.batch_size):
            yield self._take(order[start : start + self.batch_size], generator)

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        return self.in_order(torch.randperm(len(self.inputs), generator=generator), generator)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``batch_size`` samples drawn uniformly with replacement."""
        index = torch.randint(0, len(self.inputs), (batch_size,), generator=generator)
        return self._take(index, generator)

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> BatchLoss:
        return self.objective(model, *batch)


class SequenceData:
    """Next-frame prediction on piano rolls ``(frames, 88)`` (see the module docstring)."""

    def __init__(self, sequences: list[Any], batch_size: int) -> None:
        if not sequences:
            raise ValueError("sequences: expected at least one training sequence")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.sequences, self.batch_size = sequences, batch_size

    def batches(self) -> int:
        return math.ceil(len(self.sequences) / self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[Any]:
        return batch_sequences(self.sequences, self.batch_size, generator)

    def sample(self, batch_size: int, generator: torch.Generator) -> Any:
        """``batch_size`` different sequences (all of them if there are fewer)."""
        n = min(batch_size, len(self.sequences))
        index = torch.randperm(len(self.sequences), generator=generator)[:n].tolist()
        return next(batch_sequences([self.sequences[i] for i in index], n, None))

    def loss(self, model: nn.Module, batch: Any) -> BatchLoss:
        loss = frame_nll(model(batch.inputs), batch.targets, batch.mask)
        return BatchLoss(loss, float(batch.mask.sum()))


@dataclass(frozen=True)
class BatchTask:
    """Random batches of ``data`` and their differentiable loss (hardware-in-the-loop's task)."""

    data: TrainingData
    batch_size: int

    def batch(self, generator: torch.Generator) -> Any:
        """One batch drawn with ``generator``."""
        return self.data.sample(self.batch_size, generator)

    def loss(self, model: nn.Module, batch: Any) -> Tensor:
        """Scalar training loss of ``model`` on ``batch`` (differentiable)."""
        out = self.data.loss(model, batch)
        if out.gradients_set:
            raise ValueError(
                "hardware-in-the-loop: this network learns by its own rule, not by the gradient "
                "of a loss (expected a differentiable training loss)"
            )
        return out.loss
