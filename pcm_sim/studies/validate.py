"""Pre-silicon validation: a checkpoint on N simulated chips of a profile, against a spec.

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
      - {quantity: mean_accuracy, at: 1y, min: 0.80}               # mean over chips
      - {quantity: energy_nj, max: 50}                             # per inference (worst time)
      - {quantity: devices, max: 600000}

Every (time, chip) pair is one sweep cell (:func:`pcm_sim.studies.sweep.run_cell`), run with
forward pre-hooks that count the crossbar work (:class:`~pcm_sim.studies.sweep.OpCounter`).

Quantities: the family's metric (``accuracy`` / ``nll``; per chip, ``at`` required, passes when
the fraction of chips within bounds, the *yield*, is at least ``min_yield``, default 1),
``mean_<metric>`` (``at`` required), and the hardware figures below (per inference quantities
take the worst time unless ``at`` is given).

Work per inference (one test item; counts from the measured inputs of each analog layer with
``in`` inputs, ``out`` outputs, ``R`` row tiles, ``C`` column tiles, ``d`` devices per weight;
``V`` input vectors, ``S`` nonzero inputs, ``A`` (vector, row-tile) pairs with a nonzero input,
``V_a`` vectors with a nonzero input, all divided by ``samples``):

=====================  =============================  =============================
quantity               spike inputs (no DAC)          graded inputs
=====================  =============================  =============================
``tile_mvms``          ``A * C`` (event-driven)       ``V * R * C``
``adc_conversions``    ``A * out``                    ``V * R * out``
``dac_conversions``    0                              ``V * in``
cell reads             ``S * out * d``                ``V * in * out * d``
MVM steps              ``V_a``                        ``V``
=====================  =============================  =============================

ESTIMATES (from the profile's ``energy`` section, which cites its source; not measurements):
``energy_nj = (cell_reads * cell_read_pj + dac * dac_conversion_pj + adc *
adc_conversion_pj) / 1000`` per inference (analog array and converters only: no digital
neuron updates, no data movement); ``latency_us = MVM steps * mvm_latency_ns / 1000`` per
inference, assuming the tiles of a layer work in parallel and layers and time steps run one
after the other; ``programming_energy_uj = pulses * programming_pulse_pj / 1e6`` once per chip.
``devices`` and ``tiles`` are summed over layers (``CrossbarArray.n_devices``, ``n_tiles``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pcm_sim.families import FAMILIES
from pcm_sim.profiles import DeviceProfile, ProfileError, _read_yaml, load_profile
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.studies.executors import Executor
from pcm_sim.studies.plots import time_label
from pcm_sim.studies.sweep import (
    ResolvedModel,
    SweepError,
    build_cell,
    file_sha256,
    parse_override_grid,
    parse_time_value,
    preflight,
    run_cells,
)
from pcm_sim.training.checkpoint import load_checkpoint

__all__ = [
    "Requirement",
    "SpecError",
    "ValidationSpec",
    "load_spec",
    "parse_spec",
    "run_validation",
    "write_report",
]

FORMAT = "pcm-sim-validation/1"
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
REQUIREMENT_KEYS = {"quantity", "at", "min", "max", "min_yield"}
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
    """One spec line: ``min <= quantity <= max`` (at time ``at``), per chip with a yield."""

    quantity: str
    at_s: float | None = None
    min: float | None = None
    max: float | None = None
    min_yield: float | None = None

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
    min_yield = None
    if "min_yield" in raw:
        min_yield = _number(raw["min_yield"], f"{where}.min_yield")
        if not 0 < min_yield <= 1:
            raise SpecError(f"{where}.min_yield: expected a fraction in (0, 1], got {min_yield}")
    if quantity in STATIC_QUANTITIES and at_s is not None:
        raise SpecError(f"{where}: {quantity} does not depend on time; remove 'at'")
    return Requirement(quantity, at_s, low, high, min_yield)


def parse_spec(data: Any, source: str = "<spec>") -> ValidationSpec:
    """Validate a spec mapping; raises :class:`SpecError` naming the field."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise SpecError(f"{source}: unknown key {unknown[0]!r} (expected {sorted(SPEC_KEYS)})")
    for key in ("chips", "times", "samples", "requirements"):
        if key not in data:
            raise SpecError(f"{source}: missing required key {key!r}")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{source}: name: expected a string")
    times = data["times"]
    if not isinstance(times, list) or not times:
        raise SpecError(f"{source}: times: expected a non-empty list")
    try:
        times_s = tuple(parse_time_value(t, f"{source}: times") for t in times)
    except SweepError as exc:
        raise SpecError(str(exc)) from None
    if len(set(times_s)) != len(times_s):
        raise SpecError(f"{source}: times: duplicate times in {times}")
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
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        data = _read_yaml(path)
    except ProfileError as exc:
        raise SpecError(str(exc)) from None
    return parse_spec(data, str(path))


