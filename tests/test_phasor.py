"""Phasor networks: hand-computed layers, spike coding, R&F parity, spiking vs atemporal."""

from __future__ import annotations

import math

import pytest
import torch

import pcm_sim
from pcm_sim.families import FAMILIES
from pcm_sim.functional.phasor import (
    ResonateFireParams,
    decode_spikes,
    encode_phases,
    first_spike_per_cycle,
    layer_shift,
    phasor_linear,
    phasor_loss,
    predict_classes,
    resonate_and_fire,
    rf_initial_state,
    rf_step,
    wrap_phase,
)
from pcm_sim.nn.phasor import PhasorConv2d, PhasorLinear, SpikeTrain, read_events
from pcm_sim.recipes import load_recipe


def _linear(weight: list[list[float]], bias: list[float] | None) -> PhasorLinear:
    layer = PhasorLinear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.synapses.weight.copy_(torch.tensor(weight))
        if bias is not None:
            assert layer.bias is not None
            layer.bias.copy_(torch.tensor(bias))
    return layer


def test_linear_layer_hand_computed_phases() -> None:
    # x = (0, 0.5): e^{i0} = 1, e^{i pi/2} = i
    layer = _linear([[1.0, 1.0], [1.0, -1.0], [2.0, 1.0]], [1.0, 1.0, 0.0])
    out = layer(torch.tensor([[0.0, 0.5]]))
    # z = 1 + i + 1 = 2 + i; 1 - i + 1 = 2 - i; 2 + i (bias 0)
    expected = [math.atan(0.5) / math.pi, -math.atan(0.5) / math.pi, math.atan(0.5) / math.pi]
    assert out[0].tolist() == pytest.approx(expected, abs=1e-6)
    # x = (0.5, -0.5), W = (2, 1), b = 0: z = 2i - i = i -> phase 0.5 exactly
    quad = _linear([[2.0, 1.0]], None)(torch.tensor([[0.5, -0.5]]))
    assert quad.item() == pytest.approx(0.5, abs=1e-6)


def test_functional_reference_equals_layer(gen: torch.Generator) -> None:
    layer = PhasorLinear(30, 7, generator=gen)
    with torch.no_grad():
        assert layer.bias is not None
        layer.bias.uniform_(-1.0, 1.0, generator=gen)
    x = torch.rand(5, 30, generator=gen) * 2 - 1
    ref = phasor_linear(x, layer.synapses.weight, layer.bias)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-6)


def test_conv_layer_hand_computed_and_min_pool() -> None:
    conv = PhasorConv2d(1, 1, 2)
    with torch.no_grad():
        conv.synapses.linear.weight.fill_(1.0)
    x = torch.tensor([[[[0.0, 0.5], [0.5, 0.0]]]])  # z = 1 + i + i + 1 = 2 + 2i
    assert conv(x).item() == pytest.approx(0.25, abs=1e-6)
    # 1x1 identity kernel: output phase = input phase, then min-pooling 2x2
    pool = PhasorConv2d(1, 1, 1, pool=2)
    with torch.no_grad():
        pool.synapses.linear.weight.fill_(1.0)
    img = torch.tensor([[[[0.3, -0.2, 0.9, 0.8], [0.1, 0.6, 0.7, -0.4]]]])
    assert pool(img).flatten().tolist() == pytest.approx([-0.2, -0.4], abs=1e-6)


def test_out_of_range_phases_are_clipped_or_refused() -> None:
    layer = _linear([[1.0, 0.5]], [1.0])
    big = torch.tensor([[1.7, -3.0]])
    torch.testing.assert_close(layer(big), layer(big.clamp(-1.0, 1.0)))  # layers clip
    with pytest.raises(ValueError, match="NaN"):
        layer(torch.tensor([[math.nan, 0.0]]))
    params = ResonateFireParams(steps_per_cycle=16)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        encode_phases(torch.tensor([0.2, 1.2]), 2, params)  # spike encoding refuses
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        encode_phases(torch.tensor([math.inf]), 2, params)


def test_loss_and_prediction_hand_values() -> None:
    target = torch.tensor([[0.5, 0.0]])
    assert phasor_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    # cos(pi * 1) = -1 and cos(pi * 0.5) = 0: loss = 1 - (-1 + 0) / 2 = 1.5
    assert phasor_loss(torch.tensor([[-0.5, 0.5]]), target).item() == pytest.approx(1.5)
    yhat = torch.tensor([[0.1, 0.45, -0.5], [math.nan, -0.9, 0.2]])
    assert predict_classes(yhat).tolist() == [1, 2]


