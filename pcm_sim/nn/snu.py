"""SNU / sSNU layers whose synapses are :class:`AnalogLinear`, and the networks built on them.

The feed-forward input of all ``T`` steps is known in advance, so ``W x_t`` for every step goes
through the crossbar in one call of shape ``(T, B, in)``; only the recurrent term ``H y_{t-1}``
(when enabled) is read step by step.  Dynamics: see :mod:`pcm_sim.functional.snu`.

Networks: :class:`SNUClassifier`, Bernoulli rate-coded images ``(T, B, 784)`` through SNU
layers (step outputs, so every crossbar sees binary spikes and needs no DAC) and an sSNU readout
whose mean pre-activation ``mean_t (s_t + b)`` is the logit vector; :class:`SSNUSequence`,
frames ``(T, B, 88)`` -> sSNU(hidden) -> sSNU(88) whose pre-activation ``s_t + b`` is the logit
of each key at the next frame (88*150 + 150*88 = 26,400 weights, 52,800 PCM devices in
differential pairs for ``hidden = 150``).
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch
from torch import Tensor, nn

from pcm_sim.functional.snu import SNUParams, SNUState, snu_step
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.profiles import DeviceProfile

__all__ = ["SNU", "SSNU", "SNUClassifier", "SNULayer", "SSNUSequence"]


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
        profile: DeviceProfile | None = None,
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
