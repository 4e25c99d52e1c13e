"""Hardware-aware training noise: weight samples, periphery output noise, held samples."""

from __future__ import annotations

import pytest
import torch

from pcm_sim.nn.analog import AnalogLinear, enable_hwa
from pcm_sim.profiles import load_profile

QUIET = {"programming.scale": 0.0, "drift.scale": 0.0, "read_noise.scale": 0.0}
"""Overrides that leave only the periphery's output noise (0.06 of full scale per MVM)."""


def _layer(binary_input: bool = True) -> AnalogLinear:
    torch.manual_seed(0)
    layer = AnalogLinear(64, 32, bias=False, binary_input=binary_input)
    layer.train()
    return layer


def test_without_device_noise_the_weight_sample_is_the_weight() -> None:
    layer = _layer()
    quiet = load_profile("pcm_nandakumar2019", overrides=QUIET)
    enable_hwa(layer, quiet.with_overrides({"compensation.mode": "none"}), seed=3)
    x = (torch.rand(8, 64) < 0.5).float()
    torch.testing.assert_close(layer(x), x @ layer.weight.t(), atol=1e-5, rtol=1e-5)
    # with global compensation the sample is the weight times one factor alpha, measured as
    # the chip measures it: one-hot reads through the output noise and the ADC (not exactly 1)
    enable_hwa(layer, quiet, seed=3)
    ratio = (layer.software_weight() / layer.weight).detach()
    assert float(ratio.std()) < 1e-6 and float(ratio.mean()) != 1.0
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("mode", ["column", "global"])
def test_hwa_sample_honours_the_compensation_mode(mode: str) -> None:
    """Drift only, ideal periphery: ``column`` restores every column's mean |w|, ``global``
    only the matrix's (columns of small weights drift faster, so their means move)."""
    profile = load_profile(
        "pcm_nandakumar2019",
        overrides={
            "programming.scale": 0.0,
            "read_noise.scale": 0.0,
            "periphery.output_noise": 0.0,
            "periphery.adc_bits": 0,
            "periphery.output_range": 0.0,
            "periphery.dac_bits": 0,
            "compensation.mode": mode,
        },
    )
    layer = _layer()
    with torch.no_grad():
        layer.weight[:16] *= 0.1  # 16 output columns of small weights: larger drift exponents
    enable_hwa(layer, profile, seed=3, t_s=365 * 86_400.0)
    sample = layer.software_weight().detach()
    column_ratio = sample.abs().mean(dim=1) / layer.weight.detach().abs().mean(dim=1)  # (out,)
    overall = float(sample.abs().mean() / layer.weight.detach().abs().mean())
    assert overall == pytest.approx(1.0, rel=1e-4)
    if mode == "column":
        torch.testing.assert_close(column_ratio, torch.ones(32), rtol=1e-4, atol=0.0)
    else:  # negative control: one global factor leaves the small columns short
        assert float(column_ratio[:16].mean()) < 0.9 < 1.0 < float(column_ratio[16:].mean())


