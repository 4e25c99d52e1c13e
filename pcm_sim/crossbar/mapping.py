"""Weight-to-conductance mapping for differential PCM cells.

A weight ``w`` (crossbar layout: ``(in, out)``, rows are inputs) maps to a differential pair with
``N`` devices per polarity, every device of the active polarity at

    ``G = g_min + |w| / w_max * (g_max - g_min)``,   the other polarity at ``g_min``,

and reads back as ``w = w_max * sum_i (G+_i - G-_i) / (N (g_max - g_min))``.  ``w_max`` is the
largest ``|w|`` of the layer (``scaling: layer``), of each output column (``scaling:
column``), of each row tile (``scaling: tile``, as aihwkit maps each tile on its own) or of each
column of each row tile (``tile_column``).
Device tensors have shape ``(2, N, in, out)``: polarity, device, row, column.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pcm_sim.profiles import DeviceProfile

__all__ = ["conductance_targets", "normalized_weights", "weight_scale"]

MIN_W_MAX = 1e-12


def weight_scale(
    weight_in_out: Tensor, profile: DeviceProfile, tile_of_row: Tensor | None = None
) -> Tensor:
    """``w_max``: ``()`` for layer scaling, ``(out,)`` for column scaling, ``(in, 1)`` for tile
    scaling (every row gets the largest ``|w|`` of its row tile) or ``(in, out)`` for
    ``tile_column`` (the largest ``|w|`` of its column within its row tile); ``tile_of_row``
    ``(in,)`` gives the tiles."""
    scaling = profile.weight_cell.scaling
    if scaling == "column":
        return weight_in_out.abs().amax(dim=0).clamp(min=MIN_W_MAX)
    if scaling in ("tile", "tile_column"):
        if tile_of_row is None:
            raise ValueError("weight_scale: tile scaling needs the row tiling (tile_of_row)")
        n_tiles = int(tile_of_row.max()) + 1 if tile_of_row.numel() else 1
        magnitude = weight_in_out.abs()  # (in, out)
        if scaling == "tile":
            magnitude = magnitude.amax(dim=1, keepdim=True)  # (in, 1)
        index = tile_of_row.unsqueeze(1).expand_as(magnitude)
        tile_max = magnitude.new_zeros(n_tiles, magnitude.shape[1])
        tile_max = tile_max.scatter_reduce(0, index, magnitude, "amax")  # (R, 1 or out)
        return tile_max.clamp(min=MIN_W_MAX)[tile_of_row]  # (in, 1) or (in, out)
    return weight_in_out.abs().amax().clamp(min=MIN_W_MAX)


def conductance_targets(weight_in_out: Tensor, w_max: Tensor, profile: DeviceProfile) -> Tensor:
    """Target conductances (µS), shape ``(2, N, in, out)``, for weights of shape ``(in, out)``."""
    dev = profile.device
    span = dev.g_max_us - dev.g_min_us
    w_rel = (weight_in_out / w_max).clamp(-1.0, 1.0)  # (in, out)
    g_pos = dev.g_min_us + w_rel.clamp(min=0.0) * span
    g_neg = dev.g_min_us + (-w_rel).clamp(min=0.0) * span
    n = profile.weight_cell.devices_per_polarity
    return torch.stack([g_pos, g_neg]).unsqueeze(1).expand(2, n, *weight_in_out.shape).clone()


def normalized_weights(conductance_us: Tensor, profile: DeviceProfile) -> Tensor:
    """Normalized weights ``sum_i (G+_i - G-_i) / (N (g_max - g_min))``.

    ``(2, N, in, out) -> (in, out)``.
    """
    span = profile.device.g_max_us - profile.device.g_min_us
    n = conductance_us.shape[1]
    summed = conductance_us.sum(dim=1)  # (2, in, out)
    return (summed[0] - summed[1]) / (n * span)
