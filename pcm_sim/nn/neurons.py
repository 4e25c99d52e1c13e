"""Stateful spiking-neuron layers over time, and a sequential network that runs them.

Every layer here maps a sequence ``(T, batch, ...)`` to ``(T, batch, ...)`` and can also be
stepped (:meth:`step`, used by graphs with recurrent edges).  The dynamics are the pure steps of
:mod:`pcm_sim.functional.discrete`; the synapses between them are analog layers
(:class:`~pcm_sim.nn.analog.AnalogLinear`, :class:`~pcm_sim.nn.conv.AnalogConv2d`), which are
stateless, so :class:`SpikingSequential` runs each synapse once on all ``T * batch`` frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pcm_sim.functional.discrete import (
    RESET_MECHANISMS,
    euler_leaky_step,
    euler_synaptic_current_step,
    leaky_step,
    spike,
    synaptic_step,
)

__all__ = ["EulerNeurons", "LeakyNeurons", "SpikingSequential", "StatefulLayer", "SynapticNeurons"]

State = tuple[Tensor, ...]


def _tensor(value: Any, learn: bool) -> Tensor | nn.Parameter:
    t = torch.as_tensor(value, dtype=torch.float32).detach().clone()
    return nn.Parameter(t) if learn else t


class StatefulLayer(nn.Module):
    """A layer with a state carried over time steps: ``step(x_t, state) -> (y_t, state)``."""

    def step(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(T, batch, ...) -> (T, batch, ...)``, starting from the resting state."""
        state: State | None = None
        outputs = []
        for x_t in x.unbind(0):
            y_t, state = self.step(x_t, state)
            outputs.append(y_t)
        return torch.stack(outputs)


