"""Herding (sigma-delta) quantizer of O'Connor & Welling, "Deep Spiking Networks" (2016).

A quantizer turns a real-valued increment sequence ``Δ_t`` into signed integer spike counts
``n_t`` whose running sum tracks the running sum of the increments:

    ``φ ← φ + Δ_t``                                     integrate
    ``n_t = sign(φ) · ceil(|φ| − 1/2)``                 "while |φ| > 1/2: emit a ±1 spike, φ ∓= 1"
    ``φ ← φ − n_t``                                     residual, ``|φ| <= 1/2`` afterwards

Hence ``Σ_{τ<=t} n_τ = Σ_{τ<=t} Δ_τ − φ_t`` with ``|φ_t| <= 1/2`` for every ``t``: the spike count
is the integrated input to within half a spike, whatever the sequence (the property that makes a
deep spiking network equal a ReLU network in the limit of long runs).  Increments with
``|Δ| <= 1`` give at most one spike (of either sign) per step; larger ones give several spikes in
one step (a count ``n_t`` drives a crossbar row with ``|n_t|`` pulses).

Shapes: ``Δ`` and ``φ`` are ``(..., units)``, ``n`` the same; ``herd_sequence`` takes
``(T, ..., units)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["HerdingState", "herd_sequence", "herding_step", "spike_count_quantize"]


@dataclass(frozen=True)
class HerdingState:
    """``phi``: the residual (integrated input minus emitted spikes), ``(..., units)``."""

    phi: Tensor


def spike_count_quantize(phi: Tensor) -> Tensor:
    """Spikes emitted by a residual ``phi``: ``sign(phi) * ceil(|phi| - 1/2)`` (ties emit less).

    Equals the loop ``while phi > 1/2: spike, phi -= 1`` (and its mirror for negative ``phi``).
    """
    return torch.sign(phi) * torch.ceil(phi.abs() - 0.5).clamp(min=0.0)


def herding_step(increment: Tensor, state: HerdingState) -> tuple[Tensor, HerdingState]:
    """One quantizer step: returns ``(n_t, HerdingState(phi_t))``, ``n_t`` signed integer counts."""
    phi = state.phi + increment
    spikes = spike_count_quantize(phi)
    return spikes, HerdingState(phi=phi - spikes)


def herd_sequence(increments: Tensor) -> tuple[Tensor, HerdingState]:
    """Quantize a sequence ``(T, ..., units)`` from ``phi = 0``; returns spikes and final state."""
    state = HerdingState(phi=torch.zeros_like(increments[0]))
    spikes = []
    for t in range(increments.shape[0]):
        n, state = herding_step(increments[t], state)
        spikes.append(n)
    return torch.stack(spikes), state
