"""The ``pcm-sim`` command line: a thin layer over the package API.

Each command lives in a module of :mod:`pcm_sim.commands` with a ``register(subparsers)``
function.  Bad input ends with one line on stderr, ``pcm-sim: error: ...`` naming what was wrong
and what was expected, and exit code 2, before any output file is written: arguments are checked
while parsing (:mod:`pcm_sim.commands.args`; :class:`OneLineParser` reports argparse's own errors
as one line too), files when they are read (malformed YAML, unknown profile or recipe fields,
checkpoints that are foreign or hold pickled code, databases that are not sweep databases), and
an output path that cannot be written (:mod:`pcm_sim.studies.outputs`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["BadInputError", "OneLineParser", "main"]

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


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`BadInputError` (one line, exit code 2).

    Subcommand parsers are created with the parser's own class, so this covers every command.
    """

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing the usage and exiting."""
        command = self.prog.removeprefix("pcm-sim").strip()
        raise BadInputError(f"{command}: {message}" if command else message)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = OneLineParser(
        prog="pcm-sim", description="Simulate spiking and phasor networks on PCM crossbars."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
        code = args.handler(args)
    except ValueError as exc:
        # BadInputError, ProfileError, RecipeError, CheckpointError, ChipFileError, SweepError,
        # SpecError, StoreError and the ValueErrors of the API are all ValueErrors.
        return _error(str(exc))
    except OSError as exc:  # a file that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        print("pcm-sim: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _error(message: str) -> int:
    print(f"pcm-sim: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
