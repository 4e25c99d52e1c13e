"""Every read of a programmed array, as pure functions of the device state and a noise source.

A weight matrix ``(in, out)`` sits on ``R = ceil(in / rows)`` row tiles of near-equal size (sizes
differ by at most one, as aihwkit splits; shorter tiles are zero-padded so all tiles run in one
batched matmul, :class:`TileLayout`).  At time ``t`` a tile ``k`` holds normalized mean weights
``W_k`` (drifted, see :mod:`pcm_sim.crossbar.mapping`) and 1/f read-noise variances ``V_k``
(devices of a cell add in quadrature), :class:`ReadState`.  A forward read of DAC codes ``u_k``:

    ``y_k = ADC_k( u_k @ (W_k + sqrt(V_k) Z) + out_noise k Z' )``      (units of 1 / k)
    ``y   = sum_k gain_k s_k unit_k r_k y_k``,   ``gain_k = w_max_k * alpha_k``

(:mod:`pcm_sim.crossbar.periphery` for the DAC full scale ``s_k``, the DAC levels ``k`` and the
ADC step ``unit_k``; ``r_k`` is the bound-management reduction of that tile and sample, 1 without
a re-read; ``w_max`` and ``alpha`` per layer, column, tile or column of a tile).  With
``per_sample: false`` one noisy array read ``Z`` serves every sample of the call; with
``per_sample: true`` each sample gets the exact per-output law ``sqrt(u^2 @ V) Z`` (one extra
matmul).  A transposed read drives the
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
    "analog_outputs",
    "compensation_readout",
    "draw_converters",
    "forward_read",
    "ir_drop_lines",
    "noisy_weights",
    "one_hot_readout",
    "read_state",
    "sample_chip_weights",
    "tile_weight_scale",
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


def noisy_weights(state: ReadState, profile: DeviceProfile, normals: Normals) -> Tensor:
    """The array as one shared read sees it (``per_sample: false``), else the mean weights."""
    if state.has_read_noise and not profile.read_noise.per_sample:
        return torch.addcmul(state.w, state.sigma, normals(state.w.shape))  # (R, rows, out)
    return state.w


def analog_outputs(
    u: Tensor,
    w_read: Tensor,
    state: ReadState,
    profile: DeviceProfile,
    k: float,
    normals: Normals,
    ir_lines: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Analog column outputs of row drives ``u`` ``(R, N, rows)`` before the ADC, ``(R, N, out)``
    in units of ``1 / k``: ``u @ W``, per-sample read noise, IR drop, output noise.

    IR drop (aihwkit's approximation, per output ``i`` of a tile of ``n`` rows, ``x = u / k``):
    ``a = (n / g_ratio) sum_j |W_ij| |x_j|``, ``c = a (a (0.05 a - 0.2) + 0.5)``,
    ``y_i -= ir_drop c sum_j W_ij u_j (1 - (1 - j / n)^2)``; ``ir_lines`` = (ramp ``(R, 1, rows)``,
    ``n`` ``(R, 1, 1)``).
    """
    per = profile.periphery
    y = torch.matmul(u, w_read)  # (R, N, out)
    if state.has_read_noise and profile.read_noise.per_sample:
        std = torch.matmul(u.square(), state.var).sqrt_()  # (R, N, out)
        y.addcmul_(std, normals(y.shape))
    if ir_lines is not None:
        ramp, n = ir_lines
        a = torch.matmul(u.abs(), w_read.abs()) * (n / (per.ir_drop_g_ratio * k))  # (R, N, out)
        c = a * (a * (0.05 * a - 0.2) + 0.5)
        y.sub_(c * torch.matmul(u * ramp, w_read), alpha=per.ir_drop)
    return periphery.add_output_noise(y, per, k, normals)


def ir_drop_lines(
    layout: TileLayout, profile: DeviceProfile, dtype: torch.dtype
) -> tuple[Tensor, Tensor] | None:
    """The IR-drop input ramp ``(R, 1, rows)`` and line lengths ``(R, 1, 1)``, or ``None``."""
    if not profile.periphery.ir_drop:
        return None
    n = torch.tensor(layout.sizes, dtype=dtype, device=layout.row_index.device)
    return layout.ir_drop_ramp(dtype), n.reshape(-1, 1, 1)


