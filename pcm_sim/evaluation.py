"""Evaluate a trained model on simulated chips over drift time.

For each chip seed the model is programmed once (:func:`deploy`), then moved to each time
(:func:`drift_to`, with the profile's drift compensation) and scored on the test split with a
fixed input-encoding seed, so chips differ only by their devices.  Reports mean and std over
chips.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from pcm_sim.families import FAMILIES
from pcm_sim.nn.analog import deploy, drift_to
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["DEFAULT_TIMES", "TIME_LABELS", "evaluate_on_chips", "parse_time"]

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


def evaluate_on_chips(
    model: nn.Module,
    recipe: dict[str, Any],
    profile: str | DeviceProfile,
    times: Sequence[float] = DEFAULT_TIMES,
    chips: int = 5,
    mode: str = "default",
    seed: int = 0,
    limit: int | None = None,
    backend: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``model`` on ``chips`` chips of ``profile`` at each time in ``times`` (seconds)."""
    prof = load_profile(profile)
    family = FAMILIES[recipe["family"]]
    per_time: dict[float, list[float]] = {float(t): [] for t in times}
    for chip in range(chips):
        chip_model = copy.deepcopy(model)
        deploy(chip_model, prof, seed=seed + chip, backend=backend)  # type: ignore[arg-type]
        for t in times:
            drift_to(chip_model, float(t))
            score = family.evaluate(
                chip_model, recipe, torch.Generator().manual_seed(seed + 1), mode, limit
            )
            per_time[float(t)].append(score[family.metric])
            if log:
                log(f"chip {chip} t={t:g}s {family.metric} {score[family.metric]:.4f}")
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
    return {
        "profile": prof.name,
        "metric": family.metric,
        "chips": chips,
        "mode": mode,
        "rows": rows,
    }
