"""Deep spiking network (O'Connor & Welling) vs the same-architecture ReLU MLP on Fashion-MNIST.

1. Trains the DSN of ``models/dsn_fmnist.yaml`` (spiking forward, error spikes through ``W^T``,
   spike-count updates) and a ReLU MLP with the same initial weights, the same mini-batch order,
   optimizer and schedule (autograd), and reports both test accuracies per epoch.
2. Crossbar cost: line activations per test sample (each forward spike drives one row once, each
   error spike one column once) and accuracy as functions of the number of time steps ``T``,
   against the dense MLP (every row driven once per layer by a DAC value).
3. Both networks on simulated PCM chips over drift time (forward reads on the crossbars).
4. Hardware in the loop: the cosine similarity of the spike-count updates computed with forward
   *and* transposed backward reads on PCM crossbars (1 day after programming) to the software
   ones, for the trained network; then the DSN trained from the same initial weights on chips
   (reprogrammed with the updated weights after every mini-batch) against the same number of
   software epochs.

Writes ``runs/dsn_study/results.json`` (and ``mlp.pt``) and the checkpoint
``runs/dsn_fmnist/model.pt``.
Run: ``nice -n 10 .venv/bin/python scripts/dsn_study.py``
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.evaluation import DEFAULT_TIMES, TIME_LABELS, evaluate_on_chips
from pcm_sim.families.dsn import DSN_FASHION, spike_count_objective
from pcm_sim.nn.analog import deploy, drift_to
from pcm_sim.nn.dsn import DeepSpikingNetwork, ReLUMLP
from pcm_sim.recipes import load_recipe
from pcm_sim.training.batches import SampleData
from pcm_sim.training.checkpoint import load_checkpoint, save_checkpoint
from pcm_sim.training.loop import train_epoch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
parser.add_argument("--train-limit", type=int, default=None, help="first N training images")
parser.add_argument("--profile", default="pcm_nandakumar2019")
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--hil-epochs", type=int, default=1, help="epochs of chip-in-the-loop training")
parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
parser.add_argument("--out", default="runs/dsn_study")
parser.add_argument(
    "--reuse",
    default=None,
    help="DSN checkpoint written by an earlier run of this script: skip the DSN's training "
    "(the MLP is retrained from the same initial weights with the same mini-batch order)",
)
args = parser.parse_args()

torch.set_num_threads(1)
start_all = time.perf_counter()
recipe = load_recipe("dsn_fmnist")
if args.epochs:
    recipe["training"]["epochs"] = args.epochs
tr = recipe["training"]
seed, epochs, batch, lr = int(tr["seed"]), int(tr["epochs"]), int(tr["batch_size"]), float(tr["lr"])
sizes = list(recipe["model"]["sizes"])
family = DSN_FASHION
images, labels = load_fashion_mnist(None, "train")
if args.train_limit:
    images, labels = images[: args.train_limit], labels[: args.train_limit]
test_x, test_y = load_fashion_mnist(None, "test")
train_data = SampleData(images, labels, batch, spike_count_objective)
results: dict[str, Any] = {"recipe": recipe, "args": vars(args)}


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Test accuracy in chunks of 1000 (no gradients)."""
    with torch.no_grad():
        hits = sum(
            int((model(x[i : i + 1000]).argmax(-1) == y[i : i + 1000]).sum())
            for i in range(0, len(x), 1000)
        )
    return hits / len(x)


def mlp_epoch(model: ReLUMLP, opt: torch.optim.Optimizer, order: Tensor) -> float:
    """One autograd epoch of the ReLU MLP over ``images[order]``; returns the mean loss."""
    model.train()
    total = 0.0
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(order)


# ---- 1. DSN and ReLU MLP trained side by side -------------------------------------------------
torch.manual_seed(seed)
dsn = family.build(recipe)
assert isinstance(dsn, DeepSpikingNetwork)
initial_state = copy.deepcopy(dsn.state_dict())
mlp = ReLUMLP(sizes)
mlp.load_state_dict(initial_state)
opt_dsn = torch.optim.Adam(dsn.parameters(), lr=lr)
opt_mlp = torch.optim.Adam(mlp.parameters(), lr=lr)
sched_dsn = torch.optim.lr_scheduler.CosineAnnealingLR(opt_dsn, T_max=epochs)
sched_mlp = torch.optim.lr_scheduler.CosineAnnealingLR(opt_mlp, T_max=epochs)
generator = torch.Generator().manual_seed(seed)
history = []
reused_history: list[dict[str, Any]] = []
if args.reuse:
    reused_model, reused_payload = load_checkpoint(args.reuse)
    dsn.load_state_dict(reused_model.state_dict())
    reused_history = reused_payload["history"]
