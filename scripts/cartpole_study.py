"""CartPole with a coarse-scale LIF spiking policy: trained in software, run on PCM over drift time.

Trains ``models/coarse_lif_cartpole.yaml`` (DAgger imitation of an LQR controller; checkpoint
``runs/coarse_lif_cartpole/model.pt``), scores the average return over 100 seeded episodes in
software, then on ``--chips`` simulated chips of each profile at 1 min ... 1 year after
programming (the same 100 episodes on every chip and time).

Writes ``runs/cartpole_study/results.json``.
Run: ``nice -n 10 .venv/bin/python scripts/cartpole_study.py``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from pcm_sim.evaluation import DEFAULT_TIMES, evaluate_on_chips
from pcm_sim.families import FAMILIES
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--profiles", nargs="+", default=["pcm_nandakumar2019"])
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--episodes", type=int, default=100)
parser.add_argument("--checkpoint", default=None, help="reuse a trained checkpoint")
parser.add_argument("--out", default="runs/cartpole_study")
args = parser.parse_args()

torch.set_num_threads(1)
start = time.perf_counter()
path = Path(args.checkpoint) if args.checkpoint else None
if path is None:
    path = train_recipe("coarse_lif_cartpole", Path("runs/coarse_lif_cartpole"))
model, payload = load_checkpoint(path)
recipe = payload["recipe"]
family = FAMILIES[recipe["family"]]
software = family.evaluate(model, recipe, torch.Generator().manual_seed(1), limit=args.episodes)
print(f"software: {software}", flush=True)
results: dict[str, Any] = {
    "checkpoint": str(path),
    "history": payload["history"],
    "train_seconds": payload.get("train_seconds"),
    "episodes": args.episodes,
    "software": software,
    "pcm": {},
}
for profile in args.profiles:
    result = evaluate_on_chips(
        model,
        recipe,
        profile,
        list(DEFAULT_TIMES),
        args.chips,
        limit=args.episodes,
        log=lambda line: print(line, flush=True),
    )
    results["pcm"][profile] = result
    for row in result["rows"]:
        print(f"{profile} {row['label']}: return {row['mean']:.1f} ± {row['std']:.1f}", flush=True)
results["total_seconds"] = time.perf_counter() - start
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
(out / "results.json").write_text(json.dumps(results, indent=2))
print(f"wrote {out / 'results.json'}")
