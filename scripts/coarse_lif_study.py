"""Coarse-scale LIF network on Fashion-MNIST: accuracy and transfer to continuous-time LIF.

Loads ``--checkpoint`` (trains ``models/coarse_lif_fmnist.yaml`` there first when it does not
exist), then:

1. coarse-scale accuracy on the full test set with the recipe's ``T`` (4) and with 8-step trains;
2. transfer candidates (``--candidates``, a JSON list of continuous-time settings, each with its
   ``input_jitter``) on ``--select-images`` training images: coarse and continuous accuracy on the
   same images and input spikes, the fraction of images where both predict the same class, and
   the continuous / coarse spike count of every layer;
3. the transfer with the recipe's continuous-time settings (``--settings`` replaces some) on the
   first ``--images`` test images (both models, same images, same coarse input spikes), in
   software and on ``--chips`` chips of ``--profile`` at ``--t-s`` seconds (first
   ``--pcm-images``).

``--finetune-batches`` first fine-tunes the network with the continuous model in the loop
(straight-through, with the recipe's continuous settings) and saves it to ``--finetune-out``.

Writes ``--out`` (``results/coarse_lif/transfer.json``): ``coarse_accuracy``,
``continuous_accuracy`` and ``images`` (software, paired), the PCM rows, the candidates, the
settings and the command.
Run: ``OMP_NUM_THREADS=1 python scripts/coarse_lif_study.py --checkpoint runs/X/model.pt``
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pcm_sim.evaluation import evaluate_on_chips
from pcm_sim.families.coarse_lif import continuous_params, image_spikes, score_split
from pcm_sim.families.data import image_split
from pcm_sim.functional.lif import refine_spike_train
from pcm_sim.nn.coarse_lif import CoarseLIF, CoarseLIFConvNet, spike_count_logits
from pcm_sim.seeds import EVAL_INPUT_SEED
from pcm_sim.training.checkpoint import load_checkpoint, save_checkpoint, train_recipe

CHUNK = 50
"""Images per continuous-time batch (bounds memory)."""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--checkpoint", default="runs/coarse_lif_fmnist/model.pt")
parser.add_argument("--images", type=int, default=1000, help="test images for the transfer")
parser.add_argument("--select-images", type=int, default=500, help="training images, candidates")
parser.add_argument("--candidates", default="[]", help="JSON list of continuous-time settings")
parser.add_argument(
    "--settings", default="{}", help="JSON continuous-time settings replacing the recipe's"
)
parser.add_argument("--pcm-images", type=int, default=None, help="test images on chips")
parser.add_argument("--profile", default="pcm_nandakumar2019")
parser.add_argument("--t-s", type=float, default=86_400.0, help="drift time on chips (s)")
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--chip-seed", type=int, default=0, help="first chip (parts run apart)")
parser.add_argument(
    "--parts",
    nargs="+",
    default=["full", "candidates", "software", "pcm"],
    choices=["full", "candidates", "software", "pcm"],
    help="parts to run; their keys replace those of an existing --out (parts can run apart)",
)
parser.add_argument(
    "--finetune-batches",
    type=int,
    default=0,
    help="straight-through fine-tuning batches (of 32) before the parts run",
)
parser.add_argument("--finetune-lr", type=float, default=2e-4)
parser.add_argument("--finetune-out", default="runs/coarse_lif_finetuned/model.pt")
parser.add_argument("--out", default="results/coarse_lif/transfer.json")
args = parser.parse_args()

torch.set_num_threads(1)
start = time.perf_counter()
path = Path(args.checkpoint)
if not path.exists():
    path = train_recipe("coarse_lif_fmnist", path.parent)
model, payload = load_checkpoint(path)
assert isinstance(model, CoarseLIFConvNet)
net: CoarseLIFConvNet = model
net.eval()
recipe = payload["recipe"]
CONTINUOUS_KEYS = ("refractory_s", "synapse_tau_s", "synapse_window_s", "reset", "settle_s")


def with_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The recipe with continuous-time ``settings`` (model fields, ``dt_s``, ``input_jitter``)."""
    trial = copy.deepcopy(recipe)
    for key, value in settings.items():
        section = "data" if key in ("dt_s", "input_jitter") else "model"
        trial[section][key] = value
    return trial


