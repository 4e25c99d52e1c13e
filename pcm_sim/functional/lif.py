"""Leaky integrate-and-fire neurons: Yanguas-Gil's coarse-scale LIF and a continuous-time LIF.

Coarse scale (A. Yanguas-Gil, "Coarse scale representation of spiking neural networks:
backpropagation through spikes and application to neuromorphic hardware", ICONS 2020).  One
coarse step is one unit of time; ``tau`` is the membrane time constant in those units:

    ``a = exp(-1/tau)``,  ``b = tau (1 - a)``,  ``c = tau (1 - b)``
    ``v_t = (1 - s_{t-1}) (a v_{t-1} + b x_t) + s_{t-1} c x_t``
    ``s_t = H(v_t - 1)``            (``H(0) = 1``: a neuron spikes when ``v_t >= 1``)

with the surrogate gradient ``dH/dv = beta σ(beta (v - 1)) (1 - σ(beta (v - 1)))``, ``beta = 5``.
With ``detach_reset`` the switch ``s_{t-1}`` between the two regimes carries no gradient (the
forward values are unchanged; Zenke & Vogels 2021 found the reset's gradient hurts learning).
``x_t`` is the synaptic input of window ``t`` (``W s^{in}_t``, a spike count times weight).

The coefficients are those of a continuous-time LIF ``dv/dt = -v/tau + Σ_k w_k δ(t - t_k)``
(threshold 1, reset to 0, absolute refractory period of one time unit) whose input spikes arrive at
uniformly random times within their window: a spike arriving at ``u ~ U(0, 1)`` contributes
``E[exp(-(1 - u)/tau)] = ∫_0^1 exp(-(1-u)/tau) du = b`` by the window's end; after a spike at a
uniformly random time ``r`` of window ``t - 1``, the inputs of window ``t`` that arrive before
``r + 1`` are lost to refractoriness, leaving
``E_r[∫_r^1 exp(-(1-u)/tau) du] = tau (1 - b) = c``.

The limiting case: many small inputs spread uniformly over the window are a constant current
``x`` per unit time, ``v(u) = a(u) v_0 + tau (1 - a(u)) x`` with ``a(u) = exp(-u/tau)``, so
``v(1) = a v_0 + b x`` exactly, and ``dv/du = (x - v_0/tau) a(u)`` has one sign over the window:
the potential is monotone, it crosses 1 inside a window exactly when it ends >= 1, and the
continuous neuron fires in the windows where the coarse one does up to its first spike (after a
spike, a refractory period of one unit from a uniformly random spike time gives the gain ``c`` on
average; so does a dead time ``rho = 1 + tau ln(1 - c/tau)`` from the window's end, 0.507 units
for tau = 6).
Few large inputs of mixed sign at random times break this: the potential wanders within the
window and may cross 1 although it ends below.  :func:`continuous_lif_step` simulates the
continuous neuron with a fine step ``dt`` (the transfer target of a trained coarse network);
the charge ``q`` delivered in a fine step is a constant current over it (or arrives at a
uniformly random time in it), so it adds ``g q``, ``g = (tau/dt)(1 - exp(-dt/tau))`` (and a
constant current over a window gives ``a v_0 + b x`` exactly for any ``dt``):

    refractory:   ``v ← exp(-dt/tau) v`` (input ignored) while ``refractory_s > 0``; it
                  decreases by ``dt``
    otherwise:    ``v ← exp(-dt/tau) v + g q``
    spike:        ``v >= 1`` → ``s = 1``, ``v ← 0`` (or ``v - 1``), ``refractory_s ← t_ref``

Shapes: ``x``, ``q``, ``v``, ``s`` are ``(..., units)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "THRESHOLD",
    "CoarseLIFParams",
    "ContinuousLIFParams",
    "ContinuousLIFState",
    "LIFState",
    "coarse_lif_step",
    "continuous_lif_step",
    "heaviside_sigmoid",
    "refine_spike_train",
    "refractory_gate",
    "synaptic_drive",
]

THRESHOLD = 1.0
"""Firing threshold of both models (membrane potential in units of the threshold)."""


class _HeavisideSigmoid(torch.autograd.Function):
    """Forward ``H(u) = [u >= 0]``; backward ``beta σ(beta u) (1 - σ(beta u))``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, u: Tensor, beta: float) -> Tensor:
        ctx.save_for_backward(u)
        ctx.beta = beta  # type: ignore[attr-defined]
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        (u,) = ctx.saved_tensors  # type: ignore[attr-defined]
        beta: float = ctx.beta  # type: ignore[attr-defined]
        sig = torch.sigmoid(beta * u)
        return grad * beta * sig * (1.0 - sig), None


def heaviside_sigmoid(u: Tensor, beta: float = 5.0) -> Tensor:
    """Step ``H(u)`` with the derivative of ``σ(beta u)`` as surrogate gradient."""
    out: Tensor = _HeavisideSigmoid.apply(u, beta)
    return out


