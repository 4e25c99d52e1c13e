"""Coarse-scale LIF convolutional network (Yanguas-Gil 2020) on Fashion-MNIST.

Bernoulli rate-coded images ``(T, B, 1, 28, 28)`` (``T`` = 4 to 8 steps) drive a LeNet-like
:class:`~pcm_sim.nn.coarse_lif.CoarseLIFConvNet`; the prediction is the output layer's spike
count (ties broken by membrane potential).  Training: backpropagation through the ``T`` steps
with the surrogate gradient ``beta σ(beta(v-1))(1 - σ(beta(v-1)))``, cross-entropy on
``readout_scale * logits``, Adam with a cosine schedule, optional hardware-aware noise.

Evaluation modes: ``default`` runs the coarse-scale model; ``continuous`` runs the same synapses
with continuous-time LIF neurons on a fine grid of ``dt_s`` (each input spike placed at a
uniformly random fine step of its window, or of its first ``data.input_jitter`` fraction;
refractory period ``model.refractory_s``; the network then runs ``model.settle_s`` with no input
and its output spikes are counted over the whole run), from the same coarse input spikes as
``default`` for a given generator.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.data.encoding import bernoulli_rate_code
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.families import ProgressFn
from pcm_sim.functional.lif import ContinuousLIFParams, refine_spike_train
from pcm_sim.nn.analog import enable_hwa
from pcm_sim.nn.coarse_lif import CoarseLIFConvNet
from pcm_sim.recipes import COMMON_TRAINING, FASHION_DATA, HWA_TRAINING, Field, RecipeSchema
from pcm_sim.seeds import timing_generator
from pcm_sim.training.loop import EpochTimer, progress

__all__ = ["CoarseLIFFashionFamily", "image_spikes"]

IMAGE_SHAPE = (1, 28, 28)
COARSE_LIF_SCHEMA: RecipeSchema = {
    "model": {
        "channels": Field("ints", 1, 4096, length=(2, 2)),
        "hidden": Field("int", 1, 100_000),
        "classes": Field("int", 10, 10),
        "tau": Field("float", 0.0, 1e4, above=True),
        "beta": Field("float", 0.0, 1e3, above=True),
        "readout_scale": Field("float", 0.0, 1e3, above=True),
        "refractory_s": Field("float", 0.0, 1e3),
        "synapse_tau_s": Field("float", 0.0, 1e3),
        "settle_s": Field("float", 0.0, 1e4),
    },
    "data": {
        **FASHION_DATA,
        "steps": Field("int", 1, 10_000, required=True),
        "dt_s": Field("float", 0.0, 1.0, above=True),
        "input_jitter": Field("float", 0.0, 1.0),
    },
    "training": {
        **COMMON_TRAINING,
        **HWA_TRAINING,
        "train_limit": Field("int", 1, 10**9, nullable=True),
    },
}


def image_spikes(images: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """``(B, 784)`` intensities -> Bernoulli spikes ``(T, B, 1, 28, 28)``."""
    spikes = bernoulli_rate_code(images, steps, generator)  # (T, B, 784)
    return spikes.reshape(steps, images.shape[0], *IMAGE_SHAPE)


class CoarseLIFFashionFamily:
    """Fashion-MNIST classification with a coarse-scale LIF convolutional network."""

    metric = "accuracy"
    higher_is_better = True
    schema = COARSE_LIF_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        c1, c2 = (int(c) for c in m.get("channels", (16, 32)))
        return CoarseLIFConvNet(
            (c1, c2),
            int(m.get("hidden", 256)),
            int(m.get("classes", 10)),
            float(m.get("tau", 2.0)),
            float(m.get("beta", 5.0)),
        )

    def _data(self, recipe: dict[str, Any], split: str) -> tuple[Tensor, Tensor]:
        return load_fashion_mnist(recipe["data"].get("data_dir"), split)  # type: ignore[arg-type]

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        tr = recipe["training"]
        steps = int(recipe["data"]["steps"])
        scale = float(recipe["model"].get("readout_scale", 2.0))
        images, labels = self._data(recipe, "train")
        limit = tr.get("train_limit")
        if limit:
            images, labels = images[: int(limit)], labels[: int(limit)]
        epochs, batch = int(tr["epochs"]), int(tr["batch_size"])
        opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        profile = tr.get("hwa_profile")
        if profile:
            t_s = float(tr.get("hwa_t_s", 86_400.0))
            enable_hwa(model, profile, seed=int(tr.get("seed", 0)) + 101, t_s=t_s)
            log(f"hardware-aware training: weights sampled from {profile} at t = {t_s:g} s")
        timer = EpochTimer(epochs, log)
        n_batches = math.ceil(len(images) / batch)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(images), generator=generator)
            total_loss, correct = 0.0, 0
            for i in progress(
                range(n_batches), n_batches, f"epoch {epoch}", tr.get("progress", True)
            ):
                idx = order[i * batch : (i + 1) * batch]
                logits = model(image_spikes(images[idx], steps, generator))
                loss = nn.functional.cross_entropy(scale * logits, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += loss.item() * len(idx)
                correct += int((logits.argmax(-1) == labels[idx]).sum())
            sched.step()
            timer.record(epoch, loss=total_loss / len(images), train_accuracy=correct / len(images))
        enable_hwa(model, None, seed=0)
        return timer.history

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        recipe: dict[str, Any],
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
        split: str = "test",
    ) -> dict[str, float]:
        """Accuracy on ``split`` (``test``; ``train`` to choose transfer settings)."""
        if mode not in ("default", "continuous"):
            raise ValueError(f"mode: expected 'default' or 'continuous', got {mode!r}")
        assert isinstance(model, CoarseLIFConvNet)
        model.eval()
        images, labels = self._data(recipe, split)
        if limit:
            images, labels = images[:limit], labels[:limit]
        steps = int(recipe["data"]["steps"])
        params = ContinuousLIFParams(
            tau=float(recipe["model"].get("tau", 2.0)),
            dt_s=float(recipe["data"].get("dt_s", 0.05)),
            refractory_s=float(recipe["model"].get("refractory_s", 1.0)),
            synapse_tau_s=float(recipe["model"].get("synapse_tau_s", 0.0)),
            settle_s=float(recipe["model"].get("settle_s", 0.0)),
        )
        jitter = float(recipe["data"].get("input_jitter", 1.0))
        timing = timing_generator(generator)
        chunk = 1000 if mode == "default" else 50  # bounds im2col memory on chips
        correct = 0
        for start in range(0, len(images), chunk):
            spikes = image_spikes(images[start : start + chunk], steps, generator)
            if mode == "default":
                logits = model(spikes)
            else:
                fine = refine_spike_train(spikes, params.substeps, timing, jitter)
                logits = model.forward_continuous(fine, params)
            correct += int((logits.argmax(-1) == labels[start : start + chunk]).sum())
        return {"accuracy": correct / len(images)}
