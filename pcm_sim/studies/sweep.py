"""Sweeps: run a sweep file's grid of cells into a SQLite database, resumably.

The file format is in :mod:`pcm_sim.studies.sweep_file`, what a cell computes and how it is keyed
in :mod:`pcm_sim.studies.cells`, the database in :mod:`pcm_sim.studies.store`.  The sweep has
``|models| * |profiles| * |override combinations| * |times| * |seeds|`` cells (combinations that
resolve to the same profile are one cell).

:func:`run_sweep` computes every cell whose key is not stored yet and stores each the moment it
finishes, so a sweep killed at any instant (or a Dask worker killed mid-cell, whose cell Dask
runs again) loses no finished cell.  A stored cell at one of the sweep's grid coordinates under
another key was made by other code or from another profile or recipe: it is *stale*, computed
again, and replaced when its new value is stored.  :func:`sweep_status` counts done, stale and
to-do cells without running, training or writing anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcm_sim.profiles import ProfileError, load_profile
from pcm_sim.studies.cells import (
    cached_checkpoint,
    cell_coordinate,
    expand_cells,
    preflight,
    resolve_models,
    run_cells,
)
from pcm_sim.studies.executors import Executor
from pcm_sim.studies.store import ResultStore, canonical_json
from pcm_sim.studies.sweep_file import Sweep, SweepError, load_sweep, parse_sweep

__all__ = [
    "Sweep",
    "SweepError",
    "SweepStatus",
    "SweepSummary",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
    "sweep_status",
]


@dataclass(frozen=True)
class SweepSummary:
    """What one ``run_sweep`` call did (``stale``: of the ``ran`` cells, those replacing a row)."""

    name: str
    db: Path
    cells: int
    skipped: int
    ran: int
    seconds: float
    executor: str
    stale: int = 0

    @property
    def cells_per_minute(self) -> float:
        """Cells computed per minute of wall time (0 when nothing ran)."""
        return 60.0 * self.ran / self.seconds if self.ran and self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SweepStatus:
    """Cells of a sweep: ``done`` (stored), ``todo`` (not stored; ``stale`` of them are stored
    under an older key), ``untrained`` recipe models (their cells are all to do)."""

    name: str
    db: Path
    cells: int
    done: int
    stale: int
    todo: int
    untrained: int

    def describe(self) -> str:
        """One line, e.g. ``sweep s: 24 cells: 10 done, 14 to do (4 stale) in DB``."""
        untrained = f"; {self.untrained} recipe model(s) not trained yet" if self.untrained else ""
        return (
            f"sweep {self.name}: {self.cells} cells: {self.done} done, {self.todo} to do "
            f"({self.stale} of them stale: stored by another pcm-sim version, cell code, "
            f"profile or recipe) in {self.db}{untrained}"
        )


def _stored(db_path: Path) -> tuple[set[str], dict[str, list[str]]]:
    """Stored keys and, per grid coordinate, the stored keys there (none if no database)."""
    if not (db_path.exists() and db_path.stat().st_size > 0):
        return set(), {}
    keys: set[str] = set()
    by_coordinate: dict[str, list[str]] = {}
    with ResultStore(db_path, create=False) as store:  # refuses a foreign/corrupt file
        for key, config in store.configs():
            keys.add(key)
            by_coordinate.setdefault(cell_coordinate(config), []).append(key)
    return keys, by_coordinate


def _stale_keys(
    todo: list[dict[str, Any]], current: set[str], by_coordinate: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Per cell to run, the stored keys at its coordinate that no current cell has."""
    stale = {}
    for cell in todo:
        old = [k for k in by_coordinate.get(cell_coordinate(cell), []) if k not in current]
        if old:
            stale[cell["key"]] = old
    return stale


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
    done, by_coordinate = _stored(db_path)
    models = resolve_models(sweep, db_path.parent / f"{db_path.stem}.models", log)
    cells = expand_cells(sweep, models)
    todo = [c for c in cells if c["key"] not in done]
    stale = _stale_keys(todo, {c["key"] for c in cells}, by_coordinate)
    preflight(todo, models)
    log(
        f"sweep {sweep.name}: {len(cells)} cells, {len(cells) - len(todo)} already in {db_path}, "
        f"{len(todo)} to run ({len(stale)} stale) on {executor.description}"
    )
    start = time.perf_counter()
    with ResultStore(db_path) as store:
        run_cells(
            todo,
            executor,
            lambda cell, result: store.add(cell, result, stale.get(cell["key"], ())),
            sweep.name,
            progress,
        )
    return SweepSummary(
        sweep.name,
        db_path,
        len(cells),
        len(cells) - len(todo),
        len(todo),
        time.perf_counter() - start,
        executor.description,
        len(stale),
    )


def _untrained_cells(sweep: Sweep) -> int:
    """Cells of one model entry: distinct resolved profiles x times x seeds."""
    profiles = set()
    for source in sweep.profiles:
        for combo in sweep.override_combos:
            try:
                profiles.add(canonical_json(load_profile(source, combo or None).to_dict()))
            except ProfileError as exc:
                raise SweepError(f"{sweep.source}: profile {source!r}: {exc}") from None
    return len(profiles) * len(sweep.times_s) * len(sweep.seeds)


def sweep_status(sweep: Sweep, db_path: str | Path) -> SweepStatus:
    """Count the sweep's done, stale and to-do cells; runs, trains and writes nothing."""
    db_path = Path(db_path)
    done, by_coordinate = _stored(db_path)
    cache_dir = db_path.parent / f"{db_path.stem}.models"
    models = resolve_models(sweep, cache_dir, train=False)
    cells = expand_cells(sweep, models)
    todo = [c for c in cells if c["key"] not in done]
    stale = _stale_keys(todo, {c["key"] for c in cells}, by_coordinate)
    untrained = [
        e for e in sweep.models if e.recipe and not cached_checkpoint(e, cache_dir).is_file()
    ]
    extra = len(untrained) * _untrained_cells(sweep) if untrained else 0
    return SweepStatus(
        sweep.name,
        db_path,
        len(cells) + extra,
        len(cells) - len(todo),
        len(stale),
        len(todo) + extra,
        len(untrained),
    )