def paired(rec: dict[str, Any], limit: int | None, mode: str, split: str = "test") -> float:
    """Accuracy with the study's input-encoding seed (the same spikes in every mode)."""
    gen = torch.Generator().manual_seed(EVAL_INPUT_SEED)
    with torch.no_grad():
        return score_split(model, rec, gen, mode, limit, split)["accuracy"]


@torch.no_grad()
def compare(rec: dict[str, Any], limit: int) -> dict[str, Any]:
    """Coarse vs continuous on ``limit`` training images: accuracies, agreement, spike ratios."""
    images, labels = image_split(rec, "train", limit)
    gen = torch.Generator().manual_seed(EVAL_INPUT_SEED)
    timing = torch.Generator().manual_seed(EVAL_INPUT_SEED + 1)
    params = continuous_params(rec)
    jitter = float(rec["data"].get("input_jitter", 1.0))
    steps = int(rec["data"]["steps"])
    coarse_pred: list[torch.Tensor] = []
    cont_pred: list[torch.Tensor] = []
    blocks = list(net.blocks)
    counts = torch.zeros(2, len(blocks), dtype=torch.float64)
    for first in range(0, len(images), CHUNK):
        spikes = image_spikes(images[first : first + CHUNK], steps, gen)
        fine = refine_spike_train(spikes, params.substeps, timing, jitter)
        fine = torch.cat([fine, fine.new_zeros(params.settle_steps, *fine.shape[1:])])
        for row, x in enumerate((spikes, fine)):
            v = x
            for index, block in enumerate(blocks):
                assert isinstance(block, CoarseLIF)
                x, v = block(x) if row == 0 else block.forward_continuous(x, params)
                counts[row, index] += float(x.sum())
                if index == net.flatten_after:
                    x = x.flatten(start_dim=2)
            (coarse_pred, cont_pred)[row].append(spike_count_logits(x, v).argmax(-1))
    coarse, cont = torch.cat(coarse_pred), torch.cat(cont_pred)
    return {
        "coarse_accuracy": float((coarse == labels).double().mean()),
        "continuous_accuracy": float((cont == labels).double().mean()),
        "agreement": float((coarse == cont).double().mean()),
        "spike_ratio_per_layer": (counts[1] / counts[0]).tolist(),
    }


def settings_of(rec: dict[str, Any]) -> dict[str, Any]:
    """The continuous-time settings a recipe carries (with their defaults)."""
    params = continuous_params(rec)
    return {
        "tau": params.tau,
        "dt_s": params.dt_s,
        "input_jitter": float(rec["data"].get("input_jitter", 1.0)),
        **{key: getattr(params, key) for key in (*CONTINUOUS_KEYS, "refractory_pool")},
    }


