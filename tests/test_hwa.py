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
    enable_hwa(layer, load_profile("pcm_nandakumar2019", overrides=QUIET), seed=3)
    x = (torch.rand(8, 64) < 0.5).float()
    torch.testing.assert_close(layer(x), x @ layer.weight.t(), atol=1e-5, rtol=1e-5)


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
