"""``pcm-sim bench [--quick] [--json FILE]``."""

from __future__ import annotations

import argparse
import json

from pcm_sim.commands.args import output_file
from pcm_sim.studies.outputs import write_text_atomic

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` command."""
    parser = sub.add_parser("bench", help="crossbar vs matmul vs aihwkit speed benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", type=output_file, default=None, help="write the figures as JSON")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from pcm_sim.bench import run_benchmarks

    result = run_benchmarks(quick=args.quick)
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0
