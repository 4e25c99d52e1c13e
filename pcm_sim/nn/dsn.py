"""Deep spiking network (O'Connor & Welling, "Deep Spiking Networks", arXiv:1602.08323, 2016).

Forward pass over ``T`` steps, for a ``sizes[0] - ... - sizes[L]`` network with layers
``W_l`` (``(out, in)``, :class:`AnalogLinear`) and digital biases ``b_l``:

    ``s_0,t = herd(x)``                       input spikes, one herding quantizer per pixel
    ``u_l,t = u_l,t-1 + W_l s_l-1,t + b_l``   integrated pre-activation (a crossbar read per step)
    ``s_l,t = herd(ReLU(u_l,t) - ReLU(u_l,t-1))``   signed integer spike counts, ``l < L``
    ``logits = u_L,T / T``

Because a herding quantizer's running count equals its integrated input to within 1/2
(:mod:`pcm_sim.functional.herding`), ``N_l = Σ_t s_l,t = ReLU(u_l,T) + O(1)`` and
``N_l / T → ReLU(W_l N_l-1 / T + b_l)``: the network equals a ReLU MLP as ``T → ∞``.

Backward pass, with the same crossbars read transposed (:func:`transposed_read`): the output error
``δ_L = softmax(logits) - onehot(y)`` is herded into error spikes ``ε_L,t = herd(γ δ_L)``
(``γ`` = ``error_scale``, error spikes per step per unit of error), and for ``l = L .. 2``

    ``ε_l-1,t = herd([u_l-1,T > 0] ⊙ (W_l^T ε_l,t))``      (transposed read, ReLU-derivative gate)

so ``E_l = Σ_t ε_l,t ≈ γ T δ_l`` with ``δ_l`` the ReLU MLP's back-propagated error.  The updates
are spike-count outer products (gradients of the batch-mean cross-entropy)

    ``∇W_l = E_l^T N_l-1 / (γ T² B)``,   ``∇b_l = Σ_batch E_l / (γ T B)``,

which tend to the ReLU MLP's gradients as ``T → ∞``.  Cost in crossbar line activations: each
spike (each unit of ``|s|`` or ``|ε|``) drives one row (forward) or one column (backward) once.
On a chip a count ``|n| > 1`` in one step is sent as ``|n|`` unit pulses: the step's reads are
``Σ_m read(sign(n) [|n| >= m])``, ``m = 1 .. max |n|``, each read with its own noise and ADC
conversion, and a sample takes part in read ``m`` only if one of its counts reaches ``m``
(:func:`pulse_read`).

Shapes: inputs ``(B, in)`` in ``[0, 1]``; spike trains ``(T, B, units)``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.functional.herding import herd_sequence
from pcm_sim.nn.analog import AnalogLinear

__all__ = [
    "DSNTrace",
    "DeepSpikingNetwork",
    "ReLUMLP",
    "forward_read",
    "pulse_read",
    "transposed_read",
]


def pulse_read(read: Callable[[Tensor], Tensor], counts: Tensor, out_features: int) -> Tensor:
    """Linear analog read of signed integer ``counts`` ``(..., n)`` as unit pulses.

    ``Σ_m mask_m · read(p_m)`` with ``p_m = sign(counts) [|counts| >= m]`` for ``m = 1 ..
    max|counts|`` and ``mask_m`` selecting the vectors (leading indices) with a count of at least
    ``m``; a vector of zeros is never read (its result is 0).  Returns ``(..., out_features)``.
    """
    magnitude = counts.abs()
    levels = int(magnitude.max()) if counts.numel() else 0
    total: Tensor | None = None
    for m in range(1, levels + 1):
        pulses = torch.sign(counts) * (magnitude >= m).to(counts.dtype)
        active = (magnitude.amax(dim=-1, keepdim=True) >= m).to(counts.dtype)  # (..., 1)
        part = read(pulses) * active
        total = part if total is None else total + part
    if total is None:
        return counts.new_zeros(*counts.shape[:-1], out_features)
    return total


def forward_read(layer: AnalogLinear, spikes: Tensor) -> Tensor:
    """``W s + b`` for spike counts ``s`` ``(..., in)``: unit pulses on a chip (bias added once)."""
    if not layer.is_analog:
        out: Tensor = layer(spikes)
        return out
    bias = layer.bias.detach() if layer.bias is not None else None
    drive = pulse_read(
        lambda p: layer(p) if bias is None else layer(p) - bias, spikes, layer.out_features
    )
    return drive if bias is None else drive + bias


def transposed_read(layer: AnalogLinear, e: Tensor) -> Tensor:
    """``e @ W`` (``(..., out) -> (..., in)``, no bias): on the layer's chip when programmed, in
    software on the weights the forward reads (a held hardware-aware sample while training).

    On a chip the signed integer error counts ``e`` are sent as unit pulses (:func:`pulse_read`),
    each a transposed read of the crossbar (:meth:`AnalogLinear.read_transposed`).
    """
    if not layer.is_analog:
        return torch.matmul(e, layer.software_weight().detach())
    return pulse_read(lambda p: layer.read_transposed(p, binary_input=True), e, layer.in_features)


@dataclass(frozen=True)
class DSNTrace:
    """A forward run: ``trains[l]`` spikes into layer ``l`` ``(T, B, in_l)`` (``trains[0]`` the
    input), ``potentials[l]`` the integrated pre-activation ``u_l,t`` ``(T, B, out_l)``."""

    trains: list[Tensor]
    potentials: list[Tensor]

    @property
    def steps(self) -> int:
        """Number of time steps ``T``."""
        return self.trains[0].shape[0]

    @property
    def logits(self) -> Tensor:
        """``u_L,T / T``, ``(B, classes)``."""
        return self.potentials[-1][-1] / self.steps


class DeepSpikingNetwork(nn.Module):
    """O'Connor-Welling deep spiking network ``sizes[0] - ... - sizes[-1]`` (module docstring).

    Args:
        sizes: layer widths, at least ``[in, out]``.
        steps: default number of time steps ``T`` of a run.
        error_scale: ``γ``, error spikes per step per unit of output error.
    """

    def __init__(self, sizes: list[int], steps: int = 32, error_scale: float = 1.0) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least [in, out], got {sizes}")
        if steps < 1:
            raise ValueError(f"steps: expected >= 1, got {steps}")
        if not error_scale > 0:
            raise ValueError(f"error_scale: expected > 0, got {error_scale}")
        self.layers = nn.ModuleList(
            AnalogLinear(a, b, bias=True, binary_input=True) for a, b in itertools.pairwise(sizes)
        )
        self.steps = steps
        self.error_scale = error_scale

    @torch.no_grad()
    def run(self, x: Tensor, steps: int | None = None) -> DSNTrace:
        """Spiking forward pass of ``x`` ``(B, in)`` in ``[0, 1]`` over ``steps`` (default T)."""
        if x.dim() != 2:
            raise ValueError(f"DeepSpikingNetwork: expected input (B, in), got {tuple(x.shape)}")
        steps = self.steps if steps is None else steps
        spikes, _ = herd_sequence(x.unsqueeze(0).expand(steps, *x.shape))  # (T, B, in)
        trains, potentials = [spikes], []
        layers = self.synapses()
        for index, layer in enumerate(layers):
            u = forward_read(layer, spikes).cumsum(dim=0)  # (T, B, out): crossbar reads per step
            potentials.append(u)
            if index == len(layers) - 1:
                break
            target = torch.relu(u)  # (T, B, out): cumulative output the spikes must track
            increments = torch.diff(target, dim=0, prepend=torch.zeros_like(target[:1]))
            spikes, _ = herd_sequence(increments)
            trains.append(spikes)
        return DSNTrace(trains=trains, potentials=potentials)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in) -> (B, classes)`` logits ``u_L,T / T`` of a spiking run."""
        return self.run(x).logits

    def synapses(self) -> list[AnalogLinear]:
        """The layers' :class:`AnalogLinear` synapses, input to output."""
        return [layer for layer in self.layers if isinstance(layer, AnalogLinear)]

    @torch.no_grad()
    def error_trains(self, trace: DSNTrace, labels: Tensor) -> list[Tensor]:
        """Error spike trains ``ε_l`` ``(T, B, out_l)`` of every layer, backward through ``W^T``."""
        steps, layers = trace.steps, self.synapses()
        target = F.one_hot(labels, layers[-1].out_features).to(trace.logits)
        delta = torch.softmax(trace.logits, dim=-1) - target  # (B, classes)
        errors, _ = herd_sequence(
            (self.error_scale * delta).unsqueeze(0).expand(steps, *delta.shape)
        )
        out = [errors]
        for index in range(len(layers) - 1, 0, -1):
            back = transposed_read(layers[index], errors)  # (T, B, in): W^T read per step
            gate = (trace.potentials[index - 1][-1] > 0).to(back)  # (B, in): ReLU derivative
            errors, _ = herd_sequence(back * gate)
            out.append(errors)
        return out[::-1]

    @torch.no_grad()
    def spike_gradients(self, trace: DSNTrace, labels: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``(∇W_l, ∇b_l)`` of the batch-mean cross-entropy from spike-count outer products."""
        steps, batch = trace.steps, labels.shape[0]
        grads = []
        for layer_in, errors in zip(trace.trains, self.error_trains(trace, labels), strict=True):
            counts_in = layer_in.sum(dim=0)  # (B, in): N_l-1
            counts_err = errors.sum(dim=0)  # (B, out): E_l
            norm = self.error_scale * steps * batch
            grads.append((counts_err.t() @ counts_in / (norm * steps), counts_err.sum(0) / norm))
        return grads

    @torch.no_grad()
    def learn(self, x: Tensor, labels: Tensor) -> DSNTrace:
        """One training step's gradients: a spiking run of ``x`` ``(B, in)``, the error spikes of
        ``labels`` ``(B,)`` and :meth:`accumulate_gradients`; returns the run.

        Under hardware-aware training (:func:`pcm_sim.nn.analog.enable_hwa`) every layer's forward
        and transposed reads of the batch see one sample of its chip.
        """
        with contextlib.ExitStack() as held:
            for layer in self.synapses():
                held.enter_context(layer.held_hwa_sample())
            trace = self.run(x)
            self.accumulate_gradients(trace, labels)
        return trace

    @torch.no_grad()
    def accumulate_gradients(self, trace: DSNTrace, labels: Tensor) -> None:
        """Write :meth:`spike_gradients` into ``.grad`` of every weight and bias."""
        for layer, (grad_w, grad_b) in zip(
            self.synapses(), self.spike_gradients(trace, labels), strict=True
        ):
            layer.weight.grad = grad_w.to(layer.weight)
            assert layer.bias is not None
            layer.bias.grad = grad_b.to(layer.bias)


class ReLUMLP(nn.Module):
    """The DSN's rate limit: ``x -> ReLU(W_1 x + b_1) -> ... -> W_L h + b_L`` (same state keys).

    A state dict of a :class:`DeepSpikingNetwork` loads into it and back.
    """

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least [in, out], got {sizes}")
        self.layers = nn.ModuleList(
            AnalogLinear(a, b, bias=True) for a, b in itertools.pairwise(sizes)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in) -> (B, classes)`` logits."""
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        out: Tensor = self.layers[-1](x)
        return out
