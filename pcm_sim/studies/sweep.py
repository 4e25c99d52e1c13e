"""Sweeps: a grid of (model x profile x overrides x drift time x chip seed) independent cells.

A sweep file is YAML::

    name: profile_sweep                 # [A-Za-z0-9_.-]+, names the default database
    models:                             # checkpoints and/or recipes (trained once, cached)
      - {checkpoint: runs/studies/snu1/model.pt, label: snu1}
      - {recipe: snu_fmnist, train: {epochs: 1, train_limit: 512}}
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

Relative paths are relative to the working directory.  The sweep has
``|models| * |profiles| * |override combinations| * |times| * |seeds|`` cells (combinations that
resolve to the same profile are one cell).  A cell is computed from scratch and independently:

    chip  = deploy(model, profile.with_overrides(combo), seed)     # program every layer
    drift_to(chip, t)                                              # drift + compensation
    value = family.evaluate(chip, recipe, Generator(input_seed), mode, limit)[metric]

so the input encoding (``input_seed``) is the same for every cell and chips differ only by
their devices.  Cells run single-threaded (``torch.set_num_threads(1)``), which makes a cell's
value independent of the executor (local pool or Dask) that ran it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from pcm_sim.evaluation import parse_time
from pcm_sim.families import FAMILIES
from pcm_sim.nn.analog import AnalogLinear, deploy, drift_to
from pcm_sim.profiles import DeviceProfile, ProfileError, _read_yaml, load_profile
from pcm_sim.recipes import RecipeError, load_recipe
from pcm_sim.seeds import EVAL_INPUT_SEED, input_generator
from pcm_sim.studies.executors import Executor
from pcm_sim.studies.store import ResultStore, canonical_json, cell_key
from pcm_sim.training.checkpoint import CheckpointError, load_checkpoint, train_recipe

__all__ = [
    "ModelEntry",
    "OpCounter",
    "ResolvedModel",
    "Sweep",
    "SweepError",
    "SweepSummary",
    "expand_cells",
    "load_sweep",
    "parse_override_grid",
    "parse_sweep",
    "parse_time_value",
    "preflight",
    "resolve_models",
    "run_cell",
    "run_cells",
    "run_sweep",
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
EVALUATION_KEYS = {"mode", "limit", "input_seed"}


class SweepError(ValueError):
    """A sweep file is malformed, or its models and profiles cannot be run together."""


@dataclass(frozen=True)
class ModelEntry:
    """One ``models`` item: a ``checkpoint`` path, or a ``recipe`` trained with ``train``."""

    checkpoint: str | None = None
    recipe: str | None = None
    train: dict[str, Any] = field(default_factory=dict)
    label: str | None = None


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


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to run: a checkpoint file with its content hash and recipe."""

    label: str
    checkpoint: Path
    sha256: str
    recipe: dict[str, Any]
    model: nn.Module


@dataclass(frozen=True)
class SweepSummary:
    """What one ``run_sweep`` call did."""

    name: str
    db: Path
    cells: int
    skipped: int
    ran: int
    seconds: float
    executor: str

    @property
    def cells_per_minute(self) -> float:
        """Cells computed per minute of wall time (0 when nothing ran)."""
        return 60.0 * self.ran / self.seconds if self.ran and self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- parsing


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


