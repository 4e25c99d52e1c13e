"""Modules: analog synapse layers and the neuron layers built on them."""

from pcm_sim.nn.analog import (
    AnalogConv2d,
    AnalogLinear,
    analog_layers,
    deploy,
    drift_to,
    enable_hwa,
)

__all__ = ["AnalogConv2d", "AnalogLinear", "analog_layers", "deploy", "drift_to", "enable_hwa"]