@dataclass(frozen=True)
class CoarseLIFParams:
    """``tau``: membrane time constant in coarse steps (> 0); ``beta``: surrogate sharpness;
    ``detach_reset``: no gradient through the previous spike's reset."""

    tau: float = 2.0
    beta: float = 5.0
    detach_reset: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau: expected a time constant > 0 (coarse steps), got {self.tau}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta: expected a surrogate sharpness > 0, got {self.beta}")

    @property
    def a(self) -> float:
        """Decay per step, ``exp(-1/tau)``."""
        return math.exp(-1.0 / self.tau)

    @property
    def b(self) -> float:
        """Input gain without a spike in the previous step, ``tau (1 - a)``."""
        return self.tau * (1.0 - self.a)

    @property
    def c(self) -> float:
        """Input gain right after a spike, ``tau (1 - b)``."""
        return self.tau * (1.0 - self.b)


@dataclass(frozen=True)
class LIFState:
    """Coarse-scale state: ``v`` potential (not reset within its step), ``s`` last spike."""

    v: Tensor
    s: Tensor


def coarse_lif_step(x: Tensor, state: LIFState, params: CoarseLIFParams) -> tuple[Tensor, LIFState]:
    """One coarse step; returns ``(s_t, LIFState(v_t, s_t))`` (see module docstring)."""
    last = state.s.detach() if params.detach_reset else state.s
    v = (1.0 - last) * (params.a * state.v + params.b * x) + last * (params.c * x)
    s = heaviside_sigmoid(v - THRESHOLD, params.beta)
    return s, LIFState(v=v, s=s)


@dataclass(frozen=True)
class ContinuousLIFParams:
    """The continuous-time LIF of a transfer; every time in coarse time units (one step = 1).

    ``tau``: membrane time constant; ``dt_s``: fine step (``1/dt_s`` an integer);
    ``refractory_s``: absolute refractory period after a spike (input ignored);
    ``reset``: ``"zero"`` (``v ← 0``, the coarse model's assumption) or ``"subtract"``
    (``v ← v - 1``); synapse kernel, at most one of: ``synapse_tau_s > 0``, exponential current
    ``(q / tau_s) exp(-t / tau_s)``; ``synapse_window_s > 0``, a box current ``q / w`` for
    ``w = synapse_window_s`` after the spike (a multiple of ``dt_s``): the charge of a spike is
    spread uniformly over the following window, the paper's uniform-arrival assumption as a
    current; both 0: delta synapses.  ``settle_s``: how long a network keeps running with no
    input after its train ends, so that charge still in flight reaches the output layer and is
    counted (a multiple of ``dt_s``).  ``refractory_pool``: a max-pool unit passes the first spike
    of its inputs and is then refractory for one window (:func:`refractory_gate`), as the coarse
    OR of a window passes one spike; otherwise every input spike passes.
    """

    tau: float = 2.0
    dt_s: float = 0.05
    refractory_s: float = 1.0
    synapse_tau_s: float = 0.0
    synapse_window_s: float = 0.0
    reset: str = "zero"
    settle_s: float = 0.0
    refractory_pool: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau: expected a time constant > 0, got {self.tau}")
        if not (0.0 < self.dt_s <= 1.0):
            raise ValueError(f"dt_s: expected a fine step in (0, 1] coarse units, got {self.dt_s}")
        if abs(round(1.0 / self.dt_s) * self.dt_s - 1.0) > 1e-9:
            raise ValueError(f"dt_s: expected 1/dt_s to be an integer, got dt_s = {self.dt_s}")
        if self.refractory_s < 0:
            raise ValueError(f"refractory_s: expected >= 0, got {self.refractory_s}")
        if not (math.isfinite(self.synapse_tau_s) and self.synapse_tau_s >= 0):
            raise ValueError(f"synapse_tau_s: expected >= 0, got {self.synapse_tau_s}")
        if self.reset not in ("zero", "subtract"):
            raise ValueError(f"reset: expected 'zero' or 'subtract', got {self.reset!r}")
        for name in ("synapse_window_s", "settle_s"):
            value = getattr(self, name)
            steps = value / self.dt_s
            if not (math.isfinite(value) and value >= 0 and abs(steps - round(steps)) < 1e-9):
                raise ValueError(
                    f"{name}: expected a multiple of dt_s = {self.dt_s} that is >= 0, got {value}"
                )
        if self.synapse_tau_s > 0 and self.synapse_window_s > 0:
            raise ValueError("synapse_tau_s and synapse_window_s: expected at most one > 0")

    @property
    def substeps(self) -> int:
        """Fine steps per coarse step, ``1 / dt_s``."""
        return round(1.0 / self.dt_s)

    @property
    def settle_steps(self) -> int:
        """Fine steps of zero input appended to a train, ``settle_s / dt_s``."""
        return round(self.settle_s / self.dt_s)

    @property
    def step_gain(self) -> float:
        """Potential at the end of a fine step per unit of charge delivered in it at a constant
        rate (or at a uniformly random time), ``(tau / dt) (1 - exp(-dt / tau))``."""
        return self.tau / self.dt_s * -math.expm1(-self.dt_s / self.tau)


