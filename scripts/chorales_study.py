"""sSNU vs LSTM on Bach-chorale next-frame prediction, then the sSNU on PCM over drift time.

Trains ``ssnu_chorales`` and ``lstm_chorales`` with the same budget (epochs, batch size, learning
rate; from their recipes or ``--epochs``), reports their test NLL (nats per frame, summed over
88 keys), and evaluates the sSNU on ``--profile`` chips from 1 minute to 1 year.

    python scripts/chorales_study.py --out runs/chorales [--epochs N] [--chips 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/chorales")
parser.add_argument("--epochs", type=int, default=None)
parser.add_argument("--chips", type=int, default=5)
parser.add_argument("--profile", default="pcm_nandakumar2019")
args = parser.parse_args()
out = Path(args.out)
overrides = {"epochs": args.epochs} if args.epochs else {}

report: dict[str, object] = {"profile": args.profile, "chips": args.chips}
for recipe in ("ssnu_chorales", "lstm_chorales"):
    ckpt = train_recipe(recipe, out / recipe, overrides)
    _, payload = load_checkpoint(ckpt)
    report[recipe] = {
        "test_nll": payload["software"]["nll"],
        "epochs": payload["recipe"]["training"]["epochs"],
        "train_seconds": payload["train_seconds"],
        "parameters": sum(p.numel() for p in payload["state_dict"].values()),
    }

model, payload = load_checkpoint(out / "ssnu_chorales" / "model.pt")
pcm = evaluate_on_chips(model, payload["recipe"], args.profile, DEFAULT_TIMES, args.chips)
report["ssnu_on_pcm"] = pcm
print(f"sSNU software test NLL {report['ssnu_chorales']['test_nll']:.3f}")  # type: ignore[index]
print(f"LSTM software test NLL {report['lstm_chorales']['test_nll']:.3f}")  # type: ignore[index]
for row in pcm["rows"]:
    print(
        f"sSNU on {args.profile} at {row['label']:>8s}: NLL {row['mean']:.3f} +- {row['std']:.3f}"
    )
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps(report, indent=2))
print(f"wrote {out / 'report.json'}")
