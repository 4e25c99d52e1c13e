"""sSNU vs LSTM on Bach-chorale next-frame prediction, then the sSNUs on PCM over drift time.

Trains ``ssnu_chorales`` (88-150-88, the published PCM size), ``ssnu_rec_chorales`` (88-97-88
with a recurrent matrix, the same synapse budget) and ``lstm_chorales`` with the same budget
(epochs, batch size, learning rate) for each seed of ``--seeds``, reports their validation and
test NLL (nats per frame, summed over 88 keys) as mean and standard deviation over seeds, and
evaluates the first seed's sSNUs on ``--chips`` chips of ``--profile`` from 1 minute to 1 year.

    python scripts/chorales_study.py --out runs/chorales [--seeds 0 1 2] [--chips 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips
from pcm_sim.families.chorales import sequence_nll
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

RECIPES = ("ssnu_chorales", "ssnu_rec_chorales", "lstm_chorales")
SPIKING = ("ssnu_chorales", "ssnu_rec_chorales")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/chorales")
parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
parser.add_argument("--chips", type=int, default=5)
parser.add_argument("--profile", default="pcm_nandakumar2019")
args = parser.parse_args()
out = Path(args.out)


def summary(values: list[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one value) and the values."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "values": values}


report: dict[str, Any] = {"profile": args.profile, "chips": args.chips, "seeds": args.seeds}
for recipe in RECIPES:
    valid, test, seconds = [], [], []
    for seed in args.seeds:
        ckpt = train_recipe(recipe, out / f"{recipe}_seed{seed}", {"seed": seed, "progress": False})
        model, payload = load_checkpoint(ckpt)
        valid.append(sequence_nll(model, payload["recipe"], "valid")["nll"])
        test.append(payload["software"]["nll"])
        seconds.append(payload["train_seconds"])
    report[recipe] = {
        "valid_nll": summary(valid),
        "test_nll": summary(test),
        "epochs": payload["recipe"]["training"]["epochs"],
        "lr": payload["recipe"]["training"]["lr"],
        "train_seconds": summary(seconds),
        "parameters": sum(p.numel() for p in payload["state_dict"].values()),
    }
    print(f"{recipe}: test NLL {report[recipe]['test_nll']}", flush=True)

for recipe in SPIKING:
    model, payload = load_checkpoint(out / f"{recipe}_seed{args.seeds[0]}" / "model.pt")
    pcm = evaluate_on_chips(model, payload["recipe"], args.profile, DEFAULT_TIMES, args.chips)
    report[f"{recipe}_on_pcm"] = pcm
    for row in pcm["rows"]:
        mean, std = row["mean"], row["std"]
        print(f"{recipe} on {args.profile} at {row['label']:>8s}: {mean:.3f} +- {std:.3f}")
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps(report, indent=2))
print(f"wrote {out / 'report.json'}")
