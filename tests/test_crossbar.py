"""Crossbar engine: exactness on the ideal profile, periphery, tiling, compensation, noise."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pcm_sim
from pcm_sim.crossbar import mapping, periphery
from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.profiles import load_profile


def test_ideal_profile_equals_matmul(gen: torch.Generator) -> None:
    w = torch.randn(1100, 300, generator=gen)  # 3 row tiles of 512
    x = torch.randn(7, 5, 1100, generator=gen)
    xbar = CrossbarArray(w, load_profile("ideal"), ChipStreams(0, 0))
    assert xbar.n_row_tiles == 3
    torch.testing.assert_close(xbar.mvm(x), x @ w, rtol=1e-5, atol=1e-4)


def test_adc_saturation_and_quantization_exact() -> None:
    per = load_profile(
        "ideal", overrides={"periphery.adc_bits": 3, "periphery.output_range": 3.0}
    ).periphery
    # 3 bits: 3 levels per sign, step 1.0, saturation at +-3 (codes, then times the step)
    y = torch.tensor([-7.0, -3.2, -1.4, -0.6, 0.4, 0.5, 1.49, 2.51, 9.0])
    codes, unit = periphery.convert_outputs(
        y.clone(), per, 1.0, periphery.Converters(torch.tensor(3.0))
    )
    assert (codes * unit).tolist() == [-3.0, -3.0, -1.0, -1.0, 0.0, 0.0, 1.0, 3.0, 3.0]


def test_dac_quantization_and_clip_policy_exact() -> None:
    per = load_profile(
        "ideal",
        overrides={
            "periphery.dac_bits": 3,
            "periphery.input_policy": "clip",
            "periphery.input_range": 2.0,
        },
    ).periphery
    x = torch.tensor([[-5.0, -1.0, 0.2, 0.5, 1.2, 4.0]])
    codes, full_scale, k = periphery.drive_lines(x, per, binary_input=False)
    assert (full_scale, k) == (2.0, 3.0)
    u = codes / k  # x / 2, clipped to [-1, 1], steps of 1/3
    # -0.5 * 3 = -1.5 rounds half to even (-2); 0.1 * 3 rounds to 0
    expected = [-1.0, -2 / 3, 0.0, 1 / 3, 2 / 3, 1.0]
    assert u[0].tolist() == pytest.approx(expected)


def test_scale_policy_never_saturates_inputs() -> None:
    profile = load_profile(
        "ideal", overrides={"periphery.dac_bits": 8, "periphery.output_range": 6e4}
    )
    w = torch.eye(4)
    xbar = CrossbarArray(w, profile, ChipStreams(0, 0))
    x = torch.tensor([[100.0, -50.0, 0.0, 127.0]])
    # per-sample abs-max 127 -> levels of 1.0: 100, -50, 0, 127 are representable
    assert xbar.mvm(x)[0].tolist() == pytest.approx([100.0, -50.0, 0.0, 127.0], rel=1e-6)


def _loop_reference(xbar: CrossbarArray, x: torch.Tensor) -> torch.Tensor:
    """A plain, loop-over-tiles-and-samples reference of the noiseless tiled MVM."""
    profile = xbar.profile
    per = profile.periphery
    span = profile.device.g_max_us - profile.device.g_min_us
    g = xbar.devices.g_prog_us  # (2, N, in, out) at t = 0
    w_norm = (g[0].sum(0) - g[1].sum(0)) / (g.shape[1] * span)
    levels_in = 2 ** (per.dac_bits - 1) - 1
    step_out = per.output_range / (2 ** (per.adc_bits - 1) - 1)
    out = torch.zeros(x.shape[0], xbar.out_features, dtype=torch.float64)
    n_tiles = -(-xbar.in_features // profile.tile.rows)
    base, extra = divmod(xbar.in_features, n_tiles)
    sizes = [base + (k < extra) for k in range(n_tiles)]  # near-equal split, as aihwkit
    for n in range(x.shape[0]):
        start = 0
        for size in sizes:
            chunk = x[n, start : start + size].double()
            scale = max(float(chunk.abs().max()), 1e-12)
            u = torch.round(chunk / scale * levels_in) / levels_in
            y = u @ w_norm[start : start + size].double()
            y = torch.round(y.clamp(-per.output_range, per.output_range) / step_out) * step_out
            w_max = xbar.w_max[start, 0] if xbar.w_max.dim() == 2 else xbar.w_max  # per tile
            out[n] += y * scale * float(w_max)
            start += size
    return (out * xbar.alpha.double()).float()


def test_batched_tiling_equals_loop_reference(gen: torch.Generator) -> None:
    profile = load_profile(
        "pcm_nandakumar2019",
        overrides={
            "read_noise.scale": 0.0,
            "periphery.output_noise": 0.0,
            "periphery.adc_bits": 6,
            "periphery.output_range": 4.0,
            "tile.rows": 128,
            "compensation.mode": "none",
            "periphery.bound_management": "none",  # pinned in tests/test_periphery.py
        },
    )
    w = torch.randn(301, 40, generator=gen) * 0.1
    w[101:201] *= 0.3  # uneven tiles: each tile is mapped by its own w_max
    xbar = CrossbarArray(w, profile, ChipStreams(5, 0))
    assert (xbar.n_row_tiles, xbar.rows) == (3, 101)  # near-equal tiles 101, 100, 100
    x = torch.randn(9, 301, generator=gen)
    torch.testing.assert_close(xbar.mvm(x), _loop_reference(xbar, x), rtol=1e-4, atol=1e-4)


def test_adc_saturates_each_tile_before_accumulation(gen: torch.Generator) -> None:
    # Each tile saturates at +-1 (normalized); two full tiles of ones give 2, not 1.
    profile = load_profile("ideal", overrides={"periphery.output_range": 1.0, "tile.rows": 4})
    w = torch.ones(8, 1)
    xbar = CrossbarArray(w, profile, ChipStreams(5, 0))
    assert xbar.mvm(torch.ones(1, 8)).item() == pytest.approx(2.0)


@pytest.mark.parametrize("mode", ["global", "column"])
def test_drift_compensation_restores_output_scale_at_one_year(mode: str) -> None:
    """Mean |y| at 1 year over t = 0, averaged over 10 reads per chip and 6 chips.

    One calibration read carries read noise, so single chips scatter by about 2 %; the mean
    over chips is within 1 % (measured 1.006 over 8 chips).
    """
    profile = load_profile("pcm_nandakumar2019", overrides={"compensation.mode": mode})
    ratios, raw = [], []
    for seed in range(6):
        gen = torch.Generator().manual_seed(seed)
        w = (torch.rand(256, 128, generator=gen) - 0.5) * 0.1  # nn.Linear-like uniform weights
        xbar = CrossbarArray(w, profile, ChipStreams(seed, 0))
        x = torch.rand(512, 256, generator=gen)
        y0 = sum(float(xbar.mvm(x).abs().mean()) for _ in range(10))
        xbar.drift_to(365 * 86_400.0)
        raw.append(sum(float((xbar.mvm(x) / xbar.alpha).abs().mean()) for _ in range(10)) / y0)
        ratios.append(sum(float(xbar.mvm(x).abs().mean()) for _ in range(10)) / y0)
    assert max(raw) < 0.6  # drift alone loses > 40 % of the signal in a year
    assert sum(ratios) / len(ratios) == pytest.approx(1.0, abs=0.01)
    assert all(abs(r - 1.0) < 0.03 for r in ratios)


@pytest.mark.parametrize("model", ["per_call", "per_read"])
def test_read_noise_is_fresh_and_has_the_law_std(model: str) -> None:
    profile = load_profile(
        "ideal",
        overrides={
            "read_noise.scale": 1.0,
            "read_noise.model": model,
            "read_noise.q_s": [{"form": "power", "coeffs": [0.0088, 0.65], "clip_max": 0.2}],
        },
    )
    w = torch.full((64, 1), 0.5)
    w[0, 0] = 1.0  # w_max = 1 -> every other device at x = 0.5
    xbar = CrossbarArray(w, profile, ChipStreams(5, 0))
    xbar.drift_to(3600.0)
    x = torch.zeros(2, 64)
    x[:, 1:] = 1.0  # 63 devices at x = 0.5 read per output
    reads = torch.stack([xbar.mvm(x)[:, 0] for _ in range(4000)])  # (calls, 2)
    q_s = 0.0088 / 0.5**0.65
    factor = math.sqrt(math.log((3600.0 + 20.0 + 250e-9) / (2 * 250e-9)))
    expected = math.sqrt(63) * 0.5 * q_s * factor  # 63 independent devices, weight 0.5 each
    assert float(reads[:, 0].std()) == pytest.approx(expected, rel=0.05)
    assert float(reads[:, 0].mean()) == pytest.approx(31.5, rel=1e-3)
    assert reads[:, 0].unique().numel() > 3900  # fresh on every call
    correlation = float(torch.corrcoef(reads.T)[0, 1])
    if model == "per_read":
        assert abs(correlation) < 0.1
    else:
        assert correlation > 0.99  # one shared read per call


def test_analog_linear_gradients_pass_straight_through(gen: torch.Generator) -> None:
    layer = pcm_sim.AnalogLinear(20, 5, profile=pcm_sim.load_profile("pcm_nandakumar2019"))
    x = torch.randn(8, 20, generator=gen, requires_grad=True)
    ideal_grad = torch.autograd.grad(layer(x).sum(), layer.weight)[0]
    pcm_sim.deploy(layer, "pcm_nandakumar2019", seed=0)
    layer.train()
    analog_grad = torch.autograd.grad(layer(x).sum(), layer.weight)[0]
    torch.testing.assert_close(analog_grad, ideal_grad)


def test_deploy_is_reproducible_per_seed(gen: torch.Generator) -> None:
    model = torch.nn.Sequential(
        pcm_sim.AnalogLinear(30, 20), torch.nn.ReLU(), pcm_sim.AnalogLinear(20, 3)
    )
    x = torch.randn(4, 30, generator=gen)
    outs = []
    for seed in (1, 1, 2):
        pcm_sim.deploy(model, "pcm_nandakumar2019", seed=seed)
        pcm_sim.drift_to(model, 86_400.0)
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_analog_conv2d_ideal_equals_conv2d(gen: torch.Generator) -> None:
    conv = pcm_sim.AnalogConv2d(3, 8, kernel_size=3, padding=1, stride=2)
    x = torch.randn(2, 4, 3, 10, 10, generator=gen)  # (T, B, C, H, W)
    weight = conv.linear.weight.detach().reshape(8, 3, 3, 3)
    ref = torch.nn.functional.conv2d(x.reshape(8, 3, 10, 10), weight, conv.linear.bias, 2, 1)
    pcm_sim.deploy(conv, "ideal", seed=0)
    torch.testing.assert_close(conv(x), ref.reshape(2, 4, 8, 5, 5), rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise_clear_errors() -> None:
    layer = pcm_sim.AnalogLinear(4, 2)
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., 4\)"):
        layer(torch.zeros(3, 5))
    with pytest.raises(RuntimeError, match="not programmed"):
        layer.drift_to(10.0)
    with pytest.raises(ValueError, match="finite"):
        pcm_sim.drift_to(layer, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        CrossbarArray(torch.tensor([[float("nan")]]), load_profile("ideal"), ChipStreams(0, 0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=1, max_size=24),
    st.integers(1, 4),
    st.sampled_from(["layer", "column"]),
)
def test_mapping_round_trips_any_weights(values: list[float], devices: int, scaling: str) -> None:
    """Targets of any weights read back (noiselessly) as w / w_max through the weight cell."""
    profile = load_profile(
        "ideal",
        overrides={
            "weight_cell.devices_per_polarity": devices,
            "weight_cell.scaling": scaling,
            "device.g_min_us": 2.0,
        },
    )
    w = torch.tensor(values, dtype=torch.float64).reshape(-1, 1)
    w_max = mapping.weight_scale(w, profile)
    targets = mapping.conductance_targets(w, w_max, profile)
    assert targets.shape == (2, devices, len(values), 1)
    assert bool((targets >= 2.0).all()) and bool((targets <= 25.0 + 1e-9).all())
    torch.testing.assert_close(mapping.normalized_weights(targets, profile) * w_max, w)