t0 = time.perf_counter()
for epoch in range(1, epochs + 1):
    order = torch.randperm(len(images), generator=generator)
    if reused_history:
        dsn_part = {k: v for k, v in reused_history[epoch - 1].items() if k.startswith("dsn")}
        t_dsn = float(dsn_part["dsn_epoch_s"])
    else:
        t_dsn = time.perf_counter()
        row = train_epoch(
            dsn,
            opt_dsn,
            train_data.in_order(order, generator),
            train_data.loss,
            train_data.batches(),
            show_progress=False,
        )
        t_dsn = time.perf_counter() - t_dsn
        sched_dsn.step()
        dsn_part = {
            "dsn_loss": row["loss"],
            "dsn_train_accuracy": row["train_accuracy"],
            "dsn_test_accuracy": accuracy(dsn, test_x, test_y),
            "dsn_epoch_s": t_dsn,
        }
    mlp_loss = mlp_epoch(mlp, opt_mlp, order)
    sched_mlp.step()
    mlp.eval()
    entry = {
        "epoch": epoch,
        **dsn_part,
        "mlp_loss": mlp_loss,
        "mlp_test_accuracy": accuracy(mlp, test_x, test_y),
    }
    history.append(entry)
    print(
        f"epoch {epoch}/{epochs}  DSN {entry['dsn_test_accuracy']:.4f}  "
        f"MLP {entry['mlp_test_accuracy']:.4f}  ({t_dsn:.0f}s DSN epoch)",
        flush=True,
    )
train_s = time.perf_counter() - t0
dsn_as_mlp = ReLUMLP(sizes)
dsn_as_mlp.load_state_dict(dsn.state_dict())
final = history[-1]
results["training"] = {
    "reused_dsn_checkpoint": args.reuse,
    "dsn_test_accuracy_recomputed": accuracy(dsn, test_x, test_y),
    "history": history,
    "dsn_test_accuracy": final["dsn_test_accuracy"],
    "mlp_test_accuracy": final["mlp_test_accuracy"],
    "gap_pp": 100.0 * (final["mlp_test_accuracy"] - final["dsn_test_accuracy"]),
    "dsn_weights_as_relu_mlp": accuracy(dsn_as_mlp, test_x, test_y),
    "train_seconds_both": train_s,
}
print(json.dumps({k: v for k, v in results["training"].items() if k != "history"}), flush=True)
if not args.reuse:
    save_checkpoint(
        Path("runs/dsn_fmnist/model.pt"),
        {
            "recipe": recipe,
            "hwa_profile": None,
            "state_dict": dsn.state_dict(),
            "history": history,
            "software": {"accuracy": final["dsn_test_accuracy"]},
            "train_seconds": train_s,
        },
    )

# ---- 2. Crossbar line activations vs time steps -----------------------------------------------
dense_forward = float(sum(sizes[:-1]))  # every row of every layer, once per sample
dense_backward = float(sum(sizes[2:]))  # transposed reads of layers 2..L
with torch.no_grad():
    pre = test_x
    nonzero = float((test_x != 0).sum()) / len(test_x)
    for layer in mlp.layers[:-1]:
        pre = torch.relu(layer(pre))
        nonzero += float((pre != 0).sum()) / len(test_x)
cost_rows = []
for steps in args.steps:
    fwd, bwd, hits = 0.0, 0.0, 0
    for i in range(0, len(test_x), 1000):
        x, y = test_x[i : i + 1000], test_y[i : i + 1000]
        trace = dsn.run(x, steps)
        hits += int((trace.logits.argmax(-1) == y).sum())
        fwd += sum(float(t.abs().sum()) for t in trace.trains)
        bwd += sum(float(e.abs().sum()) for e in dsn.error_trains(trace, y)[1:])
    cost_rows.append(
        {
            "steps": steps,
            "accuracy": hits / len(test_x),
            "forward_row_activations": fwd / len(test_x),
            "backward_column_activations": bwd / len(test_x),
            "forward_ratio_to_dense_mlp": fwd / len(test_x) / dense_forward,
        }
    )
    print(f"T={steps}: {cost_rows[-1]}", flush=True)
results["cost"] = {
    "dense_mlp_forward_row_activations": dense_forward,
    "dense_mlp_backward_column_activations": dense_backward,
    "mlp_nonzero_inputs_per_sample": nonzero,
    "note": "DSN rows see 1-bit spikes (|count| pulses); dense-MLP rows see 8-bit DAC values",
    "rows": cost_rows,
}

