"""SNU networks: a 784-256-256-10 SNU classifier for Fashion-MNIST and an sSNU for chorales.

Classifier: Bernoulli rate-coded images ``(T, B, 784)`` drive SNU layers (step outputs, so every
crossbar sees binary spikes and needs no DAC); the output layer is an sSNU whose mean
pre-activation ``mean_t (s_t + b)`` is the logit vector (cross-entropy loss; prediction = argmax).
Chorales: frames ``(T, B, 88)`` -> sSNU(150) -> sSNU(88); the output pre-activation ``s_t + b``
is the logit of each key at the next frame (Bernoulli NLL).  88*150 + 150*88 = 26,400 weights,
52,800 PCM devices in differential pairs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.data import batch_sequences, bernoulli_rate_code, frame_nll, load_chorales
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.families import ProgressFn
from pcm_sim.nn.analog import enable_hwa
from pcm_sim.nn.snu import SNULayer
from pcm_sim.recipes import COMMON_TRAINING, FASHION_DATA, HWA_TRAINING, Field, RecipeSchema
from pcm_sim.training.loop import EpochTimer, progress

__all__ = [
    "CHORALE_DATA",
    "SNUChoralesFamily",
    "SNUClassifier",
    "SNUFashionFamily",
    "SSNUSequence",
]

SNU_HWA_TRAINING = {
    **HWA_TRAINING,
    "hwa_output_noise": Field("bool"),
    "hwa_scale_gradient": Field("bool"),
    "hwa_converters": Field("bool"),
}
FASHION_SCHEMA: RecipeSchema = {
    "model": {
        "sizes": Field("ints", 1, 100_000, required=True, length=(2, 16), first=784, last=10),
        "decay": Field("float", 0.0, 1.0),
        "threshold_init": Field("float", -100.0, 100.0),
    },
    "data": {**FASHION_DATA, "steps": Field("int", 1, 10_000, required=True)},
    "training": {
        **COMMON_TRAINING,
        **SNU_HWA_TRAINING,
        "train_limit": Field("int", 1, 10**9, nullable=True),
    },
}
CHORALE_DATA = {
    "dataset": Field("str", choices=("bach_chorales",)),
    "cache_dir": Field("path", nullable=True),
    "max_pieces": Field("int", 1, 100_000, nullable=True),
}
"""Bach chorales from music21's corpus, cached in ``cache_dir``."""
CHORALE_KEYS = Field("int", 88, 88)
"""Piano-roll width of the chorale data (88 keys)."""
SSNU_SCHEMA: RecipeSchema = {
    "model": {
        "keys": CHORALE_KEYS,
        "hidden": Field("int", 1, 100_000, required=True),
        "decay": Field("float", 0.0, 1.0),
        "output_bias": Field("float", -100.0, 100.0),
        "hidden_leak": Field("float", 0.0, 1.0),
        "output_leak": Field("float", 0.0, 1.0),
        "trainable_decay": Field("bool"),
        "recurrent": Field("bool"),
    },
    "data": CHORALE_DATA,
    "training": {**COMMON_TRAINING, **SNU_HWA_TRAINING},
}


class SNUClassifier(nn.Module):
    """SNU MLP ``sizes[0] -> ... -> sizes[-1]``: hidden SNU layers, an sSNU readout layer."""

    def __init__(self, sizes: list[int], decay: float = 0.8, threshold_init: float = -1.0) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least [in, out], got {sizes}")
        layers = [
            SNULayer(
                a, b, soft=False, decay=decay, threshold_init=threshold_init, binary_input=True
            )
            for a, b in itertools.pairwise(sizes[:-1])
        ]
        layers.append(
            SNULayer(
                sizes[-2], sizes[-1], soft=True, decay=decay, threshold_init=0.0, binary_input=True
            )
        )
        self.layers = nn.ModuleList(layers)

    def forward(self, spikes: Tensor) -> Tensor:
        """``(T, B, in)`` spikes -> ``(B, classes)`` logits."""
        x = spikes
        for layer in self.layers[:-1]:
            x, _ = layer(x)
        _, potential = self.layers[-1](x)
        return potential.mean(dim=0)


class SSNUSequence(nn.Module):
    """sSNU next-frame predictor ``keys -> hidden (sSNU) -> keys (sSNU logits)``.

    ``output_bias`` initialises the output thresholds near the logit of the base rate of active
    keys (about 4.5 % of keys sound in a chorale frame: logit(0.045) = -3.05).  ``hidden_leak``
    and ``output_leak`` are the slopes of ``g`` (leaky ReLU) below zero: with a plain ReLU an
    output logit ``g(.) + b`` can never fall below its threshold ``b``, so the network could not
    say that a key is *less* likely than its base rate.  ``trainable_decay`` learns one
    ``l(tau)`` per unit, starting at ``decay``.  ``recurrent`` adds the hidden-to-hidden matrix
    ``H`` (``hidden x hidden`` weights on their own crossbar, read once per step).
    """

    def __init__(
        self,
        keys: int = 88,
        hidden: int = 150,
        decay: float = 0.8,
        output_bias: float = -3.0,
        hidden_leak: float = 0.0,
        output_leak: float = 0.0,
        trainable_decay: bool = False,
        recurrent: bool = False,
    ) -> None:
        super().__init__()
        self.hidden = SNULayer(
            keys,
            hidden,
            soft=True,
            decay=decay,
            leak=hidden_leak,
            recurrent=recurrent,
            binary_input=True,
            trainable_decay=trainable_decay,
        )
        self.output = SNULayer(
            hidden,
            keys,
            soft=True,
            decay=decay,
            threshold_init=output_bias,
            leak=output_leak,
            trainable_decay=trainable_decay,
        )

    def forward(self, frames: Tensor) -> Tensor:
        """``(T, B, 88)`` frames -> ``(T, B, 88)`` logits of the next frame."""
        h, _ = self.hidden(frames)
        _, potential = self.output(h)
        return potential


