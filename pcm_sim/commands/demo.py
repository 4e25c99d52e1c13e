"""``pcm-sim demo``: the main job.

Trains the 784-256-256-10 SNU on Fashion-MNIST (hardware-aware, ``--epochs`` of the recipe's
budget), deploys it on ``pcm_nandakumar2019`` chips, and reports test accuracy from 1 minute to
1 year after programming, with and without global drift compensation: a table on stdout, a PNG
plot and a JSON report in ``--out``.  A checkpoint already in ``--out`` trained with the same
recipe and epochs is reused (delete it to retrain).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from pcm_sim.commands.args import add_data_dir_argument, output_dir, positive_int
from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips
from pcm_sim.profiles import load_profile
from pcm_sim.studies.outputs import atomic_output, write_text_atomic
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` command."""
    parser = sub.add_parser("demo", help="train an SNU, deploy it on PCM, accuracy vs drift time")
    parser.add_argument("--out", type=output_dir, default="runs/demo")
    parser.add_argument(
        "--epochs", type=positive_int, default=4, help="training epochs (recipe: 8)"
    )
    parser.add_argument("--chips", type=positive_int, default=5)
    parser.add_argument("--profile", default="pcm_nandakumar2019")
    add_data_dir_argument(parser)
    parser.set_defaults(handler=_demo)


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    software = report["software"]["accuracy"] * 100
    ax.axhline(software, color="k", ls="--", label=f"software {software:.2f}%")
    for key, label in [
        ("compensated", "PCM, global drift compensation"),
        ("uncompensated", "PCM, no compensation"),
    ]:
        rows = report[key]["rows"]
        t = [r["t_s"] for r in rows]
        mean = [r["mean"] * 100 for r in rows]
        std = [r["std"] * 100 for r in rows]
        ax.errorbar(t, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"SNU 784-256-256-10 on {report['profile']} ({report['chips']} chips)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    profile = load_profile(args.profile)
    ckpt = out / "model.pt"
    data = {"data_dir": args.data_dir} if args.data_dir else {}
    reuse = False
    if ckpt.exists():
        _, payload = load_checkpoint(ckpt)
        reuse = payload["recipe"]["training"]["epochs"] == args.epochs
    if reuse:
        print(f"reusing {ckpt} (delete it to retrain)")
    else:
        train_recipe("snu_fmnist", out, {"epochs": args.epochs}, data_overrides=data)
    model, payload = load_checkpoint(ckpt)
    recipe = payload["recipe"]
    recipe["data"].update(data)
    torch.set_num_threads(torch.get_num_threads())
    report: dict[str, Any] = {
        "recipe": recipe["name"],
        "epochs": args.epochs,
        "profile": profile.name,
        "chips": args.chips,
        "software": payload["software"],
    }
    for key, mode in [("compensated", "global"), ("uncompensated", "none")]:
        chip_profile = profile.with_overrides({"compensation.mode": mode})
        report[key] = evaluate_on_chips(model, recipe, chip_profile, DEFAULT_TIMES, args.chips)
    software = payload["software"]["accuracy"] * 100
    print(
        f"\nSNU 784-256-256-10, Fashion-MNIST test accuracy (%), {profile.name}, {args.chips} chips"
    )
    print(f"software: {software:.2f}")
    print(f"{'time':>8s}  {'compensated':>16s}  {'uncompensated':>16s}")
    for comp, raw in zip(
        report["compensated"]["rows"], report["uncompensated"]["rows"], strict=True
    ):
        print(
            f"{comp['label']:>8s}  {comp['mean'] * 100:7.2f} +- {comp['std'] * 100:4.2f}  "
            f"{raw['mean'] * 100:7.2f} +- {raw['std'] * 100:4.2f}"
        )
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    _plot(report, out / "accuracy_vs_time.png")
    print(f"\nwrote {out / 'report.json'} and {out / 'accuracy_vs_time.png'}")
    return 0
