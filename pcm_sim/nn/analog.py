"""The analog layer ``AnalogLinear``, plus ``deploy``, ``drift_to`` and ``enable_hwa``.

A layer has three modes:

* software (default): ``y = x W^T + b`` with plain float weights; during training, optional
  hardware-aware noise injection (:func:`enable_hwa`) replaces ``W`` by one fresh sample of the
  weights the profile's chip would realise at ``t_hwa``, drawn by the functions that program and
  read a chip (:func:`pcm_sim.crossbar.reads.sample_chip_weights`: programming noise, drift and
  its spread, 1/f read noise, faults, the profile's compensation measured through the
  periphery) with the gradient of the clean weights
  (``W_noisy = W + (W_sample - W).detach()``); optionally also the periphery's output noise
  on every MVM, ``y += out_noise * sqrt(n_tiles) * w_max * s * N(0, 1)`` with ``s`` the DAC full
  scale of the input vector (``max |x|`` under the ``scale`` policy, ``input_range`` under
  ``clip``, 1 for spikes), as the crossbar adds it (see :mod:`pcm_sim.crossbar.tile`);
* analog, ``backend="pcm-sim"``: the weights are programmed onto a :class:`CrossbarArray`, a
  value of (weights, profile, chip seed, layer index); every read (forward, transposed) and write
  (program-and-verify, :meth:`AnalogLinear.rewrite`) goes through it;
* analog, ``backend="aihwkit"``: aihwkit inference tiles built from the same profile.

Neuron modules, families, training and studies use only the public methods of this layer.  In
analog mode the gradient passes straight through (``y = y_ideal + (y_analog - y_ideal)``, the
difference detached), so training through the chip (hardware in the loop) works.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.crossbar import calibration, mapping, reads
from pcm_sim.crossbar.calibration import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_TOLERANCE_GMAX,
    VerifyReport,
    resolve_tolerance_us,
)
from pcm_sim.crossbar.streams import ChipStreams, stream_seed
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.nn.capture import layer_inputs
from pcm_sim.nn.hwa import through_converters
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["AnalogLinear", "analog_layers", "deploy", "drift_to", "enable_hwa"]

Backend = Literal["pcm-sim", "aihwkit"]


class AnalogLinear(nn.Module):
    """``y = x W^T + b`` whose ``W`` (``(out, in)``) can live on simulated PCM crossbars.

    Args:
        in_features, out_features: sizes; inputs are ``(..., in_features)``.
        bias: a digital bias (never on the array).
        profile: the :class:`DeviceProfile` used by :func:`deploy` and HWA training.
        backend: ``pcm-sim`` (our vectorized crossbar) or ``aihwkit``.
        binary_input: inputs are spikes in {0, 1} and drive rows without a DAC.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        profile: DeviceProfile | None = None,
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
        self.profile = profile
        self.backend: Backend = backend
        self.binary_input = binary_input
        self.crossbar: CrossbarArray | None = None
        self.aihwkit_layer: Any = None
        self.hwa_generator: torch.Generator | None = None
        self.hwa_t_s = 0.0
        self.hwa_output_noise = False
        self.hwa_scale_gradient = False
        self.hwa_converters = False
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

    @property
    def deployed_backend(self) -> Backend | None:
        """The backend of the programmed chip, or ``None`` in software mode."""
        if self.crossbar is not None:
            return "pcm-sim"
        return "aihwkit" if self.aihwkit_layer is not None else None

    def program(
        self, profile: DeviceProfile, streams: ChipStreams, backend: Backend | None = None
    ) -> None:
        """Program the current weights onto a new chip with ``profile``; any previous chip goes.

        ``streams`` names the chip's random draws; ``backend`` (default: the layer's configured
        backend, which is not changed) chooses pcm-sim crossbars or aihwkit tiles.
        """
        chosen = backend if backend is not None else self.backend
        if chosen not in ("pcm-sim", "aihwkit"):
            raise ValueError(f"backend: expected 'pcm-sim' or 'aihwkit', got {chosen!r}")
        self.to_software()
        self.profile = profile
        weight_in_out = self.weight.detach().t()  # (in, out)
        if chosen == "aihwkit":
            from pcm_sim.backends.aihwkit import AihwkitTile

            self.aihwkit_layer = AihwkitTile(weight_in_out, profile, streams)
        else:
            self.crossbar = CrossbarArray(weight_in_out, profile, streams)

    def drift_to(self, t_s: float) -> None:
        """Move the programmed layer to ``t_s`` seconds after programming (with compensation)."""
        chip = self.crossbar if self.crossbar is not None else self.aihwkit_layer
        if chip is None:
            raise RuntimeError("drift_to: layer is not programmed; call pcm_sim.deploy first")
        chip.drift_to(t_s)

    def to_software(self) -> None:
        """Forget the programmed chip; the layer computes with its float weights again."""
        self.crossbar = None
        self.aihwkit_layer = None

    def _chip(self, what: str) -> CrossbarArray:
        if self.crossbar is None:
            raise ValueError(f"{what}: the layer is not programmed on a pcm-sim crossbar")
        return self.crossbar

    def read_transposed(self, e: Tensor, binary_input: bool = False) -> Tensor:
        """``e @ W`` (``(..., out) -> (..., in)``, no bias), one transposed read on a chip;
        ``binary_input``: ``e`` holds unit pulses that drive the columns without a DAC."""
        if self.aihwkit_layer is not None:
            raise ValueError("read_transposed: needs the pcm-sim backend (aihwkit tiles have none)")
        if self.crossbar is None:
            return torch.matmul(e, self.weight.detach())
        return self.crossbar.mvm_transposed(e.detach(), binary_input=binary_input).to(e.dtype)

    def rewrite(
        self,
        weight: Tensor,
        tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> int:
        """Write new weights ``(out, in)`` onto the chip (clipped to its ``+-w_max``).

        Devices whose target changed get one pulse and up to ``max_iterations`` verified
        re-writes (``0`` = open loop); the layer's float weights become the written ones.
        Returns the pulses spent.
        """
        crossbar = self._chip("rewrite")
        if weight.shape != self.weight.shape:
            raise ValueError(
                f"weight: expected {tuple(self.weight.shape)}, got {tuple(weight.shape)}"
            )
        tol = resolve_tolerance_us(crossbar.profile, None, tolerance_gmax)
        before = int(crossbar.pulses.sum())
        crossbar.rewrite(weight.detach().t(), tol, max_iterations)
        w_in_out = weight.detach().t()
        self.weight.data.copy_(torch.clamp(w_in_out, -crossbar.w_max, crossbar.w_max).t())
        return int(crossbar.pulses.sum()) - before

    def program_and_verify(
        self,
        tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        reads_per_verify: int = 1,
    ) -> VerifyReport:
        """Write-verify every device of the chip (:func:`calibration.program_and_verify`)."""
        return calibration.program_and_verify(
            self._chip("program_and_verify"),
            tolerance_gmax=tolerance_gmax,
            max_iterations=max_iterations,
            reads_per_verify=reads_per_verify,
        )

    def chip_weight_scale(self) -> Tensor:
        """The chip's ``w_max`` (maps to g_max): ``()``, ``(out,)``, ``(in, 1)``, ``(in, out)``."""
        return self._chip("chip_weight_scale").w_max

    def chip_pulses(self) -> Tensor:
        """Programming pulses per device so far, ``(2, N, in, out)`` int32."""
        return self._chip("chip_pulses").pulses

    def chip_geometry(self) -> dict[str, int]:
        """Row/column tiles, rows per row tile and devices of the programmed crossbar."""
        crossbar = self._chip("chip_geometry")
        return {
            "n_row_tiles": crossbar.n_row_tiles,
            "n_col_tiles": crossbar.n_col_tiles,
            "n_tiles": crossbar.n_tiles,
            "rows": crossbar.rows,
            "n_devices": crossbar.n_devices,
        }

    def chip_state(self) -> dict[str, Any]:
        """The programmed crossbar's state (tensors and plain data), see :mod:`pcm_sim.nn.chips`."""
        return self._chip("chip_state").state_dict()

    def load_chip_state(self, state: dict[str, Any], profile: DeviceProfile) -> None:
        """Install a chip saved by :meth:`chip_state` (checked by the caller)."""
        self.to_software()
        self.profile = profile
        self.crossbar = CrossbarArray.from_state(state, profile, self.weight.device)

    def _apply(self, fn: Any, recurse: bool = True) -> AnalogLinear:
        """``module.to(device)`` also moves the programmed crossbar and the HWA generator."""
        super()._apply(fn, recurse)
        device = self.weight.device
        if self.crossbar is not None and self.crossbar.device != device:
            self.crossbar = self.crossbar.to(device)
        if self.hwa_generator is not None and self.hwa_generator.device != device:
            seed = self.hwa_generator.initial_seed()
            self.hwa_generator = torch.Generator(device=device).manual_seed(seed)
        return self

    def _w_max(self, differentiable: bool) -> Tensor:
        """``w_max`` of the current weights, crossbar layout: ``()``, ``(out,)``, ``(in, 1)`` or
        ``(in, out)`` (``tile_column``)."""
        assert self.profile is not None
        weight = self.weight if differentiable else self.weight.detach()
        rows = reads.TileLayout.build(self.in_features, self.profile.tile.rows, weight.device)
        return mapping.weight_scale(weight.t(), self.profile, rows.tile_of_row)

    def _hwa_weight(self) -> Tensor:
        """One sample of the weights the chip realises at ``hwa_t_s`` (see module docstring)."""
        assert self.profile is not None and self.hwa_generator is not None
        sample = reads.sample_chip_weights(
            self.weight.t(), self.profile, self.hwa_t_s, self.hwa_generator
        )
        delta = sample - self.weight.detach().t()  # (in, out): chip minus clean weights
        if not self.hwa_scale_gradient:
            return self.weight + delta.t()
        # the same noise as an error in units of w_max times the live (differentiable) w_max
        scaled = delta / self._w_max(False) * self._w_max(True)  # (in, out)
        return self.weight + scaled.t()

    def software_weight(self) -> Tensor:
        """The weight ``(out, in)`` a software forward uses: an HWA sample when training with it."""
        if not (self.training and self.hwa_generator is not None):
            return self.weight
        held = self._held_hwa_weight
        return held if held is not None else self._hwa_weight()

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

    def input_full_scale(self, x: Tensor) -> Tensor | float:
        """The DAC full scale ``s`` of each input vector ``x`` ``(..., in)``: ``max |x|``
        (``(..., 1)``) under the ``scale`` policy, ``input_range`` under ``clip``, 1 for spikes."""
        assert self.profile is not None
        per = self.profile.periphery
        if self.binary_input:
            return 1.0
        if per.input_policy == "scale":
            return x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
        return per.input_range

    def sample_hwa_output_noise(self, full_scale: Tensor | float, like: Tensor) -> Tensor:
        """One draw of the periphery's output noise for outputs shaped ``like``, input full
        scale ``full_scale`` (broadcastable): ``out_noise * sqrt(sum_k w_max_k^2) * s * N(0, 1)``
        over the row tiles ``k`` (``sqrt(tiles) * w_max`` for one scale); ``w_max`` per output
        broadcasts over the last dim."""
        assert self.profile is not None and self.hwa_generator is not None
        per = self.profile.periphery
        w_max = self._w_max(self.hwa_scale_gradient)  # (), (out,) or (in, 1) per row's tile
        tiles = math.ceil(self.in_features / self.profile.tile.rows)
        if w_max.dim() == 2:  # per tile: sqrt(sum_k w_max_k^2) over the row tiles
            rows = reads.TileLayout.build(self.in_features, self.profile.tile.rows, w_max.device)
            per_tile = rows.per_tile(w_max)  # (R, 1, 1 or out)
            w_max = per_tile.square().sum(dim=0).sqrt().reshape(-1).squeeze() / math.sqrt(tiles)
        std = per.output_noise * math.sqrt(tiles) * w_max * full_scale
        z = torch.randn(
            like.shape, generator=self.hwa_generator, device=like.device, dtype=like.dtype
        )
        return std * z

    @property
    def adds_hwa_converters(self) -> bool:
        """True when a training forward runs through the tiles' ADCs (:mod:`pcm_sim.nn.hwa`)."""
        return self.training and self.hwa_generator is not None and self.hwa_converters

    @property
    def adds_hwa_output_noise(self) -> bool:
        """True when a training forward adds the periphery's output noise (HWA)."""
        return self.training and self.hwa_generator is not None and self.hwa_output_noise

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"AnalogLinear: expected input (..., {self.in_features}), got {tuple(x.shape)}"
            )
        if not self.is_analog:
            if self.adds_hwa_converters:
                assert self.profile is not None
                noise = self.hwa_generator if self.hwa_output_noise else None
                y_conv = through_converters(
                    x,
                    self.software_weight().t(),
                    self._w_max(self.hwa_scale_gradient),
                    self.profile,
                    self.binary_input,
                    noise,
                )
                return y_conv if self.bias is None else y_conv + self.bias
            y_soft = F.linear(x, self.software_weight(), self.bias)
            if self.adds_hwa_output_noise:
                y_soft = y_soft + self.sample_hwa_output_noise(self.input_full_scale(x), y_soft)
            return y_soft
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


