"""Device profiles: the typed, validated description of one simulated PCM chip.

A profile is a YAML mapping with the sections below (units in the field names; every field is
optional and falls back to the default shown by :func:`default_profile_dict`):

``device``
    ``g_max_us``, ``g_min_us`` (µS): conductance window of one device; targets map into it.
    ``levels``: number of programmable conductance levels per device (0 = continuous).
    ``d2d_gain_std``: device-to-device variability, the relative std of a fixed per-device gain
    ``k ~ N(1, d2d_gain_std)`` multiplying the programmed conductance.
    ``stuck_at_gmin_fraction`` / ``stuck_at_gmax_fraction``: fractions of devices stuck at
    ``g_min`` (open) or ``g_max`` (shorted), drawn per device.
``programming``
    ``sigma_us``: programming-noise law, a :class:`Law` of ``x = g_target / g_max`` giving the
    std in µS at the reference window ``g_ref_us``; applied std is ``scale * sigma_us(x) *
    g_max_us / g_ref_us`` (Nandakumar et al., ICECS 2019).
``drift``
    ``t0_s`` (s): first read after programming; ``g(t) = g_prog * ((t + t0) / t0) ** -nu``.
    ``nu_mean`` / ``nu_std``: laws of ``x`` for the drift exponent, ``nu = |N(mean, std)|``,
    multiplied by ``scale``.
``read_noise``
    ``q_s``: law of ``x = |g_prog| / g_max``; at time t the relative 1/f read-noise std is
    ``q_s * sqrt(ln((t + t0 + t_read) / (2 t_read)))`` with ``t_read_s`` (s), times ``scale``.
    ``model``: how successive reads' noise is related in time (``crossbar.read_noise``):
    ``clocked`` (1/f in time: OU components on the array's read clock, one read every
    ``read_period_s`` seconds), ``per_call`` (one read shared by the rows of a call),
    ``per_read`` (every row independent) or ``frozen`` (one draw at ``drift_to``, as aihwkit).
    ``sampling``: ``bank`` draws each read's normals from a rolling bank (``crossbar.noise``),
    ``exact`` calls ``randn`` for every read; both give i.i.d. N(0, 1) values within a read.
``weight_cell``
    ``devices_per_polarity``: N devices summed per polarity; ``differential``: G+ and G- pair
    (only differential cells are supported, as in aihwkit's single-pair converter).
    ``scaling``: ``layer`` (one w_max for the matrix), ``column`` (one per output) or ``tile``
    (one per row tile, each tile mapped and compensated on its own, as aihwkit's tile arrays)
    or ``tile_column`` (one per output column of each row tile, aihwkit's columnwise scaling).
``tile``
    ``rows`` (inputs) x ``cols`` (outputs) of one physical array.
``periphery``
    ``dac_bits`` (0 = ideal), ``input_range`` (|x| mapped to full scale), ``input_policy``:
    ``clip`` (fixed range, out-of-range inputs saturate) or ``scale`` (per-sample abs-max
    scaling, aihwkit's noise management).  ``adc_bits`` (0 = ideal), ``output_range``: ADC bound
    in normalized units (full-scale weight times full-scale input), ``output_noise``: additive
    Gaussian std in the same units, before the ADC.
    ``output_range_policy``: ``fixed`` (``output_range`` for every ADC) or ``calibrated`` (each
    tile's, or each column's (``range_scope``), range set at deployment to the
    ``range_percentile``-th percentile of |y| over calibration reads, saved with the chip).
    ``bound_management``: ``none`` or ``iterative`` (aihwkit's ITERATIVE: a sample whose output
    saturates a tile's ADC is re-read with its input halved again, stopping at the first factor
    above ``bm_max_factor`` or above ``bm_max_resolution`` times the DAC levels).
    ``ir_drop`` (0 = off) and ``ir_drop_g_ratio``: aihwkit's IR-drop approximation along the rows.
    ``adc_gain_std`` / ``adc_offset_lsb_std``: per-converter gain (relative) and offset (in LSB)
    errors drawn once per chip.
``compensation``
    ``mode``: ``none``, ``global`` (aihwkit's GlobalDriftCompensation) or ``column``.
``energy``
    Per-operation estimates (pJ, ns) used by validation reports; each carries its source.
``provenance``
    ``source`` and ``note``: where the numbers come from.

Physical bounds of the numeric fields and the checks of every law over x in [0, 1] are in
:mod:`pcm_sim.profile_bounds` (applied by :meth:`DeviceProfile.from_dict`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pcm_sim.files import decode_text, read_bytes, resolve_yaml, shipped_dir, shipped_names
from pcm_sim.profile_sections import (
    MAX_PROFILE_BYTES,
    MAX_TILE_SIZE,
    RETIRED_KEYS,
    CompensationParams,
    DeviceParams,
    DriftParams,
    EnergyParams,
    Law,
    LawPiece,
    PeripheryParams,
    ProfileError,
    ProgrammingParams,
    Provenance,
    ReadNoiseParams,
    TileParams,
    WeightCellParams,
    check_finite,
)

__all__ = [
    "MAX_PROFILE_BYTES",
    "MAX_TILE_SIZE",
    "CompensationParams",
    "DeviceParams",
    "DeviceProfile",
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
    "default_profile_dict",
    "list_profiles",
    "load_profile",
    "profile_dir",
]


@dataclass(frozen=True)
class DeviceProfile:
    """A complete, validated device profile (immutable)."""

    name: str
    device: DeviceParams
    programming: ProgrammingParams
    drift: DriftParams
    read_noise: ReadNoiseParams
    weight_cell: WeightCellParams = field(default_factory=WeightCellParams)
    tile: TileParams = field(default_factory=TileParams)
    periphery: PeripheryParams = field(default_factory=PeripheryParams)
    compensation: CompensationParams = field(default_factory=CompensationParams)
    energy: EnergyParams = field(default_factory=EnergyParams)
    provenance: Provenance = field(default_factory=Provenance)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly); ``from_dict(to_dict())`` is equal."""
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> DeviceProfile:
        """Build and validate a profile from a nested mapping; raises :class:`ProfileError`."""
        from pcm_sim.profile_bounds import check_profile_bounds  # physical bounds, law checks

        try:
            return check_profile_bounds(_build(cls, data, "", source))
        except ProfileError as exc:
            msg = str(exc)
            if msg.startswith(f"{source}: "):
                raise
            raise ProfileError(f"{source}: {msg}") from None

    def with_overrides(self, overrides: dict[str, Any]) -> DeviceProfile:
        """A new profile with dotted overrides applied, e.g. ``{"drift.scale": 2.0}``."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            _set_dotted(data, dotted, value, self.name)
        return DeviceProfile.from_dict(data, source=f"{self.name} (overrides)")

    @property
    def is_ideal(self) -> bool:
        """True when reads reproduce the weights exactly (no noise, drift, faults, converters)."""
        return (
            self.programming.scale == 0
            and self.drift.scale == 0
            and self.read_noise.scale == 0
            and self.device.levels == 0
            and self.device.d2d_gain_std == 0
            and self.device.stuck_at_gmin_fraction == 0
            and self.device.stuck_at_gmax_fraction == 0
            and self.periphery.dac_bits == 0
            and self.periphery.adc_bits == 0
            and self.periphery.output_range == 0
            and self.periphery.output_noise == 0
        )


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"pieces"}:  # a Law serializes as its list of pieces
            return _to_plain(value["pieces"])
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v) for v in value]
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    if dotted in RETIRED_KEYS:
        raise ProfileError(f"{source}: override {dotted!r}: removed, use {RETIRED_KEYS[dotted]}")
    keys = dotted.split(".")
    node: Any = data
    for key in keys[:-1]:
        if not isinstance(node, dict) or key not in node:
            raise ProfileError(f"{source}: override {dotted!r}: unknown section {key!r}")
        node = node[key]
    if not isinstance(node, dict) or keys[-1] not in node:
        raise ProfileError(f"{source}: override {dotted!r}: unknown field")
    node[keys[-1]] = copy.deepcopy(value)


_SECTION_TYPES: dict[str, type] = {
    "device": DeviceParams,
    "programming": ProgrammingParams,
    "drift": DriftParams,
    "read_noise": ReadNoiseParams,
    "weight_cell": WeightCellParams,
    "tile": TileParams,
    "periphery": PeripheryParams,
    "compensation": CompensationParams,
    "energy": EnergyParams,
    "provenance": Provenance,
}


def _build(cls: type, data: Any, path: str, source: str) -> Any:
    """Recursively build dataclass ``cls`` from ``data`` with strict type checks."""
    where = path or "profile"
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown and f"{where}.{unknown[0]}" in RETIRED_KEYS:
        raise ProfileError(
            f"{where}.{unknown[0]}: removed, use {RETIRED_KEYS[f'{where}.{unknown[0]}']}"
        )
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r} (expected one of {sorted(fields)})"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProfileError(f"{sub}: missing required field")
            continue
        kwargs[name] = _convert(f.type, data[name], sub, source)
    try:
        return cls(**kwargs)
    except ProfileError as exc:
        msg = str(exc)
        raise ProfileError(msg if msg.startswith(path) or not path else f"{path}: {msg}") from None


def _convert(type_name: Any, value: Any, path: str, source: str) -> Any:
    """Convert a raw YAML value to the annotated field type (annotations are strings here)."""
    t = str(type_name)
    if t == "Law":
        return _build_law(value, path)
    section = path.split(".")[-1]
    if t in {c.__name__ for c in _SECTION_TYPES.values()}:
        return _build(_SECTION_TYPES[section], value, path, source)
    if t == "float":
        return check_finite(path, value)
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"{path}: expected an integer, got {value!r}")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise ProfileError(f"{path}: expected true or false, got {value!r}")
        return value
    if t == "str" or t.startswith("Literal"):
        if not isinstance(value, str):
            raise ProfileError(f"{path}: expected a string, got {value!r}")
        return value
    raise ProfileError(f"{path}: unsupported field type {t}")  # pragma: no cover


def _build_law(value: Any, path: str) -> Law:
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{path}: expected a non-empty list of law pieces")
    pieces = []
    allowed = {"form", "coeffs", "x_below", "clip_min", "clip_max"}
    for i, raw in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: expected a mapping with form and coeffs")
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ProfileError(f"{where}: unknown key {unknown[0]!r} (expected {sorted(allowed)})")
        if "form" not in raw or "coeffs" not in raw:
            raise ProfileError(f"{where}: missing required field form or coeffs")
        coeffs = raw["coeffs"]
        if not isinstance(coeffs, list):
            raise ProfileError(f"{where}.coeffs: expected a list of numbers")
        optional = {
            k: (None if raw.get(k) is None else check_finite(f"{where}.{k}", raw[k]))
            for k in ("x_below", "clip_min", "clip_max")
        }
        try:
            pieces.append(
                LawPiece(
                    form=raw["form"],
                    coeffs=tuple(check_finite(f"{where}.coeffs", c) for c in coeffs),
                    **optional,
                )
            )
        except ProfileError as exc:
            raise ProfileError(f"{where}.{exc}") from None
    try:
        return Law(tuple(pieces))
    except ProfileError as exc:
        raise ProfileError(f"{path}.{exc}") from None


def profile_dir() -> Path:
    """Directory of the shipped profiles (package data, so it works after ``pip install .``)."""
    return shipped_dir("device_profiles")


def list_profiles() -> list[str]:
    """Names of the shipped profiles."""
    return shipped_names(profile_dir())


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses aliases, so alias bombs cannot expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ProfileError(f"line {event.start_mark.line + 1}: YAML aliases are not allowed")
        return super().compose_node(parent, index)


def _read_yaml(path: Path) -> Any:
    from pcm_sim.profile_bounds import check_yaml_structure  # depth and node limits

    raw = read_bytes(path, ProfileError, MAX_PROFILE_BYTES)
    text = decode_text(raw, path, ProfileError, "binary file?")
    try:
        check_yaml_structure(text)
        return yaml.load(text, Loader=_StrictLoader)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ProfileError(f"{path}: malformed YAML{where}: {problem}") from None


def load_profile(
    name_or_path: str | Path | DeviceProfile, overrides: dict[str, Any] | None = None
) -> DeviceProfile:
    """Load a profile by shipped name (``pcm_nandakumar2019``) or YAML path, then apply overrides.

    Raises :class:`ProfileError` naming the file, the field and what was expected.
    """
    if isinstance(name_or_path, DeviceProfile):
        profile = name_or_path
    else:
        path = resolve_yaml(name_or_path, profile_dir(), "profile", ProfileError)
        data = _read_yaml(path)
        if isinstance(data, dict) and "name" not in data:
            data = {"name": path.stem, **data}
        profile = DeviceProfile.from_dict(data, source=str(path))
    return profile.with_overrides(overrides) if overrides else profile


def default_profile_dict() -> dict[str, Any]:
    """The Nandakumar-2019 profile as a dict: the defaults every field falls back to."""
    return load_profile("pcm_nandakumar2019").to_dict()
