"""NIR graphs in and out: ``from_nir(graph, dt)`` and ``to_nir(model)``.

**Import.**  Every node becomes a module: ``Affine``/``Linear`` -> :class:`AnalogLinear`,
``Conv1d``/``Conv2d`` -> :class:`AnalogConv1d`/:class:`AnalogConv2d` (the synapses, on analog
arrays when deployed); ``LIF``, ``CubaLIF``, ``IF``, ``LI``, ``I`` (integrator) ->
:class:`~pcm_sim.nn.neurons.EulerNeurons` (NIR's ODEs by forward Euler with step ``dt``, the
scheme of snntorch's and norse's importers: :mod:`pcm_sim.functional.discrete`);
``Scale`` (``y = s x``), ``Threshold`` (``y = H(x - θ)``), ``Flatten``, ``SumPool2d``,
``AvgPool2d`` (zero padding counted), ``Input`` and ``Output``.  A node's input is the sum of its
incoming edges.  The model maps ``(T, batch, ...)`` to the output node's ``(T, batch, ...)``.

Feed-forward graphs (branches and merges allowed) run node by node on whole sequences.  An edge
that closes a cycle (found by depth-first search from the input) is a *recurrent* edge: it
carries its source's output of the previous step (nothing at the first step), and the graph then
runs step by step.

**Export** writes the same node types back (weights from the analog layers' stored weights), so
``to_nir(from_nir(g))`` keeps ``g``'s nodes, edges and parameters; a :class:`SpikingSequential`
(e.g. from :func:`~pcm_sim.interop.snntorch.from_snntorch`) is exported as a chain, its neurons
as ``LIF``/``CubaLIF`` with ``τ = dt / (1 - β)``, ``R = τ / dt`` (snntorch's convention).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcm_sim.convert import ConversionError
from pcm_sim.functional.discrete import spike
from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.nn.conv import AnalogConv1d, AnalogConv2d
from pcm_sim.nn.neurons import EulerNeurons, StatefulLayer
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["NIRModel", "from_nir", "read_nir"]

NEURONS = {"LIF": "LIF", "CubaLIF": "CubaLIF", "IF": "IF", "LI": "LI", "I": "Integrator"}
NEURON_FIELDS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "I": ("r",),
}
STATIC = ("Scale", "Threshold", "Flatten", "SumPool2d", "AvgPool2d")


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value)


class NodeOp(nn.Module):
    """A parameter-free NIR node applied to frames ``(N, ...)``: scale, threshold, flatten,
    sum/average pooling.  ``params`` are the node's own fields (kept for export)."""

    value: Tensor

    def __init__(self, kind: str, params: dict[str, Any]) -> None:
        super().__init__()
        self.kind = kind
        self.params = params
        if kind in ("Scale", "Threshold"):
            key = "scale" if kind == "Scale" else "threshold"
            self.register_buffer("value", torch.as_tensor(_array(params[key]), dtype=torch.float32))

    def extra_repr(self) -> str:
        return self.kind

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "Scale":
            return x * self.value
        if self.kind == "Threshold":
            return spike(x - self.value)
        if self.kind == "Flatten":
            start, end = int(self.params["start_dim"]), int(self.params["end_dim"])
            return torch.flatten(
                x, start + 1 if start >= 0 else start, end + 1 if end >= 0 else end
            )
        kernel = tuple(int(k) for k in np.broadcast_to(_array(self.params["kernel_size"]), (2,)))
        stride = tuple(int(s) for s in np.broadcast_to(_array(self.params["stride"]), (2,)))
        padding = tuple(int(p) for p in np.broadcast_to(_array(self.params["padding"]), (2,)))
        pooled = F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True)
        return pooled * (kernel[0] * kernel[1]) if self.kind == "SumPool2d" else pooled


