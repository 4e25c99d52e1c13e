"""Hardware-in-the-loop study: how much closed-loop correction recovers, and at what pulse cost.

SNU 784-256-256-10 on Fashion-MNIST (recipe ``snu_fmnist``) on ``pcm_nandakumar2019`` and
``pcm_hermes2023``.  For each chip seed, scored on the full test set with one fixed
input-encoding seed, so methods differ only by what they do to the devices:

* (a) open loop: single-shot programming, drift to 1 day, global drift compensation;
* (b) program-and-verify right after programming (tolerance 4 % of g_max, <= 10 re-writes);
* (c) (b) plus HIL fine-tuning on the chip at 1 day ("correction at time t", aged-chip
  approximation, see :mod:`pcm_sim.training.hil`);
* (c0) (b) plus HIL fine-tuning right after programming (t = 0; exact in time), read at 1 day
  and at t = 0;
* (d) software;
* (e) control: the same HIL fine-tuning on the ideal chip, which shows how much of (c) is
  plain extra training rather than correction of the chip.

Also aihwkit's in-situ analog training (``MixedPrecisionCompound`` over ``PCMPresetUnitCell``,
:mod:`pcm_sim.backends.aihwkit_training`) on the same weights, at aihwkit's t = 0 (its training
tiles have no drift), scored on the first ``--aihwkit-limit`` test samples.

The checkpoint is trained without hardware-aware noise (``hwa_profile: null``) so that the
deployment gap is not already trained away.  Writes ``OUT/hil_study.json`` and
``OUT/hil_study.md``.

    nice -n 10 .venv/bin/python scripts/hil_study.py --chips 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from pcm_sim.backends.aihwkit_training import aihwkit_finetune, to_aihwkit_training
from pcm_sim.families import FAMILIES
from pcm_sim.profiles import load_profile
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe
from pcm_sim.training.correction import (
    CorrectionCase,
    correct_and_evaluate,
    correction_study,
    summarize_case,
)
from pcm_sim.training.hil import HILConfig

DAY = 86_400.0
PROFILES = ("pcm_nandakumar2019", "pcm_hermes2023")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--checkpoint", default="runs/hil/snu_fmnist_nohwa_e8/model.pt")
parser.add_argument("--epochs", type=int, default=8, help="epochs if the checkpoint is trained")
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--steps", type=int, default=HILConfig().steps, help="HIL steps")
parser.add_argument("--lr", type=float, default=HILConfig().lr)
parser.add_argument("--granularity", type=float, default=HILConfig().granularity_gmax)
parser.add_argument("--aihwkit-steps", type=int, default=100, help="0 skips aihwkit")
parser.add_argument("--aihwkit-limit", type=int, default=2000)
parser.add_argument("--out", default="runs/hil")
args = parser.parse_args()
torch.set_num_threads(1)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()

# ---------------------------------------------------------------- checkpoint (no HWA)
checkpoint = Path(args.checkpoint)
if not checkpoint.is_file():
    overrides = {"epochs": args.epochs, "hwa_profile": None, "progress": False}
    checkpoint = train_recipe("snu_fmnist", checkpoint.parent, overrides)
model, payload = load_checkpoint(checkpoint)
recipe = payload["recipe"]
family = FAMILIES[recipe["family"]]
software = payload["software"][family.metric]
print(
    f"{checkpoint}: software {family.metric} {software:.4f}, hwa_profile {payload['hwa_profile']}"
)

hil_1d = HILConfig(steps=args.steps, lr=args.lr, granularity_gmax=args.granularity, t_s=DAY)
hil_0 = HILConfig(steps=args.steps, lr=args.lr, granularity_gmax=args.granularity, t_s=0.0)
task = family.hil_task(recipe, hil_1d.batch_size)

# ---------------------------------------------------------------- pcm-sim: (a), (b), (c), (c0)
cases = [
    CorrectionCase("open", "open", (0.0, DAY)),
    CorrectionCase("verify", "verify", (0.0, DAY)),
    CorrectionCase("hil_1d", "hil", (DAY,), hil_1d),
    CorrectionCase("hil_0", "hil", (0.0, DAY), hil_0),
]
runs: dict[str, list[dict[str, Any]]] = {}
for profile in PROFILES:
    runs[profile] = correction_study(
        model, recipe, load_profile(profile), cases, range(args.chips), task=task, log=print
    )
    for result in runs[profile]:
        for layer in result.get("verify", []):
            layer.pop("per_iteration")
        if "hil" in result:
            losses = result["hil"].pop("losses")
            n = max(1, len(losses) // 10)
            result["hil"]["loss_first"] = statistics.fmean(losses[:n])
            result["hil"]["loss_last"] = statistics.fmean(losses[-n:])

control = correct_and_evaluate(
    model, recipe, load_profile("ideal"), "hil", [DAY], hil=hil_1d, task=task
)
control["hil"].pop("losses")
print(f"ideal chip, HIL control: {control['values'][0]:.4f}")

summary: dict[str, Any] = {}
for profile in PROFILES:
    open_1d = summarize_case(runs[profile], "open", DAY)["mean"]
    gap = software - open_1d
    rows = {}
    for case in ("open", "verify", "hil_1d", "hil_0"):
        day = summarize_case(runs[profile], case, DAY)
        at_0 = summarize_case(runs[profile], case, 0.0)["mean"] if case != "hil_1d" else None
        rows[case] = {
            "mean_1d": day["mean"],
            "std_1d": day["std"],
            "per_chip_1d": day["per_chip"],
            "mean_0": summarize_case(runs[profile], case, 0.0)["mean"]
            if case != "hil_1d"
            else None,
            "gap_recovered": (day["mean"] - open_1d) / gap if gap > 0 else None,
            "pulses_mean": day["pulses_mean"],
            "pulses_max": day["pulses_max"],
        }
    summary[profile] = {"software": software, "gap_1d": gap, "cases": rows}

# ---------------------------------------------------------------- aihwkit in-situ training
aihwkit: dict[str, Any] = {}
if args.aihwkit_steps:
    limit = args.aihwkit_limit
    eval_gen = 1
    sw_subset = family.evaluate(model, recipe, torch.Generator().manual_seed(eval_gen), limit=limit)
    for profile in PROFILES:
        chip = to_aihwkit_training(model, load_profile(profile), seed=0)
        before = family.evaluate(chip, recipe, torch.Generator().manual_seed(eval_gen), limit=limit)
        report = aihwkit_finetune(chip, task, args.aihwkit_steps, args.lr, seed=0)
        after = family.evaluate(chip, recipe, torch.Generator().manual_seed(eval_gen), limit=limit)
        aihwkit[profile] = {
            "limit": limit,
            "software": sw_subset[family.metric],
            "before": before[family.metric],
            "after": after[family.metric],
            "steps": args.aihwkit_steps,
            "seconds": report["seconds"],
        }
        print(f"aihwkit {profile}: {before[family.metric]:.4f} -> {after[family.metric]:.4f}")

# ---------------------------------------------------------------- write JSON + Markdown
result = {
    "checkpoint": str(checkpoint),
    "hwa_profile": payload["hwa_profile"],
    "software": software,
    "chips": args.chips,
    "hil_1d": dataclasses.asdict(hil_1d),
    "hil_0": dataclasses.asdict(hil_0),
    "summary": summary,
    "control_ideal_hil": control["values"][0],
    "aihwkit": aihwkit,
    "runs": [result for profile in PROFILES for result in runs[profile]],
    "seconds": time.perf_counter() - started,
}
(out / "hil_study.json").write_text(json.dumps(result, indent=2))

labels = {
    "open": "(a) open loop",
    "verify": "(b) program-and-verify",
    "hil_1d": "(c) verify + HIL at 1 day",
    "hil_0": "(c0) verify + HIL at t = 0",
}
lines = [
    "# Hardware-in-the-loop study: SNU on Fashion-MNIST",
    "",
    f"Checkpoint `{checkpoint}` (trained without hardware-aware noise), software accuracy "
    f"{software:.4f}; {args.chips} chips per profile, full test set (10,000), accuracy at 1 day "
    f"(mean ± std over chips). HIL: {args.steps} SGD steps of 64, lr {args.lr}, granularity "
    f"{args.granularity} w_max, verified transfers. Pulses per device include the first write.",
    "",
    "| profile | case | accuracy @ 1 d | accuracy @ t = 0 | gap recovered @ 1 d | "
    "pulses/device (mean, max) |",
    "|---|---|---|---|---|---|",
]
for profile, block in summary.items():
    lines.append(f"| {profile} | (d) software | {software:.4f} | {software:.4f} | | |")
    for case, row in block["cases"].items():
        at0 = f"{row['mean_0']:.4f}" if row["mean_0"] is not None else "—"
        rec = f"{100 * row['gap_recovered']:.0f} %" if row["gap_recovered"] is not None else "—"
        lines.append(
            f"| {profile} | {labels[case]} | {row['mean_1d']:.4f} ± {row['std_1d']:.4f} | {at0} "
            f"| {rec} | {row['pulses_mean']:.3f}, {row['pulses_max']} |"
        )
lines += [
    "",
    f"(e) control, the same HIL fine-tuning on the ideal chip: {control['values'][0]:.4f} "
    f"(software {software:.4f}).",
]
if aihwkit:
    lines += [
        "",
        f"aihwkit in-situ training (MixedPrecisionCompound over PCMPresetUnitCell, "
        f"{args.aihwkit_steps} AnalogSGD steps, lr {args.lr}), t = 0 (no drift model), first "
        f"{args.aihwkit_limit} test samples:",
        "",
        "| profile (periphery) | software | before | after | seconds |",
        "|---|---|---|---|---|",
    ]
    for profile, row in aihwkit.items():
        lines.append(
            f"| {profile} | {row['software']:.4f} | {row['before']:.4f} | {row['after']:.4f} "
            f"| {row['seconds']:.0f} |"
        )
(out / "hil_study.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"wrote {out / 'hil_study.json'} and {out / 'hil_study.md'} in {result['seconds']:.0f} s")
