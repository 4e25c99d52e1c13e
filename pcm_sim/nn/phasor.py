"""Phasor layers whose synapses are :class:`AnalogLinear` / :class:`AnalogConv2d`.

Both layers run one set of weights in two ways (math in :mod:`pcm_sim.functional.phasor`):

* **atemporal** (``forward``): phases ``x`` -> ``angle(W e^{i pi x} + b) / pi``.  ``cos(pi x)``
  and ``sin(pi x)`` go through the *same* array as one call of shape ``(2, ..., in)``: two MVMs
  on the same conductances (real and imaginary part); the real bias is digital.
* **spiking** (``spiking``): a :class:`SpikeTrain` ``(steps, ..., in)`` of binary spikes drives
  the array directly (``binary_input``: no DAC), all steps of the layer in one crossbar call
  (the input train is complete when the previous layer is done); resonate-and-fire neurons
  integrate the column outputs on a fixed grid of ``steps_per_cycle`` steps per cycle.  Reads
  are event-driven: a step (or a convolution patch) without any input spike is not read, so
  it adds no output noise; this also skips most of the work in sparse layers.  The bias is a
  digital charge ``b`` delivered at phase 0 of the layer's input reference every cycle.

Convolutions have no bias; ``pool > 1`` adds min-pooling: ``-maxpool(-x)`` over phases in the
atemporal mode, the first spike of each cycle among the pool's neurons in the spiking mode (the
earliest spike is the smallest phase).

:class:`PhasorNet` is the image classifier: images ``(B, 784)`` in ``[0, 1]`` -> phases
``x = s * image`` with fixed random signs ``s in {-1, +1}`` (the authors' "dot" projection;
background pixels sit at phase 0) -> optional :class:`PhasorConv2d` blocks -> :class:`PhasorLinear`
layers -> output phases, the true class at 0.5 (:func:`pcm_sim.functional.phasor.phasor_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.functional.phasor import (
    ResonateFireParams,
    clip_phases,
    complex_to_phase,
    decode_spikes,
    encode_phases,
    first_spike_per_cycle,
    layer_shift,
    phase_to_complex,
    resonate_and_fire,
)
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.conv import AnalogConv2d
from pcm_sim.profiles import DeviceProfile

__all__ = ["IMAGE_SHAPE", "PhasorConv2d", "PhasorLinear", "PhasorNet", "SpikeTrain", "read_events"]

IMAGE_SHAPE = (1, 28, 28)
"""Input images of :class:`PhasorNet`: one 28x28 channel."""
CHUNK_ELEMENTS = 1 << 24
"""Largest im2col block (elements) built at once in the spiking convolution (64 MB float32)."""


@dataclass(frozen=True)
class SpikeTrain:
    """Binary spikes ``(steps, ..., n)`` and the phase ``shift`` of their reference.

    A spike at step ``m`` encodes phase ``wrap(2 m / S - shift - 1)`` (see
    :func:`pcm_sim.functional.phasor.decode_spikes`).
    """

    spikes: Tensor
    shift: float


@contextmanager
def _binary_rows(linear: AnalogLinear) -> Iterator[None]:
    """Drive ``linear``'s rows with spikes (no DAC) for the duration of the block."""
    previous = linear.binary_input
    linear.binary_input = True
    try:
        yield
    finally:
        linear.binary_input = previous


def read_events(linear: AnalogLinear, spikes: Tensor) -> Tensor:
    """Column outputs ``W s`` of binary ``spikes`` ``(..., in)`` -> ``(..., out)``, event-driven.

    Rows of ``spikes`` without any spike are not read (their output is exactly 0); the others
    go through ``linear`` in one call with binary inputs.
    """
    flat = spikes.reshape(-1, spikes.shape[-1])  # (N, in)
    active = flat.amax(dim=-1) > 0  # (N,): any spike in the row
    with _binary_rows(linear):
        if bool(active.all()):
            out = linear(flat)  # (N, out)
        else:
            index = active.nonzero().squeeze(1)
            out = flat.new_zeros(flat.shape[0], linear.out_features)
            if index.numel():
                out[index] = linear(flat[index])
    return out.reshape(*spikes.shape[:-1], linear.out_features)


