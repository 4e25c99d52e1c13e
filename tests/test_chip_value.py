"""A chip is a value: order-independent reads, saved chips, one read path, backend switches."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import pcm_sim
from pcm_sim.cli import main
from pcm_sim.nn.chips import ChipFileError
from pcm_sim.studies.cells import expand_cells, resolve_models, run_cell
from pcm_sim.studies.sweep import parse_sweep
from pcm_sim.training.checkpoint import train_recipe

ONE_DAY = 86_400.0
NOISY = {"read_noise.scale": 2.0}  # enough read noise that every read visibly differs


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(pcm_sim.AnalogLinear(70, 40), nn.ReLU(), pcm_sim.AnalogLinear(40, 10))


def _x(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 70, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"read_noise.sampling": "exact"},
        {"read_noise.model": "per_read"},
        {"read_noise.model": "per_call"},
        {"compensation.mode": "column"},
    ],
)
def test_kth_read_after_drift_is_independent_of_history(overrides: dict[str, Any]) -> None:
    profile = pcm_sim.load_profile("pcm_nandakumar2019", overrides={**NOISY, **overrides})
    x = _x()
    fresh = pcm_sim.deploy(_mlp(), profile, seed=4)
    pcm_sim.drift_to(fresh, ONE_DAY)
    expected = [fresh(x) for _ in range(3)]  # reads k = 0, 1, 2 at one day
    busy = pcm_sim.deploy(_mlp(), profile, seed=4)
    for t in (60.0, 3600.0, 365 * ONE_DAY):  # other times, other reads, other batch sizes
        pcm_sim.drift_to(busy, t)
        busy(_x(17, seed=9))
        busy[0].read_transposed(torch.ones(3, 40))
    pcm_sim.drift_to(busy, ONE_DAY)
    got = [busy(x) for _ in range(3)]
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(expected[0], expected[1])  # fresh noise on every read
    other = pcm_sim.deploy(_mlp(), profile, seed=5)  # another chip differs
    pcm_sim.drift_to(other, ONE_DAY)
    assert not torch.equal(other(x), expected[0])


def test_successive_reads_differ_by_the_read_noise_only() -> None:
    profile = pcm_sim.load_profile(
        "pcm_nandakumar2019",
        overrides={
            "programming.scale": 0.0,
            "drift.scale": 0.0,
            "periphery.dac_bits": 0,
            "periphery.adc_bits": 0,
            "periphery.output_range": 0.0,
            "periphery.output_noise": 0.0,
            "compensation.mode": "none",
            "read_noise.model": "per_call",  # independent calls (clocked: test_read_noise_clock)
        },
    )
    layer = pcm_sim.AnalogLinear(70, 40)
    pcm_sim.deploy(layer, profile, seed=0)
    pcm_sim.drift_to(layer, ONE_DAY)
    reads = torch.stack([layer(_x()).detach() for _ in range(200)])  # (reads, N, out)
    ideal = nn.functional.linear(_x(), layer.weight, layer.bias).detach()
    assert float((reads[0] - reads[1]).abs().max()) > 1e-4
    torch.testing.assert_close(reads.mean(0), ideal, atol=0.01, rtol=0.0)


def test_saved_chip_reads_identically_at_every_time(tmp_path: Path) -> None:
    profile = pcm_sim.load_profile("pcm_nandakumar2019", overrides=NOISY)
    chip = pcm_sim.deploy(_mlp(), profile, seed=3)
    chip[0].program_and_verify(max_iterations=2)  # write epoch 1 on the first layer
    path = pcm_sim.save_chip(chip, tmp_path / "chip.pt")
    copy = _mlp(seed=99)  # other float weights (the chip holds the synapses), same biases
    for mine, theirs in zip(pcm_sim.analog_layers(copy), pcm_sim.analog_layers(chip), strict=True):
        mine.bias.data.copy_(theirs.bias.data)  # type: ignore[union-attr]
    pcm_sim.load_chip(copy, path)
    x = _x()
    for t in (0.0, 60.0, ONE_DAY, 365 * ONE_DAY, ONE_DAY):
        pcm_sim.drift_to(chip, t)
        pcm_sim.drift_to(copy, t)
        with torch.no_grad():
            for _ in range(2):
                assert torch.equal(chip(x), copy(x))
    assert torch.equal(chip[0].chip_pulses(), copy[0].chip_pulses())
    assert int(chip[0].chip_pulses().sum()) > 2 * 70 * 40  # the verify pulses were kept


def test_a_mismatched_chip_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = pcm_sim.save_chip(pcm_sim.deploy(_mlp(), "pcm_nandakumar2019", seed=0), tmp_path / "c")
    wide = nn.Sequential(pcm_sim.AnalogLinear(70, 41), nn.ReLU(), pcm_sim.AnalogLinear(41, 10))
    with pytest.raises(ChipFileError, match=r"layer 0: shape \[70, 40\] does not fit .*\[70, 41\]"):
        pcm_sim.load_chip(wide, path)
    with pytest.raises(ChipFileError, match="2 layers in the file, the model has 1"):
        pcm_sim.load_chip(pcm_sim.AnalogLinear(70, 40), path)
    payload = torch.load(path, weights_only=True)
    payload["layers"][1]["profile"]["drift"]["nu_speed"] = 1.0  # a field this schema lacks
    torch.save(payload, tmp_path / "schema.pt")
    with pytest.raises(ChipFileError, match="layer 1: profile does not fit"):
        pcm_sim.load_chip(_mlp(), tmp_path / "schema.pt")
    payload = torch.load(path, weights_only=True)
    payload["layers"][0]["nu"] = payload["layers"][0]["nu"][:, :, :5]
    torch.save(payload, tmp_path / "nu.pt")
    with pytest.raises(ChipFileError, match=r"layer 0: nu: expected shape \(2, 1, 70, 40\)"):
        pcm_sim.load_chip(_mlp(), tmp_path / "nu.pt")
    untouched = _mlp()
    torch.save({"format": "something/1"}, tmp_path / "foreign.pt")
    with pytest.raises(ChipFileError, match="not a pcm-sim chip file"):
        pcm_sim.load_chip(untouched, tmp_path / "foreign.pt")
    assert all(not layer.is_analog for layer in pcm_sim.analog_layers(untouched))


class _RunsCode:
    """Unpickling this object would create a file (the attack a chip file must not allow)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_loading_a_chip_file_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bomb = tmp_path / "bomb.pt"
    with bomb.open("wb") as f:
        pickle.dump({"format": "pcm-sim-chip/1", "layers": [_RunsCode(marker)]}, f)
    pickle.loads(pickle.dumps(_RunsCode(tmp_path / "control")))  # control: the bomb is real
    assert (tmp_path / "control").exists()
    with pytest.raises(ChipFileError, match="only tensors and plain data"):
        pcm_sim.load_chip(_mlp(), bomb)
    assert not marker.exists()