def analog_layers(module: nn.Module) -> list[AnalogLinear]:
    """Every :class:`AnalogLinear` in ``module`` (convolutions contribute their inner linear).

    The order (``module.modules()``) is the layer index of :func:`deploy` and of chip files."""
    return [m for m in module.modules() if isinstance(m, AnalogLinear)]


def deploy(
    module: nn.Module,
    profile: str | DeviceProfile,
    seed: int,
    backend: Backend | None = None,
    device: torch.device | str | None = None,
    calibration_input: Any = None,
) -> nn.Module:
    """Program every analog layer of ``module`` onto a new chip; returns ``module`` in analog mode.

    The chip is a value of (weights, profile, ``seed``): layer ``i`` draws from the streams
    ``(seed, i, ...)`` (:mod:`pcm_sim.crossbar.streams`).  Any previous chip is replaced;
    ``backend`` chooses this deployment's backend (default: each layer's own); ``device`` moves
    the module first.  A ``calibrated`` output range policy sets every ADC range right after
    programming from reads of each layer's inputs when ``module`` runs ``calibration_input`` in
    software, else of one-hot inputs (:meth:`CrossbarArray.calibrate_ranges`).  ``profile`` may
    be a name or path (the public entry point resolves it; layers take a ``DeviceProfile``).
    """
    prof = load_profile(profile)
    layers = analog_layers(module)
    if not layers:
        raise ValueError("deploy: the module has no AnalogLinear/AnalogConv2d layers")
    if device is not None:
        module.to(device)
    calibrated = prof.periphery.output_range_policy == "calibrated"
    inputs: list[Tensor | None] = [None] * len(layers)
    if calibrated and calibration_input is not None:
        for layer in layers:
            layer.to_software()
        inputs = list(layer_inputs(module, layers, calibration_input))
    for index, layer in enumerate(layers):
        layer.program(prof, ChipStreams(seed, index), backend)
        if calibrated and layer.crossbar is not None:
            layer.crossbar.calibrate_ranges(inputs[index], layer.binary_input)
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
    profile: DeviceProfile | None,
    seed: int,
    t_s: float = 86_400.0,
    output_noise: bool = False,
    scale_gradient: bool = False,
    converters: bool = False,
) -> None:
    """Turn on hardware-aware noise injection (per training forward) for every analog layer.

    ``profile=None`` turns it off.  Weights are sampled as the chip would realise them at ``t_s``;
    ``output_noise`` also adds the profile's periphery output noise to every MVM.
    ``scale_gradient``: the noise is ``error * w_max`` with ``error`` in units of the layer's
    ``w_max`` (the programming, drift and output noise of a PCM array scale with it) and the
    gradient flows through ``w_max``, so training learns to keep the largest weight, which sets
    every device's noise, small (a reparameterisation of the chip's noise).
    ``converters``: the forward runs each tile's partial output through the profile's ADC
    (saturation, or bound management's larger range, and rounding with a straight-through
    gradient; :mod:`pcm_sim.nn.hwa`), with the output noise before the ADC.
    """
    for index, layer in enumerate(analog_layers(module)):
        if profile is None:
            layer.hwa_generator = None
            continue
        layer.profile = profile
        layer.hwa_t_s = t_s
        layer.hwa_output_noise = output_noise
        layer.hwa_scale_gradient = scale_gradient
        layer.hwa_converters = converters
        layer.hwa_generator = torch.Generator(device=layer.weight.device).manual_seed(
            stream_seed("hwa", seed, index)
        )
