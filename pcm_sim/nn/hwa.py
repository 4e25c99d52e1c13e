"""Hardware-aware training through the converters: a differentiable model of a tile's ADC.

With ``enable_hwa(..., converters=True)`` a training forward computes each row tile's partial
output in the ADC's units and converts it as the chip does, so the network learns to keep its
outputs in range and to live with the ADC step.  For tile ``k`` of the input rows, with ``s``
the DAC full scale of the input vector (``max |x|`` under ``scale``, ``input_range`` under
``clip``, 1 for spikes) of the tile's part of the input vector and ``w_k`` the weight scale mapped
to ``g_max`` (per tile, per column, or per column of the tile):

    ``v_k = (x_k / s) @ (W_k / w_k) [+ out_noise N(0, 1)]``            (normalized units)
    ``y   = sum_k w_k s * q(v_k)``

``q`` saturates at ``+-output_range`` (zero gradient outside the range) and rounds to the ADC step
``output_range / (2^(b-1) - 1)`` with a straight-through gradient.  Under iterative bound
management the chip re-reads a saturated (tile, sample) with its input halved ``m`` times, so the
range and the step both grow by ``2^m``, ``m`` the smallest count that brings the vector in range
(capped as the chip caps it); ``q`` uses that range and step instead of saturating.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pcm_sim.crossbar import periphery, reads
from pcm_sim.profiles import DeviceProfile

__all__ = ["through_converters"]


def _max_reduction(profile: DeviceProfile) -> float:
    """The largest bound-management reduction the chip reaches (see ``reads.forward_read``)."""
    limit = periphery.bound_management_limit(profile.periphery)
    factor = 1.0
    while factor <= limit:
        factor *= 2.0
    return factor


def through_converters(
    x: Tensor,
    weight_in_out: Tensor,
    w_max: Tensor,
    profile: DeviceProfile,
    binary_input: bool,
    noise: torch.Generator | None,
) -> Tensor:
    """``(..., in) -> (..., out)``: ``x @ W`` through each tile's ADC (module docstring).

    ``w_max``: ``()``, ``(out,)``, ``(in, 1)`` or ``(in, out)``, as ``mapping.weight_scale``;
    ``noise``: a generator to add the periphery's output noise before the ADC, or ``None``.
    Differentiable in ``x``, ``weight_in_out`` and ``w_max``.
    """
    per = profile.periphery
    in_f, out_f = weight_in_out.shape
    layout = reads.TileLayout.build(in_f, profile.tile.rows, x.device)
    tiles = layout.split_inputs(x.reshape(-1, in_f))  # (R, N, rows)
    full_scale: Tensor | float = 1.0
    if not binary_input and per.input_policy == "scale":
        full_scale = tiles.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)  # (R, N, 1)
    elif not binary_input:
        full_scale = per.input_range
        tiles = tiles.clamp(-full_scale, full_scale)
    scale = reads.tile_weight_scale(w_max, layout, profile)  # (), (out,) or (R, 1, 1)
    v = torch.matmul(tiles / full_scale, layout.tile(weight_in_out) / scale)  # (R, N, out)
    if noise is not None and per.output_noise:
        v = v + per.output_noise * torch.randn(
            v.shape, generator=noise, dtype=v.dtype, device=v.device
        )
    if per.output_range:
        bound = torch.full_like(v[..., :1], per.output_range)  # (R, N, 1)
        if per.bound_management == "iterative":
            peak = v.detach().abs().amax(dim=-1, keepdim=True) / per.output_range
            halvings = torch.log2(peak.clamp(min=1.0)).ceil()
            bound = bound * torch.exp2(halvings).clamp(max=_max_reduction(profile))
        v = torch.maximum(torch.minimum(v, bound), -bound)
        if per.adc_bits:
            step = bound / periphery.converter_levels(per.adc_bits)
            v = v + (torch.round(v / step) * step - v).detach()
    y = (v * full_scale * scale).sum(dim=0)  # (N, out)
    return y.reshape(*x.shape[:-1], out_f)
