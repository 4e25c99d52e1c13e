"""Hardware-in-the-loop (HIL) fine-tuning on programmed crossbars, with mixed-precision transfers.

Every training step runs the forward pass on the chip (programmed, drifted to ``t``, fresh read
noise on every MVM, compensation recalibrated at ``t``) and the backward pass in software
(:class:`~pcm_sim.nn.analog.AnalogLinear` passes gradients straight through the analog output).
The optimizer's update ``dW`` of each analog weight is not applied to the devices directly; as in
the mixed-precision scheme of Nandakumar et al. (Front. Neurosci. 14, 406, 2020) it is
accumulated in a digital high-precision matrix ``chi`` and transferred in multiples of the
programming granularity ``eps``:

    ``chi <- chi + dW``;   ``n = trunc(chi / eps)``;   ``W_dev <- clip(W_dev + n eps, +-w_max)``;
    ``chi <- chi - n eps``

with ``eps = granularity_gmax * w_max`` (a conductance step of ``granularity_gmax (g_max -
g_min)`` µS).  Each transfer re-writes the devices whose target conductance changed (a fresh
programming-noise and drift-exponent draw, optionally write-verified, see
:mod:`pcm_sim.crossbar.calibration`), counts their pulses and moves the array back to ``t``.
Digital parameters (SNU thresholds, biases) are updated in full precision.

Correction at time ``t`` uses the crossbar's single clock: a transfer is one write session of
the layer (:meth:`AnalogLinear.rewrite`), after which the array is back at ``t``, i.e. re-written
devices are read as if they had aged ``t`` like the rest.  This is exact for ``t = 0``
(fine-tuning right after programming); for ``t > 0`` it is the aged-chip approximation and
flatters HIL slightly (the re-drawn drift exponent of a re-written device is seen at once).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from pcm_sim.crossbar.calibration import DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE_GMAX
from pcm_sim.nn.analog import AnalogLinear, analog_layers

__all__ = ["HILConfig", "HILReport", "HILTask", "MixedPrecisionTransfer", "hil_finetune"]


class HILTask(Protocol):
    """A source of training batches and the loss of a model on one batch (a recipe family's:
    :meth:`pcm_sim.families.base.Family.hil_task`)."""

    def batch(self, generator: torch.Generator) -> Any:
        """One training batch drawn with ``generator``."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> Tensor:
        """Scalar training loss of ``model`` on ``batch`` (differentiable)."""
        ...


