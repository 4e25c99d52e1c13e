"""Row tiling of a weight matrix: which input row sits in which slot of which row tile.

A weight matrix ``(in, out)`` sits on ``R = ceil(in / rows)`` row tiles of near-equal size (sizes
differ by at most one, as aihwkit splits); shorter tiles are zero-padded so all tiles run in one
batched matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["TileLayout"]


@dataclass(frozen=True)
class TileLayout:
    """Row tiling of ``in_features`` inputs on tiles of at most ``max_rows`` rows.

    ``row_index`` ``(R * rows,)``: slot ``(k, r)`` holds input row ``row_index[k * rows + r]``;
    index ``in_features`` is a zero row (padding).
    """

    in_features: int
    n_row_tiles: int
    rows: int
    row_index: Tensor
    padded: bool
    sizes: tuple[int, ...]

    @classmethod
    def build(cls, in_features: int, max_rows: int, device: torch.device) -> TileLayout:
        """Near-equal row tiles of at most ``max_rows`` rows, as aihwkit splits."""
        n_tiles = math.ceil(in_features / max_rows)
        base, extra = divmod(in_features, n_tiles)
        sizes = [base + (k < extra) for k in range(n_tiles)]
        index = torch.full((n_tiles, sizes[0]), in_features, dtype=torch.long)
        start = 0
        for k, size in enumerate(sizes):
            index[k, :size] = torch.arange(start, start + size)
            start += size
        flat = index.reshape(-1).to(device)
        return cls(in_features, n_tiles, sizes[0], flat, extra != 0, tuple(sizes))

    @property
    def tile_of_row(self) -> Tensor:
        """``(in,)``: the row tile of every input row."""
        tiles = torch.arange(self.n_row_tiles, device=self.row_index.device)
        owner = tiles.repeat_interleave(self.rows)  # (R*rows,)
        return owner[self.row_index < self.in_features]

    def per_tile(self, per_row: Tensor) -> Tensor:
        """``(in, ...)`` values constant within a tile -> ``(R, 1, ...)`` (first row of each)."""
        return self.tile(per_row.reshape(self.in_features, -1))[:, :1]

    def ir_drop_ramp(self, dtype: torch.dtype) -> Tensor:
        """``(R, 1, rows)``: ``1 - (1 - j / n)^2`` for row ``j`` of a tile of ``n`` rows (aihwkit's
        IR-drop input weighting); 0 on padding slots."""
        j = torch.arange(self.rows, dtype=dtype, device=self.row_index.device)
        n = torch.tensor(self.sizes, dtype=dtype, device=j.device).reshape(-1, 1)
        ramp = 1.0 - (1.0 - j / n).square()  # (R, rows)
        return torch.where(j < n, ramp, torch.zeros_like(ramp)).unsqueeze(1)

    def tile(self, matrix: Tensor) -> Tensor:
        """``(in, out) -> (R, rows, out)``."""
        if self.padded:
            matrix = F.pad(matrix, (0, 0, 0, 1))[self.row_index]
        return matrix.reshape(self.n_row_tiles, self.rows, matrix.shape[-1]).contiguous()

    def untile(self, tiled: Tensor) -> Tensor:
        """``(R, rows, out) -> (in, out)`` (padding slots dropped)."""
        flat = tiled.reshape(-1, tiled.shape[-1])
        return flat[self.row_index < self.in_features] if self.padded else flat

    def split_inputs(self, flat: Tensor) -> Tensor:
        """``(N, in) -> (R, N, rows)``."""
        if self.padded:
            flat = F.pad(flat, (0, 1))[:, self.row_index]  # (N, R*rows)
        return flat.reshape(flat.shape[0], self.n_row_tiles, self.rows).transpose(0, 1)