def _bias_charge(bias: Tensor, steps: int, shift: float, params: ResonateFireParams) -> Tensor:
    """Charge ``b`` at phase 0 of the reference ``shift`` every cycle: ``(steps, out)``."""
    cycles = math.ceil(steps / params.steps_per_cycle)
    zero = torch.zeros(1, device=bias.device)
    train = encode_phases(zero, cycles, params, shift)[:steps]  # (steps, 1)
    return train * bias


class PhasorLinear(nn.Module):
    """Dense phasor layer ``x' = angle(W e^{i pi x} + b) / pi`` with ``W`` on an AnalogLinear.

    Args:
        in_features, out_features: sizes.
        bias: a real, digital bias ``b`` (initialised to 1).
        profile: device profile of the synapses (for deploy / HWA training).
        generator: draws the Glorot-uniform initial weights (the authors' initialiser).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        profile: DeviceProfile | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.synapses = AnalogLinear(in_features, out_features, bias=False, profile=profile)
        with torch.no_grad():
            nn.init.xavier_uniform_(self.synapses.weight, generator=generator)
        self.bias = nn.Parameter(torch.ones(out_features)) if bias else None
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        """Atemporal: phases ``(..., in)`` (clipped to [-1, 1]) -> phases ``(..., out)``."""
        cos, sin = phase_to_complex(clip_phases(x))
        y = self.synapses(torch.stack([cos, sin]))  # (2, ..., out): both parts, same array
        real = y[0] if self.bias is None else y[0] + self.bias
        return complex_to_phase(real, y[1])

    @torch.no_grad()
    def spiking(self, train: SpikeTrain, params: ResonateFireParams) -> SpikeTrain:
        """Spiking: input spikes ``(steps, ..., in)`` -> output spikes ``(steps, ..., out)``."""
        drive = read_events(self.synapses, train.spikes)  # (steps, ..., out)
        if self.bias is not None:
            charge = _bias_charge(self.bias.detach(), drive.shape[0], train.shift, params)
            drive = drive + charge.view(drive.shape[0], *([1] * (drive.dim() - 2)), -1)
        return SpikeTrain(resonate_and_fire(drive, params), train.shift + layer_shift(params))


class PhasorConv2d(nn.Module):
    """Phasor convolution (no bias) with optional min-pooling; kernel on an AnalogConv2d.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as ``nn.Conv2d``.  Zero
            padding contributes nothing (the phasor 0, not phase 0) in both modes.
        pool: min-pooling window and stride (1 = none).
        profile: device profile of the synapses; generator: Glorot-uniform initial kernel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        pool: int = 1,
        profile: DeviceProfile | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool: expected >= 1, got {pool}")
        self.synapses = AnalogConv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=False, profile=profile
        )
        weight = self.synapses.linear.weight  # (out, in * k * k)
        with torch.no_grad():
            fan_in, fan_out = weight.shape[1], out_channels * kernel_size * kernel_size
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        self.pool = pool

    def _min_pool(self, x: Tensor) -> Tensor:
        if self.pool == 1:
            return x
        lead = x.shape[:-3]
        pooled = -F.max_pool2d(-x.reshape(-1, *x.shape[-3:]), self.pool)  # (N, C, H', W')
        return pooled.reshape(*lead, *pooled.shape[-3:])

    def forward(self, x: Tensor) -> Tensor:
        """Atemporal: phases ``(..., C, H, W)`` -> phases ``(..., out, H', W')``."""
        cos, sin = phase_to_complex(clip_phases(x))
        y = self.synapses(torch.stack([cos, sin]))  # (2, ..., out, H', W'): same array
        return self._min_pool(complex_to_phase(y[0], y[1]))

    def _drive(self, spikes: Tensor) -> Tensor:
        """Column outputs of every patch: ``(steps, B, C, H, W)`` -> ``(steps, B, out, H', W')``."""
        conv = self.synapses
        kh, kw = conv.kernel_size
        c_in = conv.in_channels
        h, w = spikes.shape[-2:]
        h_out, w_out = conv.output_size(h, w)
        frames = spikes.reshape(-1, c_in, h, w)  # (N, C, H, W)
        per_frame = c_in * kh * kw * h_out * w_out
        chunk = max(1, CHUNK_ELEMENTS // per_frame)
        out = frames.new_empty(frames.shape[0], conv.out_channels, h_out, w_out)
        for start in range(0, frames.shape[0], chunk):
            cols = conv.patches(frames[start : start + chunk])  # (n, L, Ckk)
            y = read_events(conv.linear, cols)  # (n, L, out)
            out[start : start + chunk] = y.transpose(1, 2).reshape(
                -1, conv.out_channels, h_out, w_out
            )
        return out.reshape(*spikes.shape[:-3], conv.out_channels, h_out, w_out)

    @torch.no_grad()
    def spiking(self, train: SpikeTrain, params: ResonateFireParams) -> SpikeTrain:
        """Spiking: ``(steps, ..., C, H, W)`` spikes -> ``(steps, ..., out, H'', W'')`` spikes."""
        spikes = resonate_and_fire(self._drive(train.spikes), params)
        shift = train.shift + layer_shift(params)
        if self.pool > 1:
            lead = spikes.shape[:-3]
            merged = F.max_pool2d(spikes.reshape(-1, *spikes.shape[-3:]), self.pool)  # pool OR
            spikes = merged.reshape(*lead, *merged.shape[-3:])
            spikes = first_spike_per_cycle(spikes, params, shift)
        return SpikeTrain(spikes, shift)


class PhasorNet(nn.Module):
    """Sign-flip encoder, phasor convolutions (optional), dense phasor layers.

    Args:
        conv: per block ``{"channels", "kernel", "padding", "pool"}`` (may be empty).
        hidden: widths of the hidden dense layers; classes: output phases.
        generator: draws the encoder signs and the initial weights.
    """

    def __init__(
        self,
        conv: list[dict[str, int]],
        hidden: list[int],
        classes: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.register_buffer(
            "signs", 2.0 * torch.randint(0, 2, IMAGE_SHAPE, generator=generator).float() - 1.0
        )
        channels, height = IMAGE_SHAPE[0], IMAGE_SHAPE[1]
        blocks: list[nn.Module] = []
        for spec in conv:
            k, pad, pool = (
                int(spec["kernel"]),
                int(spec.get("padding", 0)),
                int(spec.get("pool", 1)),
            )
            blocks.append(
                PhasorConv2d(channels, int(spec["channels"]), k, 1, pad, pool, generator=generator)
            )
            channels, height = int(spec["channels"]), (height + 2 * pad - k + 1) // pool
        width = channels * height * height if conv else math.prod(IMAGE_SHAPE)
        for size in [*hidden, classes]:
            blocks.append(PhasorLinear(width, size, generator=generator))
            width = size
        self.blocks = nn.ModuleList(blocks)
        self.classes = classes

    def encode(self, images: Tensor) -> Tensor:
        """``(B, 784)`` in [0, 1] -> phases ``(B, 1, 28, 28)`` in [-1, 1]."""
        signs: Tensor = self.signs  # type: ignore[assignment]
        return clip_phases(images.reshape(-1, *IMAGE_SHAPE) * signs)

    def forward(self, images: Tensor) -> Tensor:
        """Atemporal execution: ``(B, 784)`` -> output phases ``(B, classes)``."""
        x = self.encode(images)
        for block in self.blocks:
            if isinstance(block, PhasorLinear) and x.dim() > 2:
                x = x.flatten(start_dim=1)  # (B, C*H*W)
            x = block(x)
        return x

    @torch.no_grad()
    def spiking(self, images: Tensor, params: ResonateFireParams, cycles: int) -> Tensor:
        """Spiking execution: ``(B, 784)`` -> output phases of each complete cycle ``(c, B, K)``."""
        train = SpikeTrain(encode_phases(self.encode(images), cycles, params), 0.0)
        for block in self.blocks:
            if isinstance(block, PhasorLinear) and train.spikes.dim() > 3:
                train = SpikeTrain(train.spikes.flatten(start_dim=2), train.shift)  # (T, B, CHW)
            train = block.spiking(train, params)  # type: ignore[operator]
        return decode_spikes(train.spikes, params, train.shift)
