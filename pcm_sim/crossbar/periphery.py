"""Periphery: DAC input conversion, output noise and ADC, in normalized units.

Inputs are scaled to ``[-1, 1]`` before the DAC: with ``input_policy: scale`` each sample (and
each row tile) is divided by its own ``max |x|`` (aihwkit's abs-max noise management) so nothing
saturates; with ``input_policy: clip`` the fixed ``input_range`` maps to full scale and larger
inputs saturate at +-1.  A ``b``-bit signed converter has ``L = 2^(b-1) - 1`` levels per sign:
``q(u) = round(u L) / L``.  Outputs are in units of full-scale weight times full-scale input;
the ADC saturates at ``+-output_range`` and rounds to steps of ``output_range / L``.

Every analog read (forward, transposed, calibration) runs the converters in the integer domain:
:func:`drive_lines` turns inputs into DAC codes ``u = round(x k / s)`` (``k`` DAC levels, or 1,
``s`` the full-scale input), the array returns ``y_u = u @ W`` in units of ``1 / k`` of full
scale, :func:`add_output_noise` adds the analog output noise and :func:`convert_outputs` applies
the ADC to ``y_u``; the normalized output is then ``y_u * unit * s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pcm_sim.profiles import PeripheryParams

Normals = Callable[[torch.Size], Tensor]

__all__ = [
    "Converters",
    "add_output_noise",
    "bound_management_limit",
    "convert_outputs",
    "converter_levels",
    "drive_lines",
    "input_scale",
    "saturated",
    "uses_periphery",
]

MIN_INPUT_SCALE = 1e-12


def converter_levels(bits: int) -> int:
    """Levels per sign of a signed ``bits``-bit converter: ``2^(bits-1) - 1``."""
    return 2 ** (bits - 1) - 1


def input_scale(x: Tensor, periphery: PeripheryParams) -> Tensor:
    """Full-scale input per sample and row tile: ``max|x|`` over the last dim, or the fixed range.

    ``x``: ``(tiles, N, rows)``; returns ``(tiles, N, 1)`` (or a 0-d tensor for ``clip``).
    """
    if periphery.input_policy == "scale":
        return x.abs().amax(dim=-1, keepdim=True).clamp(min=MIN_INPUT_SCALE)
    return torch.tensor(periphery.input_range, dtype=x.dtype, device=x.device)


def uses_periphery(periphery: PeripheryParams) -> bool:
    """True when any converter or the output noise is on (else a read is a plain matmul)."""
    return bool(periphery.dac_bits or periphery.output_range or periphery.output_noise)


@dataclass(frozen=True)
class Converters:
    """The output converters of one read direction of a chip, per tile (and per line).

    ``out_range``: ADC range in normalized units, ``()`` (one for all), ``(T, 1, 1)`` (per tile)
    or ``(T, 1, lines)`` (per converter); 0 = unbounded.  ``adc_gain`` / ``adc_offset_lsb``:
    ``(T, 1, lines)`` per-converter gain and offset (in LSB) errors, or ``None``.
    """

    out_range: Tensor
    adc_gain: Tensor | None = None
    adc_offset_lsb: Tensor | None = None


def drive_lines(
    x: Tensor, periphery: PeripheryParams, binary_input: bool, reduction: Tensor | None = None
) -> tuple[Tensor, Tensor | float, float]:
    """DAC codes of ``x`` ``(..., N, lines)``: returns ``(u, full_scale, k)``.

    ``u = round(x k / (s r))`` clipped to ``[-k, k]``; ``full_scale`` ``s`` is ``(..., N, 1)``
    under ``scale`` or ``input_range`` under ``clip``; ``k`` the DAC levels per sign (1 for an
    ideal DAC); ``r`` the bound-management reduction (broadcastable, default 1).  Spikes
    (``binary_input``) and a profile without periphery drive the lines as ``x / r`` (``s = k =
    1``).  Returns a new tensor (or ``x`` itself when nothing applies).
    """
    if binary_input or not uses_periphery(periphery):
        return (x if reduction is None else x / reduction), 1.0, 1.0
    levels = converter_levels(periphery.dac_bits) if periphery.dac_bits else 0
    k = float(levels) if levels else 1.0
    full_scale: Tensor | float
    if periphery.input_policy == "scale":
        full_scale = input_scale(x, periphery)  # (..., N, 1): max |x| per line tile
        u = x * (k / full_scale if reduction is None else k / (full_scale * reduction))
    else:
        full_scale = periphery.input_range
        u = x * (k / full_scale) if reduction is None else x * (k / full_scale) / reduction
        u = u.clamp_(-k, k)
    if levels:
        u = u.round_()
    return u, full_scale, k


def bound_management_limit(periphery: PeripheryParams) -> float:
    """Bound management stops at the first reduction above this (aihwkit's ``max_bm_factor``,
    and ``max_bm_res`` times the DAC levels when there is a DAC)."""
    levels = converter_levels(periphery.dac_bits) if periphery.dac_bits else 0
    resolution = periphery.bm_max_resolution * levels if levels else math.inf
    return min(periphery.bm_max_factor, resolution)


def add_output_noise(y: Tensor, periphery: PeripheryParams, k: float, normals: Normals) -> Tensor:
    """Add the analog output noise ``out_noise * N(0, 1)`` (in units of ``1 / k``), in place."""
    if periphery.output_noise:
        y.add_(normals(y.shape), alpha=periphery.output_noise * k)
    return y


def saturated(y: Tensor, converters: Converters, k: float) -> Tensor:
    """``(..., N)``: True where an output of the vector exceeds its ADC's range (``y``: units of
    ``1 / k``, shape ``(..., N, lines)``)."""
    return (y.abs() > converters.out_range * k).any(dim=-1)


def convert_outputs(
    y: Tensor, periphery: PeripheryParams, k: float, converters: Converters
) -> tuple[Tensor, Tensor | float]:
    """ADC on ``y`` (units of ``1 / k`` of full scale), in place.

    Returns ``(y, unit)``: the normalized output is ``y * unit`` (times the input full scale);
    ``unit`` is the ADC step (a tensor when ranges differ per tile or converter).  Gain and
    offset errors act before rounding: ``code = round(y / step * gain + offset)``.
    """
    if not periphery.output_range:
        return y, 1.0 / k
    out_range = converters.out_range
    if periphery.adc_bits:
        adc_levels = converter_levels(periphery.adc_bits)
        step = out_range / adc_levels
        y = y.mul_(1.0 / k).div_(step)
        if converters.adc_gain is not None:
            y = y.mul_(converters.adc_gain)
        if converters.adc_offset_lsb is not None:
            y = y.add_(converters.adc_offset_lsb)
        y = y.round_().clamp_(-adc_levels, adc_levels)
        return y, step if step.dim() else float(step)
    y = y.mul_(1.0 / k)
    y = (
        torch.maximum(torch.minimum(y, out_range), -out_range)
        if out_range.dim()
        else y.clamp_(-float(out_range), float(out_range))
    )
    return y, 1.0
