"""Deep phasor networks (Olin-Ammentorp & Bazhenov, "Deep Phasor Networks: Connecting
Conventional and Spiking Neural Networks", 2021) as pure functions.

Activations are phases ``x`` in ``[-1, 1]`` (units of pi rad), i.e. unit phasors ``e^{i pi x}``.

**Atemporal layer** (real weights ``W`` ``(out, in)``, real bias ``b``)::

    z_k  = sum_j W_kj e^{i pi x_j} + b_k = (W cos(pi x) + b)_k + i (W sin(pi x))_k
    x'_k = angle(z_k) / pi = atan2(Im z_k, Re z_k) / pi                  in [-1, 1)

Loss (true class at phase 0.5, others at 0): ``L = 1 - mean cos(pi (yhat - y))``; prediction
``argmin_k |yhat_k - 0.5|``.

**Spiking execution.**  Time is measured in cycles (period ``T = 1``) and integrated on a fixed
grid of ``S = steps_per_cycle`` steps, ``dt = 1 / S``.  A phase ``x`` seen in a reference shifted
by ``delta`` (phase units) fires once per cycle at

    t = ((x + delta + 1) / 2  mod 1) + n,        step  round(S t)  mod S  (+ n S)

Resonate-and-fire neurons integrate ``dz/dt = (lambda + i 2 pi) z + sum_j W_kj sum_s delta(t -
t_js)`` (a spike of input ``j`` adds the real charge ``W_kj``).  Between spikes the solution is
exact, so the fixed step is

    z[n] = a z[n-1] + I[n],        a = exp((lambda + i 2 pi) dt),  I[n] = W s[n] (+ b s_bias[n])

A neuron spikes when ``Im z`` has a local maximum above ``threshold``: the maximum found at step
``n - 1`` is emitted at step ``n`` (one step of detection latency), and a spike blocks the next
``round(refractory S)`` steps.  In steady state ``z(t) = C e^{i(2 pi t - pi(delta + 1))}
conj(z_atemporal)`` with a real ``C`` (for ``lambda = 0``), and ``Im z`` peaks at ``arg z = pi/2 -
eps``, ``eps = atan(-lambda / 2 pi)``.  The output spikes therefore encode the atemporal phase
``x'`` in a reference shifted by

    delta_out = delta_in + 1/2 - eps / pi + 2 / S                 (:func:`layer_shift`)

so phases are decoded from spike times with a per-layer offset.  The offset is rounded to the
grid (a multiple of ``2 / S``; the spikes are on the grid anyway), so every layer's cycle windows
start exactly at a step.  Phase 1 and phase -1 are one angle; outputs report it as -1 (phases in
``[-1, 1)``) because a spike at the cycle boundary is the *first* of its cycle window, which keeps
min-pooling over phases and over spike times in agreement (a uniform image background makes
such boundary phases common).  With ``lambda < 0`` the spikes of
one cycle are weighted by ``e^{lambda tau}`` (``tau`` the time since the spike), which distorts
the sum slightly; this, the time grid and the first cycles (before ``z`` settles) are the
differences between the two modes.

**Out-of-range phases.**  Layers clip their input phases to ``[-1, 1]`` (:func:`clip_phases`, as
the authors' code) and refuse NaN; :func:`encode_phases`, the entry into the spiking domain,
refuses phases outside ``[-1, 1]`` or non-finite with ``ValueError``.

Shapes: ``(..., n)`` for phases; spike trains are ``(steps, ..., n)`` float tensors in ``{0, 1}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "TARGET_PHASE",
    "ResonateFireParams",
    "ResonateFireState",
    "clip_phases",
    "complex_to_phase",
    "decode_spikes",
    "encode_phases",
    "first_spike_per_cycle",
    "layer_shift",
    "phase_to_complex",
    "phasor_linear",
    "phasor_loss",
    "predict_classes",
    "resonate_and_fire",
    "rf_initial_state",
    "rf_step",
    "target_phases",
    "wrap_phase",
]

TARGET_PHASE = 0.5
"""Phase of the true class (quadrature); every other class is trained towards phase 0."""


def clip_phases(x: Tensor) -> Tensor:
    """Clip phases to ``[-1, 1]``; NaN raises ``ValueError`` (a phase is never undefined here)."""
    if torch.isnan(x).any():
        raise ValueError("phases: expected numbers in [-1, 1], got NaN")
    return x.clamp(-1.0, 1.0)


def wrap_phase(x: Tensor) -> Tensor:
    """Map any phase onto ``[-1, 1)`` (phases are angles: ``x`` and ``x + 2`` are equal)."""
    return torch.remainder(x + 1.0, 2.0) - 1.0


def phase_to_complex(x: Tensor) -> tuple[Tensor, Tensor]:
    """``e^{i pi x}`` as the pair ``(cos(pi x), sin(pi x))``."""
    angle = math.pi * x
    return torch.cos(angle), torch.sin(angle)


def complex_to_phase(real: Tensor, imag: Tensor) -> Tensor:
    """``angle(real + i imag) / pi`` in ``[-1, 1)`` (the angle pi is reported as -1)."""
    return wrap_phase(torch.atan2(imag, real) / math.pi)


def phasor_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Reference atemporal phasor layer: ``angle(W e^{i pi x} + b) / pi``.

    ``x``: ``(..., in)`` phases (clipped to ``[-1, 1]``); ``weight``: ``(out, in)``;
    ``bias``: ``(out,)`` real or ``None``.  Returns ``(..., out)`` phases.
    """
    cos, sin = phase_to_complex(clip_phases(x))
    real = cos @ weight.t()  # (..., out)
    if bias is not None:
        real = real + bias
    return complex_to_phase(real, sin @ weight.t())


