"""Robustness study: how far each device or periphery knob can move before accuracy breaks.

Runs ``scripts/examples/robustness.yaml``: the SNU checkpoint on the Nandakumar-2019 profile with
one knob changed at a time (ADC bits 4..10, programming-noise scale 0..3, stuck-at-G_min fraction
0..5 %, drift scale 0..4; a union of one-knob grids, so the unchanged baseline is one shared cell),
at 1 day and 1 year after programming over several chips.  Draws one robustness curve per knob and
prints, per knob and time, the mean accuracy at every value.

Run:  ``nice .venv/bin/python scripts/robustness_study.py --workers 2``
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from pcm_sim.studies.executors import make_executor
from pcm_sim.studies.plots import load_rows, plot_database, time_label
from pcm_sim.studies.sweep import load_sweep, run_sweep


def main() -> None:
    """Top to bottom: parse, sweep, plot, print (a function only because workers are spawned)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="scripts/examples/robustness.yaml")
    parser.add_argument("--db", default=None, help="default: the sweep's db")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a Dask scheduler")
    args = parser.parse_args()

    # 1. Run (or finish) the sweep.
    sweep = load_sweep(args.sweep)
    db = Path(args.db or sweep.db or f"runs/studies/{sweep.name}.sqlite")
    executor = make_executor(args.workers, args.scheduler)
    try:
        run_sweep(sweep, db, executor)
    finally:
        executor.close()

    # 2. One robustness figure per knob (plus the drift figure and CSV).
    for path in plot_database(db, db.parent / db.stem):
        print(f"wrote {path}")

    # 3. Per knob: mean metric over chips at each value; the knob's value is read from the
    #    resolved profile, so the shared baseline cell appears in every knob's table.
    rows = load_rows(db)
    knobs = sorted({k for row in rows for k in row["overrides"]})
    for knob in knobs:
        others = [k for k in knobs if k != knob]
        table: dict[tuple[float, Any], list[float]] = defaultdict(list)
        for row in rows:
            resolved = row["config"]["profile"]["resolved"]
            value = _dotted(resolved, knob)
            baseline_elsewhere = all(_dotted(resolved, k) == _baseline(rows, k) for k in others)
            if baseline_elsewhere:
                table[(row["t_s"], value)].append(row["value"])
        print(
            f"\n{knob} ({rows[0]['metric']}, mean over chips; other knobs at the profile's values)"
        )
        for (t_s, value), v in sorted(table.items(), key=lambda item: (item[0][0], item[0][1])):
            print(f"  {time_label(t_s):>6s}  {knob} = {value!s:<8}  {statistics.fmean(v):.4f}")


def _dotted(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def _baseline(rows: list[dict[str, Any]], knob: str) -> Any:
    """The knob's value in cells that do not override it (the profile's own value)."""
    return next(
        _dotted(r["config"]["profile"]["resolved"], knob)
        for r in rows
        if knob not in r["overrides"]
    )


if __name__ == "__main__":
    main()