def _check_quantities(spec: ValidationSpec, metric: str, profile: DeviceProfile) -> None:
    energy = profile.energy
    known = {metric, f"mean_{metric}", *STATIC_QUANTITIES, *PER_INFERENCE_QUANTITIES}
    for i, req in enumerate(spec.requirements):
        where = f"{spec.source}: requirements[{i}]"
        if req.quantity not in known:
            raise SpecError(f"{where}.quantity: {req.quantity!r}, expected one of {sorted(known)}")
        if req.quantity in (metric, f"mean_{metric}") and req.at_s is None:
            raise SpecError(f"{where}: {req.quantity} needs 'at' (one of the spec's times)")
        if req.min_yield is not None and req.quantity != metric:
            raise SpecError(f"{where}: min_yield applies to the per-chip {metric!r} only")
        needs = {
            "energy_nj": energy.cell_read_pj + energy.dac_conversion_pj + energy.adc_conversion_pj,
            "latency_us": energy.mvm_latency_ns,
            "programming_energy_uj": energy.programming_pulse_pj,
        }
        if req.quantity in needs and not needs[req.quantity]:
            raise SpecError(
                f"{where}: profile {profile.name!r} carries no energy figures for {req.quantity}"
            )


def _work(ops: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    """Per-layer work per inference from one cell's :class:`OpCounter` summary."""
    rows = []
    for layer in ops:
        d = layer["n_devices"] / (layer["in"] * layer["out"])  # devices per weight
        v, s, a = layer["vectors"], layer["nonzero"], layer["row_tile_activations"]
        if layer["binary_input"]:
            tile_mvms, adc, dac = a * layer["n_col_tiles"], a * layer["out"], 0
            reads, steps = s * layer["out"] * d, layer["active_vectors"]
        else:
            tile_mvms = v * layer["n_row_tiles"] * layer["n_col_tiles"]
            adc, dac = v * layer["n_row_tiles"] * layer["out"], v * layer["in"]
            reads, steps = v * layer["in"] * layer["out"] * d, v
        rows.append(
            {
                "name": layer["name"],
                "vectors": v / samples,
                "input_rate": s / (v * layer["in"]) if v else 0.0,
                "tile_mvms": tile_mvms / samples,
                "tile_mvms_dense": v * layer["n_tiles"] / samples,
                "adc_conversions": adc / samples,
                "dac_conversions": dac / samples,
                "cell_reads": reads / samples,
                "mvm_steps": steps / samples,
            }
        )
    return rows


def _estimates(work: list[dict[str, Any]], profile: DeviceProfile) -> dict[str, float]:
    """Energy (nJ) and latency (µs) ESTIMATES per inference from the profile's energy figures."""
    e = profile.energy
    reads = sum(w["cell_reads"] for w in work)
    dac = sum(w["dac_conversions"] for w in work)
    adc = sum(w["adc_conversions"] for w in work)
    steps = sum(w["mvm_steps"] for w in work)
    return {
        "cell_reads_nj": reads * e.cell_read_pj / 1e3,
        "dac_nj": dac * e.dac_conversion_pj / 1e3,
        "adc_nj": adc * e.adc_conversion_pj / 1e3,
        "energy_nj": (
            reads * e.cell_read_pj + dac * e.dac_conversion_pj + adc * e.adc_conversion_pj
        )
        / 1e3,
        "latency_us": steps * e.mvm_latency_ns / 1e3,
    }


def _distribution(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "p05": float(np.quantile(arr, 0.05)),
        "median": float(np.median(arr)),
        "max": float(arr.max()),
    }


def run_validation(
    checkpoint: str | Path,
    profile: str | Path,
    spec: ValidationSpec,
    executor: Executor,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``spec.chips`` chips of ``profile`` and judge the spec.

    Returns the report as a JSON-able dict (``passed`` is the verdict).  Bad input raises
    (:class:`SpecError`, ``ProfileError``, ``CheckpointError``, :class:`SweepError`) before
    any cell runs.
    """
    path = Path(checkpoint)
    model, payload = load_checkpoint(path)
    recipe = payload["recipe"]
    family = FAMILIES[recipe["family"]]
    resolved = load_profile(profile, spec.overrides or None)
    _check_quantities(spec, family.metric, resolved)
    target = ResolvedModel(
        path.parent.name or path.stem, path.resolve(), file_sha256(path), recipe, model
    )
    evaluation = {"mode": spec.mode, "limit": spec.samples, "input_seed": spec.input_seed}
    seeds = list(range(spec.seed, spec.seed + spec.chips))
    cells = [
        {
            **build_cell(
                f"validate:{spec.name}",
                target,
                str(profile),
                spec.overrides,
                resolved,
                t,
                s,
                evaluation,
            ),
            "count_ops": True,
        }
        for t in spec.times_s
        for s in seeds
    ]
    preflight(cells, [target])
    log(f"validating {target.label} on {resolved.name}: {len(cells)} cells, {executor.description}")
    results: dict[tuple[float, int], dict[str, Any]] = {}
    run_cells(
        cells,
        executor,
        lambda cell, result: results.__setitem__((cell["t_s"], cell["seed"]), result),
        f"validate {spec.name}",
        progress,
    )
    return _report(spec, target, payload, str(profile), resolved, seeds, results)


def _report(
    spec: ValidationSpec,
    target: ResolvedModel,
    payload: dict[str, Any],
    profile_source: str,
    profile: DeviceProfile,
    seeds: list[int],
    results: dict[tuple[float, int], dict[str, Any]],
) -> dict[str, Any]:
    from pcm_sim import __version__

    family = FAMILIES[target.recipe["family"]]
    metric = family.metric
    first_ops = results[(spec.times_s[0], seeds[0])]["ops"]
    hardware_layers = [
        {
            k: layer[k]
            for k in ("name", "in", "out", "binary_input", "n_tiles", "n_devices", "pulses")
        }
        for layer in first_ops
    ]
    devices = sum(layer["n_devices"] for layer in first_ops)
    tiles = sum(layer["n_tiles"] for layer in first_ops)
    pulses = statistics.fmean(sum(x["pulses"] for x in results[key]["ops"]) for key in results)
    per_time: list[dict[str, Any]] = []
    work_rows: list[dict[str, Any]] = []
    for t in spec.times_s:
        values = [results[(t, s)]["value"] for s in seeds]
        per_time.append(
            {"t_s": t, "label": time_label(t), "values": values, **_distribution(values)}
        )
        chip_work = [_work(results[(t, s)]["ops"], spec.samples) for s in seeds]
        layers = [
            {
                "name": chip_work[0][i]["name"],
                **{
                    k: statistics.fmean(w[i][k] for w in chip_work)
                    for k in chip_work[0][i]
                    if k != "name"
                },
            }
            for i in range(len(chip_work[0]))
        ]
        work_rows.append(
            {"t_s": t, "label": time_label(t), "layers": layers, **_estimates(layers, profile)}
        )
    programming_uj = pulses * profile.energy.programming_pulse_pj / 1e6
    requirements = []
    for req in spec.requirements:
        yield_ = None
        if req.quantity == metric:
            row = next(p for p in per_time if p["t_s"] == req.at_s)
            yield_ = statistics.fmean(req.within(v) for v in row["values"])
            measured = yield_
            passed = yield_ >= (req.min_yield if req.min_yield is not None else 1.0)
        else:
            if req.quantity == f"mean_{metric}":
                measured = next(p["mean"] for p in per_time if p["t_s"] == req.at_s)
            elif req.quantity == "devices":
                measured = float(devices)
            elif req.quantity == "tiles":
                measured = float(tiles)
            elif req.quantity == "programming_energy_uj":
                measured = programming_uj
            else:
                values = [
                    _per_inference(w, req.quantity)
                    for w in work_rows
                    if req.at_s in (None, w["t_s"])
                ]
                measured = max(values)
            passed = req.within(measured)
        requirements.append(
            {
                "quantity": req.quantity,
                "at_s": req.at_s,
                "at": time_label(req.at_s) if req.at_s is not None else None,
                "min": req.min,
                "max": req.max,
                "min_yield": req.min_yield,
                "bound": req.describe(),
                "measured": measured,
                "yield": yield_,
                "passed": bool(passed),
            }
        )
    return {
        "format": FORMAT,
        "name": spec.name,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "pcm_sim_version": __version__,
        "checkpoint": {
            "path": str(target.checkpoint),
            "sha256": target.sha256,
            "recipe": target.recipe["name"],
            "family": target.recipe["family"],
            "software": payload.get("software", {}),
        },
        "profile": {
            "name": profile.name,
            "source": profile_source,
            "overrides": spec.overrides,
            "provenance": dataclasses.asdict(profile.provenance),
            "energy": dataclasses.asdict(profile.energy),
        },
        "metric": metric,
        "higher_is_better": family.higher_is_better,
        "chips": spec.chips,
        "seeds": seeds,
        "samples": spec.samples,
        "input_seed": spec.input_seed,
        "mode": spec.mode,
        "per_time": per_time,
        "hardware": {
            "layers": hardware_layers,
            "devices": devices,
            "tiles": tiles,
            "programming_pulses": pulses,
            "programming_energy_uj": programming_uj,
        },
        "work": work_rows,
        "requirements": requirements,
        "passed": all(r["passed"] for r in requirements),
    }


def _per_inference(work_row: dict[str, Any], quantity: str) -> float:
    if quantity in ("energy_nj", "latency_us"):
        return float(work_row[quantity])
    return float(sum(layer[quantity] for layer in work_row["layers"]))


def _plot(report: dict[str, Any], path: Path) -> None:
    metric = report["metric"]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ex = fig.subplots(1, 2)
    labels = [p["label"] for p in report["per_time"]]
    positions = list(range(1, len(labels) + 1))
    ax.boxplot(
        [p["values"] for p in report["per_time"]], positions=positions, widths=0.5, showfliers=False
    )
    for x, p in zip(positions, report["per_time"], strict=True):
        jitter = np.linspace(-0.12, 0.12, len(p["values"])) if len(p["values"]) > 1 else [0.0]
        ax.scatter(x + np.asarray(jitter), p["values"], s=10, alpha=0.6, color="tab:blue")
    for req in report["requirements"]:
        if req["quantity"] == metric and req["at_s"] is not None:
            x = positions[[p["t_s"] for p in report["per_time"]].index(req["at_s"])]
            for bound in (req["min"], req["max"]):
                if bound is not None:
                    color = "tab:green" if req["passed"] else "tab:red"
                    ax.hlines(bound, x - 0.35, x + 0.35, colors=color, linestyles="--")
    ax.set_xticks(positions, labels)
    ax.set_xlabel("time after programming")
    ax.set_ylabel(f"{metric} per chip")
    ax.set_title(f"{report['chips']} chips of {report['profile']['name']} (dashed: spec)")
    ax.grid(alpha=0.3)
    parts = (("cell_reads_nj", "cell reads"), ("dac_nj", "DAC"), ("adc_nj", "ADC"))
    bottom = np.zeros(len(labels))
    for key, name in parts:
        heights = np.array([w[key] for w in report["work"]])
        ex.bar(labels, heights, bottom=bottom, label=name)
        bottom += heights
    ex.set_ylabel("nJ per inference (ESTIMATE)")
    ex.set_title("energy per inference: ESTIMATE from the profile's figures")
    ex.legend(fontsize=8)
    ex.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"pre-silicon validation: {report['name']} ({'PASS' if report['passed'] else 'FAIL'})"
    )
    fig.savefig(path, dpi=120)


def _markdown(report: dict[str, Any], figure: str) -> str:
    metric = report["metric"]
    ck, prof, hw = report["checkpoint"], report["profile"], report["hardware"]
    met = sum(r["passed"] for r in report["requirements"])
    software = ck["software"].get(metric)
    lines = [
        f"# Pre-silicon validation: {report['name']}",
        "",
        f"**Verdict: {'PASS' if report['passed'] else 'FAIL'}** "
        f"({met}/{len(report['requirements'])} requirements met)",
        "",
        f"- Checkpoint: `{ck['path']}` (sha256 `{ck['sha256'][:16]}…`), recipe `{ck['recipe']}`"
        + (f", software {metric} {software:.4f}" if software is not None else ""),
        f"- Profile: `{prof['name']}` ({prof['source']})"
        + (f" with overrides `{json.dumps(prof['overrides'])}`" if prof["overrides"] else "")
        + f"; source: {prof['provenance']['source']}",
        f"- {report['chips']} chips (seeds {report['seeds'][0]}..{report['seeds'][-1]}), "
        f"{report['samples']} test items per chip and time, input seed {report['input_seed']}, "
        f"mode `{report['mode']}`; pcm-sim {report['pcm_sim_version']}, {report['created_utc']}",
        "",
        "## Requirements",
        "",
        "| # | quantity | at | bound | measured | result |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["requirements"], 1):
        measured = (
            f"yield {100 * r['yield']:.1f} %" if r["yield"] is not None else f"{r['measured']:.6g}"
        )
        at = r["at"] or ("worst time" if r["quantity"] in PER_INFERENCE_QUANTITIES else "-")
        result = "pass" if r["passed"] else "**FAIL**"
        lines.append(f"| {i} | {r['quantity']} | {at} | {r['bound']} | {measured} | {result} |")
    lines += [
        "",
        f"## {metric} over drift time ({report['chips']} chips)",
        "",
        "| time | mean | std | min | 5 % | median | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in report["per_time"]:
        lines.append(
            f"| {p['label']} | {p['mean']:.4f} | {p['std']:.4f} | {p['min']:.4f} | {p['p05']:.4f} "
            f"| {p['median']:.4f} | {p['max']:.4f} |"
        )
    lines += [
        "",
        f"![{metric} per chip and energy estimate]({figure})",
        "",
        "## Hardware used",
        "",
        "| layer | in x out | inputs | tiles | PCM devices |",
        "|---|---|---|---|---|",
    ]
    for layer in hw["layers"]:
        kind = "spikes (no DAC)" if layer["binary_input"] else "graded (DAC)"
        lines.append(
            f"| `{layer['name']}` | {layer['in']} x {layer['out']} | {kind} | {layer['n_tiles']} "
            f"| {layer['n_devices']:,} |"
        )
    lines += [
        f"| **total** | | | **{hw['tiles']}** | **{hw['devices']:,}** |",
        "",
        "## Work per inference (measured input spike rates, mean over chips)",
        "",
        "| time | layer | input vectors | input rate | tile MVMs (dense) | ADC conv. | DAC conv. "
        "| cell reads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in report["work"]:
        for layer in w["layers"]:
            lines.append(
                f"| {w['label']} | `{layer['name']}` | {layer['vectors']:.1f} "
                f"| {layer['input_rate']:.3f} "
                f"| {layer['tile_mvms']:.1f} ({layer['tile_mvms_dense']:.1f}) "
                f"| {layer['adc_conversions']:,.0f} | {layer['dac_conversions']:,.0f} "
                f"| {layer['cell_reads']:,.0f} |"
            )
    e = prof["energy"]
    lines += [
        "",
        "Spike inputs drive rows without a DAC; a tile with no spike in its rows is skipped "
        "(event-driven), so tile MVMs and ADC conversions count only tiles with at least one "
        "input spike; dense counts in parentheses.",
        "",
        "## Energy and latency per inference: ESTIMATES",
        "",
        "> These are **estimates**, not measurements: counts above times per-operation figures "
        f"from the profile (cell read {e['cell_read_pj']} pJ, DAC {e['dac_conversion_pj']} pJ, "
        f"ADC {e['adc_conversion_pj']} pJ per conversion, {e['mvm_latency_ns']} ns per MVM, "
        f"{e['programming_pulse_pj']} pJ per programming pulse). Source: {e['source'].strip()} "
        "Analog array and converters only (no digital neuron updates or data movement); "
        "latency assumes the tiles of a layer run in parallel and layers and time steps run "
        "one after the other.",
        "",
        "| time | cell reads (nJ) | DAC (nJ) | ADC (nJ) | energy (nJ) | latency (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for w in report["work"]:
        lines.append(
            f"| {w['label']} | {w['cell_reads_nj']:.3f} | {w['dac_nj']:.3f} | {w['adc_nj']:.3f} "
            f"| {w['energy_nj']:.3f} | {w['latency_us']:.2f} |"
        )
    lines += [
        "",
        f"Programming (once per chip, estimate): {hw['programming_pulses']:,.0f} pulses, "
        f"{hw['programming_energy_uj']:.3f} µJ.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``validation.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = out_dir / "validation.png"
    _plot(report, figure)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = out_dir / "report.md"
    md_path.write_text(_markdown(report, figure.name))
    return [md_path, json_path, figure]
