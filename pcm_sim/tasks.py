"""Tasks: the question a chip is asked (a network, its test data and a metric).

Every scoring entry point (``evaluate``, sweep cells, ``validate``, hardware-in-the-loop) asks a
*task* to score a model, programmed or not::

    task.evaluate(model, generator, mode, limit) -> {task.metric_name: value, ...}

Two kinds exist:

- :class:`RecipeTask`: a shipped recipe family's test split and metric (a checkpoint's recipe).
- :class:`Task`: your own network: ``model`` (with analog layers, e.g. from :func:`pcm_sim.convert`,
  :func:`pcm_sim.from_nir` or :func:`pcm_sim.from_snntorch`), ``data`` (a re-iterable of
  ``(input, target)`` batches), a ``metric`` and optionally an ``encode`` step (e.g. rate coding
  from the input generator) and a ``calibration`` batch for calibrated ADC ranges.

The metric of a :class:`Task` is computed on the model's output ``y`` after its *readout*:
``"auto"`` sums a leading time axis when ``y`` has two more dimensions than the target (spiking
models return ``(T, batch, classes)``: the score of a class is its spike count), else uses ``y``
as it is.  ``"accuracy"`` = fraction of samples with ``argmax(score) == target``; ``"mse"`` =
mean over samples of ``mean((score - target)^2)``; a callable ``metric(score, target)`` returns
one value per sample and is averaged over samples.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "EvaluationTask",
    "RecipeTask",
    "Task",
    "TaskError",
    "load_entry_point",
]

Readout = str | Callable[[Tensor], Tensor]
MetricFn = Callable[[Tensor, Tensor], Tensor]


class TaskError(ValueError):
    """A task cannot be loaded or does not fit what is asked of it."""


class EvaluationTask(Protocol):
    """What every scoring entry point needs from a task."""

    @property
    def name(self) -> str: ...

    @property
    def metric_name(self) -> str: ...

    @property
    def higher_is_better(self) -> bool: ...

    def evaluate(
        self,
        model: nn.Module,
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        """The metric of ``model`` on the test data (the first ``limit`` samples at most)."""
        ...

    def calibration_batch(self) -> Any:
        """An input batch whose layer inputs set calibrated ADC ranges, or ``None``."""
        ...

    def test_size(self) -> int | None:
        """How many test samples there are (``None`` if unknown without loading them)."""
        ...


@dataclass
class RecipeTask:
    """A recipe family's test split and metric (what a checkpoint of that recipe is scored on)."""

    recipe: dict[str, Any]

    @property
    def family(self) -> Any:
        """The recipe's family (:data:`pcm_sim.families.FAMILIES`)."""
        from pcm_sim.families import FAMILIES

        return FAMILIES[self.recipe["family"]]

    @property
    def name(self) -> str:
        return str(self.recipe["name"])

    @property
    def metric_name(self) -> str:
        return str(self.family.metric)

    @property
    def higher_is_better(self) -> bool:
        return bool(self.family.higher_is_better)

    def evaluate(
        self,
        model: nn.Module,
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        return dict(self.family.evaluate(model, self.recipe, generator, mode, limit))

    def calibration_batch(self) -> Any:
        return None

    def test_size(self) -> int | None:
        return None


_METRIC_DIRECTION = {"accuracy": True, "mse": False}


@dataclass
class Task:
    """Your own network and the question asked of it (see the module docstring).

    A named metric sets ``higher_is_better`` itself (accuracy: higher, mse: lower); a callable
    ``metric`` needs ``metric_name`` and says ``higher_is_better`` (default true).
    ``data`` must be re-iterable (a list of batches, a ``DataLoader``): every evaluation walks it
    from the start.  ``encode(inputs, generator)`` turns a data batch into the model's input
    (e.g. :func:`pcm_sim.data.bernoulli_rate_code`), drawing only from ``generator`` (the
    evaluation's input seed), so every chip sees the same spikes.
    """

    model: nn.Module
    data: Iterable[tuple[Tensor, Tensor]]
    metric: str | MetricFn = "accuracy"
    metric_name: str = ""
    higher_is_better: bool = True
    readout: Readout = "auto"
    encode: Callable[[Tensor, torch.Generator], Tensor] | None = None
    calibration: Any = None
    name: str = "task"
    modes: tuple[str, ...] = field(default=("default",))

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TaskError(f"Task.model: expected a torch nn.Module, got {type(self.model)}")
        if isinstance(self.metric, str):
            if self.metric not in _METRIC_DIRECTION:
                raise TaskError(
                    f"Task.metric: unknown metric {self.metric!r}; expected accuracy, mse or a "
                    "callable metric(score, target) -> per-sample values"
                )
            self.higher_is_better = _METRIC_DIRECTION[self.metric]
            self.metric_name = self.metric_name or self.metric
        else:
            if not callable(self.metric):
                raise TaskError("Task.metric: expected a metric name or a callable")
            if not self.metric_name:
                raise TaskError("Task.metric: a callable metric needs a metric_name")
        if isinstance(self.readout, str) and self.readout not in ("auto", "identity", "sum_time"):
            raise TaskError(
                f"Task.readout: unknown readout {self.readout!r}; expected auto, identity, "
                "sum_time or a callable"
            )
        try:
            iter(self.data)
        except TypeError:
            raise TaskError("Task.data: expected an iterable of (input, target) batches") from None

    def calibration_batch(self) -> Any:
        return self.calibration

    def test_size(self) -> int | None:
        if isinstance(self.data, list | tuple):
            return sum(int(target.shape[0]) for _, target in self.data)
        return None

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        """Per-sample metric values of one batch (see the module docstring)."""
        if callable(self.readout):
            scores = self.readout(output)
        elif self.readout == "sum_time" or (
            self.readout == "auto" and output.dim() == target.dim() + 2
        ):
            scores = output.sum(dim=0)
        else:
            scores = output
        if scores.shape[0] != target.shape[0]:
            raise TaskError(
                f"task {self.name!r}: the readout gives {scores.shape[0]} samples for "
                f"{target.shape[0]} targets (output shape {tuple(output.shape)})"
            )
        if self.metric == "accuracy":
            return (scores.argmax(dim=-1) == target).to(torch.float64)
        if self.metric == "mse":
            diff = (scores - target.to(scores.dtype)).to(torch.float64)
            return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1)
        assert callable(self.metric)
        values = torch.as_tensor(self.metric(scores, target), dtype=torch.float64)
        if values.shape != (target.shape[0],):
            raise TaskError(
                f"task {self.name!r}: metric {self.metric_name!r} returned shape "
                f"{tuple(values.shape)}, expected one value per sample ({target.shape[0]},)"
            )
        return values

    def evaluate(
        self,
        model: nn.Module,
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        """The mean per-sample metric over the data (the first ``limit`` samples at most)."""
        if mode not in self.modes:
            raise TaskError(f"task {self.name!r}: mode {mode!r} unknown; expected {self.modes}")
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for inputs, target in self.data:
                if limit is not None and count >= limit:
                    break
                take = target.shape[0] if limit is None else min(target.shape[0], limit - count)
                x = inputs[:take] if self.encode is None else self.encode(inputs[:take], generator)
                total += float(self.score(model(x), target[:take]).sum())
                count += take
        if count == 0:
            raise TaskError(f"task {self.name!r}: the test data is empty")
        return {self.metric_name: total / count}


def load_entry_point(spec: str) -> Task:
    """Call ``package.module:function`` (or ``path/to/file.py:function``) and check its Task.

    Importing the module runs its code: an entry point is code the user chose to run.
    """
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise TaskError(f"task {spec!r}: expected package.module:function or file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise TaskError(f"task {spec!r}: no such file {module_name}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except TaskError:
        raise
    except Exception as exc:  # the user's module failed to import: name it, in one line
        raise TaskError(f"task {spec!r}: cannot import {module_name}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TaskError(f"task {spec!r}: {module_name} has no function {function_name}")
    task = function()
    if not isinstance(task, Task):
        raise TaskError(
            f"task {spec!r}: {function_name}() returned {type(task).__name__}, "
            "expected a pcm_sim.Task"
        )
    return task
