"""Cells of a study: resolved models, one cell's configuration and key, and running cells.

A cell is computed from scratch and independently::

    chip  = deploy(model, profile.with_overrides(combo), seed)     # program every layer
    drift_to(chip, t)                                              # drift + compensation
    value = task.evaluate(chip, Generator(input_seed), mode, limit)[metric]   # recipe or yours

so the input encoding (``input_seed``) is the same for every cell and chips differ only by
their devices.  Cells run single-threaded (``torch.set_num_threads(1)``), which makes a cell's
value independent of the executor (local pool or Dask) that ran it.

A cell's key (:func:`pcm_sim.studies.store.cell_key`) covers what it measures (the checkpoint's
content hash, drift time, chip seed, evaluation settings) and what produced it
(:func:`producer`: the pcm-sim version, :data:`CELL_VERSION`, and the SHA-256 of the resolved
profile and of the recipe), so a cell computed by other code, or on a profile or recipe that
has changed since, has another key and is computed again.  Its *coordinate*
(:func:`cell_coordinate`: model label, profile source, overrides, time, seed, evaluation) names
its place in the grid whatever produced it; a stored cell at a coordinate of the sweep under
another key is *stale*.
"""

from __future__ import annotations

import copy
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pcm_sim.crossbar.cost import OpCounter
from pcm_sim.evaluation import program_chip
from pcm_sim.nn.analog import deploy, drift_to
from pcm_sim.profiles import DeviceProfile, ProfileError, load_profile
from pcm_sim.recipes import RecipeError, load_recipe
from pcm_sim.seeds import input_generator
from pcm_sim.studies.executors import Executor
from pcm_sim.studies.store import canonical_json, cell_key
from pcm_sim.studies.sweep_file import ModelEntry, Sweep, SweepError
from pcm_sim.task_sources import Source, load_source
from pcm_sim.tasks import EvaluationTask, RecipeTask, TaskError
from pcm_sim.training.checkpoint import FORMAT as CHECKPOINT_FORMAT
from pcm_sim.training.checkpoint import CheckpointError, train_recipe

__all__ = [
    "CELL_VERSION",
    "ResolvedModel",
    "build_cell",
    "cached_checkpoint",
    "cell_coordinate",
    "expand_cells",
    "file_sha256",
    "preflight",
    "producer",
    "resolve_models",
    "run_cell",
    "run_cells",
]

CELL_VERSION = 2
"""Version of the cell computation and of its key; bump it when either changes."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to run: its source (checkpoint, task entry point or NIR file), the
    source's fingerprint (:meth:`Source.fingerprint`) and its task."""

    label: str
    source: Source
    sha256: str

    @property
    def model(self) -> nn.Module:
        return self.source.model

    @property
    def task(self) -> EvaluationTask:
        return self.source.task

    @property
    def recipe(self) -> dict[str, Any] | None:
        """The recipe of a checkpoint, else ``None``."""
        return self.task.recipe if isinstance(self.task, RecipeTask) else None

    def description(self) -> dict[str, Any]:
        """What the model computes, for the cell's producer: the recipe of a checkpoint, else
        the source (kind, reference, options) and the task's name and metric."""
        if self.recipe is not None:
            return self.recipe
        src = self.source
        return {
            "kind": src.kind,
            "ref": src.ref,
            "options": src.options,
            "task": self.task.name,
            "metric": self.task.metric_name,
        }


# ---------------------------------------------------------------------------- models


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cached_checkpoint(entry: ModelEntry, cache_dir: Path) -> Path:
    """Where a recipe entry's checkpoint is cached: under a hash of the recipe, the ``train``
    overrides and the checkpoint format (a cache of an older format is not reused)."""
    assert entry.recipe is not None  # a recipe entry (parse_sweep: checkpoint xor recipe)
    recipe = load_recipe(entry.recipe)
    tag = _sha256_text(canonical_json([recipe, entry.train, CHECKPOINT_FORMAT]))[:12]
    return cache_dir / f"{recipe['name']}-{tag}" / "model.pt"