def test_backend_switch_replaces_the_chip_and_keeps_the_configured_backend() -> None:
    pytest.importorskip("aihwkit")
    model, x = _mlp(), _x()
    pcm_sim.deploy(model, "pcm_nandakumar2019", seed=2)
    pcm_sim.drift_to(model, ONE_DAY)
    first = model(x)
    pcm_sim.deploy(model, "pcm_nandakumar2019", seed=2, backend="aihwkit")
    layers = pcm_sim.analog_layers(model)
    assert all(layer.crossbar is None and layer.deployed_backend == "aihwkit" for layer in layers)
    assert all(layer.backend == "pcm-sim" for layer in layers)  # configuration unchanged
    pcm_sim.drift_to(model, ONE_DAY)
    on_aihwkit = model(x)
    assert not torch.equal(on_aihwkit, first)
    pcm_sim.deploy(model, "pcm_nandakumar2019", seed=2)  # back on the layer's own backend
    assert all(layer.deployed_backend == "pcm-sim" for layer in layers)
    pcm_sim.drift_to(model, ONE_DAY)
    assert torch.equal(model(x), first)  # the same chip again: a chip is a value


def test_to_same_device_keeps_the_chip() -> None:
    model = pcm_sim.deploy(_mlp(), "pcm_nandakumar2019", seed=0)
    crossbar = pcm_sim.analog_layers(model)[0].crossbar
    model.to("cpu")
    assert pcm_sim.analog_layers(model)[0].crossbar is crossbar


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_moves_the_chip_and_reads_reproducibly() -> None:  # pragma: no cover
    model = pcm_sim.deploy(_mlp(), "pcm_nandakumar2019", seed=0).to("cuda")
    assert all(layer.crossbar.device.type == "cuda" for layer in pcm_sim.analog_layers(model))
    pcm_sim.drift_to(model, ONE_DAY)
    first = model(_x().cuda())
    pcm_sim.drift_to(model, ONE_DAY)
    assert torch.equal(model(_x().cuda()), first)