def forward_read(
    x: Tensor,
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    gain: Tensor,
    normals: Normals,
    converters: periphery.Converters,
    binary_input: bool = False,
) -> Tensor:
    """Forward analog MVM of ``x`` ``(N, in)`` -> ``(N, out)`` (module docstring).

    ``gain`` (``()``, ``(out,)``, ``(R, 1, 1)`` or ``(R, 1, out)``) multiplies the normalized
    output.  Iterative bound management re-reads, with the input halved again, only the (tile,
    sample) pairs whose outputs exceeded the ADC range; as in aihwkit, it stops at the first
    reduction ``r`` above ``bm_max_factor`` or above ``bm_max_resolution * k_dac``; outputs are
    scaled back by ``r`` after the ADC.  A row tile's column tiles share one test (a gap from
    aihwkit for layers wider than ``tile.cols``, see the README).
    """
    per = profile.periphery
    tiles = layout.split_inputs(x)  # (R, N, rows)
    u, full_scale, k = periphery.drive_lines(tiles, per, binary_input)
    w_read = noisy_weights(state, profile, normals)  # (R, rows, out)
    ir_lines = ir_drop_lines(layout, profile, w_read.dtype)
    y = analog_outputs(u, w_read, state, profile, k, normals, ir_lines)  # (R, N, out)
    reduction: Tensor | None = None
    if per.bound_management == "iterative" and per.output_range:
        reduction, y = _bound_management(
            tiles, y, w_read, state, profile, normals, ir_lines, k, converters, binary_input
        )
    y, unit = periphery.convert_outputs(y, per, k, converters)
    scale = full_scale * unit if reduction is None else full_scale * unit * reduction
    if gain.dim() == 0:  # fold the scalar gain into the small per-sample factor
        y = y.mul_(scale * gain)
        return y.sum(dim=0) if layout.n_row_tiles > 1 else y[0]  # (N, out)
    if gain.dim() == 1:  # per-column gain after the tile sum
        y = y.mul_(scale)
        return (y.sum(dim=0) if layout.n_row_tiles > 1 else y[0]) * gain  # (N, out)
    return y.mul_(scale * gain).sum(dim=0)  # per-tile gains (R, 1, 1 or out) -> (N, out)