def finetune(batches: int) -> dict[str, Any]:
    """Fine-tune for the transfer: Adam on ``CE(continuous forward, coarse gradients) +
    CE(coarse)`` (:meth:`~pcm_sim.nn.coarse_lif.CoarseLIFConvNet.forward_straight_through`),
    batches of 32 random training images; saves the weights to ``--finetune-out``."""
    params = continuous_params(recipe)
    images, labels = image_split(recipe, "train")
    gen = torch.Generator().manual_seed(EVAL_INPUT_SEED + 2)
    jitter = float(recipe["data"].get("input_jitter", 1.0))
    scale = float(recipe["model"].get("readout_scale", 2.0))
    optimizer = torch.optim.Adam(net.parameters(), lr=args.finetune_lr)
    net.train()
    for _ in range(batches):
        pick = torch.randint(0, len(images), (32,), generator=gen)
        spikes = image_spikes(images[pick], int(recipe["data"]["steps"]), gen)
        fine = refine_spike_train(spikes, params.substeps, gen, jitter)
        hybrid = net.forward_straight_through(spikes, fine, params)
        loss = F.cross_entropy(scale * hybrid, labels[pick])
        loss = loss + F.cross_entropy(scale * net(spikes), labels[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    save_checkpoint(Path(args.finetune_out), {**payload, "state_dict": net.state_dict()})
    return {"batches": batches, "batch_size": 32, "lr": args.finetune_lr, "out": args.finetune_out}


recipe = with_settings(json.loads(args.settings))
results: dict[str, Any] = {
    "command": "python " + " ".join(sys.argv),
    "checkpoint": str(path),
    "recipe_model": recipe["model"],
    "recipe_data": recipe["data"],
    "recipe_training": recipe["training"],
    "history": payload["history"],
    "train_seconds": payload.get("train_seconds"),
}
if args.finetune_batches > 0:
    results["finetune"] = finetune(args.finetune_batches)
if "full" in args.parts:
    eight = copy.deepcopy(recipe)
    eight["data"]["steps"] = 8
    results["coarse_full_test"] = {
        "images": 10_000,
        f"accuracy_T{recipe['data']['steps']}": paired(recipe, None, "default"),
        "accuracy_T8": paired(eight, None, "default"),
    }
    print(f"coarse, full test set: {results['coarse_full_test']}", flush=True)

candidates = []
for settings in json.loads(args.candidates) if "candidates" in args.parts else []:
    trial = with_settings(settings)
    t0 = time.perf_counter()
    row = {"settings": settings_of(trial), **compare(trial, args.select_images)}
    row["gap_pp"] = 100.0 * (row["coarse_accuracy"] - row["continuous_accuracy"])
    row["seconds"] = time.perf_counter() - t0
    candidates.append(row)
    print(f"candidate {settings}: {json.dumps(row)}", flush=True)
if candidates:
    results["candidates"] = {"train_images": args.select_images, "rows": candidates}

results["settings"] = settings_of(recipe)
results["images"] = args.images
if "software" in args.parts:
    results["coarse_accuracy"] = paired(recipe, args.images, "default")
    results["continuous_accuracy"] = paired(recipe, args.images, "continuous")
    results["gap_pp"] = 100.0 * (results["coarse_accuracy"] - results["continuous_accuracy"])
    print(
        f"software, {args.images} test images: coarse {results['coarse_accuracy']:.4f}, "
        f"continuous {results['continuous_accuracy']:.4f}",
        flush=True,
    )

chips: dict[str, dict[str, float]] = {}
if "pcm" in args.parts:
    on_chip = args.pcm_images or args.images
    for chip in range(args.chip_seed, args.chip_seed + args.chips):
        chips[str(chip)] = {
            key: evaluate_on_chips(
                model, recipe, args.profile, [args.t_s], 1, mode, seed=chip, limit=on_chip
            )["rows"][0]["mean"]
            for mode, key in (("default", "coarse"), ("continuous", "continuous"))
        }
        print(f"{args.profile} chip {chip}: {chips[str(chip)]}", flush=True)
results[f"seconds_{'_'.join(args.parts)}"] = time.perf_counter() - start
out = Path(args.out)
out.parent.mkdir(parents=True, exist_ok=True)
previous = json.loads(out.read_text()) if out.exists() else {}
previous.setdefault("commands", []).append(results.pop("command"))
merged = {**previous, **results, "pcm_chips": {**previous.get("pcm_chips", {}), **chips}}
if merged["pcm_chips"]:
    per_chip = list(merged["pcm_chips"].values())
    summary: dict[str, Any] = {"profile": args.profile, "t_s": args.t_s, "chips": len(per_chip)}
    summary["images"] = args.pcm_images or args.images
    for key in ("coarse", "continuous"):
        values = [row[key] for row in per_chip]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = {"mean": statistics.fmean(values), "std": spread}
    gaps = [100.0 * (row["coarse"] - row["continuous"]) for row in per_chip]
    summary["gap_pp"] = {"mean": statistics.fmean(gaps), "per_chip": gaps}
    merged["pcm"] = summary
out.write_text(json.dumps(merged, indent=2))
print(f"wrote {out}")