def _synapse(name: str, kind: str, node: Any, profile: DeviceProfile | None) -> nn.Module:
    weight = torch.as_tensor(_array(node.weight), dtype=torch.float32)
    bias = getattr(node, "bias", None)
    bias_t = None if bias is None else torch.as_tensor(_array(bias), dtype=torch.float32)
    if kind in ("Affine", "Linear"):
        if weight.dim() != 2:
            raise ConversionError(f"from_nir: node {name!r}: expected a 2-D weight")
        layer = AnalogLinear(
            weight.shape[1], weight.shape[0], bias=kind == "Affine", profile=profile
        )
        with torch.no_grad():
            layer.weight.copy_(weight)
            if layer.bias is not None and bias_t is not None:
                layer.bias.copy_(bias_t)
        return layer
    padding = node.padding if isinstance(node.padding, str) else _array(node.padding)
    conv: AnalogConv2d
    common = {"bias": True, "profile": profile, "groups": int(node.groups)}
    if kind == "Conv1d":
        pad_1d = padding if isinstance(padding, str) else int(np.ravel(padding)[0])
        conv = AnalogConv1d(
            weight.shape[1] * int(node.groups),
            weight.shape[0],
            weight.shape[2],
            int(np.ravel(_array(node.stride))[0]),
            pad_1d,
            dilation=int(np.ravel(_array(node.dilation))[0]),
            **common,  # type: ignore[arg-type]
        )
    else:

        def pair(v: Any) -> tuple[int, int]:
            a = np.broadcast_to(_array(v), (2,))
            return (int(a[0]), int(a[1]))

        conv = AnalogConv2d(
            weight.shape[1] * int(node.groups),
            weight.shape[0],
            (weight.shape[2], weight.shape[3]),
            pair(node.stride),
            padding if isinstance(padding, str) else pair(padding),
            dilation=pair(node.dilation),
            **common,  # type: ignore[arg-type]
        )
    conv.load_kernel(weight, bias_t if bias_t is not None else torch.zeros(weight.shape[0]))
    conv.nir_input_shape = getattr(node, "input_shape", None)  # type: ignore[assignment]
    return conv


class NIRModel(nn.Module):
    """A NIR graph as a module (see the module docstring); ``names``/``kinds``/``edges`` keep
    the graph's structure, ``nodes[i]`` is node ``names[i]``'s module."""

    def __init__(
        self,
        names: list[str],
        kinds: list[str],
        modules: list[nn.Module],
        edges: list[tuple[str, str]],
        io_types: dict[str, Any],
    ) -> None:
        super().__init__()
        self.names, self.kinds, self.edges = names, kinds, edges
        self.nodes = nn.ModuleList(modules)
        self.io_types = io_types
        self.input_name = names[kinds.index("Input")]
        self.output_name = names[kinds.index("Output")]
        self.order, self.recurrent = _schedule(names, edges, self.input_name)
        self.sources: dict[str, list[str]] = {n: [] for n in names}
        for src, dst in edges:
            self.sources[dst].append(src)

    def module(self, name: str) -> nn.Module:
        return self.nodes[self.names.index(name)]

    def _input_of(self, name: str, now: dict[str, Tensor], before: dict[str, Tensor]) -> Tensor:
        parts = [
            (before if (src, name) in self.recurrent else now).get(src)
            for src in self.sources[name]
        ]
        present = [p for p in parts if p is not None]
        if not present:
            raise ValueError(f"NIR graph: node {name!r} has no input at the first step")
        total = present[0]
        for part in present[1:]:
            total = total + part
        return total

    def forward(self, x: Tensor) -> Tensor:
        """``(T, batch, ...) -> (T, batch, ...)`` (the output node's values)."""
        if x.dim() < 2:
            raise ValueError(f"NIR model: expected input (T, batch, ...), got {tuple(x.shape)}")
        if self.recurrent:
            return self._forward_steps(x)
        values = {self.input_name: x}
        for name in self.order[1:]:
            inp = self._input_of(name, values, {})
            module = self.module(name)
            if isinstance(module, StatefulLayer | nn.Identity):
                values[name] = module(inp)
            else:
                steps, batch = inp.shape[:2]
                y = module(inp.reshape(steps * batch, *inp.shape[2:]))
                values[name] = y.reshape(steps, batch, *y.shape[1:])
        return values[self.output_name]

    def _forward_steps(self, x: Tensor) -> Tensor:
        states: dict[str, Any] = {}
        before: dict[str, Tensor] = {}
        outputs = []
        for x_t in x.unbind(0):
            now = {self.input_name: x_t}
            for name in self.order[1:]:
                inp = self._input_of(name, now, before)
                module = self.module(name)
                if isinstance(module, StatefulLayer):
                    now[name], states[name] = module.step(inp, states.get(name))
                else:
                    now[name] = module(inp)
            before = now
            outputs.append(now[self.output_name])
        return torch.stack(outputs)


