"""``pcm-sim train RECIPE`` and ``pcm-sim evaluate CHECKPOINT | --task SPEC | --nir FILE``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcm_sim.commands.args import (
    add_data_dir_argument,
    add_source_arguments,
    nonnegative_int,
    output_dir,
    output_file,
    positive_int,
    source_from_arguments,
    time_value,
)
from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips, evaluate_saved_chip
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.studies.outputs import output_dir_problem, write_text_atomic
from pcm_sim.training.checkpoint import train_recipe

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train`` and ``evaluate`` commands."""
    train = sub.add_parser("train", help="train a model recipe; writes DIR/model.pt")
    train.add_argument("recipe", help="recipe name (see models/) or YAML path")
    train.add_argument(
        "--out", type=output_dir, default=None, help="output directory (default runs/<recipe>)"
    )
    train.add_argument(
        "--epochs", type=positive_int, default=None, help="override the recipe's epochs"
    )
    add_data_dir_argument(train, "directory of IDX files (Fashion-MNIST/MNIST)")
    train.set_defaults(handler=_train)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate a checkpoint, your own task or a NIR graph on simulated chips over time",
    )
    add_source_arguments(ev)
    ev.add_argument("--profile", default="pcm_nandakumar2019")
    ev.add_argument(
        "--times",
        nargs="+",
        type=time_value,
        default=None,
        help="e.g. 1min 1h 1d 1mo 1y (default)",
    )
    ev.add_argument(
        "--chips", type=positive_int, default=5, help="chips: seeds SEED .. SEED+CHIPS-1"
    )
    ev.add_argument("--seed", type=nonnegative_int, default=0, help="first chip seed (default 0)")
    ev.add_argument(
        "--input-seed",
        type=nonnegative_int,
        default=EVAL_INPUT_SEED,
        help=f"input-encoding seed (default {EVAL_INPUT_SEED}, as sweeps and validate)",
    )
    ev.add_argument(
        "--chip", default=None, help="evaluate a saved chip file (pcm-sim correct --save-chip)"
    )
    ev.add_argument("--mode", default="default", help="execution mode (e.g. atemporal|spiking)")
    ev.add_argument("--backend", choices=["pcm-sim", "aihwkit"], default=None)
    ev.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate on the first N test samples"
    )
    ev.add_argument("--json", type=output_file, default=None, help="write the results as JSON")
    ev.set_defaults(handler=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from pcm_sim.cli import BadInputError
    from pcm_sim.recipes import load_recipe

    recipe = load_recipe(args.recipe)
    out = Path(args.out or f"runs/{recipe['name']}")
    problem = output_dir_problem(out)
    if problem:
        raise BadInputError(f"train: output directory: {problem}")
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    data_overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    path = train_recipe(args.recipe, out, overrides, data_overrides=data_overrides)
    print(f"checkpoint: {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    source = source_from_arguments(args, "evaluate")
    times = args.times or list(DEFAULT_TIMES)
    software = source.software_score(args.mode, args.limit, args.input_seed)
    if args.chip:
        result = evaluate_saved_chip(
            source.model, source.task, args.chip, times, args.mode, args.limit, args.input_seed
        )
    else:
        result = evaluate_on_chips(
            source.model,
            source.task,
            args.profile,
            times,
            args.chips,
            args.mode,
            seed=args.seed,
            limit=args.limit,
            input_seed=args.input_seed,
            backend=args.backend,
        )
    result["software"] = {result["metric"]: software}
    result["source"] = {"kind": source.kind, "ref": source.ref}
    chips = f"chip file {args.chip}" if args.chip else f"{args.chips} chips from seed {args.seed}"
    print(f"{source.task.name} on {result['profile']} ({chips}, mode {args.mode})")
    print(f"  software: {result['metric']} {software:.4f}")
    for row in result["rows"]:
        print(f"  {row['label']:>8s}: {row['mean']:.4f} +- {row['std']:.4f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=2))
    return 0
