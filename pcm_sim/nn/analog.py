"""Analog layers: ``AnalogLinear`` and ``AnalogConv2d``, plus ``deploy`` and ``drift_to``.

A layer has three modes:

* software (default): ``y = x W^T + b`` with plain float weights; during training, optional
  hardware-aware noise injection (:func:`enable_hwa`) replaces ``W`` by one fresh sample of the
  weights the profile's chip would realise at ``t_hwa`` (programming noise, drift and its spread,
  1/f read noise, faults, global compensation) with the gradient of the clean weights
  (``W_noisy = W + (W_sample - W).detach()``); optionally also the periphery's output noise
  on every MVM, ``y += out_noise * sqrt(n_tiles) * w_max * s * N(0, 1)`` with ``s`` the DAC full
  scale of the input vector (``max |x|`` under the ``scale`` policy, ``input_range`` under
  ``clip``, 1 for spikes), as the crossbar adds it (see :mod:`pcm_sim.crossbar.tile`);
* analog, ``backend="pcm-sim"``: the weights are programmed onto a :class:`CrossbarArray`;
* analog, ``backend="aihwkit"``: the weights are programmed onto aihwkit inference tiles built
  from the same profile.

In analog mode the gradient passes straight through: ``y = y_ideal + (y_analog - y_ideal)``
with the difference detached, so training through the chip (hardware in the loop) works.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.crossbar import mapping
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["AnalogConv2d", "AnalogLinear", "analog_layers", "deploy", "drift_to", "enable_hwa"]

Backend = Literal["pcm-sim", "aihwkit"]


def _layer_seed(seed: int, index: int) -> int:
    """A distinct, reproducible seed for the ``index``-th analog layer of a deployment."""
    return (seed * 1_000_003 + index * 7_919 + 17) % (2**62)


class AnalogLinear(nn.Module):
    """``y = x W^T + b`` whose ``W`` (``(out, in)``) can live on simulated PCM crossbars.

    Args:
        in_features, out_features: sizes; inputs are ``(..., in_features)``.
        bias: a digital bias (never on the array).
        profile: device profile (name, path or object) used by :func:`deploy` and HWA training.
        backend: ``pcm-sim`` (our vectorized crossbar) or ``aihwkit``.
        binary_input: inputs are spikes in {0, 1} and drive rows without a DAC.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        profile: str | DeviceProfile | None = None,
        backend: Backend = "pcm-sim",
        binary_input: bool = False,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"sizes: expected >= 1, got {in_features}x{out_features}")
        if backend not in ("pcm-sim", "aihwkit"):
            raise ValueError(f"backend: expected 'pcm-sim' or 'aihwkit', got {backend!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.profile = load_profile(profile) if profile is not None else None
        self.backend: Backend = backend
        self.binary_input = binary_input
        self.crossbar: CrossbarArray | None = None
        self.aihwkit_layer: Any = None
        self.hwa_generator: torch.Generator | None = None
        self.hwa_t_s = 0.0
        self.hwa_output_noise = False
        self.hwa_scale_gradient = False
        self._held_hwa_weight: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weights and bias, as ``nn.Linear``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def is_analog(self) -> bool:
        """True once the layer is programmed onto a chip."""
        return self.crossbar is not None or self.aihwkit_layer is not None

    def extra_repr(self) -> str:
        mode = f"analog[{self.backend}]" if self.is_analog else "software"
        return (
            f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}, {mode}"
        )

    def program(self, profile: DeviceProfile, generator: torch.Generator) -> None:
        """Program the current weights onto a chip with ``profile`` (drawn from ``generator``)."""
        self.profile = profile
        weight_in_out = self.weight.detach().t()  # (in, out)
        if self.backend == "aihwkit":
            from pcm_sim.backends.aihwkit import AihwkitTile

            self.aihwkit_layer = AihwkitTile(weight_in_out, profile, generator)
        else:
            self.crossbar = CrossbarArray(weight_in_out, profile, generator)

    def drift_to(self, t_s: float) -> None:
        """Move the programmed layer to ``t_s`` seconds after programming (with compensation)."""
        if self.crossbar is not None:
            self.crossbar.drift_to(t_s)
        elif self.aihwkit_layer is not None:
            self.aihwkit_layer.drift_to(t_s)
        else:
            raise RuntimeError("drift_to: layer is not programmed; call pcm_sim.deploy first")

    def to_software(self) -> None:
        """Forget the programmed chip; the layer computes with its float weights again."""
        self.crossbar = None
        self.aihwkit_layer = None

    def _hwa_weight(self) -> Tensor:
        """One sample of the weights the chip realises at ``hwa_t_s`` (see module docstring)."""
        assert self.profile is not None and self.hwa_generator is not None
        profile, gen = self.profile, self.hwa_generator
        with torch.no_grad():
            w = self.weight.detach().t()  # (in, out)
            w_max = mapping.weight_scale(w, profile)
            targets = mapping.conductance_targets(w, w_max, profile)
            devices = pcm.program_devices(targets, profile, gen)
            g_t = pcm.conductance_at(devices, self.hwa_t_s, profile, gen)
            w_chip = mapping.normalized_weights(g_t, profile)
            if profile.compensation.mode != "none":
                ref = mapping.normalized_weights(targets, profile).abs().mean()
                w_chip = w_chip * (ref / w_chip.abs().mean().clamp(min=1e-12))
            delta = (w_chip * w_max).t() - self.weight  # (out, in): chip minus clean weights
        if not self.hwa_scale_gradient:
            return self.weight + delta
        # the same noise as an error in units of w_max times the live (differentiable) w_max
        live_w_max = mapping.weight_scale(self.weight.t(), profile).reshape(-1, 1)
        return self.weight + delta / w_max.reshape(-1, 1) * live_w_max

    @contextlib.contextmanager
    def held_hwa_sample(self) -> Iterator[None]:
        """Within the context, training forwards reuse one HWA weight sample.

        For layers read once per time step (a recurrent matrix): every read of a sequence sees the
        same chip, as on hardware, instead of a fresh chip per step.
        """
        if self.training and self.hwa_generator is not None and not self.is_analog:
            self._held_hwa_weight = self._hwa_weight()
        try:
            yield
        finally:
            self._held_hwa_weight = None

    def _hwa_output_noise(self, x: Tensor, shape: torch.Size) -> Tensor:
        """One draw of the periphery's output noise for outputs of ``shape`` (see module doc)."""
        assert self.profile is not None and self.hwa_generator is not None
        per = self.profile.periphery
        weight = self.weight if self.hwa_scale_gradient else self.weight.detach()
        w_max = mapping.weight_scale(weight.t(), self.profile)  # () or (out,)
        if self.binary_input:
            full_scale: Tensor | float = 1.0
        elif per.input_policy == "scale":
            full_scale = x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
        else:
            full_scale = per.input_range
        tiles = math.ceil(self.in_features / self.profile.tile.rows)
        std = per.output_noise * math.sqrt(tiles) * w_max * full_scale
        z = torch.randn(shape, generator=self.hwa_generator, device=x.device, dtype=x.dtype)
        return std * z

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"AnalogLinear: expected input (..., {self.in_features}), got {tuple(x.shape)}"
            )
        if not self.is_analog:
            if not (self.training and self.hwa_generator is not None):
                return F.linear(x, self.weight, self.bias)
            held = self._held_hwa_weight
            y_hwa = F.linear(x, held if held is not None else self._hwa_weight(), self.bias)
            if self.hwa_output_noise:
                y_hwa = y_hwa + self._hwa_output_noise(x, y_hwa.shape)
            return y_hwa
        if self.crossbar is not None:
            y = self.crossbar.mvm(x.detach(), binary_input=self.binary_input)
        else:
            y = self.aihwkit_layer.forward(x.detach())
        y = y.to(x.dtype)
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            ideal = F.linear(x, self.weight)
            y = ideal + (y - ideal).detach()
        if self.bias is None:
            return y
        return y + self.bias if torch.is_grad_enabled() else y.add_(self.bias)


