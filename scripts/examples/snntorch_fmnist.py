"""Your own network on PCM: an snntorch convolutional SNN for Fashion-MNIST, exported to NIR.

1. Train a small convolutional SNN in snntorch (rate-coded input, ``T`` steps, cross-entropy
   on output spike counts).
2. Export it with snntorch's own NIR exporter (``model_snntorch.nir``).
3. Import it into pcm-sim (``pcm_sim.from_nir``), check its software accuracy equals
   snntorch's, fine-tune it hardware-aware (``pcm_sim.enable_hwa``) for the target profile,
   and export it again (``model.nir``), ready for ``pcm-sim evaluate --nir``::

    python scripts/examples/snntorch_fmnist.py --out runs/examples/snntorch_fmnist
    pcm-sim evaluate --nir runs/examples/snntorch_fmnist/model.nir --steps 16 --dt 1e-4 \\
        --profile pcm_nandakumar2019 --times 1min 1d 1y --chips 5

Neurons use reset-to-zero (the only reset NIR's LIF expresses) and per-neuron ``beta`` and
``threshold`` tensors (snntorch's exporter needs them shaped like the layer for NIR's type
checks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nir
import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import utils
from snntorch.export_nir import export_to_nir
from torch import Tensor, nn

import pcm_sim
from pcm_sim.interop.nir_task import encode_images, idx_batches
from pcm_sim.seeds import input_generator

SHAPE = (1, 28, 28)


def build_net(beta: float = 0.9, threshold: float = 1.0) -> nn.Sequential:
    """conv(1->12, 5x5, stride 2) -> LIF -> conv(12->32, 5x5, stride 2) -> LIF -> fc(1568->10)
    -> LIF, reset to zero."""

    def lif(*shape: int, output: bool = False) -> snn.Leaky:
        return snn.Leaky(
            beta=torch.full(shape, beta),
            threshold=torch.full(shape, threshold),
            reset_mechanism="zero",
            init_hidden=True,
            output=output,
        )

    return nn.Sequential(
        nn.Conv2d(1, 12, 5, stride=2, padding=2),
        lif(12, 14, 14),
        nn.Conv2d(12, 32, 5, stride=2, padding=2),
        lif(32, 7, 7),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
        lif(10, output=True),
    )


def run_snntorch(net: nn.Sequential, frames: Tensor) -> Tensor:
    """Output spikes ``(T, B, 10)``, fed one step at a time as snntorch runs."""
    utils.reset(net)
    spikes = []
    for x_t in frames:
        spk, _ = net(x_t)
        spikes.append(spk)
    return torch.stack(spikes)


def train_epoch(forward, params, images, labels, steps, batch, lr, generator) -> float:  # type: ignore[no-untyped-def]
    """One epoch of Adam on cross-entropy of spike counts; returns the mean loss."""
    opt = torch.optim.Adam(params, lr=lr)
    order = torch.randperm(images.shape[0], generator=generator)
    total = 0.0
    for start in range(0, images.shape[0], batch):
        idx = order[start : start + batch]
        frames = encode_images(images[idx], steps, "rate", SHAPE, generator)
        loss = F.cross_entropy(forward(frames).sum(0), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * idx.numel()
    return total / images.shape[0]


def accuracy(forward, batches, steps, limit) -> float:  # type: ignore[no-untyped-def]
    """Spike-count accuracy on the first ``limit`` test images, pcm-sim's input seed."""
    generator, correct, seen = input_generator(), 0, 0
    with torch.no_grad():
        for images, labels in batches:
            images, labels = images[: limit - seen], labels[: limit - seen]
            if not len(labels):
                break
            frames = encode_images(images, steps, "rate", SHAPE, generator)
            correct += int((forward(frames).sum(0).argmax(-1) == labels).sum())
            seen += len(labels)
    return correct / seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/examples/snntorch_fmnist"))
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hwa-epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=60_000)
    parser.add_argument("--test-limit", type=int, default=10_000)
    parser.add_argument("--profile", default="pcm_nandakumar2019")
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train = idx_batches(args.data_dir, "train")
    images = torch.cat([b[0] for b in train])[: args.train_limit]
    labels = torch.cat([b[1] for b in train])[: args.train_limit]
    test = idx_batches(args.data_dir, "test")
    report: dict[str, object] = {"settings": vars(args) | {"out": str(args.out)}}

    net = build_net()
    trained = args.out / "snntorch_net.pt"  # kept, so a re-run resumes after this step
    if trained.is_file():
        net.load_state_dict(torch.load(trained, weights_only=True))
        print(f"loaded the trained snntorch network from {trained}")
    start = time.perf_counter()
    for epoch in range(0 if trained.is_file() else args.epochs):
        loss = train_epoch(
            lambda f: run_snntorch(net, f),
            net.parameters(),
            images,
            labels,
            args.steps,
            128,
            2e-3,
            generator,
        )
        print(f"snntorch epoch {epoch + 1}: loss {loss:.4f} ({time.perf_counter() - start:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), trained)
    net.eval()
    report["snntorch_accuracy"] = accuracy(
        lambda f: run_snntorch(net, f), test, args.steps, args.test_limit
    )
    print(f"snntorch software accuracy {report['snntorch_accuracy']:.4f}")

    graph = export_to_nir(net, torch.zeros(1, *SHAPE), ignore_dims=[0])
    nir.write(args.out / "model_snntorch.nir", graph)
    model = pcm_sim.from_nir(graph, dt=args.dt, profile=args.profile)
    report["imported_accuracy"] = accuracy(model, test, args.steps, args.test_limit)
    print(f"imported into pcm-sim: software accuracy {report['imported_accuracy']:.4f}")

    profile = pcm_sim.load_profile(args.profile)
    pcm_sim.enable_hwa(model, profile, seed=0, t_s=86_400.0, output_noise=True)
    for epoch in range(args.hwa_epochs):
        model.train()
        loss = train_epoch(
            model, model.parameters(), images, labels, args.steps, 128, 5e-4, generator
        )
        print(f"hardware-aware epoch {epoch + 1}: loss {loss:.4f}")
    pcm_sim.enable_hwa(model, None, seed=0)
    model.eval()
    report["hwa_software_accuracy"] = accuracy(model, test, args.steps, args.test_limit)
    print(
        f"after hardware-aware fine-tuning: software accuracy {report['hwa_software_accuracy']:.4f}"
    )
    nir.write(args.out / "model.nir", pcm_sim.to_nir(model))
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'model.nir'} and {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
