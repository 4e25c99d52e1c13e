"""Every read of a programmed array, as pure functions of the device state and a noise source.

A weight matrix ``(in, out)`` sits on row tiles (:class:`~pcm_sim.crossbar.layout.TileLayout`).
At time ``t`` a tile ``k`` holds normalized mean weights ``W_k`` (drifted, see
:mod:`pcm_sim.crossbar.mapping`) and 1/f read-noise variances ``V_k`` (devices of a cell add in
quadrature), :class:`~pcm_sim.crossbar.read_noise.ReadState`.  A call's read noise
(:class:`~pcm_sim.crossbar.read_noise.CallNoise`, :mod:`pcm_sim.crossbar.read_noise` for the
modes) is an array ``H_k = W_k + (noise shared by the rows of the call)`` and a fraction ``f``
of the variance fresh on every row.  A forward read of DAC codes ``u_k``:

    ``y_k = ADC_k( u_k @ H_k + sqrt(f u_k^2 @ V_k) Z + out_noise k Z' )``      (units of 1 / k)
    ``y   = sum_k gain_k s_k unit_k r_k y_k``,   ``gain_k = w_max_k * alpha_k``

(:mod:`pcm_sim.crossbar.periphery` for the DAC full scale ``s_k``, the DAC levels ``k`` and the
ADC step ``unit_k``; ``r_k`` is the bound-management reduction of that tile and sample, 1 without
a re-read; ``w_max`` and ``alpha`` per layer, column, tile or column of a tile).  The fresh term
is the exact law of independent per-device noise seen through one row: one extra matmul.  A
transposed read drives the columns with ``e`` and senses the rows (column tiles of ``cols``
summed after their ADCs).

Drift compensation (aihwkit's semantics): right after programming and at time ``t`` every row is
read alone with a full-scale one-hot input through the whole analog path (read noise, output
noise, ADC); ``alpha = mean|y_0| / mean|y_t|`` (``global``) or the same ratio per column
(``column``).  :func:`one_hot_readout` computes these reads without the ``in x in`` matmul: the
row's own tile returns ``DAC(1) H[j] + noise``; under ``clip`` the other tiles add their output
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
from pcm_sim.crossbar.layout import TileLayout
from pcm_sim.crossbar.read_noise import CallNoise, ReadState, read_state, shared_read
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

__all__ = [
    "MIN_READOUT",
    "CallNoise",
    "Normals",
    "Products",
    "ReadState",
    "TileLayout",
    "analog_outputs",
    "assemble_outputs",
    "compensation_readout",
    "draw_converters",
    "forward_read",
    "ir_drop_lines",
    "one_hot_readout",
    "read_products",
    "read_state",
    "sample_chip_weights",
    "tile_weight_scale",
    "transposed_read",
]

MIN_READOUT = 1e-4
"""Floor of a calibration readout (normalized units), so a dead array gives a finite alpha."""

Normals = Callable[[torch.Size], Tensor]


@dataclass(frozen=True)
class Products:
    """The matmuls of a read of drives ``u`` ``(R, N, rows)``, each ``(R, N, out)`` (or
    ``None``): ``clean = u @ H``, ``std = sqrt(u^2 @ V)`` (when a share is fresh),
    ``ir_a = |u| @ |H|`` and ``ir_lin = (u * ramp) @ H`` (under IR drop).  Each is linear in
    ``u`` (``std`` in ``|u|``), so a re-read of binary rows at reduction ``r`` (a power of 2:
    exact) is these products divided by ``r``."""

    clean: Tensor
    std: Tensor | None
    ir_a: Tensor | None
    ir_lin: Tensor | None

    def rows(self, index: Tensor, reduction: Tensor) -> Products:
        """The products of rows ``index`` driven at ``1 / reduction`` ``(R, N', 1)``."""

        def part(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[:, index] / reduction

        clean = part(self.clean)
        assert clean is not None
        return Products(clean, part(self.std), part(self.ir_a), part(self.ir_lin))


def read_products(
    u: Tensor,
    noise: CallNoise,
    state: ReadState,
    ir_lines: tuple[Tensor, Tensor] | None,
    binary: bool = False,
) -> Products:
    """The matmuls of a read (:class:`Products`); ``binary``: ``u`` is 0/1, so ``u^2 = u``."""
    w_read = noise.held  # (R, rows, out)
    std = None
    if noise.fresh:
        std = torch.matmul(u if binary else u.square(), state.var).sqrt_()  # (R, N, out)
    ir_a = ir_lin = None
    if ir_lines is not None:
        ir_a = torch.matmul(u.abs(), w_read.abs())  # (R, N, out)
        ir_lin = torch.matmul(u * ir_lines[0], w_read)
    return Products(torch.matmul(u, w_read), std, ir_a, ir_lin)


def assemble_outputs(
    products: Products,
    noise: CallNoise,
    profile: DeviceProfile,
    k: float,
    normals: Normals,
    ir_lines: tuple[Tensor, Tensor] | None = None,
    keep: bool = False,
) -> Tensor:
    """Analog column outputs before the ADC, ``(R, N, out)`` in units of ``1 / k``, from the
    products of a read: ``u @ H``, the fresh read noise of each row, IR drop, output noise
    (written into ``products.clean`` unless ``keep``).

    IR drop (aihwkit's approximation, per output ``i`` of a tile of ``n`` rows, ``x = u / k``):
    ``a = (n / g_ratio) sum_j |W_ij| |x_j|``, ``c = a (a (0.05 a - 0.2) + 0.5)``,
    ``y_i -= ir_drop c sum_j W_ij u_j (1 - (1 - j / n)^2)``; ``ir_lines`` = (ramp ``(R, 1, rows)``,
    ``n`` ``(R, 1, 1)``).
    """
    per = profile.periphery
    y = products.clean.clone() if keep else products.clean
    if products.std is not None:
        y.addcmul_(products.std, normals(y.shape), value=math.sqrt(noise.fresh))
    if ir_lines is not None and products.ir_a is not None and products.ir_lin is not None:
        a = products.ir_a * (ir_lines[1] / (per.ir_drop_g_ratio * k))  # (R, N, out)
        c = a * (a * (0.05 * a - 0.2) + 0.5)
        y.sub_(c * products.ir_lin, alpha=per.ir_drop)
    return periphery.add_output_noise(y, per, k, normals)


def analog_outputs(
    u: Tensor,
    noise: CallNoise,
    state: ReadState,
    profile: DeviceProfile,
    k: float,
    normals: Normals,
    ir_lines: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Analog column outputs of row drives ``u`` ``(R, N, rows)`` before the ADC, ``(R, N, out)``
    (:func:`read_products` then :func:`assemble_outputs`)."""
    products = read_products(u, noise, state, ir_lines)
    return assemble_outputs(products, noise, profile, k, normals, ir_lines)


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
    noise: CallNoise,
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
    ir_lines = ir_drop_lines(layout, profile, noise.held.dtype)
    products = read_products(u, noise, state, ir_lines, binary_input)
    keep = binary_input and per.bound_management == "iterative" and bool(per.output_range)
    y = assemble_outputs(products, noise, profile, k, normals, ir_lines, keep)  # (R, N, out)
    reduction: Tensor | None = None
    if per.bound_management == "iterative" and per.output_range:
        reduced = products if binary_input else None
        reduction, y = _bound_management(
            tiles, y, noise, state, profile, normals, ir_lines, k, converters, reduced
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
    noise: CallNoise,
    state: ReadState,
    profile: DeviceProfile,
    normals: Normals,
    ir_lines: tuple[Tensor, Tensor] | None,
    k: float,
    converters: periphery.Converters,
    reduced: Products | None,
) -> tuple[Tensor | None, Tensor]:
    """aihwkit's ITERATIVE bound management on pre-ADC outputs ``y`` ``(R, N, out)``.

    Returns the per-(tile, sample) reduction ``(R, N, 1)`` (``None`` if nothing saturated) and
    the outputs with the saturated pairs re-read.  Only samples with a saturated tile are re-read
    (one batched matmul per round over all tiles; pairs that did not saturate keep their value).
    Rows driven without a DAC (spikes, ``reduced`` = the first read's products) are re-read
    from those products divided by the reduction (exact: a power of 2), no matmul.
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
        if reduced is not None:
            products = reduced.rows(rows, reduction[:, rows])
        else:
            u, _, _ = periphery.drive_lines(tiles[:, rows], per, False, reduction[:, rows])
            products = read_products(u, noise, state, ir_lines)
        again = assemble_outputs(products, noise, profile, k, normals, ir_lines)  # (R, N', out)
        redo = sat[:, rows, None]  # (R, N', 1)
        y[:, rows] = torch.where(redo, again, y[:, rows])
        sat[:, rows] = redo.squeeze(-1) & periphery.saturated(again, converters, k)
    return reduction, y


def transposed_read(
    e: Tensor,
    noise: CallNoise,
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

    y = torch.matmul(u, by_column_tile(noise.held))  # (C, R, N, rows)
    if noise.fresh:
        std = torch.matmul(u.square(), by_column_tile(state.var)).sqrt_()
        y.addcmul_(std, normals(y.shape), value=math.sqrt(noise.fresh))
    periphery.add_output_noise(y, per, k, normals)
    fixed = periphery.Converters(torch.tensor(per.output_range, device=y.device))
    y, unit = periphery.convert_outputs(y, per, k, fixed)
    summed = y.mul_(full_scale * unit).sum(dim=0) * row_gain  # (R, N, rows): column tiles summed
    return layout.untile(summed.transpose(1, 2)).t()  # (N, in)


def one_hot_readout(
    noise: CallNoise,
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    normals: Normals,
    converters: periphery.Converters,
) -> Tensor:
    """``|y|`` ``(in, out)`` of each row read alone with a full-scale one-hot input (normalized).

    The row's own tile reads ``DAC(1) H[j] + noise`` through its ADC (``converters``); under
    ``clip`` the other tiles add their output noise through an ADC of the profile's range.
    """
    per = profile.periphery
    own = torch.ones(1, 1, 1, dtype=state.w.dtype, device=state.w.device)
    amplitude, full_scale, k = periphery.drive_lines(own, per, binary_input=False)
    a = float(amplitude.reshape(()))  # DAC code of a full-scale 1
    y = noise.held * a  # (R, rows, out), units of 1/k
    if noise.fresh:
        y.addcmul_(state.sigma * abs(a), normals(y.shape), value=math.sqrt(noise.fresh))
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
    noise: CallNoise,
    state: ReadState,
    layout: TileLayout,
    profile: DeviceProfile,
    normals: Normals,
    converters: periphery.Converters,
) -> Tensor:
    """Mean one-hot readout, floored at :data:`MIN_READOUT`: ``()`` (``global``) or ``(out,)``
    (``column``) per layer; ``(R, 1, 1)`` or ``(R, 1, out)`` per tile under ``tile`` scaling."""
    out = one_hot_readout(noise, state, layout, profile, normals, converters)  # (in, out)
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
    1/f read (the whole per-read variance), and the profile's compensation measured through
    the periphery with one shared read at ``0`` and at ``t_s`` (a ``per_call`` chip's
    calibration).  No gradient."""
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
            reference = shared_read(at_zero, normals)
            baseline = compensation_readout(
                reference, at_zero, layout, profile, normals, converters
            )
            now = shared_read(state, normals)
            alpha = baseline / compensation_readout(
                now, state, layout, profile, normals, converters
            )
        w_read = shared_read(state, normals).held  # (R, rows, out)
        gain = tile_weight_scale(w_max, layout, profile) * alpha
        if gain.dim() == 3:
            return layout.untile(w_read * gain)
        return layout.untile(w_read) * gain