def target_phases(labels: Tensor, classes: int, phase: float = TARGET_PHASE) -> Tensor:
    """One-hot phase targets ``(B, classes)``: ``phase`` at the label, 0 elsewhere."""
    return torch.nn.functional.one_hot(labels, classes).to(torch.float32) * phase


def phasor_loss(yhat: Tensor, target: Tensor) -> Tensor:
    """The authors' similarity loss ``1 - mean cos(pi (yhat - target))`` (a scalar)."""
    return 1.0 - torch.cos(math.pi * (yhat - target)).mean()


def predict_classes(yhat: Tensor, phase: float = TARGET_PHASE) -> Tensor:
    """``argmin_k |yhat_k - phase|`` over the last dim; NaN (no spike) never wins."""
    distance = (yhat - phase).abs()
    return torch.nan_to_num(distance, nan=math.inf).argmin(dim=-1)


@dataclass(frozen=True)
class ResonateFireParams:
    """Resonate-and-fire neurons on a fixed time grid (time unit: one cycle, ``T = 1``).

    ``steps_per_cycle`` ``S`` is the accuracy/speed knob: spike times (and so phases) are
    resolved to ``2 / S``, and the crossbar is read ``S`` times per cycle.  ``leakage`` is
    ``lambda`` per cycle (the authors' -0.2), ``threshold`` the minimum ``Im z`` of a spike
    (the authors' 0.03), ``refractory`` the dead time after a spike in cycles (their 0.25).
    """

    steps_per_cycle: int = 64
    leakage: float = -0.2
    threshold: float = 0.03
    refractory: float = 0.25

    def __post_init__(self) -> None:
        if self.steps_per_cycle < 8:
            raise ValueError(f"steps_per_cycle: expected >= 8, got {self.steps_per_cycle}")
        if not (math.isfinite(self.leakage) and self.leakage <= 0.0):
            raise ValueError(f"leakage: expected lambda <= 0 (decay), got {self.leakage}")
        if not (math.isfinite(self.threshold) and self.threshold >= 0.0):
            raise ValueError(f"threshold: expected >= 0, got {self.threshold}")
        if not 0.0 <= self.refractory < 1.0:
            raise ValueError(
                f"refractory: expected a fraction of a cycle in [0, 1), got {self.refractory}"
            )

    @property
    def refractory_steps(self) -> int:
        """Steps blocked after a spike: ``round(refractory S)``."""
        return round(self.refractory * self.steps_per_cycle)

    def step_factor(self) -> complex:
        """``a = exp((lambda + i 2 pi) / S)``: the exact propagator of one step."""
        dt = 1.0 / self.steps_per_cycle
        return complex(
            math.exp(self.leakage * dt) * math.cos(2 * math.pi * dt),
            math.exp(self.leakage * dt) * math.sin(2 * math.pi * dt),
        )


def layer_shift(params: ResonateFireParams) -> float:
    """Phase shift of one R&F layer, ``1/2 - atan(-lambda / 2 pi) / pi + 2/S``, on the grid.

    The first two terms (the peak of ``Im z``) are rounded to a multiple of ``2 / S``; ``2 / S``
    is the one step of detection latency.
    """
    s = params.steps_per_cycle
    eps = math.atan(-params.leakage / (2.0 * math.pi))
    return 2.0 * round((0.5 - eps / math.pi) * s / 2.0) / s + 2.0 / s