def test_encode_hand_computed_steps_and_roundtrip() -> None:
    params = ResonateFireParams(steps_per_cycle=16)
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    train = encode_phases(x, 3, params)  # (48, 4)
    assert train.shape == (48, 4)
    assert train.sum(dim=0).tolist() == [3.0] * 4  # one spike per input and cycle
    first = train[:16].argmax(dim=0).tolist()
    assert first == [0, 8, 12, 0]  # t = (x + 1) / 2 cycles; x = 1 wraps onto x = -1
    shifted = encode_phases(torch.tensor([0.0]), 1, params, shift=0.5)
    assert shifted[:, 0].argmax().item() == 12  # (0 + 0.5 + 1) / 2 * 16
    phases = torch.linspace(-0.95, 0.95, 39)
    for shift in (0.0, 0.37, 1.49):
        decoded = decode_spikes(encode_phases(phases, 4, params, shift), params, shift)
        assert torch.isfinite(decoded).all()
        err = wrap_phase(decoded - phases).abs()
        assert float(err.max()) <= 1.0 / 16 + 1e-6  # half a step: 2 / S / 2


def test_layer_shift_value() -> None:
    # 1/2 - atan(0.2 / 2 pi) / pi = 0.48987 -> 15.68 steps of 2/64 -> 16 steps, + 1 step latency
    assert layer_shift(ResonateFireParams(steps_per_cycle=64)) == pytest.approx(17 * 2 / 64)
    # lambda = -2: 1/2 - atan(2 / 2 pi) / pi = 0.40191 -> 6.43 steps of 2/32 -> 6 steps, + 1
    slow = ResonateFireParams(steps_per_cycle=32, leakage=-2.0)
    assert layer_shift(slow) == pytest.approx(7 * 2 / 32)


def test_boundary_phase_is_minus_one_in_both_modes() -> None:
    # z = -1 (real, negative): atan2 gives pi; reported as -1, the first phase of a cycle window
    layer = _linear([[-1.0]], None)
    assert layer(torch.tensor([[0.0]])).item() == -1.0
    params = ResonateFireParams(steps_per_cycle=32)
    x = torch.zeros(1, 1, 1)
    with torch.no_grad():
        train = layer.spiking(SpikeTrain(encode_phases(x, 6, params), 0.0), params)
    first = decode_spikes(train.spikes, params, train.shift)[-1]
    assert first.item() == pytest.approx(-1.0, abs=1e-6)


def test_vectorized_rf_equals_step_reference(gen: torch.Generator) -> None:
    params = ResonateFireParams(steps_per_cycle=16, refractory=0.25)
    steps = 16 * 5 + 3  # a partial last cycle
    drive = torch.randn(steps, 6, 4, generator=gen) * (torch.rand(steps, 6, 4, generator=gen) < 0.2)
    fast = resonate_and_fire(drive, params)
    state = rf_initial_state((6, 4))
    slow = []
    for n in range(steps):
        spike, state = rf_step(drive[n], state, params)
        slow.append(spike)
    assert torch.equal(fast, torch.stack(slow))
    assert fast.sum() > 20  # the comparison is not vacuous


def test_rf_neuron_fires_once_per_cycle_at_the_decoded_phase() -> None:
    params = ResonateFireParams(steps_per_cycle=64)
    # one input at phase 0.3 with weight 1: z settles to the phasor of phase 0.3
    train = encode_phases(torch.tensor([[0.3]]), 10, params)  # (640, 1, 1)
    out = resonate_and_fire(train[..., 0], params)  # (640, 1)
    assert out[64:].sum().item() == 9  # one spike per cycle once driven
    decoded = decode_spikes(out.unsqueeze(-1), params, layer_shift(params))
    assert decoded[-1].item() == pytest.approx(0.3, abs=2 / 64)


def test_first_spike_per_cycle_keeps_the_earliest() -> None:
    params = ResonateFireParams(steps_per_cycle=8)
    spikes = torch.zeros(24, 1)
    spikes[[1, 3, 9, 10, 17], 0] = 1.0
    kept = first_spike_per_cycle(spikes, params, 0.0)
    assert kept[:, 0].nonzero().flatten().tolist() == [1, 9, 17]
    # shift 0.5: windows start at step ceil(8 * 0.25) = 2: [2, 10) [10, 18)
    kept = first_spike_per_cycle(spikes, params, 0.5)
    assert kept[:, 0].nonzero().flatten().tolist() == [1, 3, 10]


def _small_network(gen: torch.Generator) -> tuple[PhasorLinear, PhasorLinear]:
    first, second = PhasorLinear(40, 24, generator=gen), PhasorLinear(24, 6, generator=gen)
    return first, second


