"""Pre-silicon validation: a model (checkpoint, task or NIR file) on N simulated chips of a
profile, against a spec.

The spec format and its checks are in :mod:`pcm_sim.studies.validation_spec`, the rendered
report in :mod:`pcm_sim.studies.validate_report`.  Every (time, chip) pair is one sweep cell
(:func:`pcm_sim.studies.cells.run_cell`), run with forward pre-hooks that count the crossbar work
(:class:`~pcm_sim.crossbar.cost.OpCounter`).

Judging: a per-chip metric requirement measures the *yield*, the fraction ``k / n`` of the ``n``
chips within bounds, with its two-sided 95 % Clopper-Pearson interval and one-sided 95 % lower
bound (``beta.ppf(0.05, k, n - k + 1)``, 0 when ``k = 0``), and its worst chip (the minimum for a
``min`` bound, the maximum for a ``max`` bound).  A per-inference requirement without ``at``
measures the worst time in the direction of its bound (the smallest value for ``min``, the
largest for ``max``; with both bounds, the value farthest outside, or closest to leaving).

Work per inference and the energy/latency ESTIMATES: :mod:`pcm_sim.crossbar.cost`.
"""

from __future__ import annotations

import dataclasses
import datetime
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta

from pcm_sim.crossbar.cost import estimates, work_per_inference
from pcm_sim.data import load_chorales
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.profiles import DeviceProfile, load_profile
from pcm_sim.studies.cells import ResolvedModel, build_cell, file_sha256, preflight, run_cells
from pcm_sim.studies.executors import Executor
from pcm_sim.studies.plots import time_label
from pcm_sim.studies.validate_report import write_report
from pcm_sim.studies.validation_spec import (
    Requirement,
    SpecError,
    ValidationSpec,
    check_quantities,
    load_spec,
    parse_spec,
)
from pcm_sim.task_sources import Source, load_source
from pcm_sim.tasks import EvaluationTask, RecipeTask

__all__ = [
    "Requirement",
    "SpecError",
    "ValidationSpec",
    "count_test_items",
    "load_spec",
    "parse_spec",
    "run_validation",
    "write_report",
    "yield_statistics",
]

FORMAT = "pcm-sim-validation/1"


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
    source: Source | str | Path,
    profile: str | Path,
    spec: ValidationSpec,
    executor: Executor,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate ``source`` (a checkpoint path, or any :class:`Source`: your own task or a NIR
    file) on ``spec.chips`` chips of ``profile`` and judge the spec.

    Returns the report as a JSON-able dict (``passed`` is the verdict).  Bad input raises
    (:class:`SpecError`, ``ProfileError``, ``CheckpointError``, ``TaskError``,
    :class:`SweepError`) before any cell runs.
    """
    if not isinstance(source, Source):
        source = load_source("checkpoint", str(Path(source).resolve()))
    task = source.task
    resolved = load_profile(profile, spec.overrides or None)
    check_quantities(spec, task.metric_name, resolved)
    available = count_test_items(task)
    if available is not None and spec.samples > available:
        raise SpecError(
            f"{spec.source}: samples: {spec.samples} exceeds the test data of {task.name!r} "
            f"({available} items); expected at most {available}"
        )
    if source.kind == "checkpoint":
        path = Path(source.ref)
        target = ResolvedModel(path.parent.name or path.stem, source, file_sha256(path))
    else:
        label = source.ref.rpartition(":")[2] if source.kind == "task" else Path(source.ref).stem
        target = ResolvedModel(label, source, source.fingerprint())
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
    return _report(spec, target, str(profile), resolved, seeds, results)


def count_test_items(task: EvaluationTask | dict[str, Any]) -> int | None:
    """Items in the task's (or recipe's) test data (images, chorale pieces), or ``None`` when
    they are generated (CartPole episodes: any number) or unknown without loading them."""
    task = RecipeTask(task) if isinstance(task, dict) else task
    if not isinstance(task, RecipeTask):
        return task.test_size()
    recipe = task.recipe
    data_fields = task.family.schema["data"]
    data = recipe["data"]
    if "data_dir" in data_fields:
        return len(load_fashion_mnist(data.get("data_dir"), "test")[1])
    if "cache_dir" in data_fields:
        pieces = load_chorales(data.get("cache_dir"), data.get("max_pieces"), progress=False)
        return len(pieces["test"])
    return None


def yield_statistics(k: int, n: int) -> dict[str, Any]:
    """Yield ``k / n`` with Clopper-Pearson bounds (exact binomial, Clopper & Pearson 1934).

    ``ci95``: two-sided 95 % interval ``[beta.ppf(0.025, k, n-k+1), beta.ppf(0.975, k+1, n-k)]``;
    ``lower_95``: one-sided 95 % lower bound ``beta.ppf(0.05, k, n-k+1)``; 0 for ``k = 0`` and
    1 for ``k = n`` at the open ends.
    """
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"yield: expected 0 <= k <= n and n >= 1, got k={k}, n={n}")
    low_2 = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    high_2 = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    low_1 = float(beta.ppf(0.05, k, n - k + 1)) if k > 0 else 0.0
    return {"yield": k / n, "ci95": [low_2, high_2], "lower_95": low_1, "chips": n, "within": k}


def _worst(values: list[float], req: Requirement) -> float:
    """The value nearest to failing, in the bound's direction: the smallest for a ``min``
    bound, the largest for a ``max`` bound; with both, the largest excess over either."""
    if req.max is None:
        return min(values)
    if req.min is None:
        return max(values)
    low, high = req.min, req.max
    return max(values, key=lambda v: max(low - v, v - high))


def _judge(
    req: Requirement,
    metric: str,
    per_time: list[dict[str, Any]],
    work_rows: list[dict[str, Any]],
    hardware: dict[str, Any],
) -> dict[str, Any]:
    """One requirement's measured value, worst case, yield (per-chip metric) and verdict."""
    stats: dict[str, Any] | None = None
    if req.quantity == metric:
        values = next(p["values"] for p in per_time if p["t_s"] == req.at_s)
        stats = yield_statistics(sum(req.within(v) for v in values), len(values))
        measured, worst = stats["yield"], _worst(values, req)
        floor = req.min_yield if req.min_yield is not None else 1.0
        if req.min_yield is None and req.min_yield_lower_95 is not None:
            floor = 0.0
        passed = stats["yield"] >= floor and (
            req.min_yield_lower_95 is None or stats["lower_95"] >= req.min_yield_lower_95
        )
    else:
        if req.quantity == f"mean_{metric}":
            measured = next(p["mean"] for p in per_time if p["t_s"] == req.at_s)
        elif req.quantity in ("devices", "tiles", "programming_energy_uj"):
            measured = float(hardware[req.quantity])
        else:
            measured = _worst(
                [
                    _per_inference(w, req.quantity)
                    for w in work_rows
                    if req.at_s in (None, w["t_s"])
                ],
                req,
            )
        worst, passed = measured, req.within(measured)
    return {
        "quantity": req.quantity,
        "at_s": req.at_s,
        "at": time_label(req.at_s) if req.at_s is not None else None,
        "min": req.min,
        "max": req.max,
        "min_yield": req.min_yield,
        "min_yield_lower_95": req.min_yield_lower_95,
        "bound": req.describe(),
        "measured": measured,
        "worst": worst,
        "yield": stats["yield"] if stats else None,
        "yield_ci95": stats["ci95"] if stats else None,
        "yield_lower_95": stats["lower_95"] if stats else None,
        "passed": bool(passed),
    }