# ---- 3. PCM chips over drift time ---------------------------------------------------------------
times = list(DEFAULT_TIMES)
results["pcm_dsn"] = evaluate_on_chips(dsn, recipe, args.profile, times, args.chips, seed=seed)
mlp_rows = []
per_chip: dict[float, list[float]] = {t: [] for t in times}
for chip in range(args.chips):
    chip_mlp = deploy(copy.deepcopy(mlp), args.profile, seed=seed + chip)
    for t in times:
        drift_to(chip_mlp, t)
        per_chip[t].append(accuracy(chip_mlp, test_x, test_y))
for t in times:
    values = torch.tensor(per_chip[t])
    mlp_rows.append(
        {
            "t_s": t,
            "label": TIME_LABELS.get(t, f"{t:g} s"),
            "mean": float(values.mean()),
            "std": float(values.std()) if len(values) > 1 else 0.0,
            "per_chip": per_chip[t],
        }
    )
results["pcm_mlp"] = {"profile": args.profile, "chips": args.chips, "rows": mlp_rows}
for d, m in zip(results["pcm_dsn"]["rows"], mlp_rows, strict=True):
    print(f"{d['label']}: DSN {d['mean']:.4f}±{d['std']:.4f}  MLP {m['mean']:.4f}±{m['std']:.4f}")

# ---- 4. Chip-in-the-loop training (forward and backward reads on PCM) ---------------------------
probe_x, probe_y = images[:500], labels[:500]
software_grads = torch.cat(
    [torch.cat([gw.flatten(), gb]) for gw, gb in dsn.spike_gradients(dsn.run(probe_x), probe_y)]
)
cosines = []
for chip in range(args.chips):
    chip_dsn = deploy(copy.deepcopy(dsn), args.profile, seed=seed + chip)
    drift_to(chip_dsn, 86_400.0)
    assert isinstance(chip_dsn, DeepSpikingNetwork)
    chip_grads = torch.cat(
        [
            torch.cat([gw.flatten(), gb])
            for gw, gb in chip_dsn.spike_gradients(chip_dsn.run(probe_x), probe_y)
        ]
    )
    cosines.append(float(nn.functional.cosine_similarity(chip_grads, software_grads, dim=0)))
print(f"update cosine similarity, chip (1 day) vs software: {cosines}", flush=True)
hil = family.build(recipe)
assert isinstance(hil, DeepSpikingNetwork)
hil.load_state_dict(initial_state)
soft = family.build(recipe)
assert isinstance(soft, DeepSpikingNetwork)
soft.load_state_dict(initial_state)
opt_hil = torch.optim.Adam(hil.parameters(), lr=lr)
opt_soft = torch.optim.Adam(soft.parameters(), lr=lr)
hil_gen = torch.Generator().manual_seed(seed + 7)
t0 = time.perf_counter()
n_program = 0
for _ in range(args.hil_epochs):
    order = torch.randperm(len(images), generator=hil_gen)
    batches = train_data.in_order(order, hil_gen)
    train_epoch(soft, opt_soft, batches, train_data.loss, train_data.batches(), show_progress=False)
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        deploy(hil, args.profile, seed=10_000 + n_program)  # program the current weights
        n_program += 1
        trace = hil.run(images[idx])  # forward reads on the crossbars
        opt_hil.zero_grad(set_to_none=True)
        hil.accumulate_gradients(trace, labels[idx])  # transposed reads on the same crossbars
        opt_hil.step()
hil_s = time.perf_counter() - t0
for layer in hil.synapses():
    layer.to_software()
results["hardware_in_the_loop"] = {
    "update_cosine_chip_vs_software_1day": cosines,
    "epochs": args.hil_epochs,
    "programming_rounds": n_program,
    "software_trained_software_accuracy": accuracy(soft, test_x, test_y),
    "chip_trained_software_accuracy": accuracy(hil, test_x, test_y),
    "chip_trained_on_chip": evaluate_on_chips(
        hil, recipe, args.profile, [60.0, 86_400.0], args.chips, seed=seed
    ),
    "seconds": hil_s,
}
print(json.dumps({k: v for k, v in results["hardware_in_the_loop"].items()}), flush=True)

results["total_seconds"] = time.perf_counter() - start_all
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
torch.save(mlp.state_dict(), out / "mlp.pt")
(out / "results.json").write_text(json.dumps(results, indent=2))
print(f"wrote {out / 'results.json'}")
