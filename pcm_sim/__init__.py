"""pcm-sim: analog in-memory computing on phase-change-memory crossbars for spiking networks.

Public API::

    profile = pcm_sim.load_profile("pcm_nandakumar2019", overrides={"drift.scale": 2.0})
    layer = pcm_sim.AnalogLinear(784, 256, profile=profile)
    pcm_sim.deploy(model, profile, seed=0)     # program every analog layer
    pcm_sim.drift_to(model, 86_400.0)          # one day later, with drift compensation
"""

from pcm_sim.nn.analog import (
    AnalogConv2d,
    AnalogLinear,
    analog_layers,
    deploy,
    drift_to,
    enable_hwa,
)
from pcm_sim.profiles import DeviceProfile, ProfileError, list_profiles, load_profile

__version__ = "0.1.0"

__all__ = [
    "AnalogConv2d",
    "AnalogLinear",
    "DeviceProfile",
    "ProfileError",
    "analog_layers",
    "deploy",
    "drift_to",
    "enable_hwa",
    "list_profiles",
    "load_profile",
]
