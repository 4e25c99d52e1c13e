"""``pcm-sim sweep SWEEP.yaml``, ``pcm-sim plot DB`` and ``pcm-sim validate CHECKPOINT``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcm_sim.commands.args import (
    add_source_arguments,
    output_dir,
    output_file,
    positive_int,
    source_from_arguments,
)
from pcm_sim.studies.outputs import output_dir_problem, output_file_problem

__all__ = ["register"]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_executor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="local worker processes (default 1)"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="tcp://HOST:PORT of an existing Dask scheduler, or 'local' for a LocalCluster",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sweep``, ``plot`` and ``validate`` commands."""
    sweep = sub.add_parser(
        "sweep", help="run a sweep file's grid of cells into a SQLite database (resumable)"
    )
    sweep.add_argument("sweep", help="sweep YAML file (see pcm_sim.studies.sweep_file)")
    sweep.add_argument(
        "--db",
        type=output_file,
        default=None,
        help="result database (default: the sweep's db, else runs/studies/NAME.sqlite)",
    )
    sweep.add_argument(
        "--status",
        action="store_true",
        help="count done, stale and to-do cells; run, train and write nothing",
    )
    _add_executor_args(sweep)
    sweep.set_defaults(handler=_sweep)

    plot = sub.add_parser("plot", help="PNG figures and CSV export of a sweep database")
    plot.add_argument("db", help="sweep database")
    plot.add_argument(
        "--out", type=output_dir, default=None, help="output directory (default DB_DIR/DB_STEM)"
    )
    plot.set_defaults(handler=_plot)

    validate = sub.add_parser(
        "validate", help="pre-silicon validation report (exit 0 pass, 1 fail, 2 bad input)"
    )
    add_source_arguments(validate)
    validate.add_argument("--profile", required=True, help="profile name or YAML path")
    validate.add_argument("--spec", required=True, help="validation spec YAML")
    validate.add_argument("--out", type=output_dir, required=True, help="report directory")
    validate.add_argument(
        "--chips", type=positive_int, default=None, help="override the spec's chips"
    )
    _add_executor_args(validate)
    validate.set_defaults(handler=_validate)


def _sweep(args: argparse.Namespace) -> int:
    from pcm_sim.cli import BadInputError
    from pcm_sim.studies.executors import make_executor
    from pcm_sim.studies.sweep import load_sweep, run_sweep, sweep_status

    sweep = load_sweep(args.sweep)
    db = Path(args.db or sweep.db or f"runs/studies/{sweep.name}.sqlite")
    problem = output_file_problem(db)
    if problem:
        raise BadInputError(f"sweep: database: {problem}")
    if args.status:
        print(sweep_status(sweep, db).describe())
        return 0
    executor = make_executor(args.workers, args.scheduler)
    try:
        summary = run_sweep(sweep, db, executor, progress=not args.no_progress, log=_log)
    finally:
        executor.close()
    print(
        f"sweep {summary.name}: {summary.cells} cells ({summary.skipped} already done, "
        f"{summary.ran} run) in {summary.seconds:.1f} s = {summary.cells_per_minute:.1f} cells/min "
        f"on {summary.executor}; {summary.stale} stale cell(s) replaced; results in {summary.db}"
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from pcm_sim.cli import BadInputError
    from pcm_sim.studies.plots import plot_database

    db = Path(args.db)
    out = Path(args.out) if args.out else db.parent / db.stem
    problem = output_dir_problem(out)
    if problem:
        raise BadInputError(f"plot: output directory: {problem}")
    for path in plot_database(db, out):
        print(path)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pcm_sim.studies.executors import make_executor
    from pcm_sim.studies.validate import load_spec, run_validation, write_report

    source = source_from_arguments(args, "validate")
    spec = load_spec(args.spec)
    if args.chips is not None:
        spec = spec.with_chips(args.chips)
    executor = make_executor(args.workers, args.scheduler)
    try:
        report = run_validation(
            source, args.profile, spec, executor, progress=not args.no_progress, log=_log
        )
    finally:
        executor.close()
    paths = write_report(report, Path(args.out))
    verdict = "PASS" if report["passed"] else "FAIL"
    met = sum(r["passed"] for r in report["requirements"])
    print(f"validation {verdict}: {met}/{len(report['requirements'])} requirements met")
    for path in paths:
        print(path)
    return 0 if report["passed"] else 1
