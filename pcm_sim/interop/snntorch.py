"""``from_snntorch``: an snntorch network as a pcm-sim model with analog synapses.

Accepted: an ``nn.Sequential`` (nested ones are flattened) of ``nn.Linear``, ``nn.Conv1d``,
``nn.Conv2d``, ``nn.Flatten``, ``nn.MaxPool2d``, ``nn.AvgPool2d``, ``nn.Dropout``,
``nn.Identity``, ``snn.Leaky`` and ``snn.Synaptic`` (any reset mechanism, with or without reset
delay, fixed or learnable ``beta``/``alpha``/``threshold``).  The result is a
:class:`~pcm_sim.nn.neurons.SpikingSequential` that takes ``(T, batch, ...)`` inputs and returns
the last layer's ``(T, batch, ...)`` output: spikes when the network ends in neurons, the spikes
snntorch produces step by step when the same input is fed one step at a time (after
``utils.reset``).  Synapses whose inputs are spikes (after a neuron layer, through flatten,
max-pool or dropout) read their arrays without a DAC (``binary_input``).
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from pcm_sim.convert import ConversionError, analog_copy
from pcm_sim.nn.neurons import LeakyNeurons, SpikingSequential, SynapticNeurons
from pcm_sim.profiles import DeviceProfile, load_profile

__all__ = ["from_snntorch"]

RESETS = ("subtract", "zero", "none")  # snntorch's reset_mechanism_val order
KEEPS_SPIKES = (nn.Flatten, nn.MaxPool2d, nn.MaxPool1d, nn.Dropout, nn.Identity)
PASSED_THROUGH = (*KEEPS_SPIKES, nn.AvgPool2d, nn.AvgPool1d)


def _flat_layers(net: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    layers = []
    for name, child in net.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            layers += _flat_layers(child, f"{full}.")
        else:
            layers.append((full, child))
    return layers


def _neuron(name: str, module: Any) -> LeakyNeurons:
    """The pcm-sim twin of an ``snn.Leaky`` / ``snn.Synaptic`` (same parameters)."""
    import snntorch as snn

    for flag, what in ((module.inhibition, "inhibition"), (module.state_quant, "state_quant")):
        if flag:
            raise ConversionError(f"from_snntorch: layer {name!r}: {what} is not supported")
    if float(module.graded_spikes_factor) != 1.0:
        raise ConversionError(
            f"from_snntorch: layer {name!r}: graded_spikes_factor must be 1, "
            f"got {float(module.graded_spikes_factor)}"
        )
    reset = RESETS[int(module.reset_mechanism_val)]
    common = {
        "threshold": module.threshold.detach(),
        "reset": reset,
        "reset_delay": bool(module.reset_delay),
        "learn_beta": isinstance(module.beta, nn.Parameter),
        "learn_threshold": isinstance(module.threshold, nn.Parameter),
    }
    if isinstance(module, snn.Synaptic):
        return SynapticNeurons(
            module.alpha.detach(),
            module.beta.detach(),
            learn_alpha=isinstance(module.alpha, nn.Parameter),
            **common,
        )
    return LeakyNeurons(module.beta.detach(), **common)


def from_snntorch(
    net: nn.Module,
    profile: str | DeviceProfile | None = None,
    *,
    input_spikes: bool = False,
) -> SpikingSequential:
    """The snntorch ``net`` as a :class:`SpikingSequential` with analog synapses (see module).

    ``profile``: the device profile of every synapse (or ``None``: give it to ``deploy``);
    ``input_spikes``: the network's input is spikes in {0, 1}, so the first synapse needs no
    DAC either.  ``net`` itself is not changed.
    """
    import snntorch as snn

    if not isinstance(net, nn.Sequential):
        raise ConversionError(
            f"from_snntorch: expected an nn.Sequential of layers and snntorch neurons, got "
            f"{type(net).__name__} (write the network as nn.Sequential(..., init_hidden=True))"
        )
    prof = load_profile(profile) if profile is not None else None
    layers: list[nn.Module] = []
    spikes = input_spikes
    for name, module in _flat_layers(net):
        if isinstance(module, snn.Leaky | snn.Synaptic) and type(module) in (
            snn.Leaky,
            snn.Synaptic,
        ):
            layers.append(_neuron(name, module))
            spikes = True
        elif isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d):
            layers.append(analog_copy(module, prof, binary_input=spikes))
            spikes = False
        elif isinstance(module, PASSED_THROUGH):
            layers.append(copy.deepcopy(module))
            spikes = spikes and isinstance(module, KEEPS_SPIKES)
        else:
            raise ConversionError(
                f"from_snntorch: layer {name!r} ({type(module).__name__}) is not supported; "
                "expected Linear, Conv1d/2d, Flatten, Max/AvgPool, Dropout, snn.Leaky or "
                "snn.Synaptic"
            )
    return SpikingSequential(*layers)
