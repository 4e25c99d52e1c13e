"""SNU / sSNU layers whose synapses are :class:`AnalogLinear` (software, crossbar or aihwkit).

The feed-forward input of all ``T`` steps is known in advance, so ``W x_t`` for every step goes
through the crossbar in one call of shape ``(T, B, in)``; only the recurrent term ``H y_{t-1}``
(when enabled) is read step by step.  Dynamics: see :mod:`pcm_sim.functional.snu`.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from pcm_sim.functional.snu import SNUParams, SNUState, snu_step
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.profiles import DeviceProfile

__all__ = ["SNU", "SSNU", "SNULayer"]


class SNULayer(nn.Module):
    """A layer of spiking neural units over a whole sequence.

    Args:
        in_features, out_features: sizes.
        soft: sSNU (sigmoid output) instead of SNU (step output).
        decay: l(tau); threshold_init: initial ``b``; leak: leaky-ReLU slope of ``g``.
        recurrent: add a recurrent matrix ``H`` (``out x out``, no bias).
        binary_input: the layer's inputs are spikes (no DAC on the crossbar).
        lateral_inhibition: reset by the layer's maximum output.
        trainable_decay: learn one ``l(tau) = σ(θ)`` per unit, starting at ``decay`` (the units
            then span several membrane time constants).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        soft: bool = False,
        decay: float = 0.8,
        threshold_init: float = -1.0,
        leak: float = 0.0,
        recurrent: bool = False,
        binary_input: bool = False,
        lateral_inhibition: bool = False,
        profile: str | DeviceProfile | None = None,
        trainable_decay: bool = False,
    ) -> None:
        super().__init__()
        if trainable_decay and not 0.0 < decay < 1.0:
            raise ValueError(f"decay: a trainable l(tau) starts in (0, 1), got {decay}")
        self.params = SNUParams(
            decay=decay, soft=soft, leak=leak, lateral_inhibition=lateral_inhibition
        )
        self.synapses = AnalogLinear(
            in_features, out_features, bias=False, profile=profile, binary_input=binary_input
        )
        self.recurrent = (
            AnalogLinear(
                out_features, out_features, bias=False, profile=profile, binary_input=not soft
            )
            if recurrent
            else None
        )
        self.threshold = nn.Parameter(torch.full((out_features,), float(threshold_init)))
        self.decay_logit = (
            nn.Parameter(torch.full((out_features,), math.log(decay / (1.0 - decay))))
            if trainable_decay
            else None
        )
        self.out_features = out_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x``: ``(T, B, in)`` -> ``(y, s + b)``, both ``(T, B, out)``."""
        if x.dim() != 3:
            raise ValueError(f"SNULayer: expected input (T, B, in), got {tuple(x.shape)}")
        drive = self.synapses(x)  # (T, B, out): all steps in one crossbar call
        steps, batch = x.shape[:2]
        zeros = drive.new_zeros(batch, self.out_features)
        state = SNUState(s=zeros, y=zeros)
        decay = None if self.decay_logit is None else torch.sigmoid(self.decay_logit)
        held = self.recurrent.held_hwa_sample() if self.recurrent else contextlib.nullcontext()
        outputs, potentials = [], []
        with held:  # hardware-aware training: one chip sample of H for the whole sequence
            for t in range(steps):
                a_t = drive[t]
                if self.recurrent is not None:
                    a_t = a_t + self.recurrent(state.y)
                y, state = snu_step(a_t, state, self.threshold, self.params, decay)
                outputs.append(y)
                potentials.append(state.s + self.threshold)
        return torch.stack(outputs), torch.stack(potentials)


class SNU(SNULayer):
    """SNU layer (step output)."""

    def __init__(self, in_features: int, out_features: int, **kwargs: object) -> None:
        super().__init__(in_features, out_features, soft=False, **kwargs)  # type: ignore[arg-type]


class SSNU(SNULayer):
    """sSNU layer (sigmoid output)."""

    def __init__(self, in_features: int, out_features: int, **kwargs: object) -> None:
        super().__init__(in_features, out_features, soft=True, **kwargs)  # type: ignore[arg-type]
