"""The sections of a device profile: typed, frozen dataclasses validated in ``__post_init__``.

Every field and its meaning is documented in :mod:`pcm_sim.profiles` (the schema) and its
physical range in :mod:`pcm_sim.profile_bounds`; :class:`pcm_sim.profiles.DeviceProfile` holds one
of each section.  Laws (:class:`Law`) are piecewise functions of ``x = g / g_max``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_PROFILE_BYTES",
    "MAX_TILE_SIZE",
    "READ_NOISE_MODELS",
    "RETIRED_KEYS",
    "CompensationParams",
    "DeviceParams",
    "DriftParams",
    "EnergyParams",
    "Law",
    "LawPiece",
    "PeripheryParams",
    "ProfileError",
    "ProgrammingParams",
    "Provenance",
    "ReadNoiseParams",
    "TileParams",
    "WeightCellParams",
    "check_finite",
]


MAX_PROFILE_BYTES = 1_000_000
MAX_TILE_SIZE = 65_536
READ_NOISE_MODELS = ("clocked", "per_call", "per_read", "frozen")
RETIRED_KEYS = {
    "read_noise.per_sample": "read_noise.model (per_call for per_sample: false, per_read for true)",
}
"""Keys of older profiles, each with the key that replaced it (a one-line error names it)."""


class ProfileError(ValueError):
    """A device profile is malformed; the message names the file, the field and the expectation."""


def check_finite(path: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ProfileError(f"{path}: expected a finite number, got {value}")
    return value


def _check_positive(path: str, value: float) -> None:
    """Raise :class:`ProfileError` naming the field at ``path`` unless ``value > 0``."""
    if value <= 0:
        raise ProfileError(f"{path}: expected > 0, got {value}")


def _check_non_negative(path: str, value: float) -> None:
    """Raise :class:`ProfileError` naming the field at ``path`` unless ``value >= 0``."""
    if value < 0:
        raise ProfileError(f"{path}: expected >= 0, got {value}")


@dataclass(frozen=True)
class LawPiece:
    """One branch of a piecewise law ``f(x)`` of relative conductance ``x = g / g_max``.

    ``form``: ``log`` -> ``c0 * ln(x) + c1``; ``poly`` -> ``sum_i c_i x**i``;
    ``power`` -> ``c0 * x ** -c1``.  The branch applies for ``x < x_below`` (``None`` = to
    infinity) and its value is clipped to ``[clip_min, clip_max]`` (``None`` = open).
    """

    form: Literal["log", "poly", "power"]
    coeffs: tuple[float, ...]
    x_below: float | None = None
    clip_min: float | None = None
    clip_max: float | None = None

    def __post_init__(self) -> None:
        if self.form not in ("log", "poly", "power"):
            raise ProfileError(f"form: expected log|poly|power, got {self.form!r}")
        if self.form in ("log", "power") and len(self.coeffs) != 2:
            raise ProfileError(f"coeffs: a {self.form} law takes 2 coefficients")
        if not self.coeffs:
            raise ProfileError("coeffs: expected at least one coefficient")


@dataclass(frozen=True)
class Law:
    """Piecewise law of relative conductance; pieces are tried in order of ``x_below``."""

    pieces: tuple[LawPiece, ...]

    def __post_init__(self) -> None:
        if not self.pieces:
            raise ProfileError("pieces: expected at least one piece")
        bounds = [p.x_below for p in self.pieces[:-1]]
        if any(b is None for b in bounds) or self.pieces[-1].x_below is not None:
            raise ProfileError("pieces: only the last piece may (and must) omit x_below")
        if bounds != sorted(bounds):  # type: ignore[type-var]
            raise ProfileError("pieces: x_below must increase")


@dataclass(frozen=True)
class DeviceParams:
    """Per-device physics; see the module docstring for units and meaning."""

    g_max_us: float = 25.0
    g_min_us: float = 0.0
    levels: int = 0
    d2d_gain_std: float = 0.0
    stuck_at_gmin_fraction: float = 0.0
    stuck_at_gmax_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check_positive("device.g_max_us", self.g_max_us)
        if not 0 <= self.g_min_us < self.g_max_us:
            raise ProfileError(
                f"device.g_min_us: expected 0 <= g_min_us < g_max_us, got {self.g_min_us}"
            )
        if self.levels < 0 or self.levels == 1 or self.levels > 65_536:
            raise ProfileError(
                f"device.levels: expected 0 (continuous) or 2..65536, got {self.levels}"
            )
        if self.d2d_gain_std < 0 or self.d2d_gain_std > 1:
            raise ProfileError(f"device.d2d_gain_std: expected 0..1, got {self.d2d_gain_std}")
        for name in ("stuck_at_gmin_fraction", "stuck_at_gmax_fraction"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ProfileError(f"device.{name}: expected a fraction in [0, 1], got {value}")
        if self.stuck_at_gmin_fraction + self.stuck_at_gmax_fraction > 1:
            raise ProfileError("device: stuck-at fractions sum to more than 1")


@dataclass(frozen=True)
class ProgrammingParams:
    """Programming noise: ``std = scale * sigma_us(x) * g_max / g_ref_us`` (µS)."""

    sigma_us: Law
    g_ref_us: float = 25.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("programming.g_ref_us", self.g_ref_us)
        _check_non_negative("programming.scale", self.scale)


@dataclass(frozen=True)
class DriftParams:
    """Drift ``g(t) = g_prog ((t + t0)/t0)^-nu``, ``nu = scale * |N(nu_mean(x), nu_std(x))|``."""

    nu_mean: Law
    nu_std: Law
    t0_s: float = 20.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("drift.t0_s", self.t0_s)
        _check_non_negative("drift.scale", self.scale)


@dataclass(frozen=True)
class ReadNoiseParams:
    """1/f read noise: relative std ``scale * q_s(x) * sqrt(ln((t + t0 + t_read)/(2 t_read)))``.

    ``model`` says how the noise of successive reads is related in time (see
    :mod:`pcm_sim.crossbar.read_noise`): ``clocked`` (1/f in time on the array's read clock,
    ``read_period_s`` between two reads), ``per_call`` (one read shared by the rows of a call,
    independent calls), ``per_read`` (every row independent) or ``frozen`` (one draw at
    ``drift_to``, aihwkit's semantics).
    """

    q_s: Law
    t_read_s: float = 250e-9
    scale: float = 1.0
    model: Literal["clocked", "per_call", "per_read", "frozen"] = "clocked"
    read_period_s: float = 1e-6
    sampling: Literal["bank", "exact"] = "bank"

    def __post_init__(self) -> None:
        if self.model not in READ_NOISE_MODELS:
            raise ProfileError(
                f"read_noise.model: expected {'|'.join(READ_NOISE_MODELS)}, got {self.model!r}"
            )
        if self.sampling not in ("bank", "exact"):
            raise ProfileError(f"read_noise.sampling: expected bank|exact, got {self.sampling!r}")
        _check_positive("read_noise.t_read_s", self.t_read_s)
        _check_positive("read_noise.read_period_s", self.read_period_s)
        _check_non_negative("read_noise.scale", self.scale)


@dataclass(frozen=True)
class WeightCellParams:
    """Weight cell: a differential pair with N devices per polarity; w_max per layer, per output
    column, or per row tile (``tile``: each tile mapped by its own abs-max, as aihwkit's tiles)."""

    devices_per_polarity: int = 1
    differential: bool = True
    scaling: Literal["layer", "column", "tile", "tile_column"] = "layer"

    def __post_init__(self) -> None:
        if not 1 <= self.devices_per_polarity <= 16:
            raise ProfileError(
                f"weight_cell.devices_per_polarity: expected 1..16, got {self.devices_per_polarity}"
            )
        if not self.differential:
            raise ProfileError("weight_cell.differential: only differential pairs are supported")
        if self.scaling not in ("layer", "column", "tile", "tile_column"):
            raise ProfileError(
                f"weight_cell.scaling: expected layer|column|tile|tile_column, got {self.scaling!r}"
            )


@dataclass(frozen=True)
class TileParams:
    """Physical array size: ``rows`` inputs by ``cols`` outputs."""

    rows: int = 512
    cols: int = 512

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_TILE_SIZE:
                raise ProfileError(f"tile.{name}: expected 1..{MAX_TILE_SIZE}, got {value}")


@dataclass(frozen=True)
class PeripheryParams:
    """DAC/ADC periphery in normalized units (full-scale weight x full-scale input = 1)."""

    dac_bits: int = 0
    input_range: float = 1.0
    input_policy: Literal["clip", "scale"] = "scale"
    adc_bits: int = 0
    output_range: float = 0.0
    output_noise: float = 0.0
    output_range_policy: Literal["fixed", "calibrated"] = "fixed"
    range_percentile: float = 99.9
    range_scope: Literal["tile", "column"] = "tile"
    bound_management: Literal["none", "iterative"] = "none"
    bm_max_factor: float = 1000.0
    bm_max_resolution: float = 0.25
    ir_drop: float = 0.0
    ir_drop_g_ratio: float = 1.0 / 0.35 / 5e-6
    adc_gain_std: float = 0.0
    adc_offset_lsb_std: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dac_bits", "adc_bits"):
            value = getattr(self, name)
            if not 0 <= value <= 24:
                raise ProfileError(
                    f"periphery.{name}: expected 0 (ideal) or 1..24 bits, got {value}"
                )
        if self.dac_bits == 1 or self.adc_bits == 1:
            raise ProfileError("periphery: a signed converter needs at least 2 bits (0 = ideal)")
        _check_positive("periphery.input_range", self.input_range)
        if self.input_policy not in ("clip", "scale"):
            raise ProfileError(
                f"periphery.input_policy: expected clip|scale, got {self.input_policy!r}"
            )
        if self.output_range < 0:
            raise ProfileError(
                f"periphery.output_range: expected >= 0 (0 = unbounded), got {self.output_range}"
            )
        if self.adc_bits and not self.output_range:
            raise ProfileError("periphery.output_range: an ADC (adc_bits > 0) needs a range > 0")
        _check_non_negative("periphery.output_noise", self.output_noise)
        choices = {
            "output_range_policy": ("fixed", "calibrated"),
            "range_scope": ("tile", "column"),
            "bound_management": ("none", "iterative"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ProfileError(
                    f"periphery.{name}: expected {'|'.join(allowed)}, got {getattr(self, name)!r}"
                )
        if not 0 < self.range_percentile <= 100:
            raise ProfileError(
                f"periphery.range_percentile: expected in (0, 100], got {self.range_percentile}"
            )
        if self.output_range_policy == "calibrated" and not self.output_range:
            raise ProfileError(
                "periphery.output_range: a calibrated ADC range needs output_range > 0 "
                "(used until the chip is calibrated)"
            )
        if not 2 <= self.bm_max_factor <= 1e6:
            raise ProfileError(
                f"periphery.bm_max_factor: expected 2..1e6, got {self.bm_max_factor}"
            )
        if not 0 < self.bm_max_resolution <= 1:
            raise ProfileError(
                f"periphery.bm_max_resolution: expected in (0, 1], got {self.bm_max_resolution}"
            )
        if not 0 <= self.ir_drop <= 100:
            raise ProfileError(f"periphery.ir_drop: expected 0 (off) .. 100, got {self.ir_drop}")
        if not 1 <= self.ir_drop_g_ratio <= 1e12:
            raise ProfileError(
                f"periphery.ir_drop_g_ratio: expected 1..1e12, got {self.ir_drop_g_ratio}"
            )
        for name, upper in (("adc_gain_std", 0.5), ("adc_offset_lsb_std", 100.0)):
            value = getattr(self, name)
            if not 0 <= value <= upper:
                raise ProfileError(f"periphery.{name}: expected 0..{upper:g}, got {value}")
            if value and not self.adc_bits:
                raise ProfileError(f"periphery.{name}: converter variation needs adc_bits > 0")


@dataclass(frozen=True)
class CompensationParams:
    """Drift compensation mode: none, global (one scalar per layer) or column (one per output)."""

    mode: Literal["none", "global", "column"] = "global"

    def __post_init__(self) -> None:
        if self.mode not in ("none", "global", "column"):
            raise ProfileError(f"compensation.mode: expected none|global|column, got {self.mode!r}")


@dataclass(frozen=True)
class EnergyParams:
    """Per-operation cost estimates for reports (labelled estimates, with their source)."""

    cell_read_pj: float = 0.0
    dac_conversion_pj: float = 0.0
    adc_conversion_pj: float = 0.0
    programming_pulse_pj: float = 0.0
    mvm_latency_ns: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "source" and getattr(self, f.name) < 0:
                raise ProfileError(f"energy.{f.name}: expected >= 0")


@dataclass(frozen=True)
class Provenance:
    """Where a profile's numbers come from."""

    source: str = ""
    note: str = ""