TINY_RECIPE = {
    "name": "snu_tiny",
    "family": "snu_fmnist",
    "model": {"sizes": [784, 32, 10], "decay": 0.8, "threshold_init": -1.0},
    "data": {"dataset": "fashion_mnist", "steps": 6},
    "training": {
        "epochs": 1,
        "batch_size": 64,
        "lr": 0.002,
        "seed": 0,
        "train_limit": 256,
        "progress": False,
    },
}


def _evaluate(checkpoint: Path, out: Path, *extra: str) -> dict[str, Any]:
    args = ["evaluate", str(checkpoint), "--chips", "2", "--limit", "300", "--json", str(out)]
    assert main([*args, *extra]) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return {row["t_s"]: row["per_chip"] for row in result["rows"]}


def test_evaluate_sweep_and_validate_agree(tmp_path: Path) -> None:
    recipe = tmp_path / "snu_tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    checkpoint = train_recipe(recipe, tmp_path / "tiny", log=lambda _: None)
    both = _evaluate(checkpoint, tmp_path / "a.json", "--times", "1min", "1d")
    alone = _evaluate(checkpoint, tmp_path / "b.json", "--times", "1d")
    assert both[ONE_DAY] == alone[ONE_DAY]  # the 1-minute visit changes nothing
    assert len(set(both[ONE_DAY] + both[60.0])) > 1  # chips and times do differ
    sweep = parse_sweep(
        {
            "name": "agree",
            "models": [{"checkpoint": str(checkpoint), "label": "tiny"}],
            "profiles": ["pcm_nandakumar2019"],
            "times": ["1d"],
            "chips": 2,
            "evaluation": {"limit": 300},
        }
    )
    cells = expand_cells(sweep, resolve_models(sweep, tmp_path / "models", lambda _: None))
    by_seed = {cell["seed"]: run_cell(cell)["value"] for cell in cells}
    assert [by_seed[0], by_seed[1]] == both[ONE_DAY]
    spec = {"name": "agree", "chips": 2, "times": ["1d"], "samples": 300, "requirements": []}
    spec["requirements"] = [{"quantity": "accuracy", "at": "1d", "min": 0.0}]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    args = ["validate", str(checkpoint), "--profile", "pcm_nandakumar2019", "--spec"]
    args += [str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "report"), "--no-progress"]
    assert main(args) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["per_time"][0]["values"] == both[ONE_DAY]


def test_corrected_chip_is_saved_and_evaluated_over_time(tmp_path: Path) -> None:
    recipe = tmp_path / "snu_tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    checkpoint = train_recipe(recipe, tmp_path / "tiny", log=lambda _: None)
    chip = tmp_path / "chips" / "verified.pt"
    args = ["correct", str(checkpoint), "--method", "verify", "--t", "1d", "--limit", "300"]
    assert main([*args, "--json", str(tmp_path / "c.json"), "--save-chip", str(chip)]) == 0
    corrected = json.loads((tmp_path / "c.json").read_text())["summary"]["verify"]["per_chip"]
    saved = _evaluate(checkpoint, tmp_path / "s.json", "--chip", str(chip), "--times", "1d")
    assert saved[ONE_DAY] == corrected  # the saved chip is the corrected chip
    assert main(["evaluate", str(checkpoint), "--chip", str(tmp_path / "none.pt")]) == 2
