"""Device-profile sweep: one trained checkpoint on several PCM profiles over drift time.

Runs a sweep file (default ``scripts/examples/profile_sweep.yaml``: the SNU checkpoint of
``runs/studies/snu1`` on the ideal, Nandakumar-2019, HERMES-2023 and aggressive profiles at 1 min,
1 day and 1 year, 2 chips each = 24 cells) into a resumable SQLite database, draws metric vs
drift time (mean and min..max over chips) and prints the mean +- std table.

Make the checkpoint first:
    nice .venv/bin/pcm-sim train snu_fmnist --epochs 1 --out runs/studies/snu1
Run:
    nice .venv/bin/python scripts/sweep_profiles.py --workers 2
(the same as ``pcm-sim sweep FILE --workers 2`` followed by ``pcm-sim plot DB``).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

from pcm_sim.studies.executors import make_executor
from pcm_sim.studies.plots import load_rows, plot_database, time_label
from pcm_sim.studies.sweep import load_sweep, run_sweep


def main() -> None:
    """Top to bottom: parse, sweep, plot, print (a function only because workers are spawned)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="scripts/examples/profile_sweep.yaml")
    parser.add_argument("--db", default=None, help="default: the sweep's db")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a Dask scheduler")
    args = parser.parse_args()

    # 1. The sweep: every (model, profile, time, chip) cell not yet in the database.
    sweep = load_sweep(args.sweep)
    db = Path(args.db or sweep.db or f"runs/studies/{sweep.name}.sqlite")
    executor = make_executor(args.workers, args.scheduler)
    try:
        summary = run_sweep(sweep, db, executor)
    finally:
        executor.close()
    print(
        f"{summary.cells} cells ({summary.skipped} already done, {summary.ran} run) in "
        f"{summary.seconds:.1f} s = {summary.cells_per_minute:.1f} cells/min on {summary.executor}"
    )

    # 2. Figures and CSV next to the database.
    for path in plot_database(db, db.parent / db.stem):
        print(f"wrote {path}")

    # 3. Mean +- std over chips per profile and drift time.
    values: dict[tuple[str, str, float], list[float]] = defaultdict(list)
    for row in load_rows(db):
        values[(row["model"], row["profile"], row["t_s"])].append(row["value"])
    times = sorted({t for _, _, t in values})
    print(f"\n{'model':10s} {'profile':22s} " + " ".join(f"{time_label(t):>16s}" for t in times))
    for model, profile in sorted({(m, p) for m, p, _ in values}):
        cells = []
        for t in times:
            v = values.get((model, profile, t), [])
            std = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.fmean(v):.4f} +- {std:.4f}" if v else "-")
        print(f"{model:10s} {profile:22s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main()
