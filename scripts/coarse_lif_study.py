"""Coarse-scale LIF network on Fashion-MNIST: accuracy, continuous-time transfer, PCM over drift.

Uses the checkpoint of ``models/coarse_lif_fmnist.yaml`` (trains it first when ``--checkpoint``
is absent and ``runs/coarse_lif_fmnist/model.pt`` does not exist), then reports:

1. coarse-scale test accuracy with the recipe's ``T`` (4) and with 8-step trains;
2. transfer to continuous-time LIF neurons (fine step ``dt_s``, exponential current synapses of
   ``synapse_tau_s``, input spikes at random times within their windows), with the refractory
   period and the quiet settling time after the input chosen on training images from
   ``--refractory`` x ``--settle``, against the coarse model on the same test images and coarse
   input spikes; and the
   transfer loss as the input arrival times shrink from the whole window to its start
   (``--jitter``: how precisely timed the input must be for the coarse model to hold);
3. the coarse model on simulated PCM chips over drift time (and the continuous-time model on
   PCM at one day).

Writes ``runs/coarse_lif_study/results.json``.
Run: ``nice -n 10 .venv/bin/python scripts/coarse_lif_study.py``
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from pathlib import Path
from typing import Any

import torch

from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips
from pcm_sim.families import FAMILIES
from pcm_sim.families.coarse_lif import score_split
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--checkpoint", default="runs/coarse_lif_fmnist/model.pt")
parser.add_argument("--transfer-limit", type=int, default=2000, help="test images for transfer")
parser.add_argument("--dt", type=float, nargs="+", default=[0.1, 0.05], help="fine steps")
parser.add_argument(
    "--jitter",
    type=float,
    nargs="+",
    default=[1.0, 0.5, 0.2, 0.0],
    help="input arrival spread (fraction of a window) for the transfer at the first --dt",
)
parser.add_argument(
    "--refractory", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="refractory periods"
)
parser.add_argument(
    "--settle", type=float, nargs="+", default=[0.0, 2.0], help="quiet time after the input"
)
parser.add_argument("--select-limit", type=int, default=500, help="training images to choose on")
parser.add_argument("--profile", default="pcm_nandakumar2019")
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--pcm-limit", type=int, default=2000, help="test images on chips")
parser.add_argument(
    "--synapse-tau", type=float, default=None, help="override the recipe's synapse_tau_s"
)
parser.add_argument("--out", default="runs/coarse_lif_study")
args = parser.parse_args()

torch.set_num_threads(1)
start = time.perf_counter()
path = Path(args.checkpoint)
if not path.exists():
    path = train_recipe("coarse_lif_fmnist", path.parent)
model, payload = load_checkpoint(path)
recipe = payload["recipe"]
if args.synapse_tau is not None:
    recipe["model"]["synapse_tau_s"] = args.synapse_tau
family = FAMILIES[recipe["family"]]
seed = int(recipe["training"].get("seed", 0))


def score(mode: str, rec: dict[str, Any], limit: int | None, split: str = "test") -> float:
    """Accuracy on ``split`` with the fixed input-encoding seed (paired across modes)."""
    gen = torch.Generator().manual_seed(seed + 1)
    model.eval()
    with torch.no_grad():
        return score_split(model, rec, gen, mode, limit, split)["accuracy"]


results: dict[str, Any] = {
    "checkpoint": str(path),
    "history": payload["history"],
    "train_seconds": payload.get("train_seconds"),
}
steps = int(recipe["data"]["steps"])
eight = copy.deepcopy(recipe)
eight["data"]["steps"] = 8
results["coarse"] = {
    f"accuracy_T{steps}": score("default", recipe, None),
    "accuracy_T8": score("default", eight, None),
}
print(f"coarse: {results['coarse']}", flush=True)

selection = []
for refractory, settle in itertools.product(args.refractory, args.settle):
    trial = copy.deepcopy(recipe)
    trial["data"]["dt_s"] = args.dt[0]
    trial["model"].update(refractory_s=refractory, settle_s=settle)
    acc = score("continuous", trial, args.select_limit, "train")
    selection.append({"refractory_s": refractory, "settle_s": settle, "train_accuracy": acc})
    print(f"transfer on training images: {selection[-1]}", flush=True)
best = max(selection, key=lambda row: row["train_accuracy"])
recipe["model"].update(refractory_s=best["refractory_s"], settle_s=best["settle_s"])
results["transfer_selection"] = {
    "train_images": args.select_limit,
    "dt_s": args.dt[0],
    "coarse_train_accuracy": score("default", recipe, args.select_limit, "train"),
    "rows": selection,
    "chosen": best,
}

transfer = []
coarse_subset = score("default", recipe, args.transfer_limit)
for dt in args.dt:
    fine = copy.deepcopy(recipe)
    fine["data"]["dt_s"] = dt
    t0 = time.perf_counter()
    acc = score("continuous", fine, args.transfer_limit)
    transfer.append(
        {
            "dt_s": dt,
            "continuous_accuracy": acc,
            "coarse_accuracy_same_images": coarse_subset,
            "loss_pp": 100.0 * (coarse_subset - acc),
            "seconds": time.perf_counter() - t0,
        }
    )
    print(f"transfer dt={dt}: {transfer[-1]}", flush=True)
results["transfer"] = {"images": args.transfer_limit, "rows": transfer}

jitter_rows = []
for jitter in args.jitter:
    spread = copy.deepcopy(recipe)
    spread["data"]["dt_s"] = args.dt[0]
    spread["data"]["input_jitter"] = jitter
    acc = score("continuous", spread, args.transfer_limit)
    jitter_rows.append(
        {
            "dt_s": args.dt[0],
            "input_jitter": jitter,
            "continuous_accuracy": acc,
            "loss_pp": 100.0 * (coarse_subset - acc),
        }
    )
    print(f"transfer jitter={jitter}: {jitter_rows[-1]}", flush=True)
results["transfer_vs_input_jitter"] = jitter_rows

results["pcm"] = evaluate_on_chips(
    model,
    recipe,
    args.profile,
    list(DEFAULT_TIMES),
    args.chips,
    seed=seed + 1,
    limit=args.pcm_limit,
    log=lambda line: print(line, flush=True),
)
results["pcm_continuous_1day"] = evaluate_on_chips(
    model,
    recipe,
    args.profile,
    [86_400.0],
    args.chips,
    "continuous",
    seed=seed + 1,
    limit=min(args.pcm_limit, 500),
)
results["pcm_coarse_same_images_as_continuous"] = evaluate_on_chips(
    model,
    recipe,
    args.profile,
    [86_400.0],
    args.chips,
    seed=seed + 1,
    limit=min(args.pcm_limit, 500),
)
for row in results["pcm"]["rows"]:
    print(f"{args.profile} {row['label']}: {row['mean']:.4f} ± {row['std']:.4f}", flush=True)
results["total_seconds"] = time.perf_counter() - start
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "results.json").write_text(json.dumps(results, indent=2))
print(f"wrote {out / 'results.json'}")
