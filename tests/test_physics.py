"""PCM physics: parity with aihwkit's noise models and physical invariants."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import ks_2samp

from pcm_sim.physics import pcm
from pcm_sim.profiles import load_profile

N_DEVICES = 100_000
KS_P_MIN = 1e-4  # a 5 % mismatch of any law gives p < 1e-30 at this sample size (see control)


def _aihwkit_model(name: str):
    noise = pytest.importorskip("aihwkit.inference")
    if name == "pcm_nandakumar2019":
        return noise.PCMLikeNoiseModel()
    return noise.HermesNoiseModel(num_devices=2)


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(ks_2samp(a.double().numpy(), b.double().numpy()).pvalue)


@pytest.mark.parametrize("name", ["pcm_nandakumar2019", "pcm_hermes2023"])
@pytest.mark.parametrize("x_target", [0.05, 0.3, 0.6, 0.95])
def test_parity_with_aihwkit_noise_model(name: str, x_target: float) -> None:
    profile = load_profile(name)
    model = _aihwkit_model(name)
    assert model.g_max == pytest.approx(profile.device.g_max_us)
    g_target = torch.full((N_DEVICES,), x_target * profile.device.g_max_us)
    torch.manual_seed(7)  # aihwkit draws from the global generator
    ref_prog = model.apply_programming_noise_to_conductance(g_target.clone())
    ref_nu = model.generate_drift_coefficients(g_target.clone())
    ref_1h = model.apply_drift_noise_to_conductance(ref_prog, ref_nu, 3600.0)
    ref_1d = model.apply_drift_noise_to_conductance(ref_prog, ref_nu, 86_400.0)

    gen = torch.Generator().manual_seed(11)
    devices = pcm.program_devices(g_target, profile, gen)
    ours_1h = pcm.conductance_at(devices, 3600.0, profile, gen)
    ours_1d = pcm.conductance_at(devices, 86_400.0, profile, gen)
    for label, ours, ref in [
        ("g_prog", devices.g_prog_us, ref_prog),
        ("nu", devices.nu, ref_nu),
        ("g(1 h)", ours_1h, ref_1h),
        ("g(1 day)", ours_1d, ref_1d),
    ]:
        p = _ks(ours, ref)
        assert p > KS_P_MIN, f"{name} x={x_target} {label}: KS p={p:.2e}"


def test_parity_threshold_fails_a_real_mismatch() -> None:
    """Negative control: a 5 % stronger programming noise is detected by the same test."""
    profile = load_profile("pcm_nandakumar2019")
    wrong = profile.with_overrides({"programming.scale": 1.05, "drift.scale": 1.05})
    model = _aihwkit_model("pcm_nandakumar2019")
    g_target = torch.full((N_DEVICES,), 0.5 * profile.device.g_max_us)
    torch.manual_seed(3)
    ref_prog = model.apply_programming_noise_to_conductance(g_target.clone())
    ref_nu = model.generate_drift_coefficients(g_target.clone())
    devices = pcm.program_devices(g_target, wrong, torch.Generator().manual_seed(5))
    assert _ks(devices.g_prog_us, ref_prog) < KS_P_MIN
    assert _ks(devices.nu, ref_nu) < KS_P_MIN


def test_programming_noise_std_equals_law(gen: torch.Generator) -> None:
    profile = load_profile("pcm_nandakumar2019")
    x = 0.4
    g = torch.full((400_000,), x * 25.0, dtype=torch.float64)
    devices = pcm.program_devices(g, profile, gen)
    expected = 0.26348 + 1.9650 * x - 1.1731 * x**2  # µS (g_max = g_ref = 25 µS)
    empirical = float((devices.g_prog_us - g).std())
    assert empirical == pytest.approx(expected, rel=0.01)


def test_read_noise_std_equals_law(gen: torch.Generator) -> None:
    profile = load_profile("pcm_nandakumar2019")
    x, t = 0.5, 86_400.0
    g = torch.full((400_000,), x * 25.0, dtype=torch.float64)
    devices = pcm.ProgrammedDevices(g, torch.zeros_like(g), torch.zeros_like(g, dtype=torch.bool))
    reads = pcm.conductance_at(devices, t, profile, gen)
    q_s = min(0.0088 / x**0.65, 0.2)
    expected = g[0].item() * q_s * math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    assert float(reads.std()) == pytest.approx(expected, rel=0.01)
    assert float(reads.mean()) == pytest.approx(g[0].item(), rel=1e-3)


def test_drift_never_raises_conductance(gen: torch.Generator) -> None:
    profile = load_profile("pcm_aggressive")
    g = torch.rand(50_000, generator=gen) * 25.0
    devices = pcm.program_devices(g, profile, gen)
    previous = devices.g_prog_us
    for t in [1.0, 60.0, 3600.0, 86_400.0, 3.15e7]:
        now = pcm.drifted_conductance(devices.g_prog_us, devices.nu, t, profile)
        assert bool((now.abs() <= previous.abs() + 1e-6).all())
        previous = now


def test_drift_law_hand_computed() -> None:
    profile = load_profile("pcm_nandakumar2019")
    g = torch.tensor([10.0, 20.0], dtype=torch.float64)
    nu = torch.tensor([0.05, 0.1], dtype=torch.float64)
    out = pcm.drifted_conductance(g, nu, 3600.0, profile)
    expected = [10.0 * (3620.0 / 20.0) ** -0.05, 20.0 * (3620.0 / 20.0) ** -0.1]
    assert out.tolist() == pytest.approx(expected, rel=1e-12)


def test_seed_reproduces_bit_identical_results() -> None:
    profile = load_profile("pcm_aggressive")
    g = torch.linspace(0, 25, 10_000)
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(99)
        dev = pcm.program_devices(g, profile, gen)
        runs.append((dev.g_prog_us, dev.nu, pcm.conductance_at(dev, 3600.0, profile, gen)))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
    other = pcm.program_devices(g, profile, torch.Generator().manual_seed(100))
    assert not torch.equal(other.g_prog_us, runs[0][0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_preserved(dtype: torch.dtype, gen: torch.Generator) -> None:
    profile = load_profile("pcm_hermes2023")
    g = torch.linspace(0, 20, 1000, dtype=dtype)
    dev = pcm.program_devices(g, profile, gen)
    read = pcm.conductance_at(dev, 60.0, profile, gen)
    for tensor in (dev.g_prog_us, dev.nu, read):
        assert tensor.dtype == dtype and tensor.device == g.device


def test_levels_quantize_targets_exactly(gen: torch.Generator) -> None:
    profile = load_profile("ideal", overrides={"device.levels": 5})
    g = torch.tensor([0.0, 3.0, 7.0, 13.0, 24.0, 30.0])
    dev = pcm.program_devices(g, profile, gen)
    assert dev.g_prog_us.tolist() == [0.0, 0.0, 6.25, 12.5, 25.0, 25.0]


def test_stuck_at_fractions(gen: torch.Generator) -> None:
    profile = load_profile(
        "ideal",
        overrides={"device.stuck_at_gmin_fraction": 0.02, "device.stuck_at_gmax_fraction": 0.03},
    )
    g = torch.full((200_000,), 12.5)
    dev = pcm.program_devices(g, profile, gen)
    assert float((dev.g_prog_us == 0.0).float().mean()) == pytest.approx(0.02, abs=0.002)
    assert float((dev.g_prog_us == 25.0).float().mean()) == pytest.approx(0.03, abs=0.002)
    assert bool((dev.nu[dev.stuck] == 0).all())


def test_hermes_piecewise_laws_hand_computed() -> None:
    profile = load_profile("pcm_hermes2023")
    x = torch.tensor([0.05, 0.5], dtype=torch.float64)
    mean = pcm.evaluate_law(profile.drift.nu_mean, x)
    low = min(max(-0.0387 * math.log(0.05) - 0.0182, 0.072), 0.13)
    high = -0.0436 * 0.25 - 0.0126 * 0.5 + 0.0736
    assert mean.tolist() == pytest.approx([low, high], rel=1e-12)
