"""Evaluate a trained model on simulated chips over drift time.

For each chip seed the model is programmed once (:func:`score_chip` -> :func:`deploy`), then
moved to each time (:func:`drift_to`, with the profile's drift compensation) and scored by its
task (:mod:`pcm_sim.tasks`: a recipe's test split, or your own data and metric) with a fixed
input-encoding seed, so chips differ only by their devices.  Reports mean and std over chips.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from pcm_sim.nn.analog import analog_layers, deploy, drift_to
from pcm_sim.nn.chips import load_chip
from pcm_sim.profiles import DeviceProfile, load_profile
from pcm_sim.seeds import EVAL_INPUT_SEED, input_generator
from pcm_sim.tasks import EvaluationTask, RecipeTask

__all__ = [
    "DEFAULT_TIMES",
    "TIME_LABELS",
    "as_task",
    "evaluate_on_chips",
    "evaluate_saved_chip",
    "parse_time",
    "program_chip",
    "score_chip",
    "score_programmed",
]

DEFAULT_TIMES = (60.0, 3600.0, 86_400.0, 30 * 86_400.0, 365 * 86_400.0)
TIME_LABELS = {
    60.0: "1 min",
    3600.0: "1 h",
    86_400.0: "1 day",
    2_592_000.0: "1 month",
    31_536_000.0: "1 year",
}
_UNITS = {
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86_400.0,
    "day": 86_400.0,
    "mo": 2_592_000.0,
    "y": 31_536_000.0,
}


def parse_time(text: str) -> float:
    """``"3600"``, ``"1h"``, ``"1d"``, ``"1mo"``, ``"1y"`` -> seconds."""
    raw = text.strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(unit) and raw[: -len(unit)].replace(".", "", 1).isdigit():
            return float(raw[: -len(unit)]) * _UNITS[unit]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"time {text!r}: expected seconds or a number with s|min|h|d|mo|y"
        ) from None
    if value < 0 or value != value:
        raise ValueError(f"time {text!r}: expected a time >= 0")
    return value


def as_task(task: EvaluationTask | dict[str, Any]) -> EvaluationTask:
    """``task`` itself, or the :class:`RecipeTask` of a recipe dict (a checkpoint's recipe)."""
    return RecipeTask(task) if isinstance(task, dict) else task


def score_programmed(
    chip_model: nn.Module,
    task: EvaluationTask | dict[str, Any],
    times: Sequence[float],
    mode: str = "default",
    limit: int | None = None,
    input_seed: int = EVAL_INPUT_SEED,
) -> list[float]:
    """The task's metric of an already programmed model at each of ``times`` (seconds).

    Every score draws its input encoding from a fresh generator of ``input_seed``.
    """
    question = as_task(task)
    values = []
    for t in times:
        drift_to(chip_model, float(t))
        score = question.evaluate(chip_model, input_generator(input_seed), mode, limit)
        values.append(float(score[question.metric_name]))
    return values


def program_chip(
    model: nn.Module,
    task: EvaluationTask | dict[str, Any],
    profile: str | DeviceProfile,
    seed: int,
    backend: str | None = None,
) -> nn.Module:
    """A copy of ``model`` programmed as chip ``seed`` of ``profile`` (``model`` is untouched).

    Calibrated ADC ranges (``periphery.output_range_policy: calibrated``) are set from the
    task's calibration batch when it has one, else from one-hot reads.
    """
    return deploy(
        copy.deepcopy(model),
        profile,
        seed=seed,
        backend=backend,  # type: ignore[arg-type]
        calibration_input=as_task(task).calibration_batch(),
    )


def score_chip(
    model: nn.Module,
    task: EvaluationTask | dict[str, Any],
    profile: str | DeviceProfile,
    seed: int,
    times: Sequence[float],
    mode: str = "default",
    limit: int | None = None,
    input_seed: int = EVAL_INPUT_SEED,
    backend: str | None = None,
) -> list[float]:
    """Program a copy of ``model`` as chip ``seed`` of ``profile`` and score it at ``times``.

    The one definition of "the metric of chip ``seed`` at time ``t``" behind ``evaluate``,
    sweep cells, ``validate`` and hardware-in-the-loop baselines: the chip is a value of
    (weights, profile, seed), calibrated with the task's calibration batch when the profile
    calibrates its ADC ranges, and the input encoding comes from ``input_seed`` alone.
    ``model`` itself is left untouched.
    """
    question = as_task(task)
    chip_model = program_chip(model, question, profile, seed, backend)
    return score_programmed(chip_model, question, times, mode, limit, input_seed)


def evaluate_on_chips(
    model: nn.Module,
    task: EvaluationTask | dict[str, Any],
    profile: str | DeviceProfile,
    times: Sequence[float] = DEFAULT_TIMES,
    chips: int = 5,
    mode: str = "default",
    seed: int = 0,
    limit: int | None = None,
    input_seed: int = EVAL_INPUT_SEED,
    backend: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on chips ``seed .. seed + chips - 1`` of ``profile`` at each of ``times``.

    ``task`` is a task (:mod:`pcm_sim.tasks`) or a recipe dict.  Every score uses the
    input-encoding seed ``input_seed`` (:mod:`pcm_sim.seeds`); one chip visits every time, which
    gives the same numbers as a fresh chip per time (a chip is a value).
    """
    prof = load_profile(profile)
    question = as_task(task)
    per_time: dict[float, list[float]] = {float(t): [] for t in times}
    for chip in range(chips):
        scores = score_chip(
            model, question, prof, seed + chip, times, mode, limit, input_seed, backend
        )
        for t, value in zip(times, scores, strict=True):
            per_time[float(t)].append(value)
            if log:
                log(f"chip {seed + chip} t={t:g}s {question.metric_name} {value:.4f}")
    return {
        "profile": prof.name,
        "metric": question.metric_name,
        "chips": chips,
        "mode": mode,
        "input_seed": input_seed,
        "rows": _rows(per_time),
    }


def evaluate_saved_chip(
    model: nn.Module,
    task: EvaluationTask | dict[str, Any],
    chip_path: str,
    times: Sequence[float] = DEFAULT_TIMES,
    mode: str = "default",
    limit: int | None = None,
    input_seed: int = EVAL_INPUT_SEED,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score the chip saved at ``chip_path`` (:func:`pcm_sim.save_chip`) at each of ``times``."""
    question = as_task(task)
    chip_model = load_chip(copy.deepcopy(model), chip_path)
    profile = analog_layers(chip_model)[0].profile
    scores = score_programmed(chip_model, question, times, mode, limit, input_seed)
    per_time = {float(t): [value] for t, value in zip(times, scores, strict=True)}
    if log:
        log(f"saved chip {chip_path}: {question.metric_name} {scores}")
    return {
        "profile": profile.name if profile is not None else "?",
        "metric": question.metric_name,
        "chips": 1,
        "chip_file": str(chip_path),
        "mode": mode,
        "input_seed": input_seed,
        "rows": _rows(per_time),
    }


def _rows(per_time: dict[float, list[float]]) -> list[dict[str, Any]]:
    """One row per time: label, mean and std over chips, and the per-chip values."""
    rows = []
    for t, values in per_time.items():
        rows.append(
            {
                "t_s": t,
                "label": TIME_LABELS.get(t, f"{t:g} s"),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "per_chip": values,
            }
        )
    return rows
