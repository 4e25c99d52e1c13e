"""Argument types of the command line: each checks one value and says what it expected.

Used as ``type=`` of argparse arguments, so a bad value is refused while the command line is
parsed, before any work starts, as one line: ``argument --limit: expected an integer >= 1, got
'-5'`` (see :class:`pcm_sim.cli.OneLineParser`).  Output paths are checked too (a directory where
a file is expected, an ancestor that is a file, no write permission); the files themselves are
written atomically (:mod:`pcm_sim.studies.outputs`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pcm_sim.studies.outputs import output_dir_problem, output_file_problem

if TYPE_CHECKING:
    from pcm_sim.task_sources import Source

__all__ = [
    "add_data_dir_argument",
    "add_source_arguments",
    "existing_dir",
    "fraction",
    "nonnegative_int",
    "output_dir",
    "output_file",
    "positive_float",
    "positive_int",
    "source_from_arguments",
    "time_value",
]


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = _integer(1)
"""An integer >= 1 (counts: chips, samples, epochs, steps, workers)."""
nonnegative_int = _integer(0)
"""An integer >= 0 (seeds, iteration limits)."""


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (tolerances and step sizes as fractions of a full scale)."""
    value = _finite(text)
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def time_value(text: str) -> float:
    """A finite time >= 0 in seconds, or a number with s|min|h|d|mo|y (``1d``)."""
    from pcm_sim.evaluation import parse_time

    try:
        value = parse_time(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a time >= 0 in seconds or with s|min|h|d|mo|y (e.g. 1d), got {text!r}"
        )
    return value


def existing_dir(text: str) -> str:
    """A directory that exists (input data)."""
    path = Path(text)
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text} {what}, expected an existing directory")
    return text


def output_file(text: str) -> str:
    """A path a file can be written to (created or replaced atomically)."""
    problem = output_file_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_dir(text: str) -> str:
    """A directory that exists and is writable, or can be created."""
    problem = output_dir_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The model to study: ``CHECKPOINT``, ``--task SPEC`` or ``--nir FILE`` (+ data spec)."""
    parser.add_argument("checkpoint", nargs="?", default=None, help="a checkpoint (pcm-sim train)")
    parser.add_argument(
        "--task", default=None, help="your own task: package.module:function or file.py:function"
    )
    parser.add_argument("--nir", default=None, help="a NIR graph file (with --dt and --steps)")
    parser.add_argument("--dt", type=positive_float, default=None, help="NIR: Euler step (s)")
    parser.add_argument("--steps", type=_integer(1), default=None, help="NIR: time steps per image")
    parser.add_argument(
        "--encoding", choices=["rate", "direct"], default="rate", help="NIR: input encoding"
    )
    add_data_dir_argument(parser, "directory of IDX files")


def add_data_dir_argument(parser: argparse.ArgumentParser, description: str | None = None) -> None:
    """``--data-dir DIR``: an existing directory of input data (default ``None``: the data's
    default location); ``description`` is its help text."""
    parser.add_argument("--data-dir", type=existing_dir, default=None, help=description)


def source_from_arguments(args: argparse.Namespace, command: str) -> Source:
    """The :class:`~pcm_sim.task_sources.Source` named by :func:`add_source_arguments`."""
    from pcm_sim.cli import BadInputError
    from pcm_sim.task_sources import load_source

    named = (("checkpoint", args.checkpoint), ("task", args.task), ("nir", args.nir))
    given = [(kind, ref) for kind, ref in named if ref]
    if len(given) != 1:
        raise BadInputError(
            f"{command}: expected exactly one of CHECKPOINT, --task or --nir, got "
            + (", ".join(kind for kind, _ in given) or "none")
        )
    kind, ref = given[0]
    if kind == "nir":
        options = {"dt": args.dt, "steps": args.steps, "encoding": args.encoding}
        options["data_dir"] = args.data_dir
    else:
        options = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_source(kind, ref, options)