@dataclass(frozen=True)
class HILConfig:
    """Settings of HIL fine-tuning.

    ``steps`` optimizer steps of ``batch_size`` samples with ``optimizer`` (``sgd`` with
    ``momentum``, or ``adam``) at learning rate ``lr``; transfer granularity ``eps =
    granularity_gmax * w_max``; the chip is used at ``t_s`` seconds after programming;
    transfers are write-verified (``verify_transfers``) with ``tolerance_gmax * g_max`` and at
    most ``max_iterations`` re-writes; ``train_analog`` / ``train_digital`` select the analog
    weights and the digital parameters (thresholds, biases) that are fine-tuned (ablations).
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 0.01
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.0
    granularity_gmax: float = 0.01
    t_s: float = 86_400.0
    verify_transfers: bool = True
    tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    train_analog: bool = True
    train_digital: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(
                f"steps/batch_size: expected >= 0 / >= 1, got {self.steps}/{self.batch_size}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a finite value > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 < self.granularity_gmax <= 1:
            raise ValueError(f"granularity_gmax: expected in (0, 1], got {self.granularity_gmax}")
        if not (math.isfinite(self.t_s) and self.t_s >= 0):
            raise ValueError(f"t_s: expected a finite time >= 0 s, got {self.t_s}")
        if not (self.train_analog or self.train_digital):
            raise ValueError("train_analog/train_digital: expected at least one to be true")


@dataclass(frozen=True)
class HILReport:
    """Outcome of HIL fine-tuning.

    ``losses``: on-chip training loss of every step; ``transfers``: weight transfers (a weight
    whose device target moved by ``n eps``, counted once per step); ``writes``: device writes
    including verify re-writes; ``hil_pulses_*``: pulses per device added by the fine-tuning
    (all analog layers); ``seconds``: wall time.
    """

    steps: int
    t_s: float
    epsilon_gmax: float
    losses: list[float] = field(default_factory=list)
    transfers: int = 0
    writes: int = 0
    hil_pulses_mean: float = 0.0
    hil_pulses_max: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


class MixedPrecisionTransfer:
    """The digital accumulator ``chi`` of one programmed layer and its transfers to devices.

    ``W_dev`` (crossbar layout ``(in, out)``) are the weights whose conductances are the
    crossbar's current targets; see the module docstring for the update rule.
    """

    def __init__(self, layer: AnalogLinear, config: HILConfig) -> None:
        if layer.deployed_backend != "pcm-sim":
            raise ValueError("MixedPrecisionTransfer: the layer is not programmed on a crossbar")
        self.layer = layer
        self.config = config
        self.w_dev = layer.weight.detach().t().clone()  # (in, out)
        self.chi = torch.zeros_like(self.w_dev)  # (in, out)
        self.w_max = layer.chip_weight_scale()  # () or (out,)
        self.epsilon = config.granularity_gmax * self.w_max
        self.transfers = 0
        self.writes = 0

    def accumulate(self, delta_out_in: Tensor) -> None:
        """Add an update ``dW`` ``(out, in)``; transfer whole ``eps`` steps to the devices."""
        self.chi += delta_out_in.t()
        n = torch.trunc(self.chi / self.epsilon)  # (in, out) whole granularity steps
        moved = n != 0
        if not bool(moved.any()):
            return
        step = n * self.epsilon
        self.chi -= step  # the part clipped at +-w_max below is dropped, not kept in chi
        clipped = torch.clamp(self.w_dev + step, -self.w_max, self.w_max)
        self.w_dev = torch.where(moved, clipped, self.w_dev)
        self.transfers += int(moved.sum())
        iterations = self.config.max_iterations if self.config.verify_transfers else 0
        self.writes += self.layer.rewrite(self.w_dev.t(), self.config.tolerance_gmax, iterations)


def hil_finetune(
    model: nn.Module,
    task: HILTask,
    config: HILConfig,
    log: Callable[[str], None] | None = None,
) -> HILReport:
    """Fine-tune a deployed ``model`` on its chip (see the module docstring); returns a report.

    Every analog layer must be programmed on a pcm-sim crossbar (:func:`pcm_sim.deploy`).  The
    chip is moved to ``config.t_s`` (drift and compensation recalibration) before the first
    step and after every transfer; the model is left in eval mode at ``config.t_s``.
    """
    layers = analog_layers(model)
    if not layers or any(layer.deployed_backend != "pcm-sim" for layer in layers):
        raise ValueError("hil_finetune: every analog layer must be deployed on a pcm-sim crossbar")
    start = time.perf_counter()
    start_pulses = [layer.chip_pulses().clone() for layer in layers]
    for layer in layers:
        layer.drift_to(config.t_s)
    transfers = [MixedPrecisionTransfer(layer, config) for layer in layers]
    analog_ids = {id(layer.weight) for layer in layers}
    params = [
        p
        for p in model.parameters()
        if p.requires_grad
        and (config.train_analog if id(p) in analog_ids else config.train_digital)
    ]
    optimizer: torch.optim.Optimizer
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    model.train()
    for step in range(1, config.steps + 1):
        loss = task.loss(model, task.batch(generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = [t.layer.weight.detach().clone() for t in transfers]  # (out, in) each
        optimizer.step()
        with torch.no_grad():
            for transfer, w_before in zip(transfers, before, strict=True):
                delta = transfer.layer.weight.detach() - w_before  # (out, in)
                transfer.layer.weight.data.copy_(w_before)
                transfer.accumulate(delta)
        losses.append(float(loss.detach()))
        if log and (step % 50 == 0 or step == config.steps):
            recent = losses[-50:]
            log(f"hil step {step}/{config.steps} chip loss {sum(recent) / len(recent):.4f}")
    model.eval()
    added = torch.cat(
        [
            (layer.chip_pulses() - p0).reshape(-1)
            for layer, p0 in zip(layers, start_pulses, strict=True)
        ]
    )
    return HILReport(
        steps=config.steps,
        t_s=config.t_s,
        epsilon_gmax=config.granularity_gmax,
        losses=losses,
        transfers=sum(t.transfers for t in transfers),
        writes=sum(t.writes for t in transfers),
        hil_pulses_mean=float(added.double().mean()),
        hil_pulses_max=int(added.max()),
        seconds=time.perf_counter() - start,
    )
