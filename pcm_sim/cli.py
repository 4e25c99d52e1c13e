"""The ``pcm-sim`` command line: a thin layer over the package API.

Each command lives in a module of :mod:`pcm_sim.commands` with a ``register(subparsers)``
function; bad input (malformed files, unknown names, wrong shapes) ends with one line on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["BadInputError", "main"]

COMMAND_MODULES = (
    "pcm_sim.commands.profiles",
    "pcm_sim.commands.train",
    "pcm_sim.commands.bench",
    "pcm_sim.commands.demo",
    "pcm_sim.commands.studies",
    "pcm_sim.commands.correct",
)


class BadInputError(ValueError):
    """Raised by commands for user errors; reported as one line with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="pcm-sim", description="Simulate spiking and phasor networks on PCM crossbars."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from pcm_sim.profiles import ProfileError
    from pcm_sim.recipes import RecipeError
    from pcm_sim.training.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except (
        BadInputError,
        ProfileError,
        RecipeError,
        CheckpointError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        message = " ".join(str(exc).split())
        print(f"pcm-sim: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcm-sim: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