def encode_phases(x: Tensor, cycles: int, params: ResonateFireParams, shift: float = 0.0) -> Tensor:
    """Phases ``(..., n)`` -> spike train ``(cycles * S, ..., n)``: one spike per input and cycle.

    Input ``j`` fires at step ``round(S ((x_j + shift + 1) / 2 mod 1)) mod S`` of every cycle.
    Raises ``ValueError`` for phases outside ``[-1, 1]`` or non-finite.
    """
    if cycles < 1:
        raise ValueError(f"cycles: expected >= 1, got {cycles}")
    if not torch.isfinite(x).all() or bool((x.abs() > 1.0).any()):
        bad = x[~torch.isfinite(x) | (x.abs() > 1.0)].flatten()[0].item()
        raise ValueError(f"phases: expected values in [-1, 1] for spike encoding, got {bad}")
    s = params.steps_per_cycle
    frac = torch.remainder((x.to(torch.float64) + shift + 1.0) / 2.0, 1.0)
    step = torch.remainder(torch.round(frac * s), s).long()  # (..., n)
    one_cycle = torch.zeros((s, *x.shape), dtype=torch.float32, device=x.device)
    one_cycle.scatter_(0, step.unsqueeze(0), 1.0)  # (S, ..., n)
    return one_cycle.repeat(cycles, *([1] * x.dim()))  # (cycles * S, ..., n)


@dataclass(frozen=True)
class ResonateFireState:
    """State of a layer of R&F neurons, all ``(...,)``: potential ``z`` (complex64),
    ``v_prev = Im z`` one step earlier, ``rising`` (``Im z`` rose in the last step) and
    ``blocked`` (refractory steps left, int64)."""

    z: Tensor
    v_prev: Tensor
    rising: Tensor
    blocked: Tensor


def rf_initial_state(
    shape: tuple[int, ...], device: torch.device | None = None
) -> ResonateFireState:
    """Neurons at rest: ``z = 0``, not rising, not refractory."""
    return ResonateFireState(
        z=torch.zeros(shape, dtype=torch.complex64, device=device),
        v_prev=torch.zeros(shape, dtype=torch.float32, device=device),
        rising=torch.zeros(shape, dtype=torch.bool, device=device),
        blocked=torch.zeros(shape, dtype=torch.int64, device=device),
    )


def rf_step(
    drive: Tensor, state: ResonateFireState, params: ResonateFireParams
) -> tuple[Tensor, ResonateFireState]:
    """One grid step (reference path): ``z <- a z + I``; spike if ``Im z`` peaked one step ago.

    ``drive``: real charge ``I[n]`` ``(...,)``.  Returns ``(spike in {0, 1}, new state)``.
    """
    z = state.z * params.step_factor() + drive.to(torch.complex64)
    v = z.imag
    peak = state.rising & (v <= state.v_prev) & (state.v_prev > params.threshold)
    spike = peak & (state.blocked == 0)
    blocked = torch.where(
        spike,
        torch.full_like(state.blocked, params.refractory_steps),
        (state.blocked - 1).clamp(min=0),
    )
    new = ResonateFireState(z=z, v_prev=v, rising=v > state.v_prev, blocked=blocked)
    return spike.to(torch.float32), new


def _cycle_propagators(params: ResonateFireParams, ndim: int) -> tuple[Tensor, Tensor]:
    """``(a^k, a^{-k})``, k = 0 .. S-1, complex64, shaped ``(S, 1, ...)`` with ``ndim`` dims."""
    s = params.steps_per_cycle
    k = torch.arange(s, dtype=torch.float64)
    mag = torch.exp(params.leakage * k / s)
    ang = 2.0 * math.pi * k / s
    shape = (s, *([1] * (ndim - 1)))
    power = torch.polar(mag, ang).to(torch.complex64).view(shape)
    inverse = torch.polar(1.0 / mag, -ang).to(torch.complex64).view(shape)
    return power, inverse


