"""pcm-sim: analog in-memory computing on phase-change-memory crossbars for spiking networks.

Public API::

    profile = pcm_sim.load_profile("pcm_nandakumar2019", overrides={"drift.scale": 2.0})
    layer = pcm_sim.AnalogLinear(784, 256, profile=profile)
    pcm_sim.deploy(model, profile, seed=0)     # program every analog layer
    pcm_sim.drift_to(model, 86_400.0)          # one day later, with drift compensation
    pcm_sim.save_chip(model, "chip.pt")        # the programmed chip, tensors and plain data
    pcm_sim.load_chip(other_model, "chip.pt")  # the same chip, read for read

Your own network: ``pcm_sim.convert(torch_model, profile)``, ``pcm_sim.from_snntorch(net)``,
``pcm_sim.from_nir(graph, dt)`` / ``pcm_sim.to_nir(model)``; ``pcm_sim.Task`` says how to score
it (data, metric) for ``pcm-sim evaluate --task`` and studies.
"""

from pcm_sim.convert import ConversionError, convert
from pcm_sim.interop.nir import from_nir
from pcm_sim.interop.nir_export import to_nir
from pcm_sim.interop.snntorch import from_snntorch
from pcm_sim.nn.analog import (
    AnalogLinear,
    analog_layers,
    deploy,
    drift_to,
    enable_hwa,
)
from pcm_sim.nn.chips import ChipFileError, load_chip, save_chip
from pcm_sim.nn.conv import AnalogConv1d, AnalogConv2d
from pcm_sim.profiles import DeviceProfile, ProfileError, list_profiles, load_profile
from pcm_sim.tasks import Task, TaskError

__version__ = "0.1.0"

__all__ = [
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogLinear",
    "ChipFileError",
    "ConversionError",
    "DeviceProfile",
    "ProfileError",
    "Task",
    "TaskError",
    "analog_layers",
    "convert",
    "deploy",
    "drift_to",
    "enable_hwa",
    "from_nir",
    "from_snntorch",
    "list_profiles",
    "load_chip",
    "load_profile",
    "save_chip",
    "to_nir",
]
