"""Spiking Neural Unit (Woźniak et al., Nat. Mach. Intell. 2, 325 (2020)) as a pure step.

For synaptic input ``a_t = W x_t [+ H y_{t-1}]`` (computed by the caller on a crossbar):

    ``s_t = g(a_t + l(tau) * s_{t-1} * (1 - r_{t-1}))``      membrane state
    ``y_t = h(s_t + b)``                                   output

``g`` is ReLU (or leaky ReLU with slope ``leak``), ``l(tau)`` the membrane decay (0.8-0.9;
a scalar, or one value per unit when the decays are trained),
``b`` a trainable threshold (about -1, i.e. spike when ``s > 1``).  SNU: ``h`` is the Heaviside
step whose gradient is taken as ``1 - tanh(v)^2``; sSNU: ``h`` is the sigmoid.  The reset
signal ``r`` is ``y`` itself, or the layer's maximum output with lateral inhibition.
Shapes: ``a``, ``s``, ``y`` are ``(B, units)``; ``b`` is ``(units,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SNUParams", "SNUState", "heaviside_tanh", "snu_step"]


class _HeavisideTanh(torch.autograd.Function):
    """Forward ``H(v) = [v > 0]``; backward ``d tanh(v) / dv = 1 - tanh(v)^2``."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, v: Tensor) -> Tensor:
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (v,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * (1.0 - torch.tanh(v).square())


def heaviside_tanh(v: Tensor) -> Tensor:
    """Step function with the derivative of tanh as surrogate gradient."""
    out: Tensor = _HeavisideTanh.apply(v)
    return out


@dataclass(frozen=True)
class SNUParams:
    """``decay`` = l(tau); ``soft`` selects sSNU (sigmoid); ``leak`` slope of g for v < 0."""

    decay: float = 0.8
    soft: bool = False
    leak: float = 0.0
    lateral_inhibition: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay: expected l(tau) in [0, 1), got {self.decay}")
        if not 0.0 <= self.leak < 1.0:
            raise ValueError(f"leak: expected a slope in [0, 1), got {self.leak}")


@dataclass(frozen=True)
class SNUState:
    """``s``: membrane state; ``y``: last output; both ``(B, units)``."""

    s: Tensor
    y: Tensor


def snu_step(
    synaptic_input: Tensor,
    state: SNUState,
    threshold: Tensor,
    params: SNUParams,
    decay: Tensor | None = None,
) -> tuple[Tensor, SNUState]:
    """One SNU time step; returns ``(y_t, SNUState(s_t, y_t))``.

    ``decay``: per-unit ``l(tau)`` ``(units,)`` in ``(0, 1)``; ``None`` uses ``params.decay``.
    """
    reset = state.y
    if params.lateral_inhibition:
        reset = state.y.amax(dim=-1, keepdim=True)
    l_tau = params.decay if decay is None else decay
    pre = synaptic_input + l_tau * state.s * (1.0 - reset)
    s = torch.nn.functional.leaky_relu(pre, params.leak) if params.leak else torch.relu(pre)
    v = s + threshold
    y = torch.sigmoid(v) if params.soft else heaviside_tanh(v)
    return y, SNUState(s=s, y=y)