def test_output_noise_has_the_periphery_std() -> None:
    layer = _layer()
    profile = load_profile("pcm_nandakumar2019", overrides=QUIET)
    enable_hwa(layer, profile, seed=3, output_noise=True)
    x = (torch.rand(4000, 64, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    noise = (layer(x) - x @ layer.weight.t()).detach()
    # spikes need no DAC: full scale 1, one tile of 512 rows -> std = 0.06 * w_max
    expected = 0.06 * float(layer.weight.detach().abs().max())
    assert float(noise.std()) == pytest.approx(expected, rel=0.03)
    assert abs(float(noise.mean())) < 0.05 * expected


def test_output_noise_scales_with_the_dac_full_scale() -> None:
    layer = _layer(binary_input=False)
    enable_hwa(layer, load_profile("pcm_nandakumar2019", overrides=QUIET), 3, output_noise=True)
    x = torch.rand(4000, 64, generator=torch.Generator().manual_seed(1))
    x[:2000] *= 0.25  # half the inputs use a quarter of the range
    noise = (layer(x) - x @ layer.weight.t()).detach()
    w_max = float(layer.weight.detach().abs().max())
    scale = x.abs().amax(dim=1, keepdim=True)  # input_policy 'scale': max |x| per vector
    assert float((noise / scale).std()) == pytest.approx(0.06 * w_max, rel=0.03)


def test_same_seed_same_noise_and_held_sample_is_reused() -> None:
    profile = load_profile("pcm_nandakumar2019")
    x = (torch.rand(5, 64, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    first, second = _layer(), _layer()
    enable_hwa(first, profile, seed=7)
    enable_hwa(second, profile, seed=7)
    torch.testing.assert_close(first(x), second(x))
    assert not torch.equal(first(x), first(x))  # a fresh chip sample per forward
    with first.held_hwa_sample():
        torch.testing.assert_close(first(x), first(x))  # one chip for the whole sequence
    y = first(x)
    y.sum().backward()  # straight-through: the gradient of the clean weights
    assert first.weight.grad is not None
    torch.testing.assert_close(first.weight.grad, x.sum(0).expand(32, 64))


def test_scale_gradient_flows_only_through_the_largest_weight() -> None:
    layer = _layer()
    enable_hwa(layer, load_profile("pcm_nandakumar2019"), seed=5, scale_gradient=True)
    x = (torch.rand(6, 64, generator=torch.Generator().manual_seed(4)) < 0.5).float()
    layer(x).sum().backward()
    assert layer.weight.grad is not None
    clean = x.sum(0).expand(32, 64)
    differs = ~torch.isclose(layer.weight.grad, clean)
    # layer scaling: w_max = max |w|, so only that weight gets the noise-scale gradient
    argmax = int(layer.weight.detach().abs().argmax())
    assert differs.flatten().nonzero().flatten().tolist() == [argmax]


CONVERTERS = {
    "programming.scale": 0.0,
    "drift.scale": 0.0,
    "read_noise.scale": 0.0,
    "periphery.output_noise": 0.0,
    "periphery.dac_bits": 0,
    "periphery.adc_bits": 3,  # 3 levels per sign
    "periphery.output_range": 3.0,  # ADC step 1 in normalized units
    "periphery.input_policy": "clip",
    "periphery.input_range": 1.0,
    "compensation.mode": "none",
}


@pytest.mark.parametrize("bound_management", ["none", "iterative"])
def test_training_forward_runs_through_the_adc(bound_management: str) -> None:
    """Hand-computed: w_max = 1, inputs in [0, 1]: v = x @ W^T, then the 3-level ADC of step 1."""
    profile = load_profile(
        "pcm_nandakumar2019",
        overrides={**CONVERTERS, "periphery.bound_management": bound_management},
    )
    layer = AnalogLinear(4, 2, bias=False, binary_input=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.5, -0.25, 0.0, 0.1]]))
    layer.train()
    enable_hwa(layer, profile, seed=0, converters=True)
    x = torch.tensor([[1.0, 1.0, 1.0, 0.6], [0.2, 0.4, 0.0, 1.0]], requires_grad=True)
    y = layer(x)
    # v = [[3.6, 0.31], [1.6, 0.1]]: 3.6 saturates at 3 (or, with bound management, one halving
    # gives range 6 and step 2: 3.6 -> 4); the rest round to the step of 1
    first = 4.0 if bound_management == "iterative" else 3.0
    assert y.detach().tolist() == [[first, 0.0], [2.0, 0.0]]
    y.sum().backward()
    assert x.grad is not None
    saturated = 0.0 if bound_management == "none" else 1.0  # zero gradient beyond the range
    expected = torch.tensor([[saturated, saturated, saturated, saturated], [1.0, 1.0, 1.0, 1.0]])
    expected = expected + torch.tensor([[0.5, -0.25, 0.0, 0.1], [0.5, -0.25, 0.0, 0.1]])
    torch.testing.assert_close(x.grad, expected)  # straight through the rounding
    layer.eval()  # evaluation forwards are plain matmuls again
    torch.testing.assert_close(layer(x), x @ layer.weight.t())
