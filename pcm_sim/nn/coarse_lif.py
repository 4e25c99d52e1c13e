"""Coarse-scale LIF layers and networks (Yanguas-Gil 2020) on :class:`AnalogLinear`/``Conv2d``.

A layer is a synapse module (all-to-all :class:`AnalogLinear` or convolutional
:class:`AnalogConv2d`, no bias, spikes in so no DAC) followed by coarse-scale LIF neurons
(:func:`pcm_sim.functional.lif.coarse_lif_step`); max-pool layers take the maximum of binary
spikes (an OR), computed as ``H(max_pool(v) - 1)`` (the same values, since ``H`` is monotone) so
that the surrogate gradient reaches the pooled neuron closest to threshold.  The whole input
train is known before a layer runs, so every step's synaptic input ``x_t = W s^{in}_t`` goes
through the crossbar in one call ``(T, B, ...)``.

The same synapses also drive continuous-time LIF neurons
(:func:`pcm_sim.functional.lif.continuous_lif_step`) on a fine time grid: the transfer of a
trained coarse network.  Input spikes are placed in their windows (at the start, or at uniformly
random times), every synapse delivers its charge by the kernel of
:func:`~pcm_sim.functional.lif.synaptic_drive`, and a max-pool unit passes at most one spike per
window (:func:`~pcm_sim.functional.lif.refractory_gate`), as the coarse OR does.
:meth:`_CoarseNet.forward_straight_through` runs the continuous network forward and takes its
gradient from the coarse one (fine-tuning for the transfer).

Readout: the spike counts ``C_k = Σ_t s_k,t`` of the output layer; ties between counts are broken
by the output layer's mean membrane potential, ``logits = C + 0.04 tanh(mean_t v_t)``
(the tie-break term lies in ``(-0.04, 0.04)``, so it never overrides a count difference).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.functional.lif import (
    THRESHOLD,
    CoarseLIFParams,
    ContinuousLIFParams,
    ContinuousLIFState,
    LIFState,
    coarse_lif_step,
    continuous_lif_step,
    heaviside_sigmoid,
    refractory_gate,
    synaptic_drive,
)
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.conv import AnalogConv2d

__all__ = ["TIE_BREAK", "CoarseLIF", "CoarseLIFConvNet", "CoarseLIFMLP", "spike_count_logits"]

TIE_BREAK = 0.04
"""Weight of ``tanh(mean membrane potential)`` added to the output spike counts."""


def spike_count_logits(spikes: Tensor, potentials: Tensor) -> Tensor:
    """``(T, B, k)`` output spikes and potentials -> ``(B, k)`` counts with the tie-break term."""
    return spikes.sum(dim=0) + TIE_BREAK * torch.tanh(potentials.mean(dim=0))


class CoarseLIF(nn.Module):
    """Synapses followed by coarse-scale LIF neurons; optional 2x2 max-pool of the spikes.

    Args:
        synapses: an :class:`AnalogLinear` or :class:`AnalogConv2d` (``binary_input=True``).
        tau: membrane time constant in coarse steps; beta: surrogate sharpness.
        pool: max-pool kernel (1 = none) applied to the spikes.
        detach_reset: no gradient through the reset (:class:`CoarseLIFParams`).
    """

    def __init__(
        self,
        synapses: nn.Module,
        tau: float = 2.0,
        beta: float = 5.0,
        pool: int = 1,
        detach_reset: bool = False,
    ):
        super().__init__()
        self.synapses = synapses
        self.params = CoarseLIFParams(tau=tau, beta=beta, detach_reset=detach_reset)
        self.pool = pool

    def _pool(self, x: Tensor) -> Tensor:
        if self.pool == 1:
            return x
        lead = x.shape[:-3]
        y = F.max_pool2d(x.reshape(-1, *x.shape[-3:]), self.pool)  # (T*B, C, H/p, W/p)
        return y.reshape(*lead, *y.shape[1:])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x``: ``(T, B, ...)`` spikes -> pooled spikes and (unpooled) potentials ``v_t``."""
        drive = self.synapses(x)  # (T, B, ...): every step in one call
        state = LIFState(v=torch.zeros_like(drive[0]), s=torch.zeros_like(drive[0]))
        spikes, potentials = [], []
        for t in range(drive.shape[0]):
            s, state = coarse_lif_step(drive[t], state, self.params)
            spikes.append(s)
            potentials.append(state.v)
        v = torch.stack(potentials)
        if self.pool == 1:
            return torch.stack(spikes), v
        return heaviside_sigmoid(self._pool(v) - THRESHOLD, self.params.beta), v

    def _event_driven(self, x: Tensor) -> Tensor:
        """``W x`` of ``(N, B, ...)`` spikes, read only for the (fine step, sample) frames with a
        spike: a frame without one has no charge and, on a chip, no read."""
        frames = x.reshape(-1, *x.shape[2:])
        active = frames.flatten(start_dim=1).any(dim=1)
        active[0] = True  # at least one read, for the output shape
        charge = self.synapses(frames[active].unsqueeze(0)).squeeze(0)
        out = charge.new_zeros(frames.shape[0], *charge.shape[1:])
        out[active] = charge
        return out.reshape(*x.shape[:2], *charge.shape[1:])

    @torch.no_grad()
    def forward_continuous(self, x: Tensor, params: ContinuousLIFParams) -> tuple[Tensor, Tensor]:
        """Continuous-time LIF on the fine grid: ``x`` ``(T*K, B, ...)`` fine-step spikes."""
        if abs(params.tau - self.params.tau) > 1e-12:
            raise ValueError(f"tau: the transfer keeps tau = {self.params.tau}, got {params.tau}")
        drive = synaptic_drive(self._event_driven(x), params)  # (T*K, B, ...) per fine step
        zeros = torch.zeros_like(drive[0])
        state = ContinuousLIFState(v=zeros, refractory_s=zeros)
        spikes, potentials = [], []
        for k in range(drive.shape[0]):
            s, state = continuous_lif_step(drive[k], state, params)
            spikes.append(s)
            potentials.append(state.v)
        out = torch.stack(spikes)
        if self.pool > 1:
            out = self._pool(out)
            out = refractory_gate(out, params.dt_s) if params.refractory_pool else out
        return out, torch.stack(potentials)


