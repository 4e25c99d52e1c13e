"""Deep spiking network (O'Connor & Welling 2016) on Fashion-MNIST.

A ``784-200-200-10`` :class:`~pcm_sim.nn.dsn.DeepSpikingNetwork`: herded input spikes, spiking
forward pass over ``steps`` time steps, error spikes back through ``W^T`` and spike-count
outer-product updates (applied with Adam; cosine learning-rate schedule).  No autograd is
involved in training: the gradients are the spike counts of
:meth:`DeepSpikingNetwork.spike_gradients`.
On a chip the forward reads and the transposed backward reads both go through the crossbars.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.families import ProgressFn
from pcm_sim.nn.dsn import DeepSpikingNetwork
from pcm_sim.recipes import COMMON_TRAINING, FASHION_DATA, Field, RecipeSchema
from pcm_sim.training.loop import EpochTimer, progress

__all__ = ["DSNFashionFamily", "fit_dsn_epoch"]

DSN_SCHEMA: RecipeSchema = {
    "model": {
        "sizes": Field("ints", 1, 100_000, required=True, length=(2, 16), first=784, last=10),
        "steps": Field("int", 1, 10_000),
        "error_scale": Field("float", 0.0, 1e6, above=True),
    },
    "data": FASHION_DATA,
    "training": {  # no hardware-aware noise: the updates are spike counts
        **COMMON_TRAINING,
        "train_limit": Field("int", 1, 10**9, nullable=True),
    },
}


def fit_dsn_epoch(
    model: DeepSpikingNetwork,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    order: Tensor,
    batch: int,
    show_progress: bool = True,
    desc: str = "epoch",
) -> dict[str, float]:
    """One epoch of spiking training over ``images[order]``; returns loss and train accuracy.

    ``loss`` is the cross-entropy of the spiking logits ``u_L,T / T`` (a report only).
    """
    n_batches = math.ceil(len(order) / batch)
    total_loss, correct = 0.0, 0
    for i in progress(range(n_batches), n_batches, desc, show_progress):
        idx = order[i * batch : (i + 1) * batch]
        trace = model.run(images[idx])
        optimizer.zero_grad(set_to_none=True)
        model.accumulate_gradients(trace, labels[idx])
        optimizer.step()
        logits = trace.logits
        total_loss += float(nn.functional.cross_entropy(logits, labels[idx])) * len(idx)
        correct += int((logits.argmax(-1) == labels[idx]).sum())
    return {"loss": total_loss / len(order), "train_accuracy": correct / len(order)}


class DSNFashionFamily:
    """Fashion-MNIST classification with an O'Connor-Welling deep spiking network."""

    metric = "accuracy"
    higher_is_better = True
    schema = DSN_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        return DeepSpikingNetwork(
            list(m["sizes"]), int(m.get("steps", 16)), float(m.get("error_scale", 16.0))
        )

    def _data(self, recipe: dict[str, Any], split: str) -> tuple[Tensor, Tensor]:
        return load_fashion_mnist(recipe["data"].get("data_dir"), split)  # type: ignore[arg-type]

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        if not isinstance(model, DeepSpikingNetwork):
            raise ValueError(f"model: expected a DeepSpikingNetwork, got {type(model).__name__}")
        tr = recipe["training"]
        if tr.get("hwa_profile"):
            raise ValueError("training.hwa_profile: the DSN family trains without noise injection")
        images, labels = self._data(recipe, "train")
        limit = tr.get("train_limit")
        if limit:
            images, labels = images[: int(limit)], labels[: int(limit)]
        epochs, batch = int(tr["epochs"]), int(tr["batch_size"])
        opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        timer = EpochTimer(epochs, log)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(images), generator=generator)
            row = fit_dsn_epoch(
                model, opt, images, labels, order, batch, tr.get("progress", True), f"epoch {epoch}"
            )
            sched.step()
            timer.record(epoch, **row)
        return timer.history

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        recipe: dict[str, Any],
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        """Accuracy of the spiking forward pass (herding is deterministic: ``generator`` unused)."""
        if mode != "default":
            raise ValueError(
                f"mode: the deep spiking network has one mode ('default'), got {mode!r}"
            )
        model.eval()
        images, labels = self._data(recipe, "test")
        if limit:
            images, labels = images[:limit], labels[:limit]
        correct = 0
        for start in range(0, len(images), 1000):
            logits = model(images[start : start + 1000])
            correct += int((logits.argmax(-1) == labels[start : start + 1000]).sum())
        return {"accuracy": correct / len(images)}