def _hwa(model: nn.Module, recipe: dict[str, Any], log: ProgressFn) -> None:
    training = recipe["training"]
    profile = training.get("hwa_profile")
    if profile:
        t_s = float(training.get("hwa_t_s", 86_400.0))
        output_noise = bool(training.get("hwa_output_noise", False))
        scale_gradient = bool(training.get("hwa_scale_gradient", False))
        converters = bool(training.get("hwa_converters", False))
        seed = int(training.get("seed", 0)) + 101
        enable_hwa(model, profile, seed, t_s, output_noise, scale_gradient, converters)
        extra = " plus output noise on every MVM" if output_noise else ""
        log(f"hardware-aware training: weights sampled from {profile} at t = {t_s:g} s{extra}")


class SNUFashionFamily:
    """Fashion-MNIST classification with rate-coded SNU networks."""

    metric = "accuracy"
    higher_is_better = True
    schema = FASHION_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        return SNUClassifier(
            list(m["sizes"]), float(m.get("decay", 0.8)), float(m.get("threshold_init", -1.0))
        )

    def _data(self, recipe: dict[str, Any], split: str) -> tuple[Tensor, Tensor]:
        images, labels = load_fashion_mnist(recipe["data"].get("data_dir"), split)  # type: ignore[arg-type]
        return images, labels

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        tr = recipe["training"]
        steps = int(recipe["data"]["steps"])
        images, labels = self._data(recipe, "train")
        limit = tr.get("train_limit")
        if limit:
            images, labels = images[: int(limit)], labels[: int(limit)]
        epochs, batch = int(tr["epochs"]), int(tr["batch_size"])
        opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        _hwa(model, recipe, log)
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
                spikes = bernoulli_rate_code(images[idx], steps, generator)
                logits = model(spikes)
                loss = nn.functional.cross_entropy(logits, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * len(idx)
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
    ) -> dict[str, float]:
        if mode not in ("default",):
            raise ValueError(f"mode: the SNU classifier has one mode ('default'), got {mode!r}")
        model.eval()
        images, labels = self._data(recipe, "test")
        if limit:
            images, labels = images[:limit], labels[:limit]
        steps, correct = int(recipe["data"]["steps"]), 0
        for start in range(0, len(images), 1000):
            spikes = bernoulli_rate_code(images[start : start + 1000], steps, generator)
            correct += int((model(spikes).argmax(-1) == labels[start : start + 1000]).sum())
        return {"accuracy": correct / len(images)}


def _chorale_data(recipe: dict[str, Any]) -> dict[str, list[Any]]:
    data = recipe["data"]
    return load_chorales(data.get("cache_dir"), data.get("max_pieces"), progress=True)


def fit_sequence_model(
    model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
) -> list[dict[str, float]]:
    """Train a next-frame model on the chorale training split with Adam on the frame NLL."""
    tr = recipe["training"]
    seqs = _chorale_data(recipe)["train"]
    epochs, batch = int(tr["epochs"]), int(tr["batch_size"])
    opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
    _hwa(model, recipe, log)
    timer = EpochTimer(epochs, log)
    n_batches = math.ceil(len(seqs) / batch)
    for epoch in range(1, epochs + 1):
        model.train()
        total, frames = 0.0, 0.0
        for b in progress(
            batch_sequences(seqs, batch, generator),
            n_batches,
            f"epoch {epoch}",
            tr.get("progress", True),
        ):
            loss = frame_nll(model(b.inputs), b.targets, b.mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            n = float(b.mask.sum())
            total, frames = total + float(loss.detach()) * n, frames + n
        timer.record(epoch, train_nll=total / frames)
    enable_hwa(model, None, seed=0)
    return timer.history


@torch.no_grad()
def evaluate_sequence_model(
    model: nn.Module, recipe: dict[str, Any], split: str = "test", limit: int | None = None
) -> dict[str, float]:
    """Frame-level NLL (nats per frame, summed over 88 keys) on a chorale split."""
    model.eval()
    seqs = _chorale_data(recipe)[split]
    if limit:
        seqs = seqs[:limit]
    if not seqs:
        raise ValueError(f"chorales: the {split} split is empty (expected at least one piece)")
    total, frames = 0.0, 0.0
    for b in batch_sequences(seqs, 32, None):
        n = float(b.mask.sum())
        total += float(frame_nll(model(b.inputs), b.targets, b.mask)) * n
        frames += n
    return {"nll": total / frames}


class SNUChoralesFamily:
    """Bach-chorale next-frame prediction with an sSNU network."""

    metric = "nll"
    higher_is_better = False
    schema = SSNU_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        return SSNUSequence(
            int(m.get("keys", 88)),
            int(m["hidden"]),
            float(m.get("decay", 0.8)),
            float(m.get("output_bias", -3.0)),
            float(m.get("hidden_leak", 0.0)),
            float(m.get("output_leak", 0.0)),
            bool(m.get("trainable_decay", False)),
            bool(m.get("recurrent", False)),
        )

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        return fit_sequence_model(model, recipe, generator, log)

    def evaluate(
        self,
        model: nn.Module,
        recipe: dict[str, Any],
        generator: torch.Generator,
        mode: str = "default",
        limit: int | None = None,
    ) -> dict[str, float]:
        if mode != "default":
            raise ValueError(f"mode: the sSNU has one mode ('default'), got {mode!r}")
        return evaluate_sequence_model(model, recipe, "test", limit)
