"""The training loop of every epoch-based family: Adam, a schedule, hardware-aware noise, progress.

:func:`fit` trains ``model`` on a :class:`~pcm_sim.training.batches.TrainingData` for the
recipe's ``training.epochs``: Adam at ``training.lr``, a cosine learning-rate schedule
``lr_e = lr (1 + cos(pi e / E)) / 2`` after epoch ``e`` of ``E`` (or a constant rate), optional
gradient-norm clipping, hardware-aware noise from every ``training.hwa_*`` key
(:func:`setup_hwa`) for the whole run, a progress bar per epoch and one log line per epoch with
the time left.  Each epoch (:func:`train_epoch`) reports the weighted mean loss over the epoch
(per sample, or per frame for sequences) and, for classifiers, the training accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

import torch
from torch import nn
from tqdm import tqdm

from pcm_sim.nn.analog import enable_hwa
from pcm_sim.profiles import load_profile
from pcm_sim.training.batches import BatchLoss, TrainingData

__all__ = ["EpochTimer", "Schedule", "fit", "progress", "setup_hwa", "train_epoch"]

T = TypeVar("T")
ProgressFn = Callable[[str], None]
Schedule = Literal["cosine", "constant"]

HWA_SEED_OFFSET = 101
"""The HWA noise streams of a run are named by ``training.seed + 101``."""
DEFAULT_HWA_T_S = 86_400.0
"""Hardware-aware training samples the chip one day after programming unless told otherwise."""


def progress(items: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterator[T]:
    """A tqdm bar (rate and ETA) over ``items``; silent when ``enabled`` is false."""
    return iter(
        tqdm(items, total=total, desc=desc, leave=False, disable=not enabled, mininterval=2)
    )


class EpochTimer:
    """Keeps the per-epoch history and logs one line per epoch with the ETA of the rest."""

    def __init__(self, epochs: int, log: ProgressFn) -> None:
        self.epochs = epochs
        self.log = log
        self.start = time.perf_counter()
        self.history: list[dict[str, float]] = []

    def record(self, epoch: int, **metrics: float) -> None:
        """Append ``{"epoch": epoch, **metrics}`` and log ``epoch i/n  name value ...  eta``."""
        self.history.append({"epoch": float(epoch), **metrics})
        elapsed = time.perf_counter() - self.start
        eta = elapsed / epoch * (self.epochs - epoch)
        parts = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"epoch {epoch}/{self.epochs}  {parts}  elapsed {elapsed:.0f}s  eta {eta:.0f}s")


def setup_hwa(model: nn.Module, training: dict[str, Any], log: ProgressFn) -> bool:
    """Turn on hardware-aware training as the recipe's ``training`` section says; returns
    whether it is on.

    ``hwa_profile`` (a profile name or path; unset or null = off), ``hwa_t_s`` (the time after
    programming the chip is sampled at, default one day), ``hwa_output_noise``,
    ``hwa_scale_gradient`` and ``hwa_converters`` (see :func:`pcm_sim.nn.analog.enable_hwa`);
    the noise streams are named by ``seed + 101``.
    """
    profile = training.get("hwa_profile")
    if not profile:
        return False
    t_s = float(training.get("hwa_t_s", DEFAULT_HWA_T_S))
    flags = {
        "output_noise": bool(training.get("hwa_output_noise", False)),
        "scale_gradient": bool(training.get("hwa_scale_gradient", False)),
        "converters": bool(training.get("hwa_converters", False)),
    }
    seed = int(training.get("seed", 0)) + HWA_SEED_OFFSET
    enable_hwa(model, load_profile(profile), seed, t_s, **flags)
    extra = "".join(f", {name.replace('_', ' ')}" for name, on in flags.items() if on)
    log(f"hardware-aware training: weights sampled from {profile} at t = {t_s:g} s{extra}")
    return True


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    loss: Callable[[nn.Module, Any], BatchLoss],
    total: int,
    clip_grad_norm: float | None = None,
    show_progress: bool = True,
    desc: str = "epoch",
) -> dict[str, float]:
    """One optimizer step per batch of ``batches`` (``total`` of them, for the progress bar).

    Returns ``loss`` (the mean over the epoch, weighted by each batch's samples or frames) and,
    when the loss counts right predictions, ``train_accuracy``.
    """
    model.train()
    loss_sum, weight, correct = 0.0, 0.0, 0
    counted = False
    for batch in progress(batches, total, desc, show_progress):
        optimizer.zero_grad(set_to_none=True)
        out = loss(model, batch)
        if not out.gradients_set:
            out.loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        loss_sum += float(out.loss.detach()) * out.weight
        weight += out.weight
        if out.correct is not None:
            correct, counted = correct + out.correct, True
    row = {"loss": loss_sum / weight}
    if counted:
        row["train_accuracy"] = correct / weight
    return row


def fit(
    model: nn.Module,
    training: dict[str, Any],
    data: TrainingData,
    generator: torch.Generator,
    log: ProgressFn,
    schedule: Schedule = "cosine",
    clip_grad_norm: float | None = None,
    loss_name: str = "loss",
) -> list[dict[str, float]]:
    """Train ``model`` on ``data`` as the recipe's ``training`` section says (module docstring).

    ``generator`` draws every epoch's order and input encoding.  Hardware-aware noise is off
    again when this returns.  Returns the history: per epoch ``epoch``, ``loss_name`` (the
    epoch's mean loss) and ``train_accuracy`` for classifiers.
    """
    epochs = int(training["epochs"])
    optimizer = torch.optim.Adam(model.parameters(), lr=float(training["lr"]))
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        if schedule == "cosine"
        else None
    )
    setup_hwa(model, training, log)
    timer = EpochTimer(epochs, log)
    show = bool(training.get("progress", True))
    try:
        for epoch in range(1, epochs + 1):
            row = train_epoch(
                model,
                optimizer,
                data.epoch(generator),
                data.loss,
                data.batches(),
                clip_grad_norm,
                show,
                f"epoch {epoch}",
            )
            if scheduler is not None:
                scheduler.step()
            timer.record(epoch, **{loss_name if k == "loss" else k: v for k, v in row.items()})
    finally:
        enable_hwa(model, None, seed=0)
    return timer.history
