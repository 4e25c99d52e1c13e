"""Program-and-verify, mixed-precision transfers and hardware-in-the-loop fine-tuning."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

import pcm_sim
from pcm_sim.bench import program_and_verify_bench
from pcm_sim.cli import main
from pcm_sim.crossbar.calibration import program_and_verify
from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.physics.pcm import ProgrammedDevices
from pcm_sim.profiles import load_profile
from pcm_sim.training.hil import HILConfig, MixedPrecisionTransfer, hil_finetune


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small tensors: a second intra-op thread only adds synchronisation on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


EXACT_WRITES = {
    "programming.scale": 0.0,
    "read_noise.scale": 0.0,
    "drift.scale": 0.0,
    "periphery.output_noise": 0.0,
}


def test_verify_shrinks_error_every_iteration_until_tolerance() -> None:
    # Without read noise the verify reads the truth: the loop ends with every device in 1 µS.
    profile = load_profile("pcm_nandakumar2019", overrides={"read_noise.scale": 0.0})
    gen = torch.Generator().manual_seed(0)
    xbar = CrossbarArray(torch.rand(64, 64, generator=gen) * 2 - 1, profile, ChipStreams(0, 0))
    report = program_and_verify(xbar, tolerance_us=1.0, max_iterations=20)
    errors = [it.mean_error_us for it in report.per_iteration]
    within = [it.within_tolerance for it in report.per_iteration]
    rewritten = [it.rewritten for it in report.per_iteration[1:]]
    assert len(errors) >= 5
    assert all(b < a for a, b in itertools.pairwise(errors))  # the error shrinks every round
    assert all(b >= a for a, b in itertools.pairwise(within))  # accepted devices stay accepted
    assert all(b <= a for a, b in itertools.pairwise(rewritten))  # only failures are re-written
    assert within[0] < 0.9 and within[-1] == 1.0 == report.within_tolerance
    assert report.error_max_us <= 1.0 and report.failed_verify == 0.0
    assert report.iterations == len(errors) - 1 < 20
    # the crossbar now holds the verified devices, in write epoch 1, still at t = 0
    assert float((xbar.devices.g_prog_us - xbar.g_target_us).abs().max()) <= 1.0
    assert xbar.t_s == 0.0 and xbar.write_epoch == 1
    assert int(xbar.pulses.sum()) == report.pulses_total


def test_verify_with_read_noise_reduces_error_and_spends_pulses() -> None:
    profile = load_profile("pcm_nandakumar2019")
    gen = torch.Generator().manual_seed(1)
    xbar = CrossbarArray(torch.rand(64, 64, generator=gen) * 2 - 1, profile, ChipStreams(0, 0))
    report = program_and_verify(xbar)  # 1 µS tolerance, 10 iterations, reads with 1/f noise
    first, last = report.per_iteration[0], report.per_iteration[-1]
    assert [it.mean_error_us for it in report.per_iteration[:4]] == sorted(
        [it.mean_error_us for it in report.per_iteration[:4]], reverse=True
    )
    assert last.mean_error_us < 0.85 * first.mean_error_us
    assert last.within_tolerance > first.within_tolerance + 0.04
    assert 1.0 < report.pulses_mean < 2.0 and report.pulses_max <= 1 + 10


def test_pulse_counts_exact_on_hand_made_case() -> None:
    # 2 x 2 weights -> 8 devices; exact writes, no read noise: the verify reads the truth.
    profile = load_profile("pcm_nandakumar2019", overrides=EXACT_WRITES)
    xbar = CrossbarArray(torch.tensor([[0.5, -1.0], [0.25, 0.0]]), profile, ChipStreams(0, 0))
    target = xbar.g_target_us  # (2, 1, 2, 2)
    g = target.clone()
    g[0, 0, 0, 0] += 3.0  # A: outside the 1 µS tolerance -> one re-write fixes it
    g[0, 0, 1, 0] -= 0.5  # B: inside -> untouched
    g[1, 0, 0, 1] += 5.0  # C: stuck and outside -> pulsed every round, never changes
    stuck = torch.zeros_like(g, dtype=torch.bool)
    stuck[1, 0, 0, 1] = True
    xbar.devices = ProgrammedDevices(g, torch.zeros_like(g), stuck)  # a hand-made chip state
    report = program_and_verify(xbar, tolerance_us=1.0, max_iterations=3)
    expected = torch.ones_like(xbar.pulses)
    expected[0, 0, 0, 0] = 2
    expected[1, 0, 0, 1] = 4
    assert torch.equal(xbar.pulses, expected) and xbar.pulses.dtype == torch.int32
    assert [it.rewritten for it in report.per_iteration] == [0, 2, 1, 1]
    assert report.iterations == 3 and report.pulses_total == 8 + 1 + 3 and report.pulses_max == 4
    assert report.failed_verify == 1 / 8 and report.within_tolerance == 7 / 8
    g_after = xbar.devices.g_prog_us
    assert float(g_after[0, 0, 0, 0]) == pytest.approx(float(target[0, 0, 0, 0]))
    assert float(g_after[0, 0, 1, 0]) == pytest.approx(float(target[0, 0, 1, 0]) - 0.5)
    assert float(g_after[1, 0, 0, 1]) == pytest.approx(float(target[1, 0, 0, 1]) + 5.0)


def test_mixed_precision_transfer_counts_whole_steps_and_pulses() -> None:
    profile = load_profile("pcm_nandakumar2019", overrides=EXACT_WRITES)
    layer = pcm_sim.AnalogLinear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.2], [0.4, -0.3]]))  # (out, in), w_max = 1
    pcm_sim.deploy(layer, profile, seed=0)
    config = HILConfig(granularity_gmax=0.1, t_s=0.0, verify_transfers=False)
    transfer = MixedPrecisionTransfer(layer, config)
    transfer.accumulate(torch.tensor([[0.0, 0.25], [0.04, -0.55]]))  # (out, in)
    # W[0,1]: +0.25 -> 2 steps (chi 0.05); W[1,0]: +0.04 stays in chi; W[1,1]: -0.55 -> -5 steps,
    # from -0.3 to -0.8: only its negative-polarity device changes target.
    assert transfer.transfers == 2 and transfer.writes == 2
    torch.testing.assert_close(layer.weight, torch.tensor([[1.0, 0.4], [0.4, -0.8]]))
    torch.testing.assert_close(transfer.chi.t(), torch.tensor([[0.0, 0.05], [0.04, -0.05]]))
    pulses = layer.chip_pulses()[:, 0]  # (2, in, out)
    expected = torch.ones_like(pulses)
    expected[0, 1, 0] = 2  # W[0,1] positive device
    expected[1, 1, 1] = 2  # W[1,1] negative device
    assert torch.equal(pulses, expected)
    # a sign flip re-writes both devices of the pair: W[1,0] 0.4 -> -0.1 (chi -0.51: 5 steps)
    transfer.accumulate(torch.tensor([[0.0, 0.0], [-0.55, 0.0]]))
    assert transfer.writes == 4 and int(layer.chip_pulses()[:, 0, 0, 1].sum()) == 4
    torch.testing.assert_close(layer.crossbar.effective_weight().t(), layer.weight.detach())


class _TeacherTask:
    """Regression onto a fixed linear teacher: x ~ U(-1, 1)^16, y = x A (mean squared error)."""

    def __init__(self) -> None:
        self.teacher = torch.randn(16, 4, generator=torch.Generator().manual_seed(7)) * 0.5

    def batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.rand(64, 16, generator=generator) * 2 - 1
        return x, x @ self.teacher

    def loss(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)


def _chip_loss(model: nn.Module, task: _TeacherTask, batch: tuple[Tensor, Tensor]) -> float:
    with torch.no_grad():
        return sum(float(task.loss(model, batch)) for _ in range(8)) / 8  # 8 fresh reads


def test_hil_fine_tuning_lowers_the_loss_measured_on_the_chip() -> None:
    task = _TeacherTask()
    torch.manual_seed(0)  # parameter initialisation
    model = nn.Sequential(pcm_sim.AnalogLinear(16, 32), nn.Tanh(), pcm_sim.AnalogLinear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):  # software training
        loss = task.loss(model, task.batch(gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = task.batch(torch.Generator().manual_seed(99))
    software = _chip_loss(model, task, held_out)
    profile = load_profile("pcm_nandakumar2019", overrides={"programming.scale": 3.0})
    pcm_sim.deploy(model, profile, seed=3)
    pcm_sim.drift_to(model, 86_400.0)
    before = _chip_loss(model, task, held_out)
    config = HILConfig(steps=150, lr=0.05, granularity_gmax=0.01, t_s=86_400.0, seed=1)
    report = hil_finetune(model, task, config)
    after = _chip_loss(model, task, held_out)
    assert before > 3 * software  # the chip is visibly worse than software
    assert after < 0.7 * before  # fine-tuning on the chip recovers a good part of it
    assert report.transfers > 0 and report.hil_pulses_mean > 0
    assert len(report.losses) == 150 and not model.training
    layers = pcm_sim.analog_layers(model)
    assert all(layer.crossbar is not None and layer.crossbar.t_s == 86_400.0 for layer in layers)


def test_bench_reports_timing_and_quality() -> None:
    result = program_and_verify_bench(size=64)
    assert result["shape"] == [64, 64] and result["devices"] == 2 * 64 * 64
    assert 0 < result["program_s"] < result["total_s"] and result["meets_target"]
    assert 0.9 < result["within_tolerance"] <= 1.0 and result["pulses_mean"] > 1.0


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="granularity_gmax"):
        HILConfig(granularity_gmax=0.0)
    xbar = CrossbarArray(torch.eye(3), load_profile("pcm_nandakumar2019"), ChipStreams(0, 0))
    with pytest.raises(ValueError, match="tolerance"):
        program_and_verify(xbar, tolerance_us=-1.0)
    with pytest.raises(ValueError, match="max_iterations"):
        program_and_verify(xbar, max_iterations=-1)
    assert main(["correct", "missing.pt", "--chips", "0"]) == 2
