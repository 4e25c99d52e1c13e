"""``pcm-sim correct CHECKPOINT --profile P --method verify|hil --t 1d [--json FILE]``.

Scores a checkpoint at time ``t`` on simulated chips three ways up to the chosen method: open
loop (single-shot programming), program-and-verify, and program-and-verify plus
hardware-in-the-loop fine-tuning at ``t`` (``--method hil``); with pulses per device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pcm_sim.commands.args import (
    add_data_dir_argument,
    fraction,
    nonnegative_int,
    output_file,
    positive_float,
    positive_int,
    time_value,
)
from pcm_sim.studies.outputs import write_text_atomic

__all__ = ["register"]

LABELS = {"open": "open loop", "verify": "program-and-verify", "hil": "verify + HIL"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``correct`` command."""
    from pcm_sim.crossbar.calibration import DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE_GMAX
    from pcm_sim.training.hil import HILConfig

    defaults = HILConfig()
    p = sub.add_parser(
        "correct", help="program-and-verify and hardware-in-the-loop correction of a checkpoint"
    )
    p.add_argument("checkpoint")
    p.add_argument("--profile", default="pcm_nandakumar2019")
    p.add_argument("--method", choices=["verify", "hil"], default="verify")
    p.add_argument(
        "--t", default="1d", type=time_value, help="time after programming, e.g. 1h 1d 1y"
    )
    p.add_argument("--chips", type=positive_int, default=1, help="chips (seeds seed..seed+chips-1)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first chip seed")
    p.add_argument(
        "--tolerance",
        type=fraction,
        default=DEFAULT_TOLERANCE_GMAX,
        help="verify tolerance as a fraction of g_max",
    )
    p.add_argument(
        "--max-iterations",
        type=nonnegative_int,
        default=DEFAULT_MAX_ITERATIONS,
        help="verify: maximum re-writes per device",
    )
    p.add_argument("--steps", type=positive_int, default=defaults.steps, help="HIL optimizer steps")
    p.add_argument("--lr", type=positive_float, default=defaults.lr, help="HIL learning rate (SGD)")
    p.add_argument(
        "--granularity",
        type=fraction,
        default=defaults.granularity_gmax,
        help="HIL transfer granularity as a fraction of w_max",
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help="score on the first N test samples"
    )
    add_data_dir_argument(p, "directory of the Fashion-MNIST IDX files")
    p.add_argument("--json", type=output_file, default=None, help="write the results as JSON")
    p.add_argument(
        "--save-chip",
        type=output_file,
        default=None,
        help="save the corrected chip (of --method) to this file; with several chips, "
        "one file per chip seed (FILE_seedN.pt)",
    )
    p.set_defaults(handler=_correct)


def _chip_path(path: str | None, seed: int, chips: int) -> Path | None:
    """Where to save chip ``seed``: ``path`` itself for one chip, else ``STEM_seedN.SUFFIX``."""
    if path is None:
        return None
    target = Path(path)
    if chips == 1:
        return target
    return target.with_name(f"{target.stem}_seed{seed}{target.suffix or '.pt'}")


def _correct(args: argparse.Namespace) -> int:
    from pcm_sim.families import FAMILIES
    from pcm_sim.profiles import load_profile
    from pcm_sim.seeds import input_generator
    from pcm_sim.training.checkpoint import load_checkpoint
    from pcm_sim.training.correction import (
        CorrectionCase,
        CorrectionMethod,
        correction_study,
        summarize_case,
    )
    from pcm_sim.training.hil import HILConfig

    t_s: float = args.t
    profile = load_profile(args.profile)
    model, payload = load_checkpoint(args.checkpoint)
    recipe = payload["recipe"]
    if args.data_dir:
        recipe["data"]["data_dir"] = args.data_dir
    family = FAMILIES[recipe["family"]]
    config = HILConfig(
        steps=args.steps,
        lr=args.lr,
        granularity_gmax=args.granularity,
        t_s=t_s,
        tolerance_gmax=args.tolerance,
        max_iterations=args.max_iterations,
    )
    methods: list[CorrectionMethod] = ["open", "verify"]
    if args.method == "hil":
        methods.append("hil")
    cases = [CorrectionCase(m, m, (t_s,), config) for m in methods]
    chips = range(args.seed, args.seed + args.chips)
    runs = correction_study(
        model,
        recipe,
        profile,
        cases,
        chips,
        args.tolerance,
        args.max_iterations,
        args.limit,
        save_chip=lambda case, chip: (
            _chip_path(args.save_chip, chip, args.chips) if case is cases[-1] else None
        ),
    )
    software = payload["software"][family.metric]
    if args.limit:  # score the software model on the same subset as the chips
        subset = family.evaluate(model, recipe, input_generator(), limit=args.limit)
        software = subset[family.metric]
    print(f"{recipe['name']} on {profile.name} at t = {t_s:g} s ({args.chips} chip(s))")
    print(f"  {'software':<20s} {family.metric} {software:.4f}")
    summary = {}
    for name in methods:
        row = summarize_case(runs, name, t_s)
        summary[name] = {k: row[k] for k in ("mean", "per_chip", "pulses_mean", "pulses_max")}
        print(
            f"  {LABELS[name]:<20s} {family.metric} {row['mean']:.4f}"
            f"   pulses/device {row['pulses_mean']:.3f} (max {row['pulses_max']})"
        )
    if args.json:
        result = {
            "checkpoint": str(args.checkpoint),
            "recipe": recipe["name"],
            "profile": profile.name,
            "t_s": t_s,
            "metric": family.metric,
            "software": software,
            "hil_config": dataclasses.asdict(config),
            "summary": summary,
            "runs": {name: [r for r in runs if r["case"] == name] for name in methods},
        }
        write_text_atomic(args.json, json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    for chip in chips:
        saved = _chip_path(args.save_chip, chip, args.chips)
        if saved is not None:
            print(f"saved chip {chip} ({LABELS[methods[-1]]}): {saved}")
    return 0
