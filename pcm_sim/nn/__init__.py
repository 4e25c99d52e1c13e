"""Modules: analog synapse layers and the neuron layers built on them."""

from pcm_sim.nn.analog import AnalogLinear, analog_layers, deploy, drift_to, enable_hwa
from pcm_sim.nn.chips import load_chip, save_chip
from pcm_sim.nn.conv import AnalogConv2d

__all__ = [
    "AnalogConv2d",
    "AnalogLinear",
    "analog_layers",
    "deploy",
    "drift_to",
    "enable_hwa",
    "load_chip",
    "save_chip",
]
