"""Correcting chips and scoring them: open loop, program-and-verify, hardware in the loop.

:func:`correct_and_evaluate` programs one chip, corrects it by one method and scores it over
time; :func:`correction_study` runs a list of :class:`CorrectionCase` on several chips (what
``pcm-sim correct`` and ``scripts/hil_study.py`` both do) and :func:`summarize_case` reduces
one case at one time over the chips.  Chips are programmed by
:func:`pcm_sim.evaluation.program_chip` and scored by :func:`pcm_sim.evaluation.score_programmed`,
the same definitions of "chip ``s`` of a profile" and "its metric at ``t``" as ``evaluate``,
sweeps and ``validate``, with the same input-encoding seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pcm_sim.crossbar.calibration import DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE_GMAX
from pcm_sim.evaluation import as_task, program_chip, score_programmed
from pcm_sim.families import FAMILIES
from pcm_sim.nn.analog import analog_layers
from pcm_sim.nn.chips import save_chip
from pcm_sim.profiles import DeviceProfile
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.training.hil import HILConfig, HILTask, hil_finetune

__all__ = [
    "CorrectionCase",
    "CorrectionMethod",
    "correct_and_evaluate",
    "correction_study",
    "summarize_case",
]

CorrectionMethod = Literal["open", "verify", "hil"]


def _pulse_stats(model: nn.Module) -> dict[str, float]:
    pulses = torch.cat([layer.chip_pulses().reshape(-1) for layer in analog_layers(model)])
    return {"pulses_mean": float(pulses.double().mean()), "pulses_max": int(pulses.max())}


def correct_and_evaluate(
    model: nn.Module,
    recipe: dict[str, Any],
    profile: DeviceProfile,
    method: CorrectionMethod,
    times: Sequence[float],
    chip_seed: int = 0,
    input_seed: int = EVAL_INPUT_SEED,
    hil: HILConfig | None = None,
    tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    limit: int | None = None,
    task: HILTask | None = None,
    log: Callable[[str], None] | None = None,
    save_chip_path: Path | None = None,
) -> dict[str, Any]:
    """Deploy a copy of ``model`` on chip ``chip_seed``, correct it, score it at each of ``times``.

    ``method``: ``open`` (single-shot programming), ``verify`` (program-and-verify right after
    programming) or ``hil`` (verify, then HIL fine-tuning on the chip at ``hil.t_s`` with
    batches from ``task``, by default the recipe family's training data).  The chip is then
    moved to each time in ``times`` (seconds after programming; drift, compensation
    recalibrated) and scored on the test split with the input-encoding seed ``input_seed``.
    Returns ``values`` (one score per time), pulses per device and the verify / HIL reports.
    ``save_chip_path``: save the corrected chip there (:func:`pcm_sim.save_chip`) before it is
    scored.
    """
    if method not in ("open", "verify", "hil"):
        raise ValueError(f"method: expected open, verify or hil, got {method!r}")
    if not times:
        raise ValueError("times: expected at least one evaluation time")
    question = as_task(recipe)
    chip = program_chip(model, question, profile, chip_seed)
    result: dict[str, Any] = {
        "method": method,
        "profile": profile.name,
        "chip_seed": chip_seed,
        "metric": question.metric_name,
        "times": [float(t) for t in times],
    }
    if method in ("verify", "hil"):
        result["verify"] = [
            layer.program_and_verify(tolerance_gmax, max_iterations).to_dict()
            for layer in analog_layers(chip)
        ]
    if method == "hil":
        config = hil if hil is not None else HILConfig()
        hil_task = (
            task
            if task is not None
            else FAMILIES[recipe["family"]].hil_task(recipe, config.batch_size)
        )
        result["hil"] = hil_finetune(chip, hil_task, config, log).to_dict()
    if save_chip_path is not None:
        save_chip(chip, save_chip_path)
    result["values"] = score_programmed(chip, question, times, "default", limit, input_seed)
    result.update(_pulse_stats(chip))
    return result


@dataclass(frozen=True)
class CorrectionCase:
    """One way of correcting a chip: a ``name``, a ``method``, the ``times`` (s) it is scored
    at, and the HIL settings of ``method == "hil"`` (default :class:`HILConfig`)."""

    name: str
    method: CorrectionMethod
    times: tuple[float, ...]
    hil: HILConfig | None = None


def correction_study(
    model: nn.Module,
    recipe: dict[str, Any],
    profile: DeviceProfile,
    cases: Sequence[CorrectionCase],
    chip_seeds: Sequence[int],
    tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    limit: int | None = None,
    task: HILTask | None = None,
    save_chip: Callable[[CorrectionCase, int], Path | None] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Every case on every chip of ``chip_seeds`` (chips in the outer loop); one
    :func:`correct_and_evaluate` result per (chip, case), with ``case`` set to the case's name.

    The HIL cases draw from ``task``, by default the recipe family's training data (built
    once).  ``save_chip(case, chip_seed)``: where to save that corrected chip, or ``None``.
    ``log`` gets one line per result.
    """
    if task is None and any(case.method == "hil" for case in cases):
        batch = next(c.hil or HILConfig() for c in cases if c.method == "hil").batch_size
        task = FAMILIES[recipe["family"]].hil_task(recipe, batch)
    runs = []
    for chip in chip_seeds:
        for case in cases:
            result = correct_and_evaluate(
                model,
                recipe,
                profile,
                case.method,
                case.times,
                chip_seed=chip,
                hil=case.hil,
                tolerance_gmax=tolerance_gmax,
                max_iterations=max_iterations,
                limit=limit,
                task=task,
                save_chip_path=save_chip(case, chip) if save_chip else None,
            )
            result["case"] = case.name
            runs.append(result)
            if log:
                scores = " ".join(
                    f"t={t:g}s {v:.4f}" for t, v in zip(case.times, result["values"], strict=True)
                )
                log(
                    f"{profile.name} chip {chip} {case.name:7s} {scores} "
                    f"pulses {result['pulses_mean']:.3f}"
                )
    return runs


def summarize_case(runs: Sequence[dict[str, Any]], case: str, t_s: float) -> dict[str, Any]:
    """Over the chips of ``runs`` that ran ``case`` and were scored at ``t_s``: ``mean``,
    ``std`` (0 for one chip), ``per_chip`` scores, ``pulses_mean`` (mean over chips of the
    pulses per device) and ``pulses_max``."""
    rows = [r for r in runs if r["case"] == case and t_s in r["times"]]
    if not rows:
        raise ValueError(f"summarize_case: no run of case {case!r} scored at t = {t_s:g} s")
    values = [r["values"][r["times"].index(t_s)] for r in rows]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "per_chip": values,
        "pulses_mean": statistics.fmean(r["pulses_mean"] for r in rows),
        "pulses_max": max(r["pulses_max"] for r in rows),
    }
