"""Read noise on a physical clock: the marginal law, the 1/f law in time, the chip as a value.

A one-row crossbar with ``M`` outputs reads ``M`` devices at once (input 1, weight 0.5 = w_max,
no converters, no drift, constant ``q_s``): its outputs minus 0.5 are the devices' read noise
``ζ``.  Successive calls of ``N`` rows give each device's noise at reads ``P`` apart.  The
structure function ``S(Δ) = E[(ζ(s + Δ) - ζ(s))²] / (2 σ²) = 1 - c(Δ)`` is estimated per device
and averaged; its standard error comes from the spread over the (independent) devices, and the
tolerance is 4 standard errors plus, where the model approximates, the bound it documents.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import pcm_sim
from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.nn.chips import ChipFileError
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile, load_profile

ONE_DAY = 86_400.0
PERIOD = 1e-6
Q_S = 0.05
MODELS = ("clocked", "per_call", "per_read", "frozen")


def _profile(model: str) -> DeviceProfile:
    return load_profile(
        "ideal",
        overrides={
            "read_noise.scale": 1.0,
            "read_noise.model": model,
            "read_noise.read_period_s": PERIOD,
            "read_noise.q_s": [{"form": "poly", "coeffs": [Q_S]}],
        },
    )


def _noise(model: str, t_s: float, calls: int, rows: int, devices: int) -> torch.Tensor:
    """``(calls * rows, devices)`` read noise of ``devices`` devices, in read order."""
    array = CrossbarArray(torch.full((1, devices), 0.5), _profile(model), ChipStreams(7, 0))
    array.drift_to(t_s)
    x = torch.ones(rows, 1)
    return torch.cat([array.mvm(x) for _ in range(calls)]) - 0.5


def _sigma(t_s: float) -> float:
    """aihwkit's per-read std of these devices (output units: w_max 0.5 times the relative std)."""
    return 0.5 * Q_S * pcm.read_noise_time_factor(t_s, _profile("clocked"))


def _structure(noise: torch.Tensor, lag: int, var: float) -> tuple[float, float]:
    """``S(lag)`` averaged over devices and its standard error over devices."""
    per_device = (noise[lag:] - noise[:-lag]).double().square().mean(dim=0) / (2 * var)
    return float(per_device.mean()), float(per_device.std() / math.sqrt(per_device.numel()))


@pytest.mark.parametrize("model", MODELS)
def test_every_read_has_aihwkits_std_at_several_times(model: str) -> None:
    for t_s in (60.0, ONE_DAY, 365 * ONE_DAY):
        noise = _noise(model, t_s, calls=2, rows=3, devices=8192)  # reads of 8192 devices
        expected = _sigma(t_s)
        for read in noise:  # every read, not only the first
            measured = float(read.double().std())
            assert measured == pytest.approx(expected, rel=4 / math.sqrt(2 * 8192))
        assert abs(float(noise.mean())) < 4 * expected / math.sqrt(noise.numel() / 6)


def test_one_read_calls_follow_the_1f_band_law_at_every_lag() -> None:
    noise = _noise("clocked", ONE_DAY, calls=3000, rows=1, devices=2048)
    var = _sigma(ONE_DAY) ** 2
    taus = pcm.read_noise_time_constants(ONE_DAY, _profile("clocked"))
    for lag in (1, 16, 256, 2048):  # one read (= one call), ..., many calls
        law = 1.0 - pcm.ou_autocorrelation(lag * PERIOD, taus)
        band = 1.0 - pcm.band_autocorrelation(lag * PERIOD, ONE_DAY, _profile("clocked"))
        assert abs(law - band) < 0.0116  # the 8 OU components against the continuous law
        measured, se = _structure(noise, lag, var)
        assert abs(measured - law) < 4 * se + 0.002, (lag, measured, law, se)  # 0.002: lazy steps