def _bound_management(
    tiles: Tensor,
    y: Tensor,
    w_read: Tensor,
    state: ReadState,
    profile: DeviceProfile,
    normals: Normals,
    ir_lines: tuple[Tensor, Tensor] | None,
    k: float,
    converters: periphery.Converters,
    binary_input: bool,
) -> tuple[Tensor | None, Tensor]:
    """aihwkit's ITERATIVE bound management on pre-ADC outputs ``y`` ``(R, N, out)``.

    Returns the per-(tile, sample) reduction ``(R, N, 1)`` (``None`` if nothing saturated) and
    the outputs with the saturated pairs re-read.  Only samples with a saturated tile are re-read
    (one batched matmul per round over all tiles; pairs that did not saturate keep their value).
    """
    per = profile.periphery
    limit = periphery.bound_management_limit(per)
    sat = periphery.saturated(y, converters, k)  # (R, N)
    if not bool(sat.any()):
        return None, y
    reduction = torch.ones(*sat.shape, 1, dtype=y.dtype, device=y.device)  # (R, N, 1)
    factor = 1.0
    while bool(sat.any()) and factor <= limit:
        factor *= 2.0
        rows = sat.any(dim=0).nonzero().squeeze(1)  # (N',) samples with a saturated tile
        reduction[:, rows] = torch.where(sat[:, rows, None], factor, reduction[:, rows])
        u, _, _ = periphery.drive_lines(tiles[:, rows], per, binary_input, reduction[:, rows])
        again = analog_outputs(u, w_read, state, profile, k, normals, ir_lines)  # (R, N', out)
        redo = sat[:, rows, None]  # (R, N', 1)
        y[:, rows] = torch.where(redo, again, y[:, rows])
        sat[:, rows] = redo.squeeze(-1) & periphery.saturated(again, converters, k)
    return reduction, y


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

    ``e`` drives the columns of every tile (column tiles of ``tile.cols``, summed digitally after
    their ADCs) and every row is sensed; the ADC range is the profile's ``output_range`` (no
    bound management, no IR drop, ideal converter gains: the sensing direction has its own
    converters).  Factors that depend on the row (``w_max`` per layer or tile, compensation per
    layer or tile, ``()`` or ``(R, 1, 1)``) scale the sensed rows after the ADC; factors that
    depend on the column (``column`` scaling or compensation, ``(out,)`` or ``(R, 1, out)``)
    scale the column drives digitally, per row tile (the drives then need the DAC).
    """
    out_f, n = e.shape[-1], e.shape[0]
    row_gain = torch.ones((), dtype=e.dtype, device=e.device)
    col_gain: Tensor | None = None
    for factor, by_column in (
        (w_max, profile.weight_cell.scaling in ("column", "tile_column")),
        (alpha, profile.compensation.mode == "column"),
    ):
        if by_column:
            col_gain = factor if col_gain is None else col_gain * factor
        else:
            row_gain = row_gain * factor
    drive = e.unsqueeze(0)  # (1, N, out)
    if col_gain is not None:
        drive = drive * col_gain.reshape(-1, 1, out_f)  # (1 or R, N, out)
        binary_input = False
    cols = min(profile.tile.cols, out_f)
    n_ct = math.ceil(out_f / cols)
    pad = n_ct * cols - out_f
    u = F.pad(drive, (0, pad)).reshape(drive.shape[0], n, n_ct, cols).permute(2, 0, 1, 3)
    per = profile.periphery  # u: (C, 1 or R, N, cols)
    u, full_scale, k = periphery.drive_lines(u, per, binary_input)

    def by_column_tile(m: Tensor) -> Tensor:  # (R, rows, out) -> (C, R, cols, rows)
        m = F.pad(m.transpose(1, 2), (0, 0, 0, pad))  # (R, C*cols, rows)
        return m.reshape(m.shape[0], n_ct, cols, m.shape[-1]).transpose(0, 1)

    y = torch.matmul(u, by_column_tile(noisy_weights(state, profile, normals)))  # (C, R, N, rows)
    if state.has_read_noise and profile.read_noise.per_sample:
        std = torch.matmul(u.square(), by_column_tile(state.var)).sqrt_()
        y.addcmul_(std, normals(y.shape))
    periphery.add_output_noise(y, per, k, normals)
    fixed = periphery.Converters(torch.tensor(per.output_range, device=y.device))
    y, unit = periphery.convert_outputs(y, per, k, fixed)
    summed = y.mul_(full_scale * unit).sum(dim=0) * row_gain  # (R, N, rows): column tiles summed
    return layout.untile(summed.transpose(1, 2)).t()  # (N, in)


def one_hot_readout(
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    normals: Normals,
    converters: periphery.Converters,
) -> Tensor:
    """``|y|`` ``(in, out)`` of each row read alone with a full-scale one-hot input (normalized).

    The row's own tile reads ``DAC(1) W[j] + noise`` through its ADC (``converters``); under
    ``clip`` the other tiles add their output noise through an ADC of the profile's range.
    """
    per = profile.periphery
    own = torch.ones(1, 1, 1, dtype=state.w.dtype, device=state.w.device)
    amplitude, full_scale, k = periphery.drive_lines(own, per, binary_input=False)
    a = float(amplitude.reshape(()))  # DAC code of a full-scale 1
    y = noisy_weights(state, profile, normals) * a  # (R, rows, out), units of 1/k
    if state.has_read_noise and profile.read_noise.per_sample:
        y.addcmul_(state.sigma * abs(a), normals(y.shape))
    periphery.add_output_noise(y, per, k, normals)
    y, unit = periphery.convert_outputs(y, per, k, converters)
    y = y * (float(full_scale) * unit)
    others = layout.n_row_tiles - 1
    if others and per.input_policy == "clip" and per.output_noise:
        idle = periphery.add_output_noise(y.new_zeros(others, *y.shape), per, k, normals)
        fixed = periphery.Converters(torch.tensor(per.output_range, device=y.device))
        idle, idle_unit = periphery.convert_outputs(idle, per, k, fixed)  # zero input: noise + ADC
        y = y + idle.sum(dim=0) * (float(full_scale) * idle_unit)
    return layout.untile(y).abs()


def compensation_readout(
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    normals: Normals,
    converters: periphery.Converters,
) -> Tensor:
    """Mean one-hot readout, floored at :data:`MIN_READOUT`: ``()`` (``global``) or ``(out,)``
    (``column``) per layer; ``(R, 1, 1)`` or ``(R, 1, out)`` per tile under ``tile`` scaling."""
    out = one_hot_readout(state, layout, profile, normals, converters)  # (in, out)
    column = profile.compensation.mode == "column"
    if profile.weight_cell.scaling in ("tile", "tile_column"):
        sizes = torch.tensor(layout.sizes, dtype=out.dtype, device=out.device).reshape(-1, 1, 1)
        per_tile = layout.tile(out).sum(dim=1, keepdim=True) / sizes  # (R, 1, out)
        mean = per_tile if column else per_tile.mean(dim=-1, keepdim=True)
    else:
        mean = out.mean(dim=0) if column else out.mean()
    return mean.clamp(min=MIN_READOUT)


def draw_converters(
    profile: DeviceProfile, n_tiles: int, lines: int, generator: torch.Generator
) -> periphery.Converters:
    """The ADCs of ``n_tiles`` tiles of ``lines`` outputs: the profile's fixed range and, when
    the profile sets them, gain ``N(1, adc_gain_std)`` and offset ``N(0, adc_offset_lsb_std)``
    errors per converter ``(T, 1, lines)`` (gain drawn first)."""
    per = profile.periphery
    device = generator.device
    shape = (n_tiles, 1, lines)
    gain = offset = None
    if per.adc_gain_std:
        gain = 1.0 + per.adc_gain_std * torch.randn(shape, generator=generator, device=device)
    if per.adc_offset_lsb_std:
        offset = per.adc_offset_lsb_std * torch.randn(shape, generator=generator, device=device)
    return periphery.Converters(torch.tensor(per.output_range, device=device), gain, offset)


def tile_weight_scale(w_max: Tensor, layout: TileLayout, profile: DeviceProfile) -> Tensor:
    """``w_max`` as the read path applies it: ``()``/``(out,)``, or per row tile ``(R, 1, 1)``
    (``tile``) or ``(R, 1, out)`` (``tile_column``)."""
    return (
        layout.per_tile(w_max) if profile.weight_cell.scaling in ("tile", "tile_column") else w_max
    )


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

        w_max = mapping.weight_scale(weight, profile, layout.tile_of_row)
        targets = mapping.conductance_targets(weight, w_max, profile)
        devices = pcm.program_devices(targets, profile, generator)
        converters = draw_converters(profile, layout.n_row_tiles, weight.shape[1], generator)
        state = read_state(devices, t_s, profile, layout)
        alpha = torch.ones((), dtype=weight.dtype, device=weight.device)
        if profile.compensation.mode != "none":
            at_zero = read_state(devices, 0.0, profile, layout)
            baseline = compensation_readout(at_zero, layout, profile, normals, converters)
            alpha = baseline / compensation_readout(state, layout, profile, normals, converters)
        w_read = noisy_weights(state, profile, normals)  # (R, rows, out)
        if state.has_read_noise and profile.read_noise.per_sample:
            w_read = torch.addcmul(w_read, state.sigma, normals(w_read.shape))
        gain = tile_weight_scale(w_max, layout, profile) * alpha
        if gain.dim() == 3:
            return layout.untile(w_read * gain)
        return layout.untile(w_read) * gain