class LeakyNeurons(StatefulLayer):
    """snntorch's ``Leaky``: ``v_t = β v_{t-1} + x_t`` with delayed reset (see the functional).

    ``beta`` and ``threshold`` are floats or tensors broadcasting to a step's ``(batch, ...)``
    input; ``learn_*`` makes them parameters.
    """

    beta: Tensor
    threshold: Tensor

    def __init__(
        self,
        beta: Any,
        threshold: Any = 1.0,
        reset: str = "subtract",
        reset_delay: bool = True,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ) -> None:
        super().__init__()
        if reset not in RESET_MECHANISMS:
            raise ValueError(f"reset: expected one of {RESET_MECHANISMS}, got {reset!r}")
        self._register("beta", _tensor(beta, learn_beta))
        self._register("threshold", _tensor(threshold, learn_threshold))
        self.reset = reset
        self.reset_delay = reset_delay

    def _register(self, name: str, value: Tensor | nn.Parameter) -> None:
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        else:
            self.register_buffer(name, value)

    def extra_repr(self) -> str:
        return f"reset={self.reset}, reset_delay={self.reset_delay}"

    def step(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        v = torch.zeros_like(x) if state is None else state[0]
        s, v = leaky_step(x, v, self.beta, self.threshold, self.reset, self.reset_delay)
        return s, (v,)


class SynapticNeurons(LeakyNeurons):
    """snntorch's ``Synaptic``: current ``i_t = α i_{t-1} + x_t`` feeding a leaky membrane."""

    alpha: Tensor

    def __init__(
        self,
        alpha: Any,
        beta: Any,
        threshold: Any = 1.0,
        reset: str = "subtract",
        reset_delay: bool = True,
        learn_alpha: bool = False,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ) -> None:
        super().__init__(beta, threshold, reset, reset_delay, learn_beta, learn_threshold)
        self._register("alpha", _tensor(alpha, learn_alpha))

    def step(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        i, v = (torch.zeros_like(x), torch.zeros_like(x)) if state is None else state
        s, i, v = synaptic_step(
            x, i, v, self.alpha, self.beta, self.threshold, self.reset, self.reset_delay
        )
        return s, (i, v)


EULER_KINDS = ("LIF", "CubaLIF", "IF", "LI", "Integrator")


class EulerNeurons(StatefulLayer):
    """NIR's continuous neurons, integrated by forward Euler with step ``dt`` (seconds).

    ``params`` holds the NIR node's arrays: ``tau``, ``r``, ``v_leak``, ``v_threshold``,
    ``v_reset`` (LIF); ``tau_syn``, ``tau_mem``, ``w_in`` (CubaLIF); ``r``, ``v_threshold``,
    ``v_reset`` (IF); ``tau``, ``r``, ``v_leak`` (LI); ``r`` (Integrator).  Spiking kinds output
    spikes, LI and the integrator their potential.
    """

    leak_rate: Tensor
    gain: Tensor
    v_leak: Tensor
    threshold: Tensor
    v_reset: Tensor
    syn_rate: Tensor
    w_in: Tensor

    def __init__(self, kind: str, params: dict[str, Any], dt: float) -> None:
        super().__init__()
        if kind not in EULER_KINDS:
            raise ValueError(f"kind: expected one of {EULER_KINDS}, got {kind!r}")
        if not dt > 0:
            raise ValueError(f"dt: expected a time step > 0 s, got {dt}")
        self.kind = kind
        self.dt = float(dt)
        self.nir_params = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
        r = self._param("r", 1.0)
        if kind in ("LIF", "CubaLIF", "LI"):
            tau = self._param("tau_mem" if kind == "CubaLIF" else "tau", None)
            self.register_buffer("leak_rate", self.dt / tau)
            self.register_buffer("gain", self.dt * r / tau)
        else:  # IF and the integrator: no leak
            self.register_buffer("leak_rate", torch.zeros(()))
            self.register_buffer("gain", self.dt * r)
        self.register_buffer("v_leak", self._param("v_leak", 0.0))
        self.register_buffer("threshold", self._param("v_threshold", 0.0))
        self.register_buffer("v_reset", self._param("v_reset", 0.0))
        if kind == "CubaLIF":
            self.register_buffer("syn_rate", self.dt / self._param("tau_syn", None))
            self.register_buffer("w_in", self._param("w_in", 1.0))
        self.spiking = kind in ("LIF", "CubaLIF", "IF")

    def _param(self, name: str, default: float | None) -> Tensor:
        if name in self.nir_params:
            return torch.from_numpy(self.nir_params[name].copy())
        if default is None:
            raise ValueError(f"NIR {self.kind}: parameter {name!r} is missing")
        return torch.tensor(default)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, dt={self.dt:g}"

    def step(self, x: Tensor, state: State | None) -> tuple[Tensor, State]:
        v = torch.zeros_like(x) if state is None else state[-1]
        current = x
        carried: State = ()
        if self.kind == "CubaLIF":
            c = torch.zeros_like(x) if state is None else state[0]
            current = euler_synaptic_current_step(x, c, self.syn_rate, self.w_in)
            carried = (current,)
        v = euler_leaky_step(current, v, self.leak_rate, self.gain, self.v_leak)
        if not self.spiking:
            return v, (*carried, v)
        s = spike(v - self.threshold)
        v = torch.where(s > 0, self.v_reset.expand_as(v), v)
        return s, (*carried, v)


class SpikingSequential(nn.Module):
    """Layers in sequence over a ``(T, batch, ...)`` input; returns ``(T, batch, ...)``.

    Stateful layers (:class:`StatefulLayer`) run over time; every other layer (synapses,
    pooling, flatten, dropout) runs once on the ``T * batch`` frames.
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"expected input (T, batch, ...), got {tuple(x.shape)}")
        for layer in self.layers:
            if isinstance(layer, StatefulLayer):
                x = layer(x)
            else:
                steps, batch = x.shape[:2]
                y = layer(x.reshape(steps * batch, *x.shape[2:]))
                x = y.reshape(steps, batch, *y.shape[1:])
        return x
