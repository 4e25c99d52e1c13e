"""The coarse-scale LIF step as the limit of a continuous-time LIF (Yanguas-Gil 2020).

The limiting case the paper derives: the input of a window arrives uniformly spread over it (a
constant current), neurons reset to 0 and stay refractory for one window after a spike.  Then the
continuous potential at each window's end is the coarse one, exactly, and the continuous neuron
fires in the same windows until its first spike; the post-spike gain ``c`` is the average over
the spike time.  Negative controls: the same charges as deltas at their own times (mixed signs), or
a shorter refractory period, do not reproduce the coarse model.
"""

from __future__ import annotations

import math

import pytest
import torch

from pcm_sim.functional.lif import (
    CoarseLIFParams,
    ContinuousLIFParams,
    ContinuousLIFState,
    LIFState,
    coarse_lif_step,
    continuous_lif_step,
    refine_spike_train,
    refractory_gate,
    synaptic_drive,
)
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.coarse_lif import CoarseLIF, CoarseLIFConvNet, CoarseLIFMLP
from pcm_sim.nn.conv import AnalogConv2d

F64 = torch.float64


def run_continuous(
    charge: torch.Tensor, params: ContinuousLIFParams
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Fine-step charges ``(N, units)`` -> spikes and potentials per fine step (lists)."""
    drive = synaptic_drive(charge, params)
    zero = torch.zeros_like(drive[0])
    state = ContinuousLIFState(v=zero, refractory_s=zero)
    spikes, potentials = [], []
    for q in drive:
        s, state = continuous_lif_step(q, state, params)
        spikes.append(s)
        potentials.append(state.v)
    return spikes, potentials


def window_start_charges(xs: list[float], k: int) -> torch.Tensor:
    """Each window's charge ``x_t`` arriving at its first fine step, ``(len(xs) * k, 1)``."""
    charge = torch.zeros(len(xs) * k, 1, dtype=F64)
    charge[::k, 0] = torch.tensor(xs, dtype=F64)
    return charge


def test_uniformly_spread_input_follows_the_coarse_trajectory() -> None:
    # tau = 2: a = 0.6065307, b = 0.7869387, c = 0.4261226; x = 1, 0.5, 1.5, 1 per window,
    # each window's charge spread uniformly over it (box synapse of one window, dt = 0.01).
    # Coarse: v1 = b = 0.7869387, v2 = a v1 + 0.5 b = 0.8707718, v3 = 1.7085578 (spike).
    # Continuous, window 3: v(u) = 3 - (3 - 0.8707718) e^{-u/2} reaches 1 at u = 0.12522, i.e.
    # at the end of fine step 13 (u = 0.13); refractory until u = 1.13, then 0.87 of window 4
    # integrates x = 1: v4 = tau (1 - e^{-0.87/2}) = 0.7054707 (the coarse step's c x = 0.4261226
    # is the average of tau (1 - e^{-(1-r)/tau}) x over a uniformly random spike time r).
    k = 100
    params = ContinuousLIFParams(tau=2.0, dt_s=1.0 / k, refractory_s=1.0, synapse_window_s=1.0)
    spikes, potentials = run_continuous(window_start_charges([1.0, 0.5, 1.5, 1.0], k), params)
    ends = [potentials[k * w + k - 1].item() for w in range(4)]
    assert ends[:2] == pytest.approx([0.7869387, 0.8707718], abs=1e-7)
    fired = [j for j, s in enumerate(spikes) if s.item() == 1.0]
    assert fired == [2 * k + 12]  # the end of fine step 13 of window 3
    assert ends[3] == pytest.approx(2.0 * (1.0 - math.exp(-0.87 / 2.0)), abs=1e-7)
    assert ends[3] == pytest.approx(0.7054707, abs=1e-7)

    coarse = CoarseLIFParams(tau=2.0)
    state = LIFState(v=torch.zeros(1, dtype=F64), s=torch.zeros(1, dtype=F64))
    coarse_v, coarse_s = [], []
    for x in (1.0, 0.5, 1.5, 1.0):
        s, state = coarse_lif_step(torch.tensor([x], dtype=F64), state, coarse)
        coarse_v.append(state.v.item())
        coarse_s.append(s.item())
    assert coarse_v[:2] == pytest.approx(ends[:2], abs=1e-12)  # identical before the spike
    assert coarse_s == [0.0, 0.0, 1.0, 0.0]  # and both fire in window 3 only


def test_window_end_potential_is_exact_for_any_fine_step() -> None:
    # v_0 = 0, x = 0.9 spread over one window, tau = 6: v(1) = b x = 6 (1 - e^{-1/6}) 0.9
    # = 0.8289987 whatever the fine step.
    for k in (1, 4, 20, 50):
        params = ContinuousLIFParams(tau=6.0, dt_s=1.0 / k, synapse_window_s=1.0)
        _, potentials = run_continuous(window_start_charges([0.9], k), params)
        assert potentials[-1].item() == pytest.approx(0.8289987, abs=1e-7)


def test_mixed_sign_inputs_fire_only_when_not_spread() -> None:
    """Negative control: +1.2 at the window's start and -0.6 at its middle, tau = 2.  Coarse:
    v1 = b 0.6 = 0.4721632, no spike.  Spread uniformly (the paper's assumption): the same,
    exactly.  As deltas at their own times (what a trained network's few large inputs look
    like): the potential jumps to 1.2 and the neuron fires although the window ends below 1."""
    k = 10
    charge = torch.zeros(k, 1, dtype=F64)
    charge[0, 0], charge[k // 2, 0] = 1.2, -0.6
    spread = ContinuousLIFParams(tau=2.0, dt_s=1.0 / k, synapse_window_s=1.0)
    spikes, potentials = run_continuous(window_start_charges([0.6], k), spread)
    assert sum(s.item() for s in spikes) == 0.0
    assert potentials[-1].item() == pytest.approx(0.4721632, abs=1e-7)
    deltas = ContinuousLIFParams(tau=2.0, dt_s=1.0 / k)
    spikes, _ = run_continuous(charge, deltas)
    assert sum(s.item() for s in spikes) == 1.0  # a spike the coarse neuron does not have


@pytest.mark.parametrize(("refractory", "matches"), [(1.0, True), (0.5, False), (0.0, False)])
def test_post_spike_gain_needs_a_one_window_refractory_period(
    refractory: float, matches: bool
) -> None:
    """c = tau (1 - b) is the window-end potential after a spike at a uniformly random time r of
    the previous window, averaged over r, only with a refractory period of one window."""
    tau, k, x = 2.0, 400, 0.5
    params = ContinuousLIFParams(tau=tau, dt_s=1.0 / k, refractory_s=refractory)
    drive = torch.zeros(2 * k, k, dtype=F64)  # (fine step, spike time r)
    drive[torch.arange(k), torch.arange(k)] = 10.0  # a spike forced at fine step r of window 1
    drive[k:] = x / k  # window 2: x spread uniformly
    zero = torch.zeros(k, dtype=F64)
    state = ContinuousLIFState(v=zero, refractory_s=zero)
    for q in drive:
        _, state = continuous_lif_step(q, state, params)
    c = CoarseLIFParams(tau=tau).c * x  # 0.2130613
    assert (abs(float(state.v.mean()) - c) < 0.01 * c) == matches


def test_layer_fires_like_the_coarse_layer_in_the_limit() -> None:
    """A layer of 200 neurons with random mixed-sign weights, one window of input spikes: with
    the input spread over the window every continuous neuron fires iff the coarse one does;
    with delta synapses and random arrival times they disagree (negative control)."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layer = CoarseLIFMLP([300, 200], tau=6.0).blocks[0].double()
    assert isinstance(layer, CoarseLIF) and isinstance(layer.synapses, AnalogLinear)
    with torch.no_grad():
        layer.synapses.weight.copy_(0.25 * torch.randn(200, 300, generator=gen, dtype=F64))
    spikes = (torch.rand(1, 8, 300, generator=gen) < 0.3).to(F64)  # (T = 1, B, in)
    coarse, _ = layer(spikes)
    k = 20
    fine = torch.zeros(k, 8, 300, dtype=F64)
    fine[0] = spikes[0]
    spread = ContinuousLIFParams(tau=6.0, dt_s=1.0 / k, synapse_window_s=1.0)
    continuous, _ = layer.forward_continuous(fine, spread)
    assert 0.05 < float(coarse.detach().mean()) < 0.95
    assert torch.equal(continuous.sum(0), coarse[0])
    slot = torch.randint(0, k, (8, 300), generator=gen)
    scattered = torch.zeros(k, 8, 300, dtype=F64).scatter_(0, slot[None], spikes)
    deltas, _ = layer.forward_continuous(scattered, ContinuousLIFParams(tau=6.0, dt_s=1.0 / k))
    assert int((deltas.sum(0) != coarse[0]).sum()) > 10


def test_refractory_gate_hand_sequence() -> None:
    # dt = 0.5, refractory 1 (two fine steps): spikes at steps 0, 1, 3, 5 -> 0 passes, 1 is
    # blocked (1.0 left), 3 passes (0 left), 5 is blocked (0.5 left)
    spikes = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 1.0]).reshape(6, 1)
    assert refractory_gate(spikes, 0.5).flatten().tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]


@pytest.mark.parametrize("gate", [True, False])
def test_pooled_layer_fires_like_the_coarse_or_only_with_a_refractory_pool(gate: bool) -> None:
    """Conv layer with 2x2 max-pool, one window of spread input: the four neurons of a pool cross
    threshold at different times; a pool unit that is refractory for one window passes one spike
    per window like the coarse OR; without it (negative control) it passes several."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    conv = AnalogConv2d(2, 4, 3, padding=1, bias=False, binary_input=True).double()
    with torch.no_grad():
        conv.linear.weight.copy_(0.6 * torch.randn(4, 18, generator=gen, dtype=F64))
    layer = CoarseLIF(conv, tau=6.0, pool=2)
    spikes = (torch.rand(1, 4, 2, 8, 8, generator=gen) < 0.5).to(F64)  # (T = 1, B, C, H, W)
    coarse, _ = layer(spikes)
    k = 10
    fine = torch.zeros(k, 4, 2, 8, 8, dtype=F64)
    fine[0] = spikes[0]
    params = ContinuousLIFParams(tau=6.0, dt_s=1.0 / k, synapse_window_s=1.0, refractory_pool=gate)
    continuous, _ = layer.forward_continuous(fine, params)
    assert 0.1 < float(coarse.detach().mean()) < 0.9
    assert torch.equal(continuous.sum(0), coarse[0].detach()) == gate


def test_straight_through_counts_are_the_continuous_ones() -> None:
    """Fine-tuning for the transfer: the forward values are the continuous network's spike
    counts, the gradient comes from the coarse layers."""
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    net = CoarseLIFConvNet((4, 6), 16, 10, tau=6.0)
    spikes = (torch.rand(4, 3, 1, 28, 28, generator=gen) < 0.4).float()
    params = ContinuousLIFParams(tau=6.0, dt_s=0.25, synapse_window_s=1.0, settle_s=2.0)
    fine = refine_spike_train(spikes, params.substeps, gen, jitter=0.0)
    hybrid = net.forward_straight_through(spikes, fine, params)
    assert torch.equal(hybrid.detach().round(), net.forward_continuous(fine, params).round())
    hybrid.sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="settle_s"):
        net.forward_straight_through(
            spikes, fine, ContinuousLIFParams(tau=6.0, dt_s=0.25, settle_s=0.5)
        )
