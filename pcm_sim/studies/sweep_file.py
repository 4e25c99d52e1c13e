"""Sweep files: the YAML format of a grid of (model x profile x overrides x time x chip) cells.

A sweep file is YAML::

    name: profile_sweep                 # [A-Za-z0-9_.-]+, names the default database
    models:                             # checkpoints, recipes (trained once, cached), your own
      - {checkpoint: runs/studies/snu1/model.pt, label: snu1}
      - {recipe: snu_fmnist, train: {epochs: 1, train_limit: 512}}
      - {task: "my_package.tasks:fmnist_cnn", label: mine}       # a pcm_sim.Task entry point
      - {nir: runs/my.nir, data: {dt: 1.0e-4, steps: 16, encoding: rate}}   # NIR + data spec
    profiles: [pcm_nandakumar2019, pcm_hermes2023]   # shipped names or YAML paths
    overrides:                          # dotted profile fields -> values: one grid ...
      periphery.adc_bits: [4, 6, 8]
      programming.scale: [0.0, 1.0, 2.0]
    # ... or a list of grids, run as their union (one-knob-at-a-time robustness studies):
    # overrides: [{periphery.adc_bits: [4, 6, 8]}, {programming.scale: [0.0, 1.0, 2.0]}]
    times: [1min, 1d, 1y]               # drift times: seconds or 1min|1h|1d|1mo|1y
    chips: 5                            # chip seeds 0..4 (or ``seeds: [3, 7]``)
    evaluation: {mode: default, limit: 1000, input_seed: 1}   # optional
    db: runs/studies/profile_sweep.sqlite                      # optional

Relative paths are relative to the working directory.  :func:`parse_sweep` checks every key,
type and value and raises :class:`SweepError` naming the field; the profiles, overrides and
models themselves are checked when the cells are expanded (:mod:`pcm_sim.studies.cells`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcm_sim.evaluation import parse_time
from pcm_sim.profiles import ProfileError, _read_yaml
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.studies.store import canonical_json

__all__ = [
    "ModelEntry",
    "Sweep",
    "SweepError",
    "check_top_keys",
    "load_sweep",
    "parse_override_grid",
    "parse_sweep",
    "parse_time_value",
    "parse_times",
    "read_study_file",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
MAX_CELLS = 1_000_000
SWEEP_KEYS = {
    "name",
    "models",
    "profiles",
    "overrides",
    "times",
    "chips",
    "seeds",
    "evaluation",
    "db",
}
REQUIRED_SWEEP_KEYS = ("name", "models", "profiles", "times")
EVALUATION_KEYS = {"mode", "limit", "input_seed"}


class SweepError(ValueError):
    """A sweep file is malformed, or its models and profiles cannot be run together."""


@dataclass(frozen=True)
class ModelEntry:
    """One ``models`` item: a ``checkpoint`` path, a ``recipe`` trained with ``train``, a
    ``task`` entry point, or a ``nir`` file with its ``data`` spec."""

    checkpoint: str | None = None
    recipe: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    task: str | None = None
    nir: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep definition (see the module docstring)."""

    name: str
    models: tuple[ModelEntry, ...]
    profiles: tuple[str, ...]
    override_combos: tuple[dict[str, Any], ...]
    times_s: tuple[float, ...]
    seeds: tuple[int, ...]
    mode: str = "default"
    limit: int | None = None
    input_seed: int = EVAL_INPUT_SEED
    db: str | None = None
    source: str = "<sweep>"

    @property
    def n_cells(self) -> int:
        """Cells of the full grid (before merging combinations that resolve identically)."""
        return (
            len(self.models)
            * len(self.profiles)
            * len(self.override_combos)
            * len(self.times_s)
            * len(self.seeds)
        )


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise SweepError(f"{where}: expected a number, string or boolean, got {value!r}")