class _CoarseNet(nn.Module):
    """A stack of :class:`CoarseLIF` layers with a spike-count readout."""

    blocks: nn.ModuleList
    flatten_after: int

    def _layers(self, x: Tensor, continuous: ContinuousLIFParams | None) -> tuple[Tensor, Tensor]:
        v = x
        for index, block in enumerate(self.blocks):
            assert isinstance(block, CoarseLIF)
            if continuous is None:
                x, v = block(x)
            else:
                x, v = block.forward_continuous(x, continuous)
            if index == self.flatten_after:
                x = x.flatten(start_dim=2)  # (T, B, features)
        return x, v

    def forward(self, spikes: Tensor) -> Tensor:
        """``(T, B, *input_shape)`` input spikes -> ``(B, classes)`` spike-count logits."""
        return spike_count_logits(*self._layers(spikes, None))

    @torch.no_grad()
    def forward_continuous(self, fine_spikes: Tensor, params: ContinuousLIFParams) -> Tensor:
        """Continuous-time transfer: ``(T*K, B, ...)`` fine-step spikes -> ``(B, classes)``.

        The network runs ``params.settle_steps`` more fine steps with no input; output spikes
        are counted over the whole run.
        """
        quiet = fine_spikes.new_zeros(params.settle_steps, *fine_spikes.shape[1:])
        spikes, potentials = self._layers(torch.cat([fine_spikes, quiet]), params)
        return spike_count_logits(spikes, potentials)

    def forward_straight_through(
        self, spikes: Tensor, fine_spikes: Tensor, params: ContinuousLIFParams
    ) -> Tensor:
        """Continuous-time values, coarse-scale gradients (fine-tuning for the transfer).

        ``spikes`` ``(T, B, ...)`` and their placement ``fine_spikes`` ``(T*K, B, ...)``.  Every
        layer runs in continuous time (no gradient) on the previous layer's continuous spikes;
        its spike counts per window ``n_t`` replace the coarse layer's spikes ``s_t`` in the
        forward pass, ``s_t + (n_t - s_t).detach()``, and the coarse layer, run on the previous
        layer's counts, carries the gradient.  ``settle_s`` must be whole windows; the coarse
        layers run on them with the counts they receive.
        """
        k = params.substeps
        fine = torch.cat(
            [fine_spikes, fine_spikes.new_zeros(params.settle_steps, *spikes.shape[1:])]
        )
        windows = fine.shape[0] // k
        if windows * k != fine.shape[0]:
            raise ValueError(f"settle_s: expected whole windows, got {params.settle_s}")
        x = torch.cat([spikes, spikes.new_zeros(windows - spikes.shape[0], *spikes.shape[1:])])
        v = x
        for index, block in enumerate(self.blocks):
            assert isinstance(block, CoarseLIF)
            with torch.no_grad():
                fine, _ = block.forward_continuous(fine, params)
            counts = fine.reshape(windows, k, *fine.shape[1:]).sum(dim=1)
            s, v = block(x)
            x = s + (counts - s).detach()
            if index == self.flatten_after:
                x, fine = x.flatten(start_dim=2), fine.flatten(start_dim=2)
        return spike_count_logits(x, v)


class CoarseLIFConvNet(_CoarseNet):
    """LeNet-like coarse-scale LIF network for ``(1, 28, 28)`` images.

    ``conv5x5(1→c1) → LIF → maxpool2 → conv5x5(c1→c2) → LIF → maxpool2 → fc(49 c2→hidden) → LIF
    → fc(hidden→classes) → LIF``, every convolution padded by 2, no biases.
    """

    def __init__(
        self,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 256,
        classes: int = 10,
        tau: float = 2.0,
        beta: float = 5.0,
        detach_reset: bool = False,
    ) -> None:
        super().__init__()
        c1, c2 = channels
        convs = [(1, c1), (c1, c2)]
        self.blocks = nn.ModuleList(
            [
                *(
                    CoarseLIF(
                        AnalogConv2d(a, b, 5, padding=2, bias=False, binary_input=True),
                        tau,
                        beta,
                        2,
                        detach_reset,
                    )
                    for a, b in convs
                ),
                *(
                    CoarseLIF(
                        AnalogLinear(a, b, bias=False, binary_input=True),
                        tau,
                        beta,
                        1,
                        detach_reset,
                    )
                    for a, b in [(49 * c2, hidden), (hidden, classes)]
                ),
            ]
        )
        self.flatten_after = 1


class CoarseLIFMLP(_CoarseNet):
    """All-to-all coarse-scale LIF network ``sizes[0] → ... → sizes[-1]`` (no biases).

    ``analog_input``: the first layer takes real-valued inputs (an input current through the DAC,
    e.g. a control state repeated every step) instead of spikes.
    """

    def __init__(
        self, sizes: list[int], tau: float = 2.0, beta: float = 5.0, analog_input: bool = False
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least [in, out], got {sizes}")
        self.blocks = nn.ModuleList(
            CoarseLIF(
                AnalogLinear(a, b, bias=False, binary_input=not (analog_input and i == 0)),
                tau,
                beta,
            )
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        )
        self.flatten_after = -1
