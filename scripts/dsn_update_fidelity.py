"""How faithful are the DSN's spike-count updates when both passes read PCM crossbars?

For the trained DSN (``runs/dsn_fmnist/model.pt``) and 500 training images, compares the updates
(all weights and biases, flattened) by cosine similarity:

* software spike-count updates vs the autograd gradient of the same weights read as a ReLU MLP
  (the quantization error of a T-step run);
* on-chip updates (forward and transposed backward reads on ``--profile`` chips, 1 day after
  programming) vs the software spike-count updates, with the full periphery and with the ADC
  quantization and output noise switched off (devices only);
* the sensitivity of the gradient itself: the autograd MLP gradient at each chip's mean
  effective weights (drifted devices, compensated) vs at the software weights.

Writes ``runs/dsn_study/update_fidelity.json``.
Run: ``nice -n 10 .venv/bin/python scripts/dsn_update_fidelity.py``
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from pcm_sim import load_profile
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.nn.analog import deploy, drift_to
from pcm_sim.nn.dsn import DeepSpikingNetwork, ReLUMLP
from pcm_sim.training.checkpoint import load_checkpoint

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--checkpoint", default="runs/dsn_fmnist/model.pt")
parser.add_argument("--profile", default="pcm_nandakumar2019")
parser.add_argument("--chips", type=int, default=3)
parser.add_argument("--samples", type=int, default=500)
parser.add_argument("--out", default="runs/dsn_study/update_fidelity.json")
args = parser.parse_args()

torch.set_num_threads(1)
model, payload = load_checkpoint(args.checkpoint)
assert isinstance(model, DeepSpikingNetwork)
images, labels = load_fashion_mnist(None, "train")
x, y = images[: args.samples], labels[: args.samples]


def flat_updates(net: DeepSpikingNetwork) -> Tensor:
    """All spike-count updates of one run on ``x``, flattened."""
    grads = net.spike_gradients(net.run(x), y)
    return torch.cat([torch.cat([gw.flatten(), gb]) for gw, gb in grads])


def cosine(a: Tensor, b: Tensor) -> float:
    return float(nn.functional.cosine_similarity(a, b, dim=0))


software = flat_updates(model)
mlp = ReLUMLP(payload["recipe"]["model"]["sizes"])
mlp.load_state_dict(model.state_dict())


def mlp_gradient(net: ReLUMLP) -> Tensor:
    """Autograd gradient of the batch-mean cross-entropy on ``x``, flattened."""
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    return torch.cat([torch.cat([p.weight.grad.flatten(), p.bias.grad]) for p in net.layers])


autograd = mlp_gradient(mlp)
results = {
    "samples": args.samples,
    "steps": model.steps,
    "software_spike_vs_autograd_mlp": cosine(software, autograd),
}
variants = {
    "full_periphery": load_profile(args.profile),
    "no_adc_no_output_noise": load_profile(args.profile).with_overrides(
        {"periphery.adc_bits": 0, "periphery.output_range": 0.0, "periphery.output_noise": 0.0}
    ),
}
for name, profile in variants.items():
    values = []
    for chip in range(args.chips):
        chip_model = deploy(copy.deepcopy(model), profile, seed=chip)
        drift_to(chip_model, 86_400.0)
        assert isinstance(chip_model, DeepSpikingNetwork)
        values.append(cosine(flat_updates(chip_model), software))
    results[f"chip_1day_vs_software_{name}"] = values
    print(name, values, flush=True)
sensitivity = []
for chip in range(args.chips):
    chip_model = deploy(copy.deepcopy(model), args.profile, seed=chip)
    drift_to(chip_model, 86_400.0)
    assert isinstance(chip_model, DeepSpikingNetwork)
    perturbed = ReLUMLP(payload["recipe"]["model"]["sizes"])
    perturbed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for dst, src in zip(perturbed.layers, chip_model.synapses(), strict=True):
            assert src.crossbar is not None
            dst.weight.copy_(src.crossbar.effective_weight().t())
    sensitivity.append(cosine(mlp_gradient(perturbed), autograd))
results["autograd_at_chip_weights_vs_at_software_weights"] = sensitivity
print("sensitivity", sensitivity, flush=True)
print(json.dumps(results, indent=2))
Path(args.out).parent.mkdir(parents=True, exist_ok=True)
Path(args.out).write_text(json.dumps(results, indent=2))