def _report(
    spec: ValidationSpec,
    target: ResolvedModel,
    profile_source: str,
    profile: DeviceProfile,
    seeds: list[int],
    results: dict[tuple[float, int], dict[str, Any]],
) -> dict[str, Any]:
    from pcm_sim import __version__

    metric = target.task.metric_name
    first_ops = results[(spec.times_s[0], seeds[0])]["ops"]
    pulses = statistics.fmean(sum(x["pulses"] for x in results[key]["ops"]) for key in results)
    hardware = {
        "layers": [
            {
                k: layer[k]
                for k in ("name", "in", "out", "binary_input", "n_tiles", "n_devices", "pulses")
            }
            for layer in first_ops
        ],
        "devices": sum(layer["n_devices"] for layer in first_ops),
        "tiles": sum(layer["n_tiles"] for layer in first_ops),
        "programming_pulses": pulses,
        "programming_energy_uj": pulses * profile.energy.programming_pulse_pj / 1e6,
    }
    per_time: list[dict[str, Any]] = []
    work_rows: list[dict[str, Any]] = []
    for t in spec.times_s:
        values = [results[(t, s)]["value"] for s in seeds]
        per_time.append(
            {"t_s": t, "label": time_label(t), "values": values, **_distribution(values)}
        )
        chip_work = [work_per_inference(results[(t, s)]["ops"], spec.samples) for s in seeds]
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
            {"t_s": t, "label": time_label(t), "layers": layers, **estimates(layers, profile)}
        )
    requirements = [_judge(req, metric, per_time, work_rows, hardware) for req in spec.requirements]
    return {
        "format": FORMAT,
        "name": spec.name,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "pcm_sim_version": __version__,
        "checkpoint": {
            "kind": target.source.kind,
            "path": target.source.ref,
            "sha256": target.sha256,
            "recipe": target.recipe["name"] if target.recipe else None,
            "family": target.recipe["family"] if target.recipe else None,
            "task": target.task.name,
            "software": target.source.software or {},
        },
        "profile": {
            "name": profile.name,
            "source": profile_source,
            "overrides": spec.overrides,
            "provenance": dataclasses.asdict(profile.provenance),
            "energy": dataclasses.asdict(profile.energy),
        },
        "metric": metric,
        "higher_is_better": target.task.higher_is_better,
        "chips": spec.chips,
        "seeds": seeds,
        "samples": spec.samples,
        "input_seed": spec.input_seed,
        "mode": spec.mode,
        "per_time": per_time,
        "hardware": hardware,
        "work": work_rows,
        "requirements": requirements,
        "passed": all(r["passed"] for r in requirements),
    }


def _per_inference(work_row: dict[str, Any], quantity: str) -> float:
    if quantity in ("energy_nj", "latency_us"):
        return float(work_row[quantity])
    return float(sum(layer[quantity] for layer in work_row["layers"]))