def _schedule(
    names: list[str], edges: list[tuple[str, str]], start: str
) -> tuple[list[str], set[tuple[str, str]]]:
    """Topological order from ``start`` and the recurrent edges (closing a cycle in a DFS)."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in edges:
        succ[src].append(dst)
    recurrent: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple[str, int]] = [(start, 0)]
    state[start] = 1
    while stack:
        node, i = stack.pop()
        if i < len(succ[node]):
            stack.append((node, i + 1))
            nxt = succ[node][i]
            if state.get(nxt) == 1:
                recurrent.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
        else:
            state[node] = 2
    unreachable = [n for n in names if n not in state]
    if unreachable:
        raise ConversionError(f"from_nir: node {unreachable[0]!r} is not reachable from the input")
    indegree = {n: 0 for n in names}
    for src, dst in edges:
        if (src, dst) not in recurrent:
            indegree[dst] += 1
    order, ready = [], [start]
    while ready:
        node = ready.pop(0)
        order.append(node)
        for nxt in succ[node]:
            if (node, nxt) not in recurrent:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
    return order, recurrent


def read_nir(path: str | Path) -> Any:
    """Read a NIR file (HDF5: arrays and names, no code), or raise one clear line."""
    import nir

    if not Path(path).is_file():
        raise ConversionError(f"{path}: no such NIR file")
    try:
        return nir.read(str(path))
    except Exception as exc:  # h5py/nir raise many kinds: name the file and the reason
        raise ConversionError(
            f"{path}: not a NIR graph file ({type(exc).__name__}: {exc})"
        ) from None


def from_nir(graph: Any, dt: float, profile: str | DeviceProfile | None = None) -> NIRModel:
    """The NIR ``graph`` (a ``nir.NIRGraph`` or a file path) as a :class:`NIRModel`.

    ``dt``: the Euler step (seconds) of the neurons' ODEs; ``profile``: every synapse's device
    profile (or ``None``).  Raises :class:`ConversionError` naming the node or edge that cannot
    be imported.
    """
    import nir

    if isinstance(graph, str | Path):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise ConversionError(
            f"from_nir: expected a nir.NIRGraph or a file, got {type(graph).__name__}"
        )
    if not dt > 0:
        raise ConversionError(f"from_nir: dt: expected a time step > 0 s, got {dt}")
    prof = load_profile(profile) if profile is not None else None
    names, kinds, modules = [], [], []
    io_types: dict[str, Any] = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind in ("Input", "Output"):
            module: nn.Module = nn.Identity()
            io_types[name] = _array(next(iter(getattr(node, f"{kind.lower()}_type").values())))
        elif kind in ("Affine", "Linear", "Conv1d", "Conv2d"):
            module = _synapse(name, kind, node, prof)
        elif kind in NEURONS:
            params = {f: _array(getattr(node, f)) for f in NEURON_FIELDS[kind]}
            module = EulerNeurons(NEURONS[kind], params, dt)
        elif kind in STATIC:
            fields = [
                f
                for f in node.__dataclass_fields__
                if f not in ("input_type", "output_type", "metadata")
            ]
            static_params: dict[str, Any] = {f: getattr(node, f) for f in fields}
            if kind == "Flatten":
                static_params["input_type"] = (
                    _array(node.input_type["input"])
                    if node.input_type["input"] is not None
                    else None
                )
            module = NodeOp(kind, static_params)
        else:
            raise ConversionError(
                f"from_nir: node {name!r} of type {kind} is not supported (expected one of "
                "Input, Output, Affine, Linear, Conv1d, Conv2d, LIF, CubaLIF, IF, LI, I, Scale, "
                "Threshold, Flatten, SumPool2d, AvgPool2d)"
            )
        names.append(name)
        kinds.append(kind)
        modules.append(module)
    for kind in ("Input", "Output"):
        if kinds.count(kind) != 1:
            raise ConversionError(
                f"from_nir: expected exactly one {kind} node, got {kinds.count(kind)}"
            )
    edges = [(str(src), str(dst)) for src, dst in graph.edges]
    for src, dst in edges:
        for end in (src, dst):
            if end not in names:
                raise ConversionError(f"from_nir: edge {src!r} -> {dst!r} names no node {end!r}")
    return NIRModel(names, kinds, modules, edges, io_types)
