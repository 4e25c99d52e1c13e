"""Validation specs: the YAML that states what a chip must achieve, checked field by field.

A spec file is YAML::

    name: snu_fmnist-on-hermes          # optional label
    chips: 20                           # chip seeds seed .. seed + chips - 1
    seed: 0
    times: [1h, 1d, 1mo, 1y]            # drift times
    samples: 1000                       # test items per chip evaluation (<= the test split)
    input_seed: 1                       # input encoding seed, the same for every chip
    mode: default
    overrides: {drift.scale: 1.0}       # optional dotted profile overrides
    requirements:
      - {quantity: accuracy, at: 1d, min: 0.80, min_yield: 0.9}   # per chip; yield over chips
      - {quantity: accuracy, at: 1y, min: 0.80, min_yield_lower_95: 0.8}   # confident yield
      - {quantity: mean_accuracy, at: 1y, min: 0.80}               # mean over chips
      - {quantity: energy_nj, max: 50}                             # per inference (worst time)
      - {quantity: devices, max: 600000}

Quantities: the family's metric (``accuracy`` / ``nll``; per chip, ``at`` required, passes when
the fraction of chips within bounds, the *yield*, is at least ``min_yield`` (default 1, unless
``min_yield_lower_95`` is given) and, with ``min_yield_lower_95``, when the one-sided 95 %
Clopper-Pearson lower confidence bound of the yield is at least that value),
``mean_<metric>`` (``at`` required), and the hardware figures of :mod:`pcm_sim.studies.validate`
(per-inference quantities take the worst time, in the direction of the bound, unless ``at`` is
given).  ``samples`` is checked against the test split's size when the checkpoint is known.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcm_sim.profiles import DeviceProfile
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.studies.sweep_file import (
    SweepError,
    check_top_keys,
    parse_override_grid,
    parse_time_value,
    parse_times,
    read_study_file,
)

__all__ = [
    "PER_INFERENCE_QUANTITIES",
    "STATIC_QUANTITIES",
    "Requirement",
    "SpecError",
    "ValidationSpec",
    "check_quantities",
    "load_spec",
    "parse_spec",
]

SPEC_KEYS = {
    "name",
    "chips",
    "seed",
    "times",
    "samples",
    "input_seed",
    "mode",
    "overrides",
    "requirements",
}
REQUIRED_SPEC_KEYS = ("chips", "times", "samples", "requirements")
REQUIREMENT_KEYS = {"quantity", "at", "min", "max", "min_yield", "min_yield_lower_95"}
STATIC_QUANTITIES = {
    "devices": "PCM devices",
    "tiles": "crossbar tiles",
    "programming_energy_uj": "programming energy per chip (µJ, estimate)",
}
PER_INFERENCE_QUANTITIES = {
    "tile_mvms": "tile MVMs per inference",
    "adc_conversions": "ADC conversions per inference",
    "dac_conversions": "DAC conversions per inference",
    "energy_nj": "energy per inference (nJ, estimate)",
    "latency_us": "latency per inference (µs, estimate)",
}


class SpecError(ValueError):
    """A validation spec is malformed or asks for something the model or profile cannot give."""


@dataclass(frozen=True)
class Requirement:
    """One spec line: ``min <= quantity <= max`` (at time ``at``), per chip with a yield.

    ``min_yield``: least fraction of chips within bounds; ``min_yield_lower_95``: least one-sided
    95 % Clopper-Pearson lower confidence bound of that fraction.
    """

    quantity: str
    at_s: float | None = None
    min: float | None = None
    max: float | None = None
    min_yield: float | None = None
    min_yield_lower_95: float | None = None

    def describe(self) -> str:
        """Human-readable bound, e.g. ``>= 0.8 on >= 90 % of chips``."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        text = " and ".join(parts)
        if self.min_yield is not None:
            text += f" on >= {100 * self.min_yield:g} % of chips"
        if self.min_yield_lower_95 is not None:
            text += f", yield >= {100 * self.min_yield_lower_95:g} % with 95 % confidence"
        return text

    def within(self, value: float) -> bool:
        """True when ``value`` satisfies the bounds."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


@dataclass(frozen=True)
class ValidationSpec:
    """A validated spec (see the module docstring)."""

    name: str
    chips: int
    seed: int
    times_s: tuple[float, ...]
    samples: int
    input_seed: int
    mode: str
    overrides: dict[str, Any]
    requirements: tuple[Requirement, ...]
    source: str = "<spec>"

    def with_chips(self, chips: int) -> ValidationSpec:
        """The same spec with another number of chips."""
        if chips < 1:
            raise SpecError(f"--chips: expected >= 1, got {chips}")
        return dataclasses.replace(self, chips=chips)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _count(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _requirement(raw: Any, where: str, times_s: tuple[float, ...]) -> Requirement:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping with quantity and min and/or max")
    unknown = sorted(set(raw) - REQUIREMENT_KEYS)
    if unknown:
        raise SpecError(
            f"{where}: unknown key {unknown[0]!r} (expected {sorted(REQUIREMENT_KEYS)})"
        )
    quantity = raw.get("quantity")
    if not isinstance(quantity, str) or not quantity:
        raise SpecError(f"{where}.quantity: expected a name")
    if "min" not in raw and "max" not in raw:
        raise SpecError(f"{where}: expected a bound, min and/or max")
    low = _number(raw["min"], f"{where}.min") if "min" in raw else None
    high = _number(raw["max"], f"{where}.max") if "max" in raw else None
    if low is not None and high is not None and low > high:
        raise SpecError(f"{where}: min {low} > max {high}")
    at_s = None
    if "at" in raw:
        try:
            at_s = parse_time_value(raw["at"], f"{where}.at")
        except SweepError as exc:
            raise SpecError(str(exc)) from None
        if at_s not in times_s:
            raise SpecError(f"{where}.at: {raw['at']!r} is not one of the spec's times")
    yields: dict[str, float | None] = {"min_yield": None, "min_yield_lower_95": None}
    for key, closed in (("min_yield", True), ("min_yield_lower_95", False)):
        if key in raw:
            value = _number(raw[key], f"{where}.{key}")
            if not (0 < value <= 1 if closed else 0 < value < 1):  # a lower bound is < 1
                interval = "(0, 1]" if closed else "(0, 1)"
                raise SpecError(f"{where}.{key}: expected a fraction in {interval}, got {value}")
            yields[key] = value
    if quantity in STATIC_QUANTITIES and at_s is not None:
        raise SpecError(f"{where}: {quantity} does not depend on time; remove 'at'")
    return Requirement(quantity, at_s, low, high, yields["min_yield"], yields["min_yield_lower_95"])


def parse_spec(data: Any, source: str = "<spec>") -> ValidationSpec:
    """Validate a spec mapping; raises :class:`SpecError` naming the field."""
    data = check_top_keys(data, source, SPEC_KEYS, REQUIRED_SPEC_KEYS, SpecError)
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{source}: name: expected a string")
    try:
        times_s = parse_times(data["times"], f"{source}: times")
    except SweepError as exc:
        raise SpecError(str(exc)) from None
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise SpecError(f"{source}: overrides: expected a mapping of dotted fields to values")
    try:
        if overrides:
            grid = {k: [v] for k, v in overrides.items()}
            overrides = parse_override_grid(grid, f"{source}: overrides")[0]
    except SweepError as exc:
        raise SpecError(str(exc)) from None
    mode = data.get("mode", "default")
    if not isinstance(mode, str) or not mode:
        raise SpecError(f"{source}: mode: expected a string")
    raw_requirements = data["requirements"]
    if not isinstance(raw_requirements, list) or not raw_requirements:
        raise SpecError(f"{source}: requirements: expected a non-empty list")
    requirements = tuple(
        _requirement(r, f"{source}: requirements[{i}]", times_s)
        for i, r in enumerate(raw_requirements)
    )
    return ValidationSpec(
        name=name,
        chips=_count(data["chips"], f"{source}: chips", 1),
        seed=_count(data.get("seed", 0), f"{source}: seed", 0),
        times_s=times_s,
        samples=_count(data["samples"], f"{source}: samples", 1),
        input_seed=_count(data.get("input_seed", EVAL_INPUT_SEED), f"{source}: input_seed", 0),
        mode=mode,
        overrides=dict(overrides),
        requirements=requirements,
        source=source,
    )


def load_spec(path: str | Path) -> ValidationSpec:
    """Read and validate a spec YAML file."""
    path = Path(path)
    return parse_spec(read_study_file(path, "spec", SpecError), str(path))


def check_quantities(spec: ValidationSpec, metric: str, profile: DeviceProfile) -> None:
    """Every requirement names a quantity the model (``metric``) and profile can give."""
    energy = profile.energy
    known = {metric, f"mean_{metric}", *STATIC_QUANTITIES, *PER_INFERENCE_QUANTITIES}
    for i, req in enumerate(spec.requirements):
        where = f"{spec.source}: requirements[{i}]"
        if req.quantity not in known:
            raise SpecError(f"{where}.quantity: {req.quantity!r}, expected one of {sorted(known)}")
        if req.quantity in (metric, f"mean_{metric}") and req.at_s is None:
            raise SpecError(f"{where}: {req.quantity} needs 'at' (one of the spec's times)")
        for key in ("min_yield", "min_yield_lower_95"):
            if getattr(req, key) is not None and req.quantity != metric:
                raise SpecError(f"{where}: {key} applies to the per-chip {metric!r} only")
        needs = {
            "energy_nj": energy.cell_read_pj + energy.dac_conversion_pj + energy.adc_conversion_pj,
            "latency_us": energy.mvm_latency_ns,
            "programming_energy_uj": energy.programming_pulse_pj,
        }
        if req.quantity in needs and not needs[req.quantity]:
            raise SpecError(
                f"{where}: profile {profile.name!r} carries no energy figures for {req.quantity}"
            )