def _follows_clocked_law(noise: torch.Tensor, rows: int) -> bool:
    """The clocked law of calls of ``rows`` rows (one day): the documented in-call mean
    correlation between two reads of one call, the 1/f law at one call and at 16 calls (with
    the bounds the model documents for them, 0.02 and 0.006)."""
    profile = _profile("clocked")
    var = _sigma(ONE_DAY) ** 2
    taus = pcm.read_noise_time_constants(ONE_DAY, profile)
    shares = [pcm.ou_mean_correlation(PERIOD, tau, rows) for tau in taus]
    calls = noise.reshape(-1, rows, noise.shape[-1])  # (calls, rows, devices)
    in_call = _structure(calls.transpose(0, 1).reshape(rows, -1), 1, var)  # pairs in a call
    checks = [(in_call, 1.0 - math.fsum(shares) / len(shares), 0.0)]
    for lag, bound in ((rows, 0.02), (16 * rows, 0.006)):
        law = 1.0 - pcm.ou_autocorrelation(lag * PERIOD, taus)
        checks.append((_structure(noise, lag, var), law, bound))
    return all(abs(m - law) <= 4 * se + bound for (m, se), law, bound in checks)


def test_calls_follow_the_1f_law_between_calls_and_white_or_per_call_noise_does_not() -> None:
    rows = 32
    assert _follows_clocked_law(_noise("clocked", ONE_DAY, 200, rows, 2048), rows)
    for wrong in ("per_read", "per_call", "frozen"):  # white, call-wise white, constant
        assert not _follows_clocked_law(_noise(wrong, ONE_DAY, 200, rows, 2048), rows), wrong


def test_the_slow_state_is_shared_by_the_calls_and_only_the_fast_part_averages_out() -> None:
    noise = _noise("clocked", ONE_DAY, calls=200, rows=16, devices=4096)  # 3.2 ms of reads
    taus = pcm.read_noise_time_constants(ONE_DAY, _profile("clocked"))
    n = noise.shape[0]
    lags = range(1, n)
    mean_corr = (
        1 + 2 * math.fsum((n - d) * pcm.ou_autocorrelation(d * PERIOD, taus) for d in lags) / n
    ) / n
    measured = float(noise.double().mean(dim=0).var()) / _sigma(ONE_DAY) ** 2
    assert measured == pytest.approx(mean_corr, rel=0.1)  # the mean of 3200 reads keeps ~70 %
    assert measured > 0.6
    per_call = _noise("per_call", ONE_DAY, calls=200, rows=16, devices=4096)
    assert float(per_call.double().mean(dim=0).var()) / _sigma(ONE_DAY) ** 2 < 0.01


def test_frozen_reads_are_one_draw_and_clocked_reads_start_from_it() -> None:
    frozen = _noise("frozen", ONE_DAY, calls=3, rows=2, devices=512)
    assert torch.equal(frozen[0], frozen[-1])  # aihwkit: one draw at drift_to
    clocked = _noise("clocked", ONE_DAY, calls=1, rows=1, devices=512)
    torch.testing.assert_close(clocked[0], frozen[0])  # the same slow state at clock 0


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(pcm_sim.AnalogLinear(70, 40), nn.ReLU(), pcm_sim.AnalogLinear(40, 10))


def test_a_saved_chip_continues_its_clock_and_slow_state(tmp_path: Path) -> None:
    profile = load_profile("pcm_nandakumar2019", overrides={"read_noise.scale": 2.0})
    chip = pcm_sim.deploy(_mlp(), profile, seed=3)
    pcm_sim.drift_to(chip, ONE_DAY)
    x = torch.rand(300, 70, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for _ in range(40):  # 12 ms of reads: slow components step
            chip(x)
        path = pcm_sim.save_chip(chip, tmp_path / "chip.pt")
        copy = pcm_sim.load_chip(_mlp(), path)
        for _ in range(3):
            assert torch.equal(chip(x), copy(x))
    state = chip[0].chip_state()
    assert state["read_counter"] == 43 and state["read_clock_s"] == pytest.approx(43 * 300e-6)
    assert any(0 < s < state["read_clock_s"] for s in state["slow_stepped_s"])
    assert state["slow"].numel() <= 4 * chip[0].crossbar.n_devices  # at most 4 floats per device
    payload = torch.load(path, weights_only=True)
    payload["layers"][1]["slow"] = payload["layers"][1]["slow"][:, :5]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ChipFileError, match=r"layer 1: slow: expected shape \(8, 40, 10\)"):
        pcm_sim.load_chip(_mlp(), tmp_path / "bad.pt")
