"""convert(): plain torch models onto analog arrays, same function in software mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pcm_sim
from pcm_sim.nn.conv import AnalogConv1d, AnalogConv2d


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, (3, 2), padding=2, dilation=2, groups=4, bias=False),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding="same", padding_mode="reflect"),
        nn.Flatten(),
        nn.Linear(6 * 8 * 11, 5),
    )


def test_converted_models_equal_the_originals() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 4, bias=False))
    x = torch.randn(7, 20)
    converted = pcm_sim.convert(mlp)
    assert (converted(x) - mlp(x)).abs().max() <= 1e-5
    assert len(pcm_sim.analog_layers(converted)) == 2
    assert isinstance(mlp[0], nn.Linear)  # the original is untouched

    cnn = _cnn()
    images = torch.randn(4, 3, 16, 18)
    analog = pcm_sim.convert(cnn)
    assert (analog(images) - cnn(images)).abs().max() <= 1e-5
    assert len(analog[2].group_layers) == 4  # one array per group
    # negative control: a real weight difference is seen at this tolerance
    with torch.no_grad():
        cnn[2].weight[0, 0, 0, 0] += 1e-3
    assert (analog(images) - cnn(images)).abs().max() > 1e-5


def test_conv1d_and_grouped_kernels_round_trip() -> None:
    torch.manual_seed(1)
    ref = nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)
    conv = pcm_sim.convert(nn.Sequential(ref))[0]
    assert isinstance(conv, AnalogConv1d)
    assert torch.equal(conv.kernel(), ref.weight)
    x = torch.randn(3, 4, 21)
    assert (conv(x) - ref(x)).abs().max() <= 1e-5


def test_convert_options_and_refusals() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    kept = pcm_sim.convert(model, "ideal", digital=["2"], profiles={"0": "pcm_hermes2023"})
    assert isinstance(kept[2], nn.Linear) and not isinstance(kept[2], pcm_sim.AnalogLinear)
    assert kept[0].profile.name == "pcm_hermes2023"
    with pytest.raises(pcm_sim.ConversionError, match="names no layer"):
        pcm_sim.convert(model, digital=["fc9"])
    with pytest.raises(pcm_sim.ConversionError, match=r"'1' \(ConvTranspose2d\)"):
        pcm_sim.convert(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2, 2, 3)))
    shared = nn.Linear(3, 3)
    both = pcm_sim.convert(nn.Sequential(shared, nn.ReLU(), shared))
    assert both[0] is both[2]  # a shared layer stays one array


def test_converted_model_runs_on_chips_and_saves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(2)
    cnn = _cnn()
    images = torch.rand(2, 3, 16, 18)
    chip = pcm_sim.deploy(pcm_sim.convert(cnn), "pcm_nandakumar2019", seed=3)
    pcm_sim.drift_to(chip, 86_400.0)
    path = tmp_path / "chip.pt"
    pcm_sim.save_chip(chip, path)
    out = chip(images)
    ideal = cnn(images)
    rel = (out - ideal).norm() / ideal.norm()
    assert 0.005 < float(rel) < 0.5  # on a chip: noisy, but the same function
    again = pcm_sim.load_chip(pcm_sim.convert(cnn), path)
    fresh = pcm_sim.deploy(pcm_sim.convert(cnn), "pcm_nandakumar2019", seed=3)
    pcm_sim.drift_to(fresh, 86_400.0)
    assert torch.equal(again(images), out)
    assert torch.equal(fresh(images), out)  # a chip is a value


def test_converted_model_trains_hardware_aware() -> None:
    torch.manual_seed(3)
    model = pcm_sim.convert(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)))
    pcm_sim.enable_hwa(model, pcm_sim.load_profile("pcm_nandakumar2019"), seed=0, output_noise=True)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    model.train()
    a, b = model(x), model(x)
    assert not torch.equal(a, b)  # a fresh noise sample per forward
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first


def test_analog_conv_refuses_bad_geometry() -> None:
    with pytest.raises(ValueError, match="groups"):
        AnalogConv2d(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match="stride 1"):
        AnalogConv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="smaller than the kernel"):
        AnalogConv2d(1, 1, 5)(torch.zeros(1, 1, 3, 3))


class _BlobsTask:
    """Training batches of three Gaussian blobs in 8-D and their cross-entropy (an HILTask)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.centres = torch.randn(3, 8, generator=g) * 2.0

    def batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 3, (64,), generator=generator)
        return self.centres[y] + torch.randn(64, 8, generator=generator), y

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), batch[1])


def test_program_and_verify_and_hil_work_on_a_converted_model() -> None:
    from pcm_sim.training.hil import HILConfig, hil_finetune

    torch.manual_seed(4)
    task = _BlobsTask()
    mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):  # briefly: the chip's loss leaves room for on-chip training
        loss = task.loss(mlp, task.batch(g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    chip = pcm_sim.deploy(pcm_sim.convert(mlp), "pcm_aggressive", seed=0)
    first = pcm_sim.analog_layers(chip)[0]
    report = first.program_and_verify()
    rounds = report.per_iteration
    assert report.iterations >= 1 and rounds[-1].mean_error_us < 0.8 * rounds[0].mean_error_us
    test = task.batch(torch.Generator().manual_seed(9))
    with torch.no_grad():
        pcm_sim.drift_to(chip, 86_400.0)
        before = float(task.loss(chip, test))
    result = hil_finetune(chip, task, HILConfig(steps=150, lr=0.05, t_s=86_400.0))
    assert result.writes > 0
    with torch.no_grad():
        after = float(task.loss(chip, test))
    assert after < 0.8 * before  # on-chip fine-tuning lowers the loss of the converted model