def resolve_models(
    sweep: Sweep, cache_dir: Path, log: Callable[[str], None] = print, train: bool = True
) -> list[ResolvedModel]:
    """Load every checkpoint; recipe entries are trained once, cached in ``cache_dir``.

    With ``train=False`` a recipe entry not trained yet is left out (nothing is trained).
    """
    resolved = []
    for i, entry in enumerate(sweep.models):
        where = f"{sweep.source}: models[{i}]"
        try:
            if entry.task is not None or entry.nir is not None:
                kind, ref = ("task", entry.task) if entry.task is not None else ("nir", entry.nir)
                assert ref is not None
                source = load_source(kind, ref, entry.data)
                default = ref.rpartition(":")[2] if kind == "task" else Path(ref).stem
                resolved.append(ResolvedModel(entry.label or default, source, source.fingerprint()))
                continue
            if entry.checkpoint is not None:
                path = Path(entry.checkpoint)
            else:
                path = cached_checkpoint(entry, cache_dir)
                if not path.is_file():
                    if not train:
                        continue
                    log(f"training {entry.recipe} with {entry.train or 'its defaults'} -> {path}")
                    train_recipe(str(entry.recipe), path.parent, dict(entry.train), log=log)
            source = load_source("checkpoint", str(path.resolve()))
        except (CheckpointError, RecipeError, ProfileError, TaskError) as exc:
            raise SweepError(f"{where}: {exc}") from None
        label = entry.label or (
            path.parent.name if entry.checkpoint is not None else source.task.name
        )
        resolved.append(ResolvedModel(label, source, file_sha256(path)))
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
    made_by = producer(resolved, model.description())
    key = cell_key(
        {
            "checkpoint_sha256": model.sha256,
            "producer": made_by,
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
            "kind": model.source.kind,
            "checkpoint": model.source.ref,  # the checkpoint or NIR file, or the entry point
            "options": model.source.options,
            "checkpoint_sha256": model.sha256,  # the source's fingerprint
            "recipe": model.recipe["name"] if model.recipe else None,
            "family": model.recipe["family"] if model.recipe else None,
            "task": model.task.name,
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
        "producer": made_by,
    }


def producer(resolved_profile: dict[str, Any], recipe: dict[str, Any]) -> dict[str, Any]:
    """What produces a cell's value: package version, :data:`CELL_VERSION`, profile and recipe
    (or, for your own task, :meth:`ResolvedModel.description`).

    The profile and recipe enter as the SHA-256 of their canonical JSON.
    """
    from pcm_sim import __version__

    return {
        "pcm_sim": __version__,
        "cell_version": CELL_VERSION,
        "profile_sha256": _sha256_text(canonical_json(resolved_profile)),
        "recipe_sha256": _sha256_text(canonical_json(recipe)),
    }


def cell_coordinate(config: dict[str, Any]) -> str:
    """A cell's place in its grid (model label, profile source and overrides, time, seed,
    evaluation) as canonical JSON, from a configuration of :func:`build_cell` (stored or new).
    """
    return canonical_json(
        {
            "model": config["model"]["label"],
            "profile": config["profile"]["source"],
            "overrides": config["profile"]["overrides"],
            "t_s": config["t_s"],
            "seed": config["seed"],
            "evaluation": config["evaluation"],
        }
    )


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
        if model.sha256 not in checked_models:
            checked_models.add(model.sha256)
            try:
                model.task.evaluate(copy.deepcopy(model.model), torch.Generator(), ev["mode"], 1)
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


_MODEL_CACHE: dict[tuple[str, str], tuple[nn.Module, EvaluationTask]] = {}
_MODEL_CACHE_LOCK = threading.Lock()
_MODEL_CACHE_SIZE = 4


def _cached_model(model_config: dict[str, Any]) -> tuple[nn.Module, EvaluationTask]:
    """The cell's model and task, loaded once per worker process and fingerprint-checked.

    ``model_config`` is a cell's ``model`` (:func:`build_cell`); cells stored before task
    sources existed have no ``kind`` and are checkpoints.
    """
    kind = model_config.get("kind", "checkpoint")
    ref, sha256 = model_config["checkpoint"], model_config["checkpoint_sha256"]
    with _MODEL_CACHE_LOCK:
        hit = _MODEL_CACHE.get((ref, sha256))
        if hit is not None:
            return hit
        if kind == "checkpoint":
            found = file_sha256(Path(ref))
            source = load_source(kind, ref) if found == sha256 else None
        else:
            source = load_source(kind, ref, model_config.get("options") or {})
            found = source.fingerprint()
        if source is None or found != sha256:
            raise CheckpointError(
                f"{ref}: content changed since the sweep started (sha256 {found})"
            )
        if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[(ref, sha256)] = (source.model, source.task)
        return source.model, source.task


def run_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """Compute one cell (see the module docstring); returns its result as JSON-able data.

    ``cell`` is a configuration from :func:`expand_cells`; with ``cell["count_ops"]`` true the
    result also holds ``ops``, the per-layer :class:`~pcm_sim.crossbar.cost.OpCounter` summary.
    """
    torch.set_num_threads(1)
    start, start_cpu = time.perf_counter(), time.thread_time()
    model, task = _cached_model(cell["model"])
    profile = DeviceProfile.from_dict(cell["profile"]["resolved"], cell["profile"]["source"])
    chip = program_chip(model, task, profile, cell["seed"])
    drift_to(chip, cell["t_s"])
    ev = cell["evaluation"]
    counter = OpCounter(chip) if cell.get("count_ops") else None
    scores = task.evaluate(chip, input_generator(ev["input_seed"]), ev["mode"], ev["limit"])
    result: dict[str, Any] = {
        "key": cell["key"],
        "metric": task.metric_name,
        "value": float(scores[task.metric_name]),
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
