"""Deep phasor networks on Fashion-MNIST: one trained network, atemporal or spiking execution.

Model: images ``(B, 784)`` in ``[0, 1]`` -> phases ``x = s * image`` with fixed random signs
``s in {-1, +1}`` (the authors' "dot" projection; background pixels sit at phase 0) -> optional
:class:`PhasorConv2d` blocks (min-pooling) -> :class:`PhasorLinear` layers -> ``classes`` output
phases.  Training is atemporal with Adam on ``1 - mean cos(pi (yhat - y))`` (true class at 0.5,
others at 0), optionally hardware-aware; prediction ``argmin_k |yhat_k - 0.5|``.

Evaluation modes: ``atemporal`` (= ``default``) and ``spiking``: the input phases become one spike
per pixel and cycle for ``cycles`` cycles, every layer runs resonate-and-fire neurons at
``steps_per_cycle`` steps per cycle, and the output phases are decoded per cycle; the accuracy is
that of the last complete output cycle (``accuracy_cycle_<c>`` gives every cycle).

Recipe ``model`` keys: ``conv`` (list of ``{channels, kernel, padding, pool}``, optional),
``hidden`` (dense widths), ``classes``, ``spiking`` (``steps_per_cycle``, ``cycles``,
``batch_size``, ``leakage``, ``threshold``, ``refractory``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.families import ProgressFn
from pcm_sim.functional.phasor import (
    ResonateFireParams,
    clip_phases,
    decode_spikes,
    encode_phases,
    phasor_loss,
    predict_classes,
    target_phases,
)
from pcm_sim.nn.analog import deploy, drift_to, enable_hwa
from pcm_sim.nn.phasor import PhasorConv2d, PhasorLinear, SpikeTrain
from pcm_sim.recipes import (
    COMMON_TRAINING,
    FASHION_DATA,
    HWA_TRAINING,
    Field,
    RecipeSchema,
    load_recipe,
)
from pcm_sim.training.loop import EpochTimer, progress

__all__ = ["PhasorFashionFamily", "PhasorNet", "phasor_spiking_bench", "spiking_settings"]

IMAGE_SHAPE = (1, 28, 28)
EVAL_BATCH = 1000
PHASOR_SCHEMA: RecipeSchema = {
    "model": {
        "conv": Field(
            "sections",
            length=(0, 8),
            fields={
                "channels": Field("int", 1, 4096, required=True),
                "kernel": Field("int", 1, 28, required=True),
                "padding": Field("int", 0, 28),
                "pool": Field("int", 1, 28),
            },
        ),
        "hidden": Field("ints", 1, 100_000, length=(0, 16)),
        "classes": Field("int", 10, 10, required=True),
        "spiking": Field(
            "section",
            fields={
                "steps_per_cycle": Field("int", 8, 100_000),
                "cycles": Field("int", 1, 10_000),
                "batch_size": Field("int", 1, 1_000_000),
                "leakage": Field("float", -100.0, 0.0),
                "threshold": Field("float", 0.0, 100.0),
                "refractory": Field("float", 0.0, 0.999),
            },
        ),
    },
    "data": FASHION_DATA,
    "training": {
        **COMMON_TRAINING,
        **HWA_TRAINING,
        "train_limit": Field("int", 1, 10**9, nullable=True),
    },
}


class PhasorNet(nn.Module):
    """Sign-flip encoder, phasor convolutions (optional), dense phasor layers.

    Args:
        conv: per block ``{"channels", "kernel", "padding", "pool"}`` (may be empty).
        hidden: widths of the hidden dense layers; classes: output phases.
        generator: draws the encoder signs and the initial weights.
    """

    def __init__(
        self,
        conv: list[dict[str, int]],
        hidden: list[int],
        classes: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.register_buffer(
            "signs", 2.0 * torch.randint(0, 2, IMAGE_SHAPE, generator=generator).float() - 1.0
        )
        channels, height = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        blocks: list[nn.Module] = []
        for spec in conv:
            k, pad, pool = (
                int(spec["kernel"]),
                int(spec.get("padding", 0)),
                int(spec.get("pool", 1)),
            )
            blocks.append(
                PhasorConv2d(channels, int(spec["channels"]), k, 1, pad, pool, generator=generator)
            )
            channels, height = int(spec["channels"]), (height + 2 * pad - k + 1) // pool
        width = channels * height * height if conv else math.prod(IMAGE_SHAPE)
        for size in [*hidden, classes]:
            blocks.append(PhasorLinear(width, size, generator=generator))
            width = size
        self.blocks = nn.ModuleList(blocks)
        self.classes = classes

    def encode(self, images: Tensor) -> Tensor:
        """``(B, 784)`` in [0, 1] -> phases ``(B, 1, 28, 28)`` in [-1, 1]."""
        signs: Tensor = self.signs  # type: ignore[assignment]
        return clip_phases(images.reshape(-1, *IMAGE_SHAPE) * signs)

    def forward(self, images: Tensor) -> Tensor:
        """Atemporal execution: ``(B, 784)`` -> output phases ``(B, classes)``."""
        x = self.encode(images)
        for block in self.blocks:
            if isinstance(block, PhasorLinear) and x.dim() > 2:
                x = x.flatten(start_dim=1)  # (B, C*H*W)
            x = block(x)
        return x

    @torch.no_grad()
    def spiking(self, images: Tensor, params: ResonateFireParams, cycles: int) -> Tensor:
        """Spiking execution: ``(B, 784)`` -> output phases of each complete cycle ``(c, B, K)``."""
        train = SpikeTrain(encode_phases(self.encode(images), cycles, params), 0.0)
        for block in self.blocks:
            if isinstance(block, PhasorLinear) and train.spikes.dim() > 3:
                train = SpikeTrain(train.spikes.flatten(start_dim=2), train.shift)  # (T, B, CHW)
            train = block.spiking(train, params)  # type: ignore[operator]
        return decode_spikes(train.spikes, params, train.shift)


def spiking_settings(recipe: dict[str, Any]) -> tuple[ResonateFireParams, int, int]:
    """``(neuron params, cycles, batch size)`` of the recipe's spiking execution."""
    spec = dict(recipe["model"].get("spiking", {}))
    params = ResonateFireParams(
        steps_per_cycle=int(spec.get("steps_per_cycle", 64)),
        leakage=float(spec.get("leakage", -0.2)),
        threshold=float(spec.get("threshold", 0.03)),
        refractory=float(spec.get("refractory", 0.25)),
    )
    return params, int(spec.get("cycles", 8)), int(spec.get("batch_size", 100))


