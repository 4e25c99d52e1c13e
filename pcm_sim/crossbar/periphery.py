"""Periphery: DAC input conversion, output noise and ADC, in normalized units.

Inputs are scaled to ``[-1, 1]`` before the DAC: with ``input_policy: scale`` each sample (and
each row tile) is divided by its own ``max |x|`` (aihwkit's abs-max noise management) so nothing
saturates; with ``input_policy: clip`` the fixed ``input_range`` maps to full scale and larger
inputs saturate at +-1.  A ``b``-bit signed converter has ``L = 2^(b-1) - 1`` levels per sign:
``q(u) = round(u L) / L``.  Outputs are in units of full-scale weight times full-scale input;
the ADC saturates at ``+-output_range`` and rounds to steps of ``output_range / L``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pcm_sim.profiles import PeripheryParams

__all__ = ["adc", "converter_levels", "dac", "input_scale"]

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


def dac(x_normalized: Tensor, periphery: PeripheryParams) -> Tensor:
    """Clip to ``[-1, 1]`` and quantize to the DAC's levels (no-op for ``dac_bits = 0``).

    Works in place on ``x_normalized`` (a fresh tensor from the caller).
    """
    x = x_normalized.clamp_(-1.0, 1.0)
    if periphery.dac_bits:
        levels = converter_levels(periphery.dac_bits)
        x = x.mul_(levels).round_().div_(levels)
    return x


def adc(y: Tensor, periphery: PeripheryParams) -> Tensor:
    """Saturate at ``+-output_range`` and quantize to ``adc_bits`` (ideal where 0), in place."""
    if periphery.output_range:
        y = y.clamp_(-periphery.output_range, periphery.output_range)
        if periphery.adc_bits:
            step = periphery.output_range / converter_levels(periphery.adc_bits)
            y = y.div_(step).round_().mul_(step)
    return y
