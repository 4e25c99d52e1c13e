"""Discrete-time spiking neurons: the conventions of snntorch and of NIR's continuous models.

Spikes are ``s = H(v - θ)`` with a strict step (``H(0) = 0``) and, when gradients are asked for,
the surrogate derivative of ``σ(k (v - θ))`` (``k = 5``, straight-through: the forward value is
the exact step).

**Delayed-reset neurons** (snntorch's ``Leaky`` / ``Synaptic``; ``r_t = H(v_{t-1} - θ)`` is the
reset owed by the previous step)::

    Leaky      subtract: v_t = β v_{t-1} + x_t - r_t θ
               zero:     v_t = β (1 - r_t) v_{t-1} + x_t
    Synaptic   i_t = α i_{t-1} + x_t
               subtract: v_t = β v_{t-1} + i_t - r_t θ
               zero:     v_t = (1 - r_t) (β v_{t-1} + i_t)
    none:      v_t = β v_{t-1} + (x_t | i_t)
    s_t = H(v_t - θ)

``β``, ``α`` are clipped to ``[0, 1]``.  Without the delay (``reset_delay = False``) the reset is
also applied right after the spike: ``v_t -= (s_t - r_t) θ`` (subtract) or
``v_t -= (s_t - r_t) v_t`` (zero).

**NIR neurons** (forward Euler with step ``dt``, the scheme of the snntorch and norse NIR
importers; ``I`` = summed input of the step)::

    LIF      v_t = v_{t-1} + dt/τ (v_leak - v_{t-1} + R I_t);  s_t = H(v_t - θ)
             v_t ← v_reset where s_t = 1 (the reset is immediate)
    CubaLIF  c_t = c_{t-1} + dt/τ_syn (w_in I_t - c_{t-1});  v_t as LIF with c_t for I_t
    IF       v_t = v_{t-1} + dt R I_t;                       s_t, reset as LIF
    LI       v_t as LIF, no spikes (output v_t);   Integrator  v_t = v_{t-1} + dt R I_t (output v_t)

Shapes: every tensor is ``(..., units)`` or broadcasts to it.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "RESET_MECHANISMS",
    "euler_leaky_step",
    "euler_synaptic_current_step",
    "leaky_step",
    "spike",
    "synaptic_step",
]

RESET_MECHANISMS = ("subtract", "zero", "none")
SURROGATE_SLOPE = 5.0


def spike(u: Tensor) -> Tensor:
    """``H(u)`` (``H(0) = 0``), with the gradient of ``σ(5 u)`` when ``u`` requires grad."""
    hard = (u > 0).to(u.dtype)
    if not u.requires_grad:
        return hard
    soft = torch.sigmoid(SURROGATE_SLOPE * u)
    return hard + (soft - soft.detach())


def _after_spike(
    v: Tensor, s: Tensor, owed: Tensor, threshold: Tensor, reset: str, reset_delay: bool
) -> Tensor:
    """The immediate reset ``v -= (s - r) θ`` / ``v -= (s - r) v`` when there is no delay."""
    if reset_delay or reset == "none":
        return v
    extra = s - owed
    return v - extra * threshold if reset == "subtract" else v - extra * v


def leaky_step(
    x: Tensor,
    v: Tensor,
    beta: Tensor,
    threshold: Tensor,
    reset: str = "subtract",
    reset_delay: bool = True,
) -> tuple[Tensor, Tensor]:
    """One delayed-reset leaky step (module docstring) -> ``(s_t, v_t)``."""
    owed = (v > threshold).to(v.dtype)
    decay = beta.clamp(0.0, 1.0)
    if reset == "subtract":
        v = decay * v + x - owed * threshold
    elif reset == "zero":
        v = decay * (1.0 - owed) * v + x
    else:
        v = decay * v + x
    s = spike(v - threshold)
    return s, _after_spike(v, s, owed, threshold, reset, reset_delay)


def synaptic_step(
    x: Tensor,
    i: Tensor,
    v: Tensor,
    alpha: Tensor,
    beta: Tensor,
    threshold: Tensor,
    reset: str = "subtract",
    reset_delay: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """One delayed-reset synaptic (current-based) step (module docstring) -> ``(s, i, v)``."""
    owed = (v > threshold).to(v.dtype)
    i = alpha.clamp(0.0, 1.0) * i + x
    v = beta.clamp(0.0, 1.0) * v + i
    if reset == "subtract":
        v = v - owed * threshold
    elif reset == "zero":
        v = (1.0 - owed) * v
    s = spike(v - threshold)
    return s, i, _after_spike(v, s, owed, threshold, reset, reset_delay)


def euler_leaky_step(
    current: Tensor, v: Tensor, leak_rate: Tensor, gain: Tensor, v_leak: Tensor
) -> Tensor:
    """``v + leak_rate (v_leak - v) + gain I`` with ``leak_rate = dt/τ`` (0 for IF and the
    integrator) and ``gain = dt R/τ`` (``dt R`` without a leak): one forward-Euler step."""
    return v + leak_rate * (v_leak - v) + gain * current


def euler_synaptic_current_step(x: Tensor, c: Tensor, rate: Tensor, w_in: Tensor) -> Tensor:
    """``c + dt/τ_syn (w_in I - c)``: one forward-Euler step of a CubaLIF's synaptic current."""
    return c + rate * (w_in * x - c)