class AnalogConv2d(nn.Module):
    """2-D convolution whose kernel ``(out, in, kh, kw)`` is an :class:`AnalogLinear` on im2col.

    Inputs ``(..., C, H, W)``; every output pixel is one MVM of its ``C*kh*kw`` patch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        profile: str | DeviceProfile | None = None,
        backend: Backend = "pcm-sim",
        binary_input: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.linear = AnalogLinear(
            in_channels * kernel_size * kernel_size,
            out_channels,
            bias=bias,
            profile=profile,
            backend=backend,
            binary_input=binary_input,
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(..., C, H, W) -> (..., out, H', W')``."""
        if x.dim() < 3 or x.shape[-3] != self.in_channels:
            raise ValueError(
                f"AnalogConv2d: expected input (..., {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        lead = x.shape[:-3]
        h, w = x.shape[-2:]
        images = x.reshape(-1, self.in_channels, h, w)  # (N, C, H, W)
        cols = F.unfold(images, self.kernel_size, padding=self.padding, stride=self.stride)
        h_out = (h + 2 * self.padding - self.kernel_size) // self.stride + 1
        w_out = (w + 2 * self.padding - self.kernel_size) // self.stride + 1
        y = self.linear(cols.transpose(1, 2))  # (N, L, out)
        y = y.transpose(1, 2).reshape(*lead, self.out_channels, h_out, w_out)
        return y


def analog_layers(module: nn.Module) -> list[AnalogLinear]:
    """Every :class:`AnalogLinear` in ``module`` (convolutions contribute their inner linear)."""
    return [m for m in module.modules() if isinstance(m, AnalogLinear)]


def deploy(
    module: nn.Module,
    profile: str | DeviceProfile,
    seed: int,
    backend: Backend | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Program every analog layer of ``module`` onto a chip; returns ``module`` in analog mode.

    Chip ``seed`` fixes every random draw (layer ``i`` uses its own generator derived from it).
    """
    prof = load_profile(profile)
    layers = analog_layers(module)
    if not layers:
        raise ValueError("deploy: the module has no AnalogLinear/AnalogConv2d layers")
    for index, layer in enumerate(layers):
        if backend is not None:
            layer.backend = backend
        dev = torch.device(device) if device is not None else layer.weight.device
        gen = torch.Generator(device=dev).manual_seed(_layer_seed(seed, index))
        layer.program(prof, gen)
    module.eval()
    return module


def drift_to(module: nn.Module, t_seconds: float) -> nn.Module:
    """Move every programmed layer of ``module`` to ``t_seconds`` after programming."""
    if not math.isfinite(t_seconds) or t_seconds < 0:
        raise ValueError(f"t_seconds: expected a finite time >= 0, got {t_seconds}")
    for layer in analog_layers(module):
        layer.drift_to(t_seconds)
    return module


def enable_hwa(
    module: nn.Module,
    profile: str | DeviceProfile | None,
    seed: int,
    t_s: float = 86_400.0,
    output_noise: bool = False,
    scale_gradient: bool = False,
) -> None:
    """Turn on hardware-aware noise injection (per training forward) for every analog layer.

    ``profile=None`` turns it off.  Weights are sampled as the chip would realise them at ``t_s``;
    ``output_noise`` also adds the profile's periphery output noise to every MVM.
    ``scale_gradient``: the noise is ``error * w_max`` with ``error`` in units of the layer's
    ``w_max`` (the programming, drift and output noise of a PCM array scale with it) and the
    gradient flows through ``w_max``, so training learns to keep the largest weight, which sets
    every device's noise, small (a reparameterisation of the chip's noise).
    """
    prof = load_profile(profile) if profile is not None else None
    for index, layer in enumerate(analog_layers(module)):
        if prof is None:
            layer.hwa_generator = None
            continue
        layer.profile = prof
        layer.hwa_t_s = t_s
        layer.hwa_output_noise = output_noise
        layer.hwa_scale_gradient = scale_gradient
        layer.hwa_generator = torch.Generator(device=layer.weight.device).manual_seed(
            _layer_seed(seed, index)
        )
