"""Every read of a programmed array, as pure functions of the device state and a noise source.

A weight matrix ``(in, out)`` sits on ``R = ceil(in / rows)`` row tiles of near-equal size (sizes
differ by at most one, as aihwkit splits; shorter tiles are zero-padded so all tiles run in one
batched matmul, :class:`TileLayout`).  At time ``t`` a tile ``k`` holds normalized mean weights
``W_k`` (drifted, see :mod:`pcm_sim.crossbar.mapping`) and 1/f read-noise variances ``V_k``
(devices of a cell add in quadrature), :class:`ReadState`.  A forward read of DAC codes ``u_k``:

    ``y_k = ADC( u_k @ (W_k + sqrt(V_k) Z) + out_noise k Z' )``        (normalized units)
    ``y   = gain * s * unit * sum_k y_k``,   ``gain = w_max * alpha``

(:mod:`pcm_sim.crossbar.periphery` for ``s``, ``k`` and ``unit``).  With ``per_sample: false`` one
noisy array read ``Z`` serves every sample of the call; with ``per_sample: true`` each sample gets
the exact per-output law ``sqrt(u^2 @ V) Z`` (one extra matmul).  A transposed read drives the
columns with ``e`` and senses the rows (column tiles of ``cols`` summed after their ADCs).

Drift compensation (aihwkit's semantics): right after programming and at time ``t`` every row is
read alone with a full-scale one-hot input through the whole analog path (read noise, output
noise, ADC); ``alpha = mean|y_0| / mean|y_t|`` (``global``) or the same ratio per column
(``column``).  :func:`one_hot_readout` computes these reads without the ``in x in`` matmul: the
row's own tile returns ``DAC(1) W[j] + noise``; under ``clip`` the other tiles add their output
noise through their ADCs (under ``scale`` their zero input has zero full scale and adds nothing).

:func:`sample_chip_weights` draws the weights a freshly programmed chip realises at ``t`` with the
same functions (used by hardware-aware training).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pcm_sim.crossbar import mapping, periphery
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

__all__ = [
    "MIN_READOUT",
    "Normals",
    "ReadState",
    "TileLayout",
    "compensation_readout",
    "forward_read",
    "one_hot_readout",
    "read_state",
    "sample_chip_weights",
    "transposed_read",
]

MIN_READOUT = 1e-4
"""Floor of a calibration readout (normalized units), so a dead array gives a finite alpha."""

Normals = Callable[[torch.Size], Tensor]


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
        return cls(in_features, n_tiles, sizes[0], index.reshape(-1).to(device), extra != 0)

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


@dataclass(frozen=True)
class ReadState:
    """Tiled mean weights, read-noise std and variance at one time, ``(R, rows, out)`` each."""

    w: Tensor
    sigma: Tensor
    var: Tensor
    has_read_noise: bool


def read_state(
    devices: pcm.ProgrammedDevices, t_s: float, profile: DeviceProfile, layout: TileLayout
) -> ReadState:
    """Drifted normalized weights and 1/f read noise of ``devices`` (2, N, in, out) at ``t_s``."""
    g_prog, nu = devices.g_prog_us, devices.nu
    g_drift = pcm.drifted_conductance(g_prog, nu, t_s, profile)
    sigma = pcm.read_noise_std(g_prog, g_drift, t_s, profile)
    span = profile.device.g_max_us - profile.device.g_min_us
    n = g_prog.shape[1]
    w_norm = mapping.normalized_weights(g_drift, profile)  # (in, out)
    var = sigma.square().sum(dim=(0, 1)) / (n * span) ** 2  # (in, out)
    return ReadState(
        w=layout.tile(w_norm),
        sigma=layout.tile(var.sqrt()),
        var=layout.tile(var),
        has_read_noise=bool(profile.read_noise.scale > 0),
    )


def _noisy_weights(state: ReadState, profile: DeviceProfile, normals: Normals) -> Tensor:
    """The array as one shared read sees it (``per_sample: false``), else the mean weights."""
    if state.has_read_noise and not profile.read_noise.per_sample:
        return torch.addcmul(state.w, state.sigma, normals(state.w.shape))  # (R, rows, out)
    return state.w


def forward_read(
    x: Tensor,
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    gain: Tensor,
    normals: Normals,
    binary_input: bool = False,
) -> Tensor:
    """Forward analog MVM of ``x`` ``(N, in)`` -> ``(N, out)`` (module docstring); ``gain`` ``()``
    or ``(out,)`` multiplies the normalized output."""
    per = profile.periphery
    u, full_scale, k = periphery.drive_lines(layout.split_inputs(x), per, binary_input)
    y = torch.matmul(u, _noisy_weights(state, profile, normals))  # (R, N, out), units of 1/k
    if state.has_read_noise and profile.read_noise.per_sample:
        std = torch.matmul(u.square(), state.var).sqrt_()  # (R, N, out)
        y.addcmul_(std, normals(y.shape))
    y, unit = periphery.convert_outputs(y, per, k, normals)
    if gain.dim() == 0:  # fold the scalar gain into the small per-sample factor
        y = y.mul_(full_scale * (unit * gain))
        return y.sum(dim=0) if layout.n_row_tiles > 1 else y[0]  # (N, out)
    y = y.mul_(full_scale * unit)
    return (y.sum(dim=0) if layout.n_row_tiles > 1 else y[0]) * gain  # (N, out)


def transposed_read(
    e: Tensor,
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    w_max: Tensor,
    alpha: Tensor,
    normals: Normals,
    binary_input: bool = False,
) -> Tensor:
    """Transposed analog MVM ``e @ W^T``: ``(N, out) -> (N, in)``, same devices and periphery.

    ``e`` drives the columns (column tiles of ``tile.cols``, summed digitally after their ADCs)
    and every row is sensed.  Global compensation multiplies the result by ``alpha w_max``;
    per-column factors are applied digitally to the column inputs (which then need the DAC).
    """
    out_f, in_f = e.shape[-1], layout.in_features
    gain = w_max * alpha
    if alpha.dim() > 0:  # per-column compensation: scale the column inputs digitally
        e = e * alpha
        gain = torch.as_tensor(w_max).to(e)
        binary_input = False
    cols = min(profile.tile.cols, out_f)
    n_ct = math.ceil(out_f / cols)
    pad = n_ct * cols - out_f
    u = F.pad(e, (0, pad)).reshape(e.shape[0], n_ct, cols).transpose(0, 1)  # (C, N, cols)
    per = profile.periphery
    u, full_scale, k = periphery.drive_lines(u, per, binary_input)

    def by_column_tile(m: Tensor) -> Tensor:
        m = F.pad(layout.untile(m), (0, pad))  # (in, C*cols), rows in input order
        return m.reshape(in_f, n_ct, cols).permute(1, 2, 0)  # (C, cols, in)

    y = torch.matmul(u, by_column_tile(_noisy_weights(state, profile, normals)))  # (C, N, in)
    if state.has_read_noise and profile.read_noise.per_sample:
        std = torch.matmul(u.square(), by_column_tile(state.var)).sqrt_()  # (C, N, in)
        y.addcmul_(std, normals(y.shape))
    y, unit = periphery.convert_outputs(y, per, k, normals)
    return y.mul_(full_scale * unit).sum(dim=0) * gain  # (N, in): column tiles summed


def one_hot_readout(
    state: ReadState, layout: TileLayout, profile: DeviceProfile, normals: Normals
) -> Tensor:
    """``|y|`` ``(in, out)`` of each row read alone with a full-scale one-hot input (normalized)."""
    per = profile.periphery
    own = torch.ones(1, 1, 1, dtype=state.w.dtype, device=state.w.device)
    amplitude, full_scale, k = periphery.drive_lines(own, per, binary_input=False)
    a = float(amplitude.reshape(()))  # DAC code of a full-scale 1
    y = _noisy_weights(state, profile, normals) * a  # (R, rows, out), units of 1/k
    if state.has_read_noise and profile.read_noise.per_sample:
        y.addcmul_(state.sigma * abs(a), normals(y.shape))
    y, unit = periphery.convert_outputs(y, per, k, normals)
    scale = float(full_scale) * unit
    y = y * scale
    others = layout.n_row_tiles - 1
    if others and per.input_policy == "clip" and per.output_noise:
        idle = torch.zeros(others, *y.shape, dtype=y.dtype, device=y.device)
        idle, _ = periphery.convert_outputs(idle, per, k, normals)  # zero input: noise + ADC
        y = y + idle.sum(dim=0) * scale
    return layout.untile(y).abs()


def compensation_readout(
    state: ReadState, layout: TileLayout, profile: DeviceProfile, normals: Normals
) -> Tensor:
    """Mean one-hot readout: ``()`` (``global``) or ``(out,)`` (``column``), floored."""
    out = one_hot_readout(state, layout, profile, normals)  # (in, out)
    if profile.compensation.mode == "column":
        return out.mean(dim=0).clamp(min=MIN_READOUT)
    return out.mean().clamp(min=MIN_READOUT)


def sample_chip_weights(
    weight_in_out: Tensor, profile: DeviceProfile, t_s: float, generator: torch.Generator
) -> Tensor:
    """One draw of the weights ``(in, out)`` a chip programmed with ``weight_in_out`` realises
    at ``t_s``: programming (noise, drift exponents, gains, faults, levels), drift, one fresh
    1/f read, and the profile's compensation measured through the periphery, exactly as a
    :class:`~pcm_sim.crossbar.tile.CrossbarArray` does.  No gradient."""
    with torch.no_grad():
        weight = weight_in_out.detach().float()
        layout = TileLayout.build(weight.shape[0], profile.tile.rows, weight.device)

        def normals(shape: torch.Size) -> Tensor:
            return torch.randn(shape, generator=generator, dtype=weight.dtype, device=weight.device)

        w_max = mapping.weight_scale(weight, profile)
        targets = mapping.conductance_targets(weight, w_max, profile)
        devices = pcm.program_devices(targets, profile, generator)
        state = read_state(devices, t_s, profile, layout)
        alpha = torch.ones((), dtype=weight.dtype, device=weight.device)
        if profile.compensation.mode != "none":
            at_zero = read_state(devices, 0.0, profile, layout)
            baseline = compensation_readout(at_zero, layout, profile, normals)
            alpha = baseline / compensation_readout(state, layout, profile, normals)
        w_read = layout.untile(_noisy_weights(state, profile, normals))  # (in, out)
        if state.has_read_noise and profile.read_noise.per_sample:
            w_read = torch.addcmul(w_read, layout.untile(state.sigma), normals(w_read.shape))
        return w_read * w_max * alpha