class PhasorFashionFamily:
    """Fashion-MNIST with deep phasor networks; modes ``atemporal`` (default) and ``spiking``."""

    metric = "accuracy"
    higher_is_better = True
    modes = ("default", "atemporal", "spiking")
    schema = PHASOR_SCHEMA

    def build(self, recipe: dict[str, Any]) -> nn.Module:
        m = recipe["model"]
        generator = torch.Generator().manual_seed(int(recipe["training"].get("seed", 0)))
        return PhasorNet(
            list(m.get("conv", [])),
            [int(h) for h in m.get("hidden", [])],
            int(m["classes"]),
            generator,
        )

    def _data(self, recipe: dict[str, Any], split: str) -> tuple[Tensor, Tensor]:
        images, labels = load_fashion_mnist(recipe["data"].get("data_dir"), split)  # type: ignore[arg-type]
        return images, labels

    def fit(
        self, model: nn.Module, recipe: dict[str, Any], generator: torch.Generator, log: ProgressFn
    ) -> list[dict[str, float]]:
        tr = recipe["training"]
        images, labels = self._data(recipe, "train")
        if tr.get("train_limit"):
            images, labels = images[: int(tr["train_limit"])], labels[: int(tr["train_limit"])]
        epochs, batch = int(tr["epochs"]), int(tr["batch_size"])
        opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        classes = int(recipe["model"]["classes"])
        if tr.get("hwa_profile"):
            t_s = float(tr.get("hwa_t_s", 86_400.0))
            enable_hwa(model, tr["hwa_profile"], seed=int(tr.get("seed", 0)) + 101, t_s=t_s)
            log(f"hardware-aware training: weights drawn from {tr['hwa_profile']} at t = {t_s:g} s")
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
                yhat = model(images[idx])
                loss = phasor_loss(yhat, target_phases(labels[idx], classes))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * len(idx)
                correct += int((predict_classes(yhat.detach()) == labels[idx]).sum())
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
        """Test accuracy; ``generator`` is unused (both encodings are deterministic)."""
        if mode not in self.modes:
            raise ValueError(f"mode: expected one of {list(self.modes)}, got {mode!r}")
        assert isinstance(model, PhasorNet)
        model.eval()
        images, labels = self._data(recipe, "test")
        if limit:
            images, labels = images[:limit], labels[:limit]
        if mode != "spiking":
            correct = sum(
                int(
                    (
                        predict_classes(model(images[s : s + EVAL_BATCH]))
                        == labels[s : s + EVAL_BATCH]
                    ).sum()
                )
                for s in range(0, len(images), EVAL_BATCH)
            )
            return {"accuracy": correct / len(images)}
        params, cycles, batch = spiking_settings(recipe)
        hits: Tensor | None = None
        for s in range(0, len(images), batch):
            phases = model.spiking(images[s : s + batch], params, cycles)  # (c, b, classes)
            right = (predict_classes(phases) == labels[s : s + batch]).sum(dim=1)  # (c,)
            hits = right if hits is None else hits + right
        assert hits is not None
        per_cycle = {f"accuracy_cycle_{c}": int(h) / len(images) for c, h in enumerate(hits)}
        return {"accuracy": int(hits[-1]) / len(images), **per_cycle}


def phasor_spiking_bench(quick: bool) -> dict[str, Any]:
    """Spiking-mode inference throughput of the ``phasor_fmnist`` network, crossbar vs ideal.

    The recipe's network (initial weights, seed of the recipe) runs in spiking mode with the
    recipe's settings on random images, once with ideal float weights (software synapses, the
    same binary-spike MVMs and neuron code) and once programmed on ``pcm_nandakumar2019``
    crossbars one day after programming (binary rows, ADC, read and output noise, drift
    compensation).  ``quick``: one batch, else five.  Returns samples per second of both and
    the crossbar's slowdown.
    """
    recipe = load_recipe("phasor_fmnist")
    params, cycles, batch = spiking_settings(recipe)
    samples = batch if quick else 5 * batch
    model = PhasorFashionFamily().build(recipe)
    assert isinstance(model, PhasorNet)
    images = torch.rand(samples, 784, generator=torch.Generator().manual_seed(1))

    def throughput() -> float:
        start = time.perf_counter()
        for s in range(0, samples, batch):
            model.spiking(images[s : s + batch], params, cycles)
        return samples / (time.perf_counter() - start)

    ideal = throughput()
    drift_to(deploy(model, "pcm_nandakumar2019", seed=0), 86_400.0)
    crossbar = throughput()
    return {
        "case": "phasor_spiking",
        "recipe": recipe["name"],
        "profile": "pcm_nandakumar2019",
        "samples": samples,
        "batch_size": batch,
        "steps_per_cycle": params.steps_per_cycle,
        "cycles": cycles,
        "ideal_samples_per_s": ideal,
        "crossbar_samples_per_s": crossbar,
        "crossbar_slowdown": ideal / crossbar,
    }
