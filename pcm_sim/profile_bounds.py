"""Physical bounds of device-profile fields, law checks over ``x`` in [0, 1], and YAML limits.

:mod:`pcm_sim.profiles` checks each field's type and basic sign; this module adds what keeps a
profile that loads from breaking the simulator (a conductance of 1e300 µS, a drift exponent that
is infinite at ``x = 0``, a logarithm of a negative number).  Checked, in this order, by
:func:`check_profile_bounds` (called by ``DeviceProfile.from_dict``):

1. every numeric field named in :data:`BOUNDS` (dotted ``section.field``) lies in
   ``[low, high]``; the table gives the reason for each range.  Fields not in the table are not
   bounded here (their own ``__post_init__`` still validates them);
2. every law's numbers (``coeffs``, ``x_below``, ``clip_min``, ``clip_max``) are at most
   :data:`LAW_NUMBER_LIMIT` in magnitude, a polynomial has at most :data:`MAX_POLY_COEFFS`
   coefficients, a power law's exponent ``c1`` lies in ``[-POWER_EXPONENT_LIMIT,
   POWER_EXPONENT_LIMIT]``, and ``clip_min <= clip_max``;
3. every law named in :data:`LAW_BOUNDS`, evaluated exactly as the simulator evaluates it
   (:func:`pcm_sim.physics.pcm.evaluate_law`, float32) on :data:`LAW_GRID_POINTS` points of
   ``x`` in [0, 1] plus each piece boundary, is finite and within its range (stds and rates are
   non-negative); a power law without ``clip_max`` that is infinite at ``x = 0`` is named as such;
4. cross-field conditions: ``g_min_us <= g_max_us / 2`` (an on/off ratio of at least 2, so the
   float32 window ``g_max - g_min`` never vanishes), ``sigma_us(x) <= g_ref_us``, and
   ``t_read_s < t0_s`` (so ``ln((t + t0 + t_read) / (2 t_read)) > 0`` for every ``t >= 0``).

:func:`check_yaml_structure` bounds a YAML document's nesting depth and node count by walking
its event stream (iterative, so a deeply nested file gives one line instead of a
``RecursionError``); file size is bounded by ``pcm_sim.profiles.MAX_PROFILE_BYTES``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, NamedTuple

import torch
import yaml

from pcm_sim.profile_sections import Law, ProfileError

if TYPE_CHECKING:
    from pcm_sim.profiles import DeviceProfile

__all__ = [
    "BOUNDS",
    "LAW_BOUNDS",
    "Bound",
    "check_profile_bounds",
    "check_yaml_structure",
]

MAX_YAML_DEPTH = 20
"""Deepest nesting of mappings and sequences (a profile needs 5: section, law, piece, coeffs)."""
MAX_YAML_NODES = 100_000
"""Most YAML nodes (scalars, mappings, sequences) in one document."""
LAW_NUMBER_LIMIT = 1e6
"""Largest magnitude of a law coefficient, boundary or clip value."""
MAX_POLY_COEFFS = 8
"""Most coefficients of a polynomial law (published fits use at most 4)."""
POWER_EXPONENT_LIMIT = 4.0
"""Largest |c1| of a power law ``c0 x^-c1`` (aihwkit's read-noise law uses 0.65)."""
LAW_GRID_POINTS = 4097


class Bound(NamedTuple):
    """An inclusive physical range ``low <= value <= high`` and the reason for it."""

    low: float
    high: float
    why: str


BOUNDS: dict[str, Bound] = {
    "device.g_max_us": Bound(
        0.01, 1000.0, "maximum PCM conductance: 25 µS (Nandakumar 2019), 20.7 µS (HERMES)"
    ),
    "device.g_min_us": Bound(0.0, 500.0, "minimum conductance, below g_max / 2"),
    "device.levels": Bound(0, 65_536, "programmable levels, 0 = continuous"),
    "device.d2d_gain_std": Bound(0.0, 1.0, "relative std of a per-device gain"),
    "device.stuck_at_gmin_fraction": Bound(0.0, 1.0, "a fraction of devices"),
    "device.stuck_at_gmax_fraction": Bound(0.0, 1.0, "a fraction of devices"),
    "programming.g_ref_us": Bound(0.01, 1000.0, "conductance window the noise law refers to"),
    "programming.scale": Bound(0.0, 100.0, "multiple of the cited programming-noise law"),
    "drift.t0_s": Bound(1e-6, 1e6, "first read after programming: 20 s (aihwkit), 300 s (HERMES)"),
    "drift.scale": Bound(0.0, 10.0, "multiple of the cited drift exponents"),
    "read_noise.t_read_s": Bound(1e-12, 1.0, "read duration: 250 ns (aihwkit), 512 ns (HERMES)"),
    "read_noise.scale": Bound(0.0, 100.0, "multiple of the cited 1/f read-noise law"),
    "read_noise.read_period_s": Bound(
        1e-10, 1.0, "time between two MVM reads of an array: about 130 ns (HERMES 256x256)"
    ),
    "weight_cell.devices_per_polarity": Bound(1, 16, "devices summed per polarity"),
    "tile.rows": Bound(1, 65_536, "inputs of one physical array"),
    "tile.cols": Bound(1, 65_536, "outputs of one physical array"),
    "periphery.dac_bits": Bound(0, 24, "converter resolution, 0 = ideal"),
    "periphery.adc_bits": Bound(0, 24, "converter resolution, 0 = ideal"),
    "periphery.input_range": Bound(1e-6, 1e6, "input mapped to the DAC's full scale"),
    "periphery.output_range": Bound(
        0.0, 65_536.0, "ADC bound in full-scale units; a tile's output never exceeds its rows"
    ),
    "periphery.output_noise": Bound(0.0, 10.0, "output noise in full-scale units (aihwkit 0.06)"),
    "periphery.range_percentile": Bound(
        1e-6, 100.0, "percentile of |y| setting a calibrated range"
    ),
    "periphery.bm_max_factor": Bound(2.0, 1e6, "largest bound-management reduction (aihwkit 1000)"),
    "periphery.bm_max_resolution": Bound(
        1e-6, 1.0, "coarsest effective DAC step under bound management (aihwkit 0.25)"
    ),
    "periphery.ir_drop": Bound(0.0, 100.0, "multiple of the wire resistance (aihwkit 0 or 1)"),
    "periphery.ir_drop_g_ratio": Bound(
        1.0, 1e12, "wire to device conductance ratio (aihwkit 1 / 0.35 / 5e-6)"
    ),
    "periphery.adc_gain_std": Bound(0.0, 0.5, "relative gain error of one converter"),
    "periphery.adc_offset_lsb_std": Bound(0.0, 100.0, "offset error of one converter in LSB"),
    "energy.cell_read_pj": Bound(0.0, 1e3, "energy of one cell read"),
    "energy.dac_conversion_pj": Bound(0.0, 1e6, "energy of one DAC conversion"),
    "energy.adc_conversion_pj": Bound(0.0, 1e6, "energy of one ADC conversion"),
    "energy.programming_pulse_pj": Bound(0.0, 1e6, "energy of one programming pulse"),
    "energy.mvm_latency_ns": Bound(0.0, 1e9, "latency of one tile MVM"),
}
"""Physical range of each numeric field, keyed by dotted field name."""

LAW_BOUNDS: dict[str, Bound] = {
    "programming.sigma_us": Bound(0.0, 1000.0, "a programming-noise std in µS, <= g_ref_us"),
    "drift.nu_mean": Bound(0.0, 1.0, "a drift exponent (measured 0.005-0.13)"),
    "drift.nu_std": Bound(0.0, 1.0, "a std of drift exponents"),
    "read_noise.q_s": Bound(0.0, 1.0, "a relative read-noise std per unit sqrt(ln)"),
}
"""Range of each law's values over ``x`` in [0, 1], keyed by dotted field name."""


def _fail(where: str, expected: str, got: object) -> ProfileError:
    return ProfileError(f"{where}: expected {expected}, got {got}")


def _check_number(where: str, value: float, bound: Bound) -> None:
    if not bound.low <= value <= bound.high:
        raise _fail(where, f"{bound.low:g}..{bound.high:g} ({bound.why})", f"{value:g}")


def _check_law_numbers(where: str, law: Law) -> None:
    """Magnitudes, polynomial degree, power exponents and clip order of every piece."""
    for i, piece in enumerate(law.pieces):
        at = f"{where}[{i}]"
        numbers = {f"coeffs[{j}]": c for j, c in enumerate(piece.coeffs)}
        numbers |= {
            k: v
            for k, v in (
                ("x_below", piece.x_below),
                ("clip_min", piece.clip_min),
                ("clip_max", piece.clip_max),
            )
            if v is not None
        }
        for name, value in numbers.items():
            if abs(value) > LAW_NUMBER_LIMIT:
                raise _fail(f"{at}.{name}", f"|value| <= {LAW_NUMBER_LIMIT:g}", f"{value:g}")
        if piece.form == "poly" and len(piece.coeffs) > MAX_POLY_COEFFS:
            raise _fail(
                f"{at}.coeffs", f"at most {MAX_POLY_COEFFS} coefficients", len(piece.coeffs)
            )
        if piece.form == "power" and abs(piece.coeffs[1]) > POWER_EXPONENT_LIMIT:
            limit = POWER_EXPONENT_LIMIT
            raise _fail(
                f"{at}.coeffs[1]", f"a power exponent in -{limit:g}..{limit:g}", piece.coeffs[1]
            )
        if (
            piece.clip_min is not None
            and piece.clip_max is not None
            and piece.clip_min > piece.clip_max
        ):
            raise _fail(f"{at}.clip_min", f"<= clip_max {piece.clip_max:g}", piece.clip_min)


def _law_grid(law: Law) -> torch.Tensor:
    """``x`` in [0, 1] on a uniform grid plus every piece boundary and the float just below it."""
    edges = [p.x_below for p in law.pieces if p.x_below is not None and 0.0 <= p.x_below <= 1.0]
    below = [math.nextafter(e, -math.inf) for e in edges if e > 0.0]
    grid = torch.cat(
        [torch.linspace(0.0, 1.0, LAW_GRID_POINTS), torch.tensor(edges + below, dtype=torch.float)]
    )
    return grid.clamp(0.0, 1.0)


def _check_law_values(where: str, law: Law, bound: Bound) -> None:
    """The law is finite and in ``bound`` everywhere on :func:`_law_grid` (float32)."""
    from pcm_sim.physics.pcm import evaluate_law

    x = _law_grid(law)
    values = evaluate_law(law, x)
    bad = ~torch.isfinite(values) | (values < bound.low) | (values > bound.high)
    if not bool(bad.any()):
        return
    i = int(bad.nonzero()[0, 0])
    x_bad, value = float(x[i]), float(values[i])
    first = law.pieces[0]
    if x_bad == 0.0 and not math.isfinite(value) and first.form == "power":
        raise ProfileError(
            f"{where}: a power law c0 * x^-c1 is {value} at x = 0; give it a clip_max "
            "(aihwkit clips its read-noise law at 0.2)"
        )
    raise _fail(
        where,
        f"finite values in {bound.low:g}..{bound.high:g} for x in [0, 1] ({bound.why})",
        f"{value:g} at x = {x_bad:.6g}",
    )


def _check_cross_fields(profile: DeviceProfile) -> None:
    """Conditions between fields (see the module docstring, item 4)."""
    dev = profile.device
    if dev.g_min_us > dev.g_max_us / 2:
        raise _fail(
            "device.g_min_us",
            f"<= g_max_us / 2 = {dev.g_max_us / 2:g} (an on/off ratio of at least 2)",
            f"{dev.g_min_us:g}",
        )
    from pcm_sim.physics.pcm import evaluate_law

    sigma = evaluate_law(profile.programming.sigma_us, _law_grid(profile.programming.sigma_us))
    g_ref = profile.programming.g_ref_us
    if float(sigma.max()) > g_ref:
        raise _fail(
            "programming.sigma_us",
            f"a std at most g_ref_us = {g_ref:g} µS for x in [0, 1]",
            f"{float(sigma.max()):g}",
        )
    if profile.read_noise.t_read_s >= profile.drift.t0_s:
        raise _fail(
            "read_noise.t_read_s",
            f"< drift.t0_s = {profile.drift.t0_s:g} s, so ln((t + t0 + t_read) / (2 t_read)) > 0",
            f"{profile.read_noise.t_read_s:g}",
        )


def check_profile_bounds(profile: DeviceProfile) -> DeviceProfile:
    """Check ``profile`` against the bounds of this module; returns it unchanged.

    Raises :class:`~pcm_sim.profiles.ProfileError` naming the dotted field, what was expected
    and what was found.
    """
    for section in dataclasses.fields(profile):
        params = getattr(profile, section.name)
        if not dataclasses.is_dataclass(params):
            continue
        for f in dataclasses.fields(params):
            where, value = f"{section.name}.{f.name}", getattr(params, f.name)
            if isinstance(value, Law):
                _check_law_numbers(where, value)
                if where in LAW_BOUNDS:
                    _check_law_values(where, value, LAW_BOUNDS[where])
            elif where in BOUNDS and not isinstance(value, bool):
                _check_number(where, value, BOUNDS[where])
    _check_cross_fields(profile)
    return profile


def check_yaml_structure(text: str) -> None:
    """Refuse YAML nested deeper than :data:`MAX_YAML_DEPTH` or with over :data:`MAX_YAML_NODES`.

    Walks the parser's event stream (no recursion) and stops at the first violation; syntax
    errors are left to the loader, which reports them with their line.
    """
    depth = nodes = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    mark = event.start_mark
                    where = f"line {mark.line + 1}: " if mark is not None else ""
                    raise ProfileError(f"{where}YAML nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_YAML_NODES:
                    raise ProfileError(f"more than {MAX_YAML_NODES} YAML nodes")
    except yaml.YAMLError:
        return