def _parse_models(raw: Any, source: str) -> tuple[ModelEntry, ...]:
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{source}: models: expected a non-empty list")
    entries = []
    for i, item in enumerate(raw):
        where = f"{source}: models[{i}]"
        if not isinstance(item, dict):
            raise SweepError(f"{where}: expected a mapping with 'checkpoint' or 'recipe'")
        unknown = sorted(set(item) - {"checkpoint", "recipe", "train", "label"})
        if unknown:
            raise SweepError(f"{where}: unknown key {unknown[0]!r}")
        if ("checkpoint" in item) == ("recipe" in item):
            raise SweepError(f"{where}: expected exactly one of 'checkpoint' or 'recipe'")
        for key in ("checkpoint", "recipe", "label"):
            if key in item and not (isinstance(item[key], str) and item[key]):
                raise SweepError(f"{where}.{key}: expected a non-empty string")
        if "label" in item and not NAME_PATTERN.match(item["label"]):
            raise SweepError(f"{where}.label: expected [A-Za-z0-9_.-]+, got {item['label']!r}")
        train = item.get("train", {})
        if not isinstance(train, dict) or ("train" in item and "recipe" not in item):
            raise SweepError(f"{where}.train: expected a mapping, and only with 'recipe'")
        entries.append(
            ModelEntry(item.get("checkpoint"), item.get("recipe"), dict(train), item.get("label"))
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


def parse_sweep(data: Any, source: str = "<sweep>") -> Sweep:
    """Validate a sweep mapping; raises :class:`SweepError` naming the field."""
    if not isinstance(data, dict):
        raise SweepError(f"{source}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        raise SweepError(f"{source}: unknown key {unknown[0]!r} (expected {sorted(SWEEP_KEYS)})")
    for key in ("name", "models", "profiles", "times"):
        if key not in data:
            raise SweepError(f"{source}: missing required key {key!r}")
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
    times = data["times"]
    if not isinstance(times, list) or not times:
        raise SweepError(f"{source}: times: expected a non-empty list")
    times_s = tuple(parse_time_value(t, f"{source}: times") for t in times)
    if len(set(times_s)) != len(times_s):
        raise SweepError(f"{source}: times: duplicate times in {times}")
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
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file")
    try:
        data = _read_yaml(path)
    except ProfileError as exc:
        raise SweepError(str(exc)) from None
    return parse_sweep(data, str(path))


# ---------------------------------------------------------------------------- models


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _trained_checkpoint(entry: ModelEntry, cache_dir: Path, log: Callable[[str], None]) -> Path:
    """Train a recipe entry once; its checkpoint is cached under a hash of recipe + overrides."""
    assert entry.recipe is not None
    recipe = load_recipe(entry.recipe)
    tag = hashlib.sha256(canonical_json([recipe, entry.train]).encode()).hexdigest()[:12]
    out = cache_dir / f"{recipe['name']}-{tag}"
    path = out / "model.pt"
    if not path.is_file():
        log(f"training recipe {recipe['name']} with {entry.train or 'its defaults'} -> {path}")
        train_recipe(entry.recipe, out, dict(entry.train), log=log)
    return path


def resolve_models(
    sweep: Sweep, cache_dir: Path, log: Callable[[str], None] = print
) -> list[ResolvedModel]:
    """Load every checkpoint (training recipe entries first, cached in ``cache_dir``)."""
    resolved = []
    for i, entry in enumerate(sweep.models):
        where = f"{sweep.source}: models[{i}]"
        try:
            if entry.checkpoint is not None:
                path = Path(entry.checkpoint)
            else:
                path = _trained_checkpoint(entry, cache_dir, log)
            model, payload = load_checkpoint(path)
        except (CheckpointError, RecipeError, ProfileError) as exc:
            raise SweepError(f"{where}: {exc}") from None
        label = entry.label or (
            path.parent.name if entry.checkpoint is not None else payload["recipe"]["name"]
        )
        resolved.append(
            ResolvedModel(label, path.resolve(), file_sha256(path), payload["recipe"], model)
        )
    labels = [m.label for m in resolved]
    for label in labels:
        if labels.count(label) > 1:
            raise SweepError(
                f"{sweep.source}: models: two models are labelled {label!r}; set 'label'"
            )
    return resolved


# ---------------------------------------------------------------------------- cells


def build_cell(
    sweep_name: str,
    model: ResolvedModel,
    profile_source: str,
    overrides: dict[str, Any],
    profile: DeviceProfile,
    t_s: float,
    seed: int,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """The full resolved, JSON-serialisable configuration of one cell, with its stable key."""
    from pcm_sim import __version__

    resolved = profile.to_dict()
    key = cell_key(
        {
            "checkpoint_sha256": model.sha256,
            "profile": resolved,
            "t_s": float(t_s),
            "seed": int(seed),
            "evaluation": evaluation,
        }
    )
    return {
        "key": key,
        "sweep": sweep_name,
        "model": {
            "label": model.label,
            "checkpoint": str(model.checkpoint),
            "checkpoint_sha256": model.sha256,
            "recipe": model.recipe["name"],
            "family": model.recipe["family"],
        },
        "profile": {
            "name": profile.name,
            "source": profile_source,
            "overrides": dict(overrides),
            "resolved": resolved,
        },
        "t_s": float(t_s),
        "seed": int(seed),
        "evaluation": dict(evaluation),
        "pcm_sim_version": __version__,
    }


def expand_cells(sweep: Sweep, models: Sequence[ResolvedModel]) -> list[dict[str, Any]]:
    """Every cell of the sweep, in grid order, without duplicate keys."""
    evaluation = {"mode": sweep.mode, "limit": sweep.limit, "input_seed": sweep.input_seed}
    cells: list[dict[str, Any]] = []
    seen: set[str] = set()
    for model in models:
        for profile_source in sweep.profiles:
            for combo in sweep.override_combos:
                try:
                    profile = load_profile(profile_source, combo or None)
                except ProfileError as exc:
                    raise SweepError(f"{sweep.source}: profile {profile_source!r}: {exc}") from None
                for t_s in sweep.times_s:
                    for seed in sweep.seeds:
                        cell = build_cell(
                            sweep.name, model, profile_source, combo, profile, t_s, seed, evaluation
                        )
                        if cell["key"] not in seen:
                            seen.add(cell["key"])
                            cells.append(cell)
    return cells


def preflight(cells: Sequence[dict[str, Any]], models: Sequence[ResolvedModel]) -> None:
    """Check, before any cell runs, that every model evaluates and fits every profile it meets.

    Evaluates each model once in software on one test sample (mode, data) and programs it once
    on each distinct resolved profile (chip seed 0).  Raises :class:`SweepError`.
    """
    by_sha = {m.sha256: m for m in models}
    checked_models: set[str] = set()
    checked_pairs: set[tuple[str, str]] = set()
    for cell in cells:
        model = by_sha[cell["model"]["checkpoint_sha256"]]
        ev = cell["evaluation"]
        family = FAMILIES[model.recipe["family"]]
        if model.sha256 not in checked_models:
            checked_models.add(model.sha256)
            try:
                family.evaluate(
                    copy.deepcopy(model.model), model.recipe, torch.Generator(), ev["mode"], 1
                )
            except (ValueError, FileNotFoundError) as exc:
                raise SweepError(f"model {model.label!r}: cannot be evaluated: {exc}") from None
        pair = (model.sha256, canonical_json(cell["profile"]["resolved"]))
        if pair not in checked_pairs:
            checked_pairs.add(pair)
            profile = DeviceProfile.from_dict(
                cell["profile"]["resolved"], cell["profile"]["source"]
            )
            try:
                deploy(copy.deepcopy(model.model), profile, seed=0)
            except ValueError as exc:
                raise SweepError(
                    f"model {model.label!r} does not fit profile {profile.name!r}: {exc}"
                ) from None


class OpCounter:
    """Counts the crossbar work of one evaluation with forward pre-hooks on every analog layer.

    For each :class:`AnalogLinear` with ``in`` inputs on ``R`` row tiles of ``rows`` inputs, an
    input batch ``x`` ``(..., in)`` adds ``N = x.numel() / in`` input *vectors*; ``nonzero`` =
    number of nonzero inputs (spikes, for binary layers); ``row_tile_activations`` = number of
    (vector, row tile) pairs with at least one nonzero input; ``active_vectors`` = vectors with
    at least one nonzero input.  Counting reads the inputs only; it changes no result.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, AnalogLinear)]
        self.counts = {
            name: {"vectors": 0, "active_vectors": 0, "nonzero": 0, "row_tile_activations": 0}
            for name, _ in self.layers
        }
        self._handles = [
            layer.register_forward_pre_hook(self._hook(name, layer)) for name, layer in self.layers
        ]

    def _hook(self, name: str, layer: AnalogLinear) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        counts = self.counts[name]

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if layer.deployed_backend != "pcm-sim":
                raise RuntimeError(f"OpCounter: layer {name} is not on a pcm-sim crossbar")
            geometry = layer.chip_geometry()
            x: Tensor = args[0].detach()
            active = x.reshape(-1, layer.in_features) != 0  # (N, in)
            pad = geometry["n_row_tiles"] * geometry["rows"] - layer.in_features
            tiles = torch.nn.functional.pad(active, (0, pad)).reshape(
                -1, geometry["n_row_tiles"], geometry["rows"]
            )  # (N, R, rows)
            per_tile = tiles.any(dim=-1)  # (N, R)
            counts["vectors"] += active.shape[0]
            counts["active_vectors"] += int(per_tile.any(dim=-1).sum())
            counts["nonzero"] += int(active.sum())
            counts["row_tile_activations"] += int(per_tile.sum())

        return hook

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()

    def summary(self) -> list[dict[str, Any]]:
        """Per layer: shape, tiles, devices, programming pulses, and the counts."""
        rows = []
        for name, layer in self.layers:
            geometry = layer.chip_geometry()
            rows.append(
                {
                    "name": name,
                    "in": layer.in_features,
                    "out": layer.out_features,
                    "binary_input": layer.binary_input,
                    "n_row_tiles": geometry["n_row_tiles"],
                    "n_col_tiles": geometry["n_col_tiles"],
                    "n_tiles": geometry["n_tiles"],
                    "n_devices": geometry["n_devices"],
                    "pulses": int(layer.chip_pulses().sum()),
                    **self.counts[name],
                }
            )
        return rows


_MODEL_CACHE: dict[tuple[str, str], tuple[nn.Module, dict[str, Any]]] = {}
_MODEL_CACHE_LOCK = threading.Lock()
_MODEL_CACHE_SIZE = 4


def _cached_model(path: str, sha256: str) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint's model and recipe, loaded once per worker process and hash-checked."""
    with _MODEL_CACHE_LOCK:
        hit = _MODEL_CACHE.get((path, sha256))
        if hit is not None:
            return hit
        found = file_sha256(Path(path))
        if found != sha256:
            raise CheckpointError(
                f"{path}: content changed since the sweep started (sha256 {found})"
            )
        model, payload = load_checkpoint(path)
        if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[(path, sha256)] = (model, payload["recipe"])
        return model, payload["recipe"]


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Compute one cell (see the module docstring); returns its result as JSON-able data.

    ``cell`` is a configuration from :func:`expand_cells`; with ``cell["count_ops"]`` true the
    result also holds ``ops``, the per-layer :class:`OpCounter` summary.
    """
    torch.set_num_threads(1)
    start, start_cpu = time.perf_counter(), time.thread_time()
    model, recipe = _cached_model(cell["model"]["checkpoint"], cell["model"]["checkpoint_sha256"])
    profile = DeviceProfile.from_dict(cell["profile"]["resolved"], cell["profile"]["source"])
    family = FAMILIES[recipe["family"]]
    chip = deploy(copy.deepcopy(model), profile, seed=cell["seed"])
    drift_to(chip, cell["t_s"])
    ev = cell["evaluation"]
    counter = OpCounter(chip) if cell.get("count_ops") else None
    scores = family.evaluate(
        chip, recipe, input_generator(ev["input_seed"]), ev["mode"], ev["limit"]
    )
    result: dict[str, Any] = {
        "key": cell["key"],
        "metric": family.metric,
        "value": float(scores[family.metric]),
        "scores": {k: float(v) for k, v in scores.items()},
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.thread_time() - start_cpu,  # this thread: torch runs single-threaded
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    if counter is not None:
        counter.remove()
        result["ops"] = counter.summary()
    return result


def run_cells(
    cells: Sequence[dict[str, Any]],
    executor: Executor,
    on_result: Callable[[dict[str, Any], dict[str, Any]], object],
    desc: str,
    progress: bool = True,
) -> None:
    """Run ``cells`` on ``executor``; ``on_result(cell, result)`` as each finishes.

    Shows a progress bar (cells done, rate, ETA) on stderr.  A failing cell stops the run;
    errors that are bad input (``ValueError``) are re-raised as :class:`SweepError` naming it.
    """
    bar = tqdm(total=len(cells), desc=desc, unit="cell", disable=not progress, file=sys.stderr)
    try:
        for index, result in executor.imap_unordered(run_cell, cells):
            on_result(cells[index], result)
            bar.set_postfix_str(f"last {result['metric']} {result['value']:.4f}", refresh=False)
            bar.update(1)
    except ValueError as exc:
        raise SweepError(f"a cell failed: {exc}") from None
    finally:
        bar.close()


def run_sweep(
    sweep: Sweep,
    db_path: str | Path,
    executor: Executor,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> SweepSummary:
    """Run every cell of ``sweep`` not yet in the database at ``db_path``; store each as it ends.

    Bad input (sweep, models, profiles, database) raises before any cell runs and before a new
    database is created; an existing database is checked before anything else.
    """
    db_path = Path(db_path)
    done: set[str] = set()
    if db_path.exists() and db_path.stat().st_size > 0:
        with ResultStore(db_path, create=False) as existing:  # refuses a foreign/corrupt file
            done = existing.finished_keys()
    models = resolve_models(sweep, db_path.parent / f"{db_path.stem}.models", log)
    cells = expand_cells(sweep, models)
    todo = [c for c in cells if c["key"] not in done]
    preflight(todo, models)
    log(
        f"sweep {sweep.name}: {len(cells)} cells, {len(cells) - len(todo)} already in {db_path}, "
        f"{len(todo)} to run on {executor.description}"
    )
    start = time.perf_counter()
    with ResultStore(db_path) as store:
        run_cells(
            todo, executor, lambda cell, result: store.add(cell, result), sweep.name, progress
        )
    seconds = time.perf_counter() - start
    return SweepSummary(
        sweep.name,
        db_path,
        len(cells),
        len(cells) - len(todo),
        len(todo),
        seconds,
        executor.description,
    )