def test_spiking_network_reproduces_atemporal_phases(gen: torch.Generator) -> None:
    first, second = _small_network(gen)
    x = torch.rand(64, 40, generator=gen) * 2 - 1
    atemporal = second(first(x)).detach()
    params = ResonateFireParams(steps_per_cycle=64)
    with torch.no_grad():
        train = second.spiking(
            first.spiking(SpikeTrain(encode_phases(x, 10, params), 0.0), params), params
        )
    assert train.shift == pytest.approx(2 * layer_shift(params))
    phases = decode_spikes(train.spikes, params, train.shift)  # (cycles, 64, 6)
    err = wrap_phase(phases[-1] - atemporal).abs()  # (64, 6)
    assert torch.isfinite(err).all()  # every output neuron fires in the last cycle
    # leakage weights a cycle's spikes by e^{lambda tau} and the first cycles decay slowly,
    # so outputs with |z| near 0 (cancellation) deviate most; the bulk is close
    assert float(err.median()) < 0.03
    assert float(err.quantile(0.9)) < 0.1
    early = wrap_phase(phases[1] - atemporal).abs().mean()
    assert float(err.mean()) < 0.5 * float(early)  # the network settles over cycles


def test_spiking_conv_reproduces_atemporal(gen: torch.Generator) -> None:
    conv = PhasorConv2d(2, 3, 3, padding=1, pool=2, generator=gen)
    x = torch.rand(4, 2, 6, 6, generator=gen) * 2 - 1
    atemporal = conv(x).detach()  # (4, 3, 3, 3)
    params = ResonateFireParams(steps_per_cycle=64)
    with torch.no_grad():
        train = conv.spiking(SpikeTrain(encode_phases(x, 10, params), 0.0), params)
    phases = decode_spikes(train.spikes, params, train.shift)[-1]
    err = wrap_phase(phases - atemporal).abs()  # min-pooled phases, (4, 3, 3, 3)
    assert torch.isfinite(err).all()
    assert float(err.median()) < 0.03
    assert float(err.quantile(0.9)) < 0.1


def test_ideal_crossbar_matches_software_in_both_modes(gen: torch.Generator) -> None:
    first, second = _small_network(gen)
    model = torch.nn.Sequential(first, second)
    x = torch.rand(16, 40, generator=gen) * 2 - 1
    params = ResonateFireParams(steps_per_cycle=32)
    spikes = encode_phases(x, 4, params)
    with torch.no_grad():
        soft = model(x)
        soft_train = second.spiking(first.spiking(SpikeTrain(spikes, 0.0), params), params)
        pcm_sim.deploy(model, "ideal", seed=0)
        chip = model(x)
        chip_train = second.spiking(first.spiking(SpikeTrain(spikes, 0.0), params), params)
    torch.testing.assert_close(chip, soft, rtol=0.0, atol=1e-5)
    agree = (chip_train.spikes == soft_train.spikes).float().mean()
    assert float(agree) > 0.999


def test_event_driven_reads_skip_empty_rows() -> None:
    layer = PhasorLinear(12, 5, generator=torch.Generator().manual_seed(3))
    pcm_sim.deploy(layer, "pcm_nandakumar2019", seed=1)  # output noise 0.06 on every read
    spikes = torch.zeros(6, 2, 12)
    spikes[1, 0, 3] = 1.0
    spikes[4, 1, [2, 7]] = 1.0
    with torch.no_grad():
        out = read_events(layer.synapses, spikes)
    assert out.shape == (6, 2, 5)
    quiet = torch.ones(6, 2, dtype=torch.bool)
    quiet[1, 0] = quiet[4, 1] = False
    assert torch.equal(out[quiet], torch.zeros(10, 5))  # no read, no noise
    w = layer.synapses.weight.detach()
    torch.testing.assert_close(out[4, 1], w[:, 2] + w[:, 7], rtol=0.0, atol=0.15)


def test_family_recipes_build_and_modes() -> None:
    family = FAMILIES["phasor_fmnist"]
    for name, n_conv in (("phasor_fmnist", 0), ("phasor_conv_fmnist", 2)):
        recipe = load_recipe(name)
        model = family.build(recipe)
        convs = [m for m in model.modules() if isinstance(m, PhasorConv2d)]
        assert len(convs) == n_conv
        images = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
        assert model(images).shape == (3, recipe["model"]["classes"])
    with pytest.raises(ValueError, match="mode"):
        family.evaluate(model, recipe, torch.Generator(), mode="dynamic")
