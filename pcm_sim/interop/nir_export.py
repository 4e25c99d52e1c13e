"""``to_nir``: a pcm-sim spiking model as a NIR graph (see :mod:`pcm_sim.interop.nir`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from pcm_sim.convert import ConversionError
from pcm_sim.interop.nir import NIRModel, NodeOp
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.conv import AnalogConv1d, AnalogConv2d
from pcm_sim.nn.neurons import EulerNeurons, LeakyNeurons, SpikingSequential, SynapticNeurons

__all__ = ["to_nir"]

SNNTORCH_DT = 1e-4
"""The time step snntorch assumes when it writes its neurons as NIR ODEs (seconds)."""


def _numpy(t: Any) -> np.ndarray:
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float32)


def _synapse_node(module: nn.Module) -> Any:
    import nir

    if isinstance(module, AnalogLinear):
        if module.bias is None:
            return nir.Linear(weight=_numpy(module.weight))
        return nir.Affine(weight=_numpy(module.weight), bias=_numpy(module.bias))
    assert isinstance(module, AnalogConv2d)
    bias = module.kernel_bias()
    weight = _numpy(module.kernel(software=False))
    bias_np = np.zeros(weight.shape[0], np.float32) if bias is None else _numpy(bias)
    shape = getattr(module, "nir_input_shape", None)
    if isinstance(module, AnalogConv1d):
        padding = module.padding if isinstance(module.padding, str) else module.padding[1]
        return nir.Conv1d(
            input_shape=shape,
            weight=weight,
            stride=module.stride[1],
            padding=padding,
            dilation=module.dilation[1],
            groups=module.groups,
            bias=bias_np,
        )
    return nir.Conv2d(
        input_shape=shape,
        weight=weight,
        stride=module.stride,
        padding=module.padding,
        dilation=module.dilation,
        groups=module.groups,
        bias=bias_np,
    )


def _neuron_node(name: str, module: nn.Module, dt: float) -> Any:
    import nir

    if isinstance(module, EulerNeurons):
        kind = "I" if module.kind == "Integrator" else module.kind
        return getattr(nir, kind)(**{k: v.copy() for k, v in module.nir_params.items()})
    assert isinstance(module, LeakyNeurons)
    delayed_synaptic = isinstance(module, SynapticNeurons) and module.reset_delay
    if module.reset != "zero" or delayed_synaptic:
        raise ConversionError(
            f"to_nir: layer {name!r} resets by {module.reset!r}"
            + (" after a delay" if delayed_synaptic else "")
            + "; NIR's neurons reset to v_reset at the spike (use reset='zero'"
            + (", reset_delay=False" if isinstance(module, SynapticNeurons) else "")
            + ")"
        )
    beta = _numpy(module.beta.clamp(0.0, 1.0))
    threshold = _numpy(module.threshold)
    beta, threshold = np.broadcast_arrays(beta, threshold)
    tau_mem = dt / (1.0 - beta)
    common = {
        "r": tau_mem / dt,
        "v_leak": np.zeros_like(beta),
        "v_threshold": threshold.copy(),
        "v_reset": np.zeros_like(beta),
    }
    if isinstance(module, SynapticNeurons):
        alpha = np.broadcast_to(_numpy(module.alpha.clamp(0.0, 1.0)), beta.shape)
        tau_syn = dt / (1.0 - alpha)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, w_in=tau_syn / dt, **common)
    return nir.LIF(tau=tau_mem, **common)


def _sequential_node(name: str, module: nn.Module, dt: float) -> Any:
    import nir

    if isinstance(module, AnalogLinear | AnalogConv2d):
        return _synapse_node(module)
    if isinstance(module, LeakyNeurons | EulerNeurons):
        return _neuron_node(name, module, dt)
    if isinstance(module, nn.Flatten):
        start = module.start_dim - 1 if module.start_dim > 0 else module.start_dim
        end = module.end_dim - 1 if module.end_dim > 0 else module.end_dim
        return nir.Flatten(input_type=None, start_dim=start, end_dim=end)
    if isinstance(module, nn.AvgPool2d) and module.count_include_pad:
        pair = np.broadcast_to(np.asarray(module.kernel_size), (2,))
        stride = np.broadcast_to(np.asarray(module.stride or module.kernel_size), (2,))
        padding = np.broadcast_to(np.asarray(module.padding), (2,))
        return nir.AvgPool2d(kernel_size=pair.copy(), stride=stride.copy(), padding=padding.copy())
    if isinstance(module, nn.Dropout | nn.Identity):
        return None
    raise ConversionError(f"to_nir: layer {name!r} ({type(module).__name__}) has no NIR node")


def to_nir(model: nn.Module, dt: float = SNNTORCH_DT) -> Any:
    """``model`` as a ``nir.NIRGraph``: a :class:`NIRModel` node for node, a
    :class:`SpikingSequential` as a chain ``input -> 0 -> 1 -> ... -> output`` whose neurons are
    written with time step ``dt`` (seconds)."""
    import nir

    if isinstance(model, NIRModel):
        nodes: dict[str, Any] = {}
        for name, kind, module in zip(model.names, model.kinds, model.nodes, strict=True):
            if kind == "Input":
                nodes[name] = nir.Input(input_type={"input": model.io_types[name]})
            elif kind == "Output":
                nodes[name] = nir.Output(output_type={"output": model.io_types[name]})
            elif isinstance(module, NodeOp):
                params = dict(module.params)
                if kind == "Flatten":
                    nodes[name] = nir.Flatten(**params)
                else:
                    nodes[name] = getattr(nir, kind)(**params)
            elif isinstance(module, EulerNeurons):
                nodes[name] = _neuron_node(name, module, dt)
            else:
                nodes[name] = _synapse_node(module)
        return nir.NIRGraph(nodes=nodes, edges=list(model.edges))
    if not isinstance(model, SpikingSequential):
        raise ConversionError(
            f"to_nir: expected a model from from_nir or from_snntorch (NIRModel or "
            f"SpikingSequential), got {type(model).__name__}"
        )
    chain: dict[str, Any] = {"input": nir.Input(input_type={"input": None})}
    previous, edges = "input", []
    for index, layer in enumerate(model.layers):
        node = _sequential_node(str(index), layer, dt)
        if node is None:
            continue
        chain[str(index)] = node
        edges.append((previous, str(index)))
        previous = str(index)
    chain["output"] = nir.Output(output_type={"output": None})
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=chain, edges=edges)
