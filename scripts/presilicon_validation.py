"""Pre-silicon validation: a trained checkpoint on N simulated chips against a written spec.

Evaluates the checkpoint on ``chips`` chips of a profile at each drift time of the spec
(default ``scripts/examples/validation_spec.yaml``), counts the crossbar work per inference from
the measured input spikes, estimates energy and latency from the profile's cited per-operation
figures, and writes ``report.md``, ``report.json`` and ``validation.png``.  Exit code 0 when every
spec line passes, 1 otherwise (2 for bad input), like ``pcm-sim validate``.

Run:
    nice .venv/bin/python scripts/presilicon_validation.py runs/studies/snu1/model.pt --workers 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcm_sim.studies.executors import make_executor
from pcm_sim.studies.validate import load_spec, run_validation, write_report


def main() -> int:
    """Top to bottom: parse, validate on chips, write the report, print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--profile", default="pcm_hermes2023")
    parser.add_argument("--spec", default="scripts/examples/validation_spec.yaml")
    parser.add_argument("--out", default="runs/studies/validation")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--scheduler", default=None, help="tcp://HOST:PORT of a Dask scheduler")
    args = parser.parse_args()

    # 1. The spec: chips, drift times, test items per chip, and the requirement lines.
    spec = load_spec(args.spec)

    # 2. Every (drift time, chip) pair is one independent cell with work counters attached.
    executor = make_executor(args.workers, args.scheduler)
    try:
        report = run_validation(args.checkpoint, args.profile, spec, executor)
    finally:
        executor.close()

    # 3. The report: Markdown, JSON and a figure; the verdict per requirement line.
    paths = write_report(report, Path(args.out))
    for req in report["requirements"]:
        at = f" at {req['at']}" if req["at"] else ""
        measured = (
            f"yield {req['yield']:.1%}" if req["yield"] is not None else f"{req['measured']:.4g}"
        )
        verdict = "pass" if req["passed"] else "FAIL"
        print(f"{verdict}  {req['quantity']}{at} {req['bound']}: {measured}")
    print(f"verdict: {'PASS' if report['passed'] else 'FAIL'}; report in {paths[0]}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
