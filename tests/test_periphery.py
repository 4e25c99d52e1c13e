"""Periphery fidelity: bound management, per-tile mapping, IR drop, converter variation, ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import pcm_sim
from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.profiles import ProfileError, load_profile

ONE_DAY = 86_400.0
DRIFT_ONLY = {
    "programming.scale": 0.0,
    "read_noise.scale": 0.0,
    "periphery.output_noise": 0.0,
    "periphery.adc_bits": 0,
    "periphery.output_range": 0.0,
    "periphery.dac_bits": 0,
    "periphery.bound_management": "none",
}


def _ideal(**overrides: object) -> pcm_sim.DeviceProfile:
    """The ideal profile with a fixed input range of 1 (full scale 1 for every sample)."""
    fields = {"input_policy": "clip", "input_range": 1.0, **overrides}
    return load_profile("ideal", overrides={f"periphery.{k}": v for k, v in fields.items()})


def test_iterative_bound_management_halves_until_the_output_fits() -> None:
    w = torch.ones(8, 1)
    x = torch.stack([torch.ones(8), torch.full((8,), 0.1)])  # y = 8 (saturates at 2) and 0.8
    clipped = CrossbarArray(w, _ideal(output_range=2.0), ChipStreams(0, 0))
    managed = CrossbarArray(
        w, _ideal(output_range=2.0, bound_management="iterative"), ChipStreams(0, 0)
    )
    assert clipped.mvm(x)[:, 0].tolist() == pytest.approx([2.0, 0.8])
    # reductions 2 (4 > 2, saturated again) and 4 (2, fits): 2 * 4 = 8, exactly
    assert managed.mvm(x)[:, 0].tolist() == pytest.approx([8.0, 0.8])
    # a 4-bit DAC (7 levels) allows reductions up to bm_max_resolution * 7 = 1.75: one halving,
    # u = round(7 / 2) = 4 codes, y = 8 * 4 / 7 = 4.57 clipped to 2, times 2 = 4
    coarse = CrossbarArray(
        w, _ideal(output_range=2.0, bound_management="iterative", dac_bits=4), ChipStreams(0, 0)
    )
    assert coarse.mvm(x)[0, 0].item() == pytest.approx(4.0)


def test_bound_management_rereads_only_the_saturated_samples() -> None:
    profile = load_profile("pcm_nandakumar2019", overrides={"periphery.output_range": 3.0})
    w = torch.randn(300, 20, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(64, 300)
    x[:8] = 1.0  # dense full-scale inputs: |y| ~ sqrt(300) / 3 >> 3, they saturate
    x[8:, :2] = torch.rand(56, 2, generator=torch.Generator().manual_seed(1))  # |y| <= 2 < 3
    outs = {}
    for mode in ("none", "iterative"):
        chip = CrossbarArray(
            w, profile.with_overrides({"periphery.bound_management": mode}), ChipStreams(2, 0)
        )
        chip.drift_to(ONE_DAY)
        outs[mode] = chip.mvm(x)
    # the first read is the same draw: samples that never saturate are bit-identical
    assert torch.equal(outs["none"][8:], outs["iterative"][8:])
    ideal = x @ w
    err = {m: float((o[:8] - ideal[:8]).abs().mean()) for m, o in outs.items()}
    # the re-read recovers the clipped outputs, up to the output noise and ADC step it scales up
    assert err["iterative"] < 0.6 * err["none"]
    assert float(outs["iterative"][:8].abs().max()) > 1.5 * float(outs["none"][:8].abs().max())


def test_tile_scaling_maps_and_compensates_each_tile_on_its_own() -> None:
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    w[4:] *= 0.1  # the second 4-row tile holds weights 10x smaller
    profile = load_profile("ideal", overrides={"tile.rows": 4, "weight_cell.scaling": "tile"})
    chip = CrossbarArray(w, profile, ChipStreams(0, 0))
    tile_max = [float(w[:4].abs().max())] * 4 + [float(w[4:].abs().max())] * 4
    torch.testing.assert_close(chip.w_max.squeeze(1), torch.tensor(tile_max))
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(chip.mvm(x), x @ w, rtol=1e-5, atol=1e-6)
    # drift only: per-tile global compensation restores each tile's mean |w|; one factor per
    # layer (negative control) leaves the small tile, whose devices drift faster, short
    big = torch.randn(64, 16, generator=torch.Generator().manual_seed(2))
    big[32:] *= 0.1
    ratios = {}
    for scaling in ("tile", "layer"):
        drift = load_profile(
            "pcm_nandakumar2019",
            overrides={**DRIFT_ONLY, "tile.rows": 32, "weight_cell.scaling": scaling},
        )
        chip = CrossbarArray(big, drift, ChipStreams(0, 0))
        chip.drift_to(365 * ONE_DAY)
        eff = chip.effective_weight()
        ratios[scaling] = [
            float(eff[rows].abs().mean() / big[rows].abs().mean())
            for rows in (slice(0, 32), slice(32, 64))
        ]
    assert chip.alpha.shape == ()  # layer scaling: one factor
    assert ratios["tile"] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert ratios["layer"][1] < 0.97 < 1.0 < ratios["layer"][0]


def test_ir_drop_matches_a_loop_reference_of_aihwkits_approximation() -> None:
    g_ratio, ir = 20.0, 0.5
    profile = _ideal(ir_drop=ir, ir_drop_g_ratio=g_ratio)
    w = torch.rand(6, 3, generator=torch.Generator().manual_seed(0))  # one tile of 6 rows
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    got = CrossbarArray(w, profile, ChipStreams(0, 0)).mvm(x)
    w_max = float(w.abs().max())
    wn = w / w_max  # normalized weights; no DAC: x drives the rows as it is
    expected = torch.zeros(4, 3)
    n = 6
    for s in range(4):
        for i in range(3):
            a = n / g_ratio * sum(abs(float(wn[j, i])) * abs(float(x[s, j])) for j in range(n))
            c = a * (a * (0.05 * a - 0.2) + 0.5)
            y = sum(float(wn[j, i] * x[s, j]) for j in range(n))
            drop = sum(float(wn[j, i] * x[s, j]) * (1 - (1 - j / n) ** 2) for j in range(n))
            expected[s, i] = (y - ir * c * drop) * w_max
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert bool((got < x @ w).all())  # positive weights and inputs: the drop lowers every output


def test_converter_variation_is_drawn_once_per_chip_and_saved(tmp_path: object) -> None:
    profile = load_profile(
        "ideal",
        overrides={
            "periphery.adc_bits": 4,
            "periphery.output_range": 7.0,  # 7 levels of step 1
            "periphery.input_policy": "clip",
            "periphery.adc_offset_lsb_std": 0.8,
            "periphery.adc_gain_std": 0.05,
        },
    )
    w = torch.zeros(10, 400)
    chip = CrossbarArray(w, profile, ChipStreams(0, 0))
    offsets = chip.converters.adc_offset_lsb
    assert offsets is not None and offsets.shape == (1, 1, 400)
    assert float(offsets.std()) == pytest.approx(0.8, rel=0.15)
    # zero input on zero weights: each converter reads its own rounded offset, every time
    y = chip.mvm(torch.zeros(2, 10))
    expected = offsets.reshape(-1).round() * 1e-12  # w_max floor: weights of 0 map to 1e-12
    torch.testing.assert_close(y[0], expected) and torch.testing.assert_close(y[1], expected)
    again = CrossbarArray(w, profile, ChipStreams(0, 0))
    assert again.converters.adc_offset_lsb is not None
    assert torch.equal(again.converters.adc_offset_lsb, offsets)
    other = CrossbarArray(w, profile, ChipStreams(1, 0)).converters.adc_offset_lsb
    assert other is not None and not torch.equal(other, offsets)


def test_calibrated_ranges_follow_the_calibration_inputs() -> None:
    profile = load_profile(
        "ideal",
        overrides={
            "periphery.adc_bits": 8,
            "periphery.output_range": 12.0,
            "periphery.output_range_policy": "calibrated",
            "periphery.range_percentile": 100.0,
            "periphery.range_scope": "column",
        },
    )
    torch.manual_seed(0)
    model = nn.Sequential(pcm_sim.AnalogLinear(30, 20), nn.ReLU(), pcm_sim.AnalogLinear(20, 5))
    batch = torch.rand(50, 30, generator=torch.Generator().manual_seed(1))
    pcm_sim.deploy(model, profile, seed=0, calibration_input=batch)
    first = pcm_sim.analog_layers(model)[0]
    assert first.crossbar is not None
    w = first.weight.detach().t()
    scaled = batch / batch.abs().amax(dim=1, keepdim=True)  # the DAC's full scale per sample
    expected = (scaled @ (w / w.abs().max())).abs().amax(dim=0)  # (out,), normalized units
    torch.testing.assert_close(first.crossbar.converters.out_range.reshape(-1), expected)
    y = model[0](batch)  # no saturation, an 8-bit grid on the calibrated range
    step = expected.max() / 127 * batch.abs().amax() * w.abs().max()
    reference = nn.functional.linear(batch, first.weight, first.bias)
    assert float((y - reference).detach().abs().max()) < step
    one_hot = pcm_sim.deploy(model, profile, seed=0)  # no batch: one-hot calibration reads
    ranges = pcm_sim.analog_layers(one_hot)[0].crossbar.converters.out_range  # type: ignore[union-attr]
    torch.testing.assert_close(ranges.reshape(-1), (w / w.abs().max()).abs().amax(dim=0))


def test_transposed_read_with_tile_scaling_and_column_compensation() -> None:
    profile = load_profile(
        "pcm_nandakumar2019",
        overrides={
            **DRIFT_ONLY,
            "tile.rows": 16,
            "tile.cols": 8,
            "weight_cell.scaling": "tile",
            "compensation.mode": "column",
        },
    )
    w = torch.randn(37, 21, generator=torch.Generator().manual_seed(0))
    w[16:32] *= 0.2
    chip = CrossbarArray(w, profile, ChipStreams(0, 0))
    chip.drift_to(ONE_DAY)
    assert chip.alpha.shape == (3, 1, 21)
    e = torch.randint(-2, 3, (5, 21), generator=torch.Generator().manual_seed(1)).float()
    torch.testing.assert_close(
        chip.mvm_transposed(e), e @ chip.effective_weight().t(), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("periphery.ir_drop", -1.0, "ir_drop"),
        ("periphery.range_percentile", 0.0, "range_percentile"),
        ("periphery.range_percentile", 101.0, "range_percentile"),
        ("periphery.output_range_policy", "auto", "output_range_policy"),
        ("periphery.bound_management", "shift", "bound_management"),
        ("weight_cell.scaling", "row", "weight_cell.scaling"),
        ("periphery.adc_gain_std", -0.1, "adc_gain_std"),
    ],
)
def test_new_fields_out_of_range_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile("pcm_nandakumar2019", overrides={field: value})


def test_a_calibrated_chip_is_a_value(tmp_path: Path) -> None:
    """Calibrating the ranges re-takes the compensation reference, so a saved and reloaded chip
    reads exactly as the original and alpha is 1 right after programming (no noise)."""
    profile = load_profile(
        "pcm_hermes2023",
        overrides={
            "periphery.output_range_policy": "calibrated",
            "periphery.range_percentile": 90.0,
        },
    )
    torch.manual_seed(0)
    model = nn.Sequential(
        pcm_sim.AnalogConv2d(1, 4, 3, padding=1), nn.Flatten(), pcm_sim.AnalogLinear(4 * 36, 5)
    )
    batch = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    pcm_sim.deploy(model, profile, seed=3, calibration_input=batch)  # conv inputs as patches
    path = pcm_sim.save_chip(model, tmp_path / "chip.pt")
    twin = nn.Sequential(
        pcm_sim.AnalogConv2d(1, 4, 3, padding=1), nn.Flatten(), pcm_sim.AnalogLinear(4 * 36, 5)
    )
    twin.load_state_dict(model.state_dict())
    pcm_sim.load_chip(twin, path)
    for t in (0.0, -0.0, ONE_DAY):  # -0.0 names the same streams as 0.0
        pcm_sim.drift_to(model, abs(t))
        pcm_sim.drift_to(twin, t)
        with torch.no_grad():
            assert torch.equal(model(batch), twin(batch))
    quiet = profile.with_overrides(
        {"programming.scale": 0.0, "read_noise.scale": 0.0, "periphery.output_noise": 0.0}
    )
    chip = CrossbarArray(torch.randn(20, 6), quiet, ChipStreams(0, 0))
    chip.calibrate_ranges(torch.rand(16, 20))
    assert float(chip.alpha) == pytest.approx(1.0, abs=1e-6)


def test_calibration_of_a_wide_layer() -> None:
    """The percentile is taken with kthvalue: no size limit (torch.quantile stops at 2^24)."""
    profile = _ideal(
        adc_bits=8, output_range=12.0, output_range_policy="calibrated", range_percentile=50.0
    )
    chip = CrossbarArray(torch.randn(8, 4100), profile, ChipStreams(0, 0))
    chip.calibrate_ranges(torch.randn(4096, 8))
    assert chip.converters.out_range.shape == (1, 1, 1) and float(chip.converters.out_range) > 0
