"""The fitted profile: the base profile with the fitted laws and ``t0``, its provenance, YAML.

What is taken from the fit and what from the base (see :mod:`pcm_sim.fitting.fit`): the four
laws (``programming.sigma_us`` in µS with ``g_ref_us = g_max_us``, ``drift.nu_mean``,
``drift.nu_std``, ``read_noise.q_s``) and ``drift.t0_s``, every ``scale`` 1, no
device-to-device gain and no stuck devices (both are inside the measured spreads); everything
else from the base.  ``provenance.source`` names the data (file, sha256, rows, devices,
times, temperature) and ``provenance.note`` the method.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pcm_sim.fitting.checks import LAW_NAMES
from pcm_sim.fitting.measurements import Measurements
from pcm_sim.profiles import DeviceProfile, Law

__all__ = ["build_profile", "piece_lines", "profile_yaml"]


class _Flow(dict[str, Any]):
    """A mapping YAML writes on one line (a law piece)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, True)
)


def _flow(law_pieces: list[dict[str, Any]]) -> list[_Flow]:
    return [_Flow({k: v for k, v in piece.items() if v is not None}) for piece in law_pieces]


def _plain_law(law: Law) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(p), "coeffs": list(p.coeffs)} for p in law.pieces]


def piece_lines(law: Law) -> list[str]:
    """One YAML flow mapping per piece of ``law``, unset fields left out."""
    return [
        yaml.dump(piece, Dumper=_Dumper, sort_keys=False, width=1000).strip()
        for piece in _flow(_plain_law(law))
    ]


def profile_yaml(data: dict[str, Any]) -> str:
    """YAML of a profile dict with each law piece on one line, its unset fields left out (as
    the shipped profiles are written); :func:`pcm_sim.profiles.load_profile` reads it back."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for name in LAW_NAMES:
        section, field = name.split(".")
        data[section][field] = _flow(data[section][field])
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def build_profile(
    base: DeviceProfile,
    laws: dict[str, Law],
    t0_s: float,
    m: Measurements,
    name: str,
    excluded: int,
) -> DeviceProfile:
    """The fitted profile (validated by :meth:`DeviceProfile.from_dict`); ``laws`` keyed by
    dotted field, ``excluded``: devices left out of the fit."""
    from pcm_sim import __version__

    data = base.to_dict()
    data["name"] = name
    data["device"].update(d2d_gain_std=0.0, stuck_at_gmin_fraction=0.0, stuck_at_gmax_fraction=0.0)
    data["programming"] = {
        "sigma_us": _plain_law(laws["programming.sigma_us"]),
        "g_ref_us": base.device.g_max_us,
        "scale": 1.0,
    }
    data["drift"] = {
        "nu_mean": _plain_law(laws["drift.nu_mean"]),
        "nu_std": _plain_law(laws["drift.nu_std"]),
        "t0_s": t0_s,
        "scale": 1.0,
    }
    data["read_noise"].update(q_s=_plain_law(laws["read_noise.q_s"]), scale=1.0)
    times = np.unique(m.t_s)
    temp = f", {m.temperature_k:g} K" if m.temperature_k is not None else ""
    data["provenance"] = {
        "source": (
            f"measurements {Path(m.source).name} (sha256 {m.sha256}; {m.rows} rows, "
            f"{m.devices} devices, {len(times)} times {times[0]:g}..{times[-1]:g} s{temp})"
        ),
        "note": (
            f"Fitted by pcm-sim {__version__} profiles fit on base {base.name}: per-device "
            "least squares of ln g on ln((t + t0)/t0) refined on the conductance scale, t0 by "
            "the drift residual and the programmed mean; laws of x in profile law forms chosen "
            "by K-fold held-out likelihood over devices, bootstrap bands; read noise from "
            "repeated reads; device window, read duration, periphery, tile, weight cell, "
            f"compensation and energy from the base. {excluded} devices with a 0 µS mean read "
            "left out."
        ),
    }
    return DeviceProfile.from_dict(data, source=f"profile fitted to {m.source}")