def parse_time_value(value: Any, where: str) -> float:
    """A drift time in seconds from a number or a string like ``1d``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SweepError(f"{where}: expected seconds or a string like 1d, got {value!r}")
    try:
        t_s = parse_time(str(value))
    except ValueError as exc:
        raise SweepError(f"{where}: {exc}") from None
    if not math.isfinite(t_s) or t_s < 0:
        raise SweepError(f"{where}: expected a finite time >= 0, got {value!r}")
    return t_s


def parse_times(raw: Any, where: str) -> tuple[float, ...]:
    """Drift times in seconds from a non-empty list of distinct :func:`parse_time_value` values
    (a file's ``times``)."""
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{where}: expected a non-empty list")
    times_s = tuple(parse_time_value(t, where) for t in raw)
    if len(set(times_s)) != len(times_s):
        raise SweepError(f"{where}: duplicate times in {raw}")
    return times_s


def _parse_nir_data(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``nir`` entry's ``data`` spec: ``dt`` (s) > 0, ``steps`` >= 1, ``encoding``,
    optional ``data_dir``."""
    if "data" in item and "nir" not in item:
        raise SweepError(f"{where}.data: only with 'nir'")
    if "nir" not in item:
        return {}
    data = item.get("data")
    if not isinstance(data, dict):
        raise SweepError(f"{where}.data: expected a mapping with dt and steps")
    unknown = sorted(set(data) - {"dt", "steps", "encoding", "data_dir"})
    if unknown:
        raise SweepError(f"{where}.data: unknown key {unknown[0]!r}")
    dt, steps = data.get("dt"), data.get("steps")
    if isinstance(dt, bool) or not isinstance(dt, int | float) or not dt > 0:
        raise SweepError(f"{where}.data.dt: expected a time step > 0 s, got {dt!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise SweepError(f"{where}.data.steps: expected an integer >= 1, got {steps!r}")
    if data.get("encoding", "rate") not in ("rate", "direct"):
        raise SweepError(f"{where}.data.encoding: expected rate or direct")
    return {"encoding": "rate", "data_dir": None, **data, "dt": float(dt)}


def _parse_models(raw: Any, source: str) -> tuple[ModelEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{source}: models: expected a non-empty list")
    entries = []
    kinds = ("checkpoint", "recipe", "task", "nir")
    for i, item in enumerate(raw):
        where = f"{source}: models[{i}]"
        if not isinstance(item, dict):
            raise SweepError(f"{where}: expected a mapping with one of {', '.join(kinds)}")
        unknown = sorted(set(item) - {*kinds, "train", "label", "data"})
        if unknown:
            raise SweepError(f"{where}: unknown key {unknown[0]!r}")
        given = [k for k in kinds if k in item]
        if len(given) != 1:
            raise SweepError(f"{where}: expected exactly one of {', '.join(kinds)}")
        for key in (*kinds, "label"):
            if key in item and not (isinstance(item[key], str) and item[key]):
                raise SweepError(f"{where}.{key}: expected a non-empty string")
        if "label" in item and not NAME_PATTERN.match(item["label"]):
            raise SweepError(f"{where}.label: expected [A-Za-z0-9_.-]+, got {item['label']!r}")
        train = item.get("train", {})
        if not isinstance(train, dict) or ("train" in item and "recipe" not in item):
            raise SweepError(f"{where}.train: expected a mapping, and only with 'recipe'")
        data = _parse_nir_data(item, where)
        entries.append(
            ModelEntry(
                item.get("checkpoint"),
                item.get("recipe"),
                dict(train),
                item.get("label"),
                item.get("task"),
                item.get("nir"),
                data,
            )
        )
    return tuple(entries)


def parse_override_grid(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise SweepError(f"{where}: expected a mapping of dotted profile fields to value lists")
    axes = []
    for key, values in raw.items():
        if not isinstance(key, str) or not re.match(r"^[a-z_]+(\.[a-z_0-9]+)+$", key):
            raise SweepError(
                f"{where}: key {key!r}: expected a dotted field like periphery.adc_bits"
            )
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}.{key}: expected a non-empty list of values")
        checked = [_scalar(v, f"{where}.{key}") for v in values]
        if len({canonical_json(v) for v in checked}) != len(checked):
            raise SweepError(f"{where}.{key}: duplicate values in {values}")
        axes.append((key, checked))
    keys = [k for k, _ in axes]
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))
    ]


def _parse_overrides(raw: Any, source: str) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ({},)
    grids = raw if isinstance(raw, list) else [raw]
    if not grids:
        raise SweepError(f"{source}: overrides: expected a mapping or a non-empty list of mappings")
    combos: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, grid in enumerate(grids):
        where = f"{source}: overrides" + (f"[{i}]" if isinstance(raw, list) else "")
        for combo in parse_override_grid(grid, where):
            text = canonical_json(combo)
            if text not in seen:
                seen.add(text)
                combos.append(combo)
    return tuple(combos)


def check_top_keys(
    data: Any,
    source: str,
    allowed: Collection[str],
    required: Iterable[str],
    error: type[ValueError],
) -> dict[str, Any]:
    """``data`` (a study file's top level) if it is a mapping with only ``allowed`` keys and
    every ``required`` one; else raises ``error`` naming ``source`` and the key."""
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise error(f"{source}: unknown key {unknown[0]!r} (expected {sorted(allowed)})")
    for key in required:
        if key not in data:
            raise error(f"{source}: missing required key {key!r}")
    return data


def read_study_file(path: Path, kind: str, error: type[ValueError]) -> Any:
    """The parsed YAML of the ``kind`` (sweep, spec) file at ``path``; raises ``error`` if it
    is missing or malformed."""
    if not path.is_file():
        raise error(f"{path}: no such {kind} file")
    try:
        return _read_yaml(path)
    except ProfileError as exc:
        raise error(str(exc)) from None


def parse_sweep(data: Any, source: str = "<sweep>") -> Sweep:
    """Validate a sweep mapping; raises :class:`SweepError` naming the field."""
    data = check_top_keys(data, source, SWEEP_KEYS, REQUIRED_SWEEP_KEYS, SweepError)
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SweepError(f"{source}: name: expected [A-Za-z0-9_.-]+, got {name!r}")
    profiles = data["profiles"]
    if (
        not isinstance(profiles, list)
        or not profiles
        or not all(isinstance(p, str) and p for p in profiles)
    ):
        raise SweepError(f"{source}: profiles: expected a non-empty list of names or paths")
    if len(set(profiles)) != len(profiles):
        raise SweepError(f"{source}: profiles: duplicate entries in {profiles}")
    times_s = parse_times(data["times"], f"{source}: times")
    if ("chips" in data) == ("seeds" in data):
        raise SweepError(f"{source}: expected exactly one of 'chips' (a count) or 'seeds' (a list)")
    if "chips" in data:
        seeds = tuple(range(_int(data["chips"], f"{source}: chips", 1)))
    else:
        raw_seeds = data["seeds"]
        if not isinstance(raw_seeds, list) or not raw_seeds:
            raise SweepError(f"{source}: seeds: expected a non-empty list of integers")
        seeds = tuple(_int(s, f"{source}: seeds", 0) for s in raw_seeds)
        if len(set(seeds)) != len(seeds):
            raise SweepError(f"{source}: seeds: duplicate seeds in {raw_seeds}")
    evaluation = data.get("evaluation", {}) or {}
    if not isinstance(evaluation, dict):
        raise SweepError(f"{source}: evaluation: expected a mapping")
    unknown = sorted(set(evaluation) - EVALUATION_KEYS)
    if unknown:
        raise SweepError(f"{source}: evaluation: unknown key {unknown[0]!r}")
    mode = evaluation.get("mode", "default")
    if not isinstance(mode, str) or not mode:
        raise SweepError(f"{source}: evaluation.mode: expected a string")
    limit = evaluation.get("limit")
    if limit is not None:
        limit = _int(limit, f"{source}: evaluation.limit", 1)
    input_seed = _int(
        evaluation.get("input_seed", EVAL_INPUT_SEED), f"{source}: evaluation.input_seed", 0
    )
    db = data.get("db")
    if db is not None and not (isinstance(db, str) and db):
        raise SweepError(f"{source}: db: expected a path")
    sweep = Sweep(
        name=name,
        models=_parse_models(data["models"], source),
        profiles=tuple(profiles),
        override_combos=_parse_overrides(data.get("overrides"), source),
        times_s=times_s,
        seeds=seeds,
        mode=mode,
        limit=limit,
        input_seed=input_seed,
        db=db,
        source=source,
    )
    if sweep.n_cells > MAX_CELLS:
        raise SweepError(f"{source}: {sweep.n_cells} cells, expected at most {MAX_CELLS}")
    return sweep


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML file."""
    path = Path(path)
    return parse_sweep(read_study_file(path, "sweep", SweepError), str(path))
