"""snntorch and NIR networks in pcm-sim: spike-for-spike parity, round trips, hand-computed
Euler trajectories and refusals."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch import utils
from snntorch.export_nir import export_to_nir
from torch import nn

import pcm_sim
from pcm_sim.nn.neurons import SpikingSequential

T = 60


def _snntorch_spikes(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    utils.reset(net)
    outs = []
    for x_t in x:
        out = net(x_t)
        outs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outs)


def _conv_net(reset: str, delay: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, stride=2),
        snn.Leaky(
            beta=0.8,
            threshold=0.5,
            init_hidden=True,
            reset_mechanism=reset,
            reset_delay=delay,
            learn_beta=True,
        ),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10),
        snn.Synaptic(
            alpha=0.7,
            beta=torch.linspace(0.5, 0.95, 10),
            threshold=0.4,
            init_hidden=True,
            output=True,
            reset_mechanism=reset,
            reset_delay=delay,
            learn_threshold=True,
        ),
    )


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("delay", [True, False])
def test_from_snntorch_matches_spike_for_spike(reset: str, delay: bool) -> None:
    torch.manual_seed(0)
    net = _conv_net(reset, delay)
    x = (torch.rand(T, 6, 1, 16, 16) < 0.3).float() * 1.5
    reference = _snntorch_spikes(net, x)
    model = pcm_sim.from_snntorch(net)
    spikes = model(x)
    assert reference.sum() > 20 and reference.mean() < 0.9  # the test exercises spiking
    assert torch.equal(spikes, reference)
    learnable = dict(model.named_parameters())
    assert "layers.1.beta" in learnable and "layers.5.threshold" in learnable
    assert model.layers[4].binary_input  # spikes through max-pool and flatten: no DAC
    # negative control: another threshold of the output layer is seen
    with torch.no_grad():
        model.layers[5].threshold.mul_(3.0)
    assert not torch.equal(model(x), reference)


def test_from_snntorch_refuses_unsupported_layers() -> None:
    with pytest.raises(pcm_sim.ConversionError, match=r"layer '1' \(GELU\)"):
        pcm_sim.from_snntorch(nn.Sequential(nn.Linear(2, 2), nn.GELU()))
    with pytest.raises(pcm_sim.ConversionError, match=r"expected an nn\.Sequential"):
        pcm_sim.from_snntorch(nn.Linear(2, 2))


def _exportable_net() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, stride=2),
        snn.Leaky(
            beta=torch.full((4, 8, 8), 0.8),
            threshold=torch.full((4, 8, 8), 0.5),
            init_hidden=True,
            reset_mechanism="zero",
        ),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10),
        snn.Synaptic(
            alpha=torch.full((10,), 0.7),
            beta=torch.full((10,), 0.9),
            threshold=torch.full((10,), 0.5),
            init_hidden=True,
            output=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
    )


def test_snntorch_nir_export_matches_snntorch_after_import(tmp_path) -> None:  # type: ignore[no-untyped-def]
    net = _exportable_net()
    graph = export_to_nir(net, torch.zeros(1, 1, 16, 16), ignore_dims=[0])
    x = (torch.rand(T, 5, 1, 16, 16) < 0.3).float() * 1.5
    reference = _snntorch_spikes(net, x)
    model = pcm_sim.from_nir(graph, dt=1e-4)
    assert reference.sum() > 20
    assert torch.equal(model(x), reference)
    # to_nir(from_nir(g)) keeps g's nodes, edges and parameters
    again = pcm_sim.to_nir(model)
    assert sorted(again.nodes) == sorted(graph.nodes)
    assert sorted(again.edges) == sorted(graph.edges)
    for name, node in graph.nodes.items():
        twin = again.nodes[name]
        assert type(twin) is type(node)
        for field in ("weight", "bias", "tau", "tau_syn", "tau_mem", "r", "w_in", "v_threshold"):
            if hasattr(node, field):
                assert np.array_equal(np.asarray(getattr(node, field)), getattr(twin, field))
    path = tmp_path / "net.nir"
    nir.write(path, again)
    assert torch.equal(pcm_sim.from_nir(path, dt=1e-4)(x), reference)
    # negative control: another time step is another network
    assert not torch.equal(pcm_sim.from_nir(graph, dt=2e-4)(x), reference)


def test_euler_lif_and_cuba_lif_follow_the_hand_computed_trajectory() -> None:
    dt, tau, r, v_leak, thr, v_reset = 1e-3, 5e-3, 2.0, 0.1, 0.6, -0.2
    tau_syn, w_in = 2e-3, 1.5
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2])}),
            "lif": nir.LIF(
                tau=np.full(2, tau),
                r=np.full(2, r),
                v_leak=np.full(2, v_leak),
                v_threshold=np.full(2, thr),
                v_reset=np.full(2, v_reset),
            ),
            "cuba": nir.CubaLIF(
                tau_syn=np.full(2, tau_syn),
                tau_mem=np.full(2, tau),
                r=np.full(2, r),
                v_leak=np.zeros(2),
                v_threshold=np.full(2, thr),
                v_reset=np.zeros(2),
                w_in=np.full(2, w_in),
            ),
            "out": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("in", "lif"), ("in", "cuba"), ("lif", "out"), ("cuba", "out")],
    )
    x = torch.tensor([[0.9, 0.2], [0.0, 0.5], [1.3, 0.0], [0.4, 0.4], [0.0, 0.0]]).unsqueeze(1)
    out = pcm_sim.from_nir(graph, dt=dt)(x)[:, 0]
    v = np.zeros(2)
    c, u = np.zeros(2), np.zeros(2)
    for t in range(x.shape[0]):
        i = x[t, 0].numpy().astype(np.float64)
        v = v + dt / tau * (v_leak - v + r * i)
        s_lif = (v > thr).astype(float)
        v = np.where(s_lif > 0, v_reset, v)
        c = c + dt / tau_syn * (w_in * i - c)
        u = u + dt / tau * (0.0 - u + r * c)
        s_cuba = (u > thr).astype(float)
        u = np.where(s_cuba > 0, 0.0, u)
        assert np.array_equal(out[t].numpy(), s_lif + s_cuba), t  # branches are summed
    assert out.sum() >= 2


def test_recurrent_edge_carries_the_previous_step() -> None:
    w_in, w_rec = 0.7, -1.2
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([1])}),
            "fc": nir.Linear(weight=np.array([[w_in]])),
            "li": nir.I(r=np.array([1000.0])),
            "rec": nir.Scale(scale=np.array([w_rec])),
            "thr": nir.Threshold(threshold=np.array([0.5])),
            "out": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[
            ("in", "fc"),
            ("fc", "li"),
            ("li", "thr"),
            ("thr", "rec"),
            ("rec", "li"),
            ("thr", "out"),
        ],
    )
    x = torch.ones(8, 1, 1)
    out = pcm_sim.from_nir(graph, dt=1e-3)(x)[:, 0, 0]
    v, s_prev, expected = 0.0, 0.0, []
    for _ in range(8):
        v = v + 1e-3 * 1000.0 * (w_in * 1.0 + w_rec * s_prev)  # integrator, R dt = 1
        s_prev = float(v > 0.5)
        expected.append(s_prev)
    assert out.tolist() == expected
    assert 0 < sum(expected) < 8


def test_nir_node_types_and_refusals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = np.random.default_rng(0).normal(size=(3, 2, 3)).astype(np.float32)
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2, 10])}),
            "conv": nir.Conv1d(
                input_shape=10,
                weight=w,
                stride=1,
                padding=1,
                dilation=1,
                groups=1,
                bias=np.zeros(3, np.float32),
            ),
            "if": nir.IF(r=np.full((3, 10), 1e3), v_threshold=np.full((3, 10), 0.3)),
            "flat": nir.Flatten(input_type={"input": np.array([3, 10])}, start_dim=0),
            "out": nir.Output(output_type={"output": np.array([30])}),
        },
        edges=[("in", "conv"), ("conv", "if"), ("if", "flat"), ("flat", "out")],
    )
    x = torch.rand(4, 2, 2, 10)
    model = pcm_sim.from_nir(graph, dt=1e-3)
    conv = nn.functional.conv1d(x.reshape(8, 2, 10), torch.from_numpy(w), padding=1)
    v = torch.zeros(2, 3, 10)
    for t in range(4):
        v = v + conv.reshape(4, 2, 3, 10)[t]
        s = (v > 0.3).float()
        v = torch.where(s > 0, torch.zeros_like(v), v)
        assert torch.allclose(model(x)[t], s.reshape(2, 30))
    bad = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([1])}),
            "d": nir.Delay(delay=np.array([1.0])),
            "out": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("in", "d"), ("d", "out")],
    )
    with pytest.raises(pcm_sim.ConversionError, match="node 'd' of type Delay"):
        pcm_sim.from_nir(bad, dt=1e-3)
    with pytest.raises(pcm_sim.ConversionError, match="dt"):
        pcm_sim.from_nir(graph, dt=0.0)
    not_nir = tmp_path / "x.nir"
    not_nir.write_text("hello")
    with pytest.raises(pcm_sim.ConversionError, match="not a NIR graph file"):
        pcm_sim.from_nir(not_nir, dt=1e-3)
    subtract = SpikingSequential(
        pcm_sim.AnalogLinear(2, 2),
        pcm_sim.from_snntorch(nn.Sequential(snn.Leaky(beta=0.9, init_hidden=True))).layers[0],
    )
    with pytest.raises(pcm_sim.ConversionError, match="resets by 'subtract'"):
        pcm_sim.to_nir(subtract)
