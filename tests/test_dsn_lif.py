"""Herding quantizer, deep spiking network, coarse-scale and continuous-time LIF, CartPole."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pcm_sim import DeviceProfile, load_profile
from pcm_sim.functional.herding import HerdingState, herd_sequence, herding_step
from pcm_sim.functional.lif import (
    CoarseLIFParams,
    ContinuousLIFParams,
    ContinuousLIFState,
    LIFState,
    coarse_lif_step,
    continuous_lif_step,
    heaviside_sigmoid,
    refine_spike_train,
    synaptic_drive,
)
from pcm_sim.nn.analog import AnalogLinear, deploy
from pcm_sim.nn.coarse_lif import CoarseLIFConvNet, CoarseLIFMLP
from pcm_sim.nn.conv import AnalogConv2d
from pcm_sim.nn.dsn import DeepSpikingNetwork, ReLUMLP, pulse_read

# ---- herding ----------------------------------------------------------------------------------


def test_herding_hand_trajectory() -> None:
    # phi: 0.3 -> 0 spikes; 0.6 -> 1 (phi -0.4); -0.1 -> 0; -1.3 -> -1 (phi -0.3); 2.4 -> 2 (0.4)
    increments = torch.tensor([0.3, 0.3, 0.3, -1.2, 2.7]).unsqueeze(-1)
    spikes, state = herd_sequence(increments)
    assert spikes.squeeze(-1).tolist() == [0.0, 1.0, 0.0, -1.0, 2.0]
    assert state.phi.item() == pytest.approx(0.4, abs=1e-6)


def test_herding_tie_emits_nothing() -> None:
    spikes, state = herding_step(torch.tensor([0.5, -0.5]), HerdingState(torch.zeros(2)))
    assert spikes.tolist() == [0.0, 0.0]
    assert state.phi.tolist() == [0.5, -0.5]


def test_herding_count_tracks_integral(gen: torch.Generator) -> None:
    increments = 3.0 * torch.randn(200, 50, generator=gen, dtype=torch.float64)
    spikes, _ = herd_sequence(increments)
    gap = (increments.cumsum(0) - spikes.cumsum(0)).abs()
    assert float(gap.max()) <= 0.5 + 1e-12
    assert torch.equal(spikes, spikes.round())


# ---- deep spiking network -----------------------------------------------------------------------


def test_dsn_equals_relu_mlp_in_the_long_run_limit(gen: torch.Generator) -> None:
    torch.manual_seed(3)
    sizes = [6, 5, 4, 3]
    dsn = DeepSpikingNetwork(sizes, steps=4000, error_scale=1.0)
    mlp = ReLUMLP(sizes)
    mlp.load_state_dict(dsn.state_dict())
    x = torch.rand(8, 6, generator=gen)
    y = torch.randint(0, 3, (8,), generator=gen)
    trace = dsn.run(x)
    logits_mlp = mlp(x)
    # counts are within 1/2 of the integral at every layer: logits agree to O(1/T)
    assert torch.allclose(trace.logits, logits_mlp.detach(), atol=1e-3)
    assert torch.equal(trace.logits.argmax(-1), logits_mlp.argmax(-1))
    dsn.accumulate_gradients(trace, y)
    torch.nn.functional.cross_entropy(logits_mlp, y).backward()
    for p_dsn, p_mlp in zip(dsn.parameters(), mlp.parameters(), strict=True):
        assert p_dsn.grad is not None and p_mlp.grad is not None
        scale = float(p_mlp.grad.abs().max())
        assert float((p_dsn.grad - p_mlp.grad).abs().max()) <= 0.02 * scale + 1e-5


def test_dsn_short_run_differs_from_limit(gen: torch.Generator) -> None:
    torch.manual_seed(3)
    dsn = DeepSpikingNetwork([6, 5, 4, 3], steps=2)
    mlp = ReLUMLP([6, 5, 4, 3])
    mlp.load_state_dict(dsn.state_dict())
    x = torch.rand(64, 6, generator=gen)
    with torch.no_grad():
        assert float((dsn(x) - mlp(x)).abs().max()) > 1e-2


def test_dsn_spike_counts_are_integers(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    dsn = DeepSpikingNetwork([10, 8, 3], steps=5, error_scale=4.0)
    x = torch.rand(4, 10, generator=gen)
    trace = dsn.run(x)
    errors = dsn.error_trains(trace, torch.tensor([0, 1, 2, 0]))
    for train in [*trace.trains, *errors]:
        assert torch.equal(train, train.round())
    assert trace.trains[0].min() >= 0 and trace.trains[0].max() <= 1  # input herding of [0, 1]


def test_pulse_read_sends_unit_pulses(gen: torch.Generator) -> None:
    counts = torch.tensor([[3.0, -1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, -2.0]])
    w = torch.randn(3, 4, generator=gen)
    seen: list[torch.Tensor] = []

    def read(p: torch.Tensor) -> torch.Tensor:
        seen.append(p)
        return p @ w

    out = pulse_read(read, counts, 4)
    assert len(seen) == 3  # max |count| = 3 reads
    assert all(set(p.unique().tolist()) <= {-1.0, 0.0, 1.0} for p in seen)
    assert torch.allclose(out, counts @ w, atol=1e-6)
    assert torch.equal(pulse_read(read, torch.zeros(2, 3), 4), torch.zeros(2, 4))
    assert len(seen) == 3  # zeros are never read


def _programmed(w_in_out: torch.Tensor, profile: DeviceProfile) -> AnalogLinear:
    """An analog layer holding ``w_in_out`` (crossbar layout), programmed on chip seed 0."""
    layer = AnalogLinear(*w_in_out.shape, bias=False, binary_input=True)
    with torch.no_grad():
        layer.weight.copy_(w_in_out.t())
    deploy(layer, profile, seed=0)
    return layer


def test_transposed_read_ideal_parity_with_row_and_column_tiles(gen: torch.Generator) -> None:
    profile = load_profile("ideal").with_overrides({"tile.rows": 16, "tile.cols": 8})
    w = torch.randn(37, 21, generator=gen)  # (in, out): 3 row tiles, 3 column tiles
    layer = _programmed(w, profile)
    e = torch.randint(-2, 3, (5, 7, 21), generator=gen).float()
    got = layer.read_transposed(e, binary_input=True)
    assert got.shape == (5, 7, 37)
    assert torch.allclose(got, e @ w.t(), atol=1e-4)


def test_transposed_read_uses_the_programmed_devices(gen: torch.Generator) -> None:
    profile = load_profile("pcm_nandakumar2019").with_overrides(
        {"read_noise.scale": 0.0, "periphery.output_noise": 0.0, "periphery.adc_bits": 0}
    )
    w = 0.1 * torch.randn(40, 12, generator=gen)
    layer = _programmed(w, profile)
    layer.drift_to(86_400.0)
    e = torch.randint(0, 2, (6, 12), generator=gen).float()
    got = layer.read_transposed(e, binary_input=True)
    assert layer.crossbar is not None
    w_eff = layer.crossbar.effective_weight()  # (in, out): drifted devices, compensated
    assert torch.allclose(got, e @ w_eff.t(), atol=1e-5)
    assert not torch.allclose(got, e @ w.t(), atol=1e-3)  # programming noise and drift are real


def test_dsn_on_chip_reads_both_ways(gen: torch.Generator) -> None:
    torch.manual_seed(1)
    dsn = DeepSpikingNetwork([12, 6, 3], steps=8, error_scale=4.0)
    x = torch.rand(5, 12, generator=gen)
    y = torch.tensor([0, 1, 2, 1, 0])
    soft = dsn.spike_gradients(dsn.run(x), y)
    deploy(dsn, "ideal", seed=0)
    assert all(layer.crossbar is not None for layer in dsn.synapses())
    chip = dsn.spike_gradients(dsn.run(x), y)
    for (gw_s, gb_s), (gw_c, gb_c) in zip(soft, chip, strict=True):
        assert torch.allclose(gw_s, gw_c, atol=1e-5) and torch.allclose(gb_s, gb_c, atol=1e-5)


# ---- coarse-scale LIF ---------------------------------------------------------------------------


def test_coarse_lif_coefficients() -> None:
    p = CoarseLIFParams(tau=2.0)
    assert p.a == pytest.approx(math.exp(-0.5))
    assert p.b == pytest.approx(2.0 * (1.0 - 0.6065306597))  # 0.7869386806
    assert p.c == pytest.approx(2.0 * (1.0 - 0.7869386806))  # 0.4261226389


def test_coarse_lif_hand_trajectory() -> None:
    # tau = 2: a = 0.6065307, b = 0.7869387, c = 0.4261226; x = 1, 0.5, 1.5, 1
    # v1 = b = 0.7869387; v2 = a v1 + 0.5 b = 0.8707718; v3 = a v2 + 1.5 b = 1.7085578 (spike);
    # v4 = c * 1 = 0.4261226 (reset by the spike of step 3)
    params = CoarseLIFParams(tau=2.0)
    state = LIFState(v=torch.zeros(1, dtype=torch.float64), s=torch.zeros(1, dtype=torch.float64))
    vs, ss = [], []
    for x in (1.0, 0.5, 1.5, 1.0):
        s, state = coarse_lif_step(torch.tensor([x], dtype=torch.float64), state, params)
        vs.append(state.v.item())
        ss.append(s.item())
    assert vs == pytest.approx([0.7869387, 0.8707718, 1.7085578, 0.4261226], abs=1e-6)
    assert ss == [0.0, 0.0, 1.0, 0.0]


def test_surrogate_gradient_value() -> None:
    v = torch.tensor([1.2], requires_grad=True)
    heaviside_sigmoid(v - 1.0, 5.0).sum().backward()
    # beta σ(1) (1 - σ(1)) with σ(1) = 0.7310586: 5 * 0.7310586 * 0.2689414 = 0.9830597
    assert v.grad is not None and v.grad.item() == pytest.approx(0.9830597, abs=1e-6)
    assert heaviside_sigmoid(torch.tensor([0.0])).item() == 1.0  # H(0) = 1: v = 1 fires


def test_continuous_lif_hand_trajectory() -> None:
    # tau = 1, dt = 0.5: decay e^-0.5 = 0.6065307, step gain g = 2 (1 - e^-0.5) = 0.7869387;
    # refractory 1, drive 0.8 per fine step (g 0.8 = 0.6295509):
    # v = 0.6295509; 0.6065307*0.6295509 + 0.6295509 = 1.0113929 -> spike, v <- 0;
    # two refractory steps at 0; then 0.6295509 and a second spike.
    params = ContinuousLIFParams(tau=1.0, dt_s=0.5, refractory_s=1.0)
    assert params.step_gain == pytest.approx(0.7869387, abs=1e-7)
    zero = torch.zeros(1, dtype=torch.float64)
    state = ContinuousLIFState(v=zero, refractory_s=zero)
    vs, ss = [], []
    for _ in range(6):
        s, state = continuous_lif_step(torch.full((1,), 0.8, dtype=torch.float64), state, params)
        vs.append(state.v.item())
        ss.append(s.item())
    assert ss == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert vs == pytest.approx([0.6295509, 0.0, 0.0, 0.0, 0.6295509, 0.0], abs=1e-6)


def test_subtract_reset_keeps_the_excess() -> None:
    # same neuron, reset by subtraction and no refractory period: 1.0113929 - 1 = 0.0113929,
    # then 0.6065307*0.0113929 + 0.6295509 = 0.6364611
    params = ContinuousLIFParams(tau=1.0, dt_s=0.5, refractory_s=0.0, reset="subtract")
    zero = torch.zeros(1, dtype=torch.float64)
    state = ContinuousLIFState(v=zero, refractory_s=zero)
    vs = []
    for _ in range(3):
        _, state = continuous_lif_step(torch.full((1,), 0.8, dtype=torch.float64), state, params)
        vs.append(state.v.item())
    assert vs == pytest.approx([0.6295509, 0.0113929, 0.6364611], abs=1e-6)
    with pytest.raises(ValueError, match="reset"):
        ContinuousLIFParams(reset="hold")


def test_synaptic_drive_kernels() -> None:
    # dt = 0.5, tau_s = 0.5 / ln 2: half the pending charge is delivered per step.
    # Charge 0.9 at step 1: 0.45, 0.225, 0.1125.  Box of 1 (two steps): 0.45, 0.45, 0.
    charge = torch.tensor([0.9, 0.0, 0.0], dtype=torch.float64).reshape(3, 1)
    exponential = ContinuousLIFParams(dt_s=0.5, synapse_tau_s=0.5 / math.log(2))
    box = ContinuousLIFParams(dt_s=0.5, synapse_window_s=1.0)
    assert synaptic_drive(charge, exponential).flatten().tolist() == pytest.approx(
        [0.45, 0.225, 0.1125]
    )
    assert synaptic_drive(charge, box).flatten().tolist() == pytest.approx([0.45, 0.45, 0.0])
    assert synaptic_drive(charge, ContinuousLIFParams(dt_s=0.5)) is charge  # delta
    with pytest.raises(ValueError, match="at most one"):
        ContinuousLIFParams(dt_s=0.5, synapse_tau_s=0.2, synapse_window_s=1.0)
    with pytest.raises(ValueError, match="synapse_window_s"):
        ContinuousLIFParams(dt_s=0.5, synapse_window_s=0.7)


def test_coarse_coefficients_are_continuous_time_averages() -> None:
    """b and c are the expected gains of uniformly timed inputs (and spike times) in the
    continuous-time LIF with a one-step refractory period (the transfer's justification)."""
    tau, k, x = 2.0, 400, 0.5
    params = ContinuousLIFParams(tau=tau, dt_s=1.0 / k, refractory_s=1.0)
    coarse = CoarseLIFParams(tau=tau)
    # b: charge x/K on every fine step of one window (uniform arrival times), no spike: exact
    zero = torch.zeros(1, dtype=torch.float64)
    state = ContinuousLIFState(v=zero, refractory_s=zero)
    for _ in range(k):
        _, state = continuous_lif_step(torch.full((1,), x / k, dtype=torch.float64), state, params)
    assert state.v.item() == pytest.approx(coarse.b * x, rel=1e-9)
    # c: a spike forced at every possible fine step r of window 0, then x/K per fine step
    charge = torch.full((k, 2 * k), x / k, dtype=torch.float64)  # (spike time r, fine step)
    charge[torch.arange(k), torch.arange(k)] = 10.0
    zeros = torch.zeros(k, dtype=torch.float64)
    state = ContinuousLIFState(v=zeros, refractory_s=zeros)
    for step in range(2 * k):
        _, state = continuous_lif_step(charge[:, step], state, params)
    assert float(state.v.mean()) == pytest.approx(coarse.c * x, rel=5e-3)


def test_refine_spike_train_keeps_each_spike_in_its_window(gen: torch.Generator) -> None:
    coarse = (torch.rand(4, 3, 10, generator=gen) < 0.5).float()
    fine = refine_spike_train(coarse, 20, gen)
    assert fine.shape == (80, 3, 10)
    assert torch.equal(fine.reshape(4, 20, 3, 10).sum(1), coarse)


def test_refine_spike_train_jitter_limits_arrival_times(gen: torch.Generator) -> None:
    coarse = (torch.rand(4, 3, 10, generator=gen) < 0.5).float()
    fine = refine_spike_train(coarse, 20, gen, jitter=0.25).reshape(4, 20, 3, 10)
    assert torch.equal(fine.sum(1), coarse)
    assert fine[:, 5:].sum() == 0 and fine[:, :5].sum() == coarse.sum()  # first 5 of 20 steps
    synchronous = refine_spike_train(coarse, 20, gen, jitter=0.0).reshape(4, 20, 3, 10)
    assert torch.equal(synchronous[:, 0], coarse)
    with pytest.raises(ValueError, match="jitter"):
        refine_spike_train(coarse, 20, gen, jitter=1.5)


def test_conv_fast_path_matches_im2col(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    conv = AnalogConv2d(3, 5, 5, padding=2, bias=False, binary_input=True)
    x = (torch.rand(2, 4, 3, 9, 9, generator=gen) < 0.4).float()
    fast = conv(x)  # software: conv2d without patches
    deploy(conv, "ideal", seed=0)
    assert torch.allclose(fast, conv(x), atol=1e-5)  # on the ideal chip: im2col reads


def test_coarse_conv_net_trains_and_transfers(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    net = CoarseLIFConvNet((4, 6), 16, 10, tau=2.0)
    spikes = (torch.rand(4, 3, 1, 28, 28, generator=gen) < 0.3).float()
    logits = net(spikes)
    assert logits.shape == (3, 10)
    gap = (logits - logits.round()).abs().max()
    assert float(gap.detach()) < 0.05  # spike counts plus the tie-break term
    logits.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    params = ContinuousLIFParams(tau=2.0, dt_s=0.25)
    fine = refine_spike_train(spikes, params.substeps, gen)
    assert net.forward_continuous(fine, params).shape == (3, 10)
    with pytest.raises(ValueError, match="tau"):
        net.forward_continuous(fine, ContinuousLIFParams(tau=3.0, dt_s=0.25))


def test_coarse_mlp_with_analog_input() -> None:
    torch.manual_seed(0)
    net = CoarseLIFMLP([9, 8, 2], analog_input=True)
    first = net.blocks[0].synapses
    assert not first.binary_input and net.blocks[1].synapses.binary_input
    assert net(torch.rand(8, 5, 9)).shape == (5, 2)


def test_settle_time_lets_charge_in_flight_reach_the_output() -> None:
    """One input spike of weight 1.5 through an exponential synapse (tau_s = 1, dt = 0.5):
    delivered 1.5 (1 - e^-0.5) = 0.590, then 0.358 within the window (v = 0.948 < 1 with
    tau = 1000), then 0.217 in the first quiet step (v = 1.165): one output spike only when the
    network settles for one more unit of time."""
    net = CoarseLIFMLP([1, 1], tau=1000.0)
    with torch.no_grad():
        net.blocks[0].synapses.weight.fill_(1.5)
    fine = torch.tensor([1.0, 0.0]).reshape(2, 1, 1)  # (T*K, B, in): a spike in the first step
    quick = ContinuousLIFParams(tau=1000.0, dt_s=0.5, synapse_tau_s=1.0)
    settled = ContinuousLIFParams(tau=1000.0, dt_s=0.5, synapse_tau_s=1.0, settle_s=1.0)
    assert float(net.forward_continuous(fine, quick).round()) == 0.0
    assert float(net.forward_continuous(fine, settled).round()) == 1.0
    with pytest.raises(ValueError, match="settle_s"):
        ContinuousLIFParams(dt_s=0.5, settle_s=0.3)


# ---- CartPole -----------------------------------------------------------------------------------


def test_lqr_expert_balances_cartpole() -> None:
    gymnasium = pytest.importorskip("gymnasium")
    from pcm_sim.families.cartpole import expert_action, lqr_gain

    gain = lqr_gain()
    assert gain[2] < 0 and gain[3] < 0  # pole leaning right (theta > 0) -> push right
    for seed in range(3):
        env = gymnasium.make("CartPole-v1")
        obs, _ = env.reset(seed=seed)
        total = 0.0
        while True:
            obs, reward, terminated, truncated, _ = env.step(int(expert_action(obs[None], gain)[0]))
            total += float(reward)
            if terminated or truncated:
                break
        assert total == 500.0
    assert expert_action(np.array([[0.0, 0.0, 0.1, 0.0]]), gain).tolist() == [1]


def test_state_encoding() -> None:
    from pcm_sim.families.cartpole import encode_state

    u = encode_state(torch.tensor([[0.5, -1.0, 0.02, 0.0]]), torch.tensor([1.0, 1.0, 0.1, 1.0]), 3)
    assert u.shape == (3, 1, 9)
    assert u[0, 0].tolist() == pytest.approx([0.5, 0.0, 0.2, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