def resonate_and_fire(drive: Tensor, params: ResonateFireParams) -> Tensor:
    """Run R&F neurons from rest over a whole drive ``(steps, ...)``; returns the spikes.

    Vectorized fast path, equal to iterating :func:`rf_step` (parity-tested).  The potential is
    integrated one cycle (``S`` steps) at a time with a cumulative sum,

        ``z[n0 + k] = a^k (a z[n0 - 1] + sum_{m <= k} a^{-m} I[n0 + m])``,

    (``|a^{-m}| <= e^{-lambda}``, well conditioned), so memory stays ``O(S)`` per neuron; only
    the refractory filter walks the steps, with boolean ops over all neurons at once.
    Returns spikes ``(steps, ...)`` in ``{0, 1}`` (float32).
    """
    s = params.steps_per_cycle
    a = params.step_factor()
    power, inverse = (p.to(drive.device) for p in _cycle_propagators(params, drive.dim()))
    refractory = params.refractory_steps
    spikes = torch.zeros(drive.shape, dtype=torch.float32, device=drive.device)
    state = rf_initial_state(tuple(drive.shape[1:]), drive.device)
    z_last, v_last, rising_last, blocked = state.z, state.v_prev, state.rising, state.blocked
    for start in range(0, drive.shape[0], s):
        n = min(s, drive.shape[0] - start)
        charge = drive[start : start + n].to(torch.complex64) * inverse[:n]  # (n, ...)
        z = power[:n] * (torch.cumsum(charge, dim=0) + z_last * a)  # (n, ...)
        v = z.imag
        v_prev = torch.cat([v_last.unsqueeze(0), v[:-1]])  # (n, ...) Im z one step earlier
        rising = v > v_prev
        rising_before = torch.cat([rising_last.unsqueeze(0), rising[:-1]])
        candidate = rising_before & (v <= v_prev) & (v_prev > params.threshold)
        if refractory == 0:
            spikes[start : start + n] = candidate.to(torch.float32)
        else:
            for k in range(n):  # refractory filter: boolean ops over all neurons per step
                fire = candidate[k] & (blocked == 0)
                spikes[start + k] = fire.to(torch.float32)
                blocked = torch.where(fire, refractory, (blocked - 1).clamp(min=0))
        z_last, v_last, rising_last = z[-1], v[-1], rising[-1]
    return spikes


def _window_start(params: ResonateFireParams, shift: float) -> int:
    """First step of a cycle window: the step nearest to phase -1 in a reference shifted by
    ``shift``, ``round(S shift / 2) mod S`` (exact for the grid-aligned shifts of layers)."""
    s = params.steps_per_cycle
    return round(s * shift / 2.0) % s


def decode_spikes(spikes: Tensor, params: ResonateFireParams, shift: float) -> Tensor:
    """Spike train ``(steps, ..., n)`` -> phases per complete cycle ``(cycles, ..., n)``.

    Cycle windows run from phase -1 to phase 1 of the reference shifted by ``shift``; a spike at
    step ``m`` reads ``wrap(2 m / S - shift - 1)``.  The first spike in a window counts; a neuron
    without a spike in a window gets NaN.
    """
    s = params.steps_per_cycle
    start = _window_start(params, shift)
    cycles = (spikes.shape[0] - start) // s
    if cycles < 1:
        raise ValueError(f"decode: {spikes.shape[0]} steps hold no complete cycle of {s} steps")
    windows = spikes[start : start + cycles * s].reshape(cycles, s, *spikes.shape[1:])
    fired = windows > 0
    first = fired.to(torch.uint8).argmax(dim=1)  # (cycles, ..., n): first spiking step
    step = (start + first).to(torch.float64)
    phase = wrap_phase(2.0 * step / s - shift - 1.0).to(torch.float32)
    return torch.where(fired.any(dim=1), phase, torch.full_like(phase, math.nan))


def first_spike_per_cycle(spikes: Tensor, params: ResonateFireParams, shift: float) -> Tensor:
    """Keep only the first spike of every cycle window (windows as in :func:`decode_spikes`).

    Applied after a spatial OR of a pool's spike trains this is min-pooling over spike times:
    the earliest spike of a window is the smallest phase.  ``(steps, ...)`` -> same shape.
    """
    s = params.steps_per_cycle
    steps = spikes.shape[0]
    front = (s - _window_start(params, shift)) % s
    total = math.ceil((front + steps) / s) * s
    padded = torch.nn.functional.pad(spikes.movedim(0, -1), (front, total - front - steps)).movedim(
        -1, 0
    )  # (total, ...)
    windows = padded.reshape(total // s, s, *spikes.shape[1:])
    count = torch.cumsum(windows, dim=1)
    first = (windows > 0) & (count == 1)
    return first.reshape(total, *spikes.shape[1:])[front : front + steps].to(spikes.dtype)
