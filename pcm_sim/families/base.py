"""What a recipe family is: a value naming its fields, its network, its data and its metric.

A :class:`Family` is glue: ``build`` makes the recipe's network (a class of :mod:`pcm_sim.nn`),
``training_data`` gives its training split as :mod:`pcm_sim.training.batches` see it, ``score``
computes its metric on the test split.  Everything else is shared: :meth:`Family.fit` is the one
training loop (:func:`pcm_sim.training.loop.fit`, hardware-aware from the recipe), a family with
its own kind of training (CartPole's imitation learning) passes ``train`` instead;
:meth:`Family.evaluate` checks the mode and scores in eval mode without gradients;
:meth:`Family.hil_task` gives hardware-in-the-loop fine-tuning its batches and loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pcm_sim.families.schema import RecipeSchema
from pcm_sim.training.batches import BatchTask, TrainingData
from pcm_sim.training.loop import ProgressFn, Schedule, fit

__all__ = ["Family", "History", "Limit", "ProgressFn", "Recipe", "Scores", "image_classifier"]

Recipe = dict[str, Any]
History = list[dict[str, float]]
Scores = dict[str, float]
Limit = int | None
ScoreFn = Callable[[nn.Module, Recipe, torch.Generator, str, Limit], Scores]
"""``(model, recipe, input generator, mode, limit) -> {metric: value, ...}`` on the test split:
the first ``limit`` samples (``None``: all)."""
TrainFn = Callable[[nn.Module, Recipe, torch.Generator, ProgressFn], History]


@dataclass(frozen=True)
class Family:
    """A recipe family (see the module docstring).

    ``title`` names the network in messages; ``metric`` is the key of :meth:`evaluate`'s
    headline score; ``modes`` the execution modes :meth:`evaluate` accepts (``default`` first);
    ``schedule``, ``clip_grad_norm`` and ``loss_name`` configure :meth:`fit`.
    """

    title: str
    metric: str
    higher_is_better: bool
    schema: RecipeSchema
    build: Callable[[Recipe], nn.Module]
    score: ScoreFn
    training_data: Callable[[Recipe], TrainingData] | None = None
    train: TrainFn | None = None
    modes: tuple[str, ...] = ("default",)
    schedule: Schedule = "cosine"
    clip_grad_norm: float | None = None
    loss_name: str = "loss"

    def fit(
        self, model: nn.Module, recipe: Recipe, generator: torch.Generator, log: ProgressFn
    ) -> History:
        """Train in software (hardware-aware if the recipe says so); returns per-epoch history."""
        if self.train is not None:
            return self.train(model, recipe, generator, log)
        data = self._training_data(recipe)
        return fit(
            model,
            recipe["training"],
            data,
            generator,
            log,
            self.schedule,
            self.clip_grad_norm,
            self.loss_name,
        )

    def evaluate(
        self,
        model: nn.Module,
        recipe: Recipe,
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        """Score the model on the test split (``limit`` samples at most) in ``mode``."""
        if mode not in self.modes:
            raise ValueError(f"mode: {self.title} runs in {list(self.modes)}, got {mode!r}")
        model.eval()
        with torch.no_grad():
            return self.score(model, recipe, generator, mode, limit)

    def hil_task(self, recipe: Recipe, batch_size: int) -> BatchTask:
        """Batches of ``batch_size`` from the training split and their loss (for
        :func:`pcm_sim.training.hil.hil_finetune`)."""
        return BatchTask(self._training_data(recipe), batch_size)

    def _training_data(self, recipe: Recipe) -> TrainingData:
        if self.training_data is None:
            raise ValueError(f"{self.title}: trained by its own loop, no batch training data")
        return self.training_data(recipe)


def image_classifier(
    title: str,
    schema: RecipeSchema,
    build: Callable[[Recipe], nn.Module],
    score: ScoreFn,
    training_data: Callable[[Recipe], TrainingData],
    modes: tuple[str, ...] = ("default",),
) -> Family:
    """A family scored by test ``accuracy`` (higher is better), trained by :meth:`Family.fit`
    with the cosine schedule."""
    return Family(title, "accuracy", True, schema, build, score, training_data, modes=modes)