@dataclass(frozen=True)
class ContinuousLIFState:
    """``v``: potential; ``refractory_s``: refractory time left (coarse units)."""

    v: Tensor
    refractory_s: Tensor


def synaptic_drive(charge: Tensor, params: ContinuousLIFParams) -> Tensor:
    """Charge delivered to the membrane in each fine step, ``(N, ...)`` from the charge ``(N, ...)``
    of the spikes arriving in each step (``W s``), by the synapse kernel of ``params``.

    Exponential: a fraction ``1 - exp(-dt / tau_s)`` of the pending charge per step.  Box of
    ``w = synapse_window_s``: ``d_k = (1 / m) Σ_{j < m} q_{k-j}``, ``m = w / dt``.  The total is
    conserved once the train has ended (``settle_s`` long enough).
    """
    if params.synapse_window_s > 0:
        width = round(params.synapse_window_s / params.dt_s)
        drive = torch.zeros_like(charge)
        for lag in range(min(width, charge.shape[0])):
            drive[lag:] += charge[: charge.shape[0] - lag]
        return drive / width
    if params.synapse_tau_s > 0:
        keep = math.exp(-params.dt_s / params.synapse_tau_s)
        pending = torch.zeros_like(charge[0])
        out = []
        for q in charge:
            pending = pending + q
            out.append(pending * (1.0 - keep))
            pending = pending * keep
        return torch.stack(out)
    return charge


def continuous_lif_step(
    drive: Tensor, state: ContinuousLIFState, params: ContinuousLIFParams
) -> tuple[Tensor, ContinuousLIFState]:
    """One fine step ``dt`` of the continuous-time LIF; returns ``(s, new_state)``.

    ``drive``: the charge delivered in this step (:func:`synaptic_drive`), integrated exactly as
    a constant current over the step (see module docstring).
    """
    decay = math.exp(-params.dt_s / params.tau)
    active = state.refractory_s <= 1e-9 * params.dt_s
    v = decay * state.v + torch.where(active, params.step_gain * drive, 0.0)
    s = (active & (v >= THRESHOLD)).to(v.dtype)
    v = v - s if params.reset == "subtract" else v * (1.0 - s)
    left = torch.where(active, 0.0, state.refractory_s - params.dt_s)
    left = torch.where(s > 0, params.refractory_s, left)
    return s, ContinuousLIFState(v=v, refractory_s=left)


def refractory_gate(spikes: Tensor, dt_s: float, refractory_s: float = 1.0) -> Tensor:
    """Pass a spike of ``spikes`` ``(N, ...)`` (fine steps of ``dt_s``) unless one passed less
    than ``refractory_s`` before: ``o_k = s_k [r_k <= 0]``, ``r_{k+1} = refractory_s`` if
    ``o_k`` else ``r_k - dt``.  With one window (1), at most one spike per window passes."""
    left = torch.zeros_like(spikes[0])
    out = []
    for s in spikes:
        passed = s * (left <= 1e-9 * dt_s).to(s.dtype)
        left = torch.where(passed > 0, refractory_s, left - dt_s)
        out.append(passed)
    return torch.stack(out)


def refine_spike_train(
    spikes: Tensor, substeps: int, generator: torch.Generator, jitter: float = 1.0
) -> Tensor:
    """Place each spike of a coarse train ``(T, ...)`` at a random fine step of its window.

    Returns ``(T * substeps, ...)``.  ``jitter`` in ``[0, 1]`` is the fraction of the window over
    which the arrival times spread: a spike lands on one of the first
    ``max(1, round(jitter * substeps))`` fine steps, uniformly (1: anywhere in the window, as the
    coarse model assumes; 0: all spikes at the window's start, synchronous input).
    """
    if substeps < 1:
        raise ValueError(f"substeps: expected >= 1, got {substeps}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter: expected a fraction of the window in [0, 1], got {jitter}")
    slots = max(1, round(jitter * substeps))
    steps = spikes.shape[0]
    slot = torch.randint(
        0, slots, spikes.shape, generator=generator, device=spikes.device
    )  # (T, ...)
    one_hot = torch.nn.functional.one_hot(slot, substeps).to(spikes.dtype)  # (T, ..., K)
    fine = one_hot * spikes.unsqueeze(-1)  # (T, ..., K)
    fine = fine.movedim(-1, 1)  # (T, K, ...)
    return fine.reshape(steps * substeps, *spikes.shape[1:])
