"""PCM device physics as pure, vectorized torch functions.

All conductances are in µS, times in seconds, ``x = g / g_max`` is the relative conductance.
The laws come from the device profile (Nandakumar et al., ICECS 2019; Le Gallo et al.,
Nat. Electron. 2023), in the form aihwkit's ``PCMLikeNoiseModel`` / ``HermesNoiseModel`` use:

* programming:  ``g_prog = g_target + scale * sigma_us(x) * (g_max / g_ref) * N(0, 1)``,
  clamped at 0; optional quantization of ``g_target`` to ``levels`` equally spaced levels in
  ``[g_min, g_max]``, a fixed device-to-device gain ``k ~ N(1, d2d)`` and stuck-at faults.
* drift exponent: ``nu = scale * |nu_mean(x) + nu_std(x) N(0, 1)|`` with ``x`` of the target.
* drift: ``g(t) = g_prog * ((t + t0) / t0) ** -nu`` (``t`` counted from the end of programming).
* 1/f read noise: relative std ``q_s(x_prog) * sqrt(ln((t + t0 + t_read) / (2 t_read)))``;
  a read returns ``g(t) + |g(t)| * scale * std * N(0, 1)`` clamped at 0, a fresh draw per read.

Every random draw takes an explicit :class:`torch.Generator`; dtype and device follow the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pcm_sim.profiles import DeviceProfile, Law

__all__ = [
    "ProgrammedDevices",
    "conductance_at",
    "drift_coefficients",
    "drifted_conductance",
    "evaluate_law",
    "program_devices",
    "programming_noise_std",
    "read_noise_std",
    "read_noise_time_factor",
]

ZERO_CLIP = 1e-7
"""Smallest relative conductance used inside logarithms (as aihwkit's ``_ZERO_CLIP``)."""


def evaluate_law(law: Law, x: Tensor) -> Tensor:
    """Evaluate a piecewise law elementwise at relative conductances ``x`` (any shape)."""
    result = torch.zeros_like(x)
    lower = -math.inf
    for piece in law.pieces:
        upper = math.inf if piece.x_below is None else piece.x_below
        if piece.form == "log":
            value = piece.coeffs[0] * torch.log(x.clamp(min=ZERO_CLIP)) + piece.coeffs[1]
        elif piece.form == "power":
            value = piece.coeffs[0] * x.pow(-piece.coeffs[1])
        else:
            value = torch.full_like(x, piece.coeffs[-1])
            for coeff in reversed(piece.coeffs[:-1]):  # Horner: c0 + x (c1 + x (c2 + ...))
                value = value * x + coeff
        if piece.clip_min is not None or piece.clip_max is not None:
            value = value.clamp(min=piece.clip_min, max=piece.clip_max)
        if len(law.pieces) == 1:
            return value
        mask = (x >= lower) & (x < upper)
        result = torch.where(mask, value, result)
        lower = upper
    return result


def _randn(like: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def programming_noise_std(g_target_us: Tensor, profile: DeviceProfile) -> Tensor:
    """Programming-noise std in µS: ``scale * sigma_us(g/g_max) * g_max / g_ref``."""
    prog = profile.programming
    g_max = profile.device.g_max_us
    sigma = evaluate_law(prog.sigma_us, g_target_us / g_max)
    return prog.scale * sigma * (g_max / prog.g_ref_us)


def drift_coefficients(
    g_target_us: Tensor, profile: DeviceProfile, generator: torch.Generator
) -> Tensor:
    """Per-device drift exponents ``nu = scale * |N(nu_mean(x), nu_std(x))|`` (dimensionless)."""
    drift = profile.drift
    x = (g_target_us.abs() / profile.device.g_max_us).clamp(min=ZERO_CLIP)
    mean = evaluate_law(drift.nu_mean, x)
    std = evaluate_law(drift.nu_std, x)
    return drift.scale * (mean + std * _randn(x, generator)).abs()


@dataclass(frozen=True)
class ProgrammedDevices:
    """State of a set of programmed devices (all tensors share one shape).

    ``g_prog_us``: conductance right after programming (µS); ``nu``: drift exponent;
    ``stuck``: devices whose conductance is frozen by a fault (they neither drift nor program).
    """

    g_prog_us: Tensor
    nu: Tensor
    stuck: Tensor


def program_devices(
    g_target_us: Tensor, profile: DeviceProfile, generator: torch.Generator
) -> ProgrammedDevices:
    """Program target conductances onto devices: quantize, add noise, apply gain and faults.

    Draw order (fixed, so a seed reproduces bit-identical results): programming noise, drift
    exponents, device-to-device gain, stuck-at faults.
    """
    dev = profile.device
    g_target = g_target_us
    if dev.levels:
        step = (dev.g_max_us - dev.g_min_us) / (dev.levels - 1)
        g_target = (
            torch.round((g_target.clamp(dev.g_min_us, dev.g_max_us) - dev.g_min_us) / step) * step
            + dev.g_min_us
        )
    g_prog = g_target + programming_noise_std(g_target, profile) * _randn(g_target, generator)
    nu = drift_coefficients(g_target, profile, generator)
    if dev.d2d_gain_std:
        g_prog = g_prog * (1.0 + dev.d2d_gain_std * _randn(g_target, generator))
    g_prog = g_prog.clamp(min=0.0)
    stuck = torch.zeros_like(g_prog, dtype=torch.bool)
    if dev.stuck_at_gmin_fraction or dev.stuck_at_gmax_fraction:
        u = torch.rand(g_prog.shape, generator=generator, dtype=g_prog.dtype, device=g_prog.device)
        at_min = u < dev.stuck_at_gmin_fraction
        at_max = (u >= dev.stuck_at_gmin_fraction) & (
            u < dev.stuck_at_gmin_fraction + dev.stuck_at_gmax_fraction
        )
        g_prog = torch.where(at_min, torch.full_like(g_prog, dev.g_min_us), g_prog)
        g_prog = torch.where(at_max, torch.full_like(g_prog, dev.g_max_us), g_prog)
        stuck = at_min | at_max
        nu = torch.where(stuck, torch.zeros_like(nu), nu)
    return ProgrammedDevices(g_prog_us=g_prog, nu=nu, stuck=stuck)


def drifted_conductance(
    g_prog_us: Tensor, nu: Tensor, t_s: float, profile: DeviceProfile
) -> Tensor:
    """Mean conductance at ``t_s`` seconds after programming: ``g_prog ((t + t0)/t0)^-nu``."""
    if t_s < 0 or not math.isfinite(t_s):
        raise ValueError(f"t_s: expected a finite time >= 0 s, got {t_s}")
    if t_s == 0:
        return g_prog_us
    ratio = (t_s + profile.drift.t0_s) / profile.drift.t0_s
    return g_prog_us * torch.exp(-nu * math.log(ratio))


def read_noise_time_factor(t_s: float, profile: DeviceProfile) -> float:
    """``sqrt(ln((t + t0 + t_read) / (2 t_read)))``: growth of accumulated 1/f noise with time."""
    t_read = profile.read_noise.t_read_s
    return math.sqrt(math.log((t_s + profile.drift.t0_s + t_read) / (2.0 * t_read)))


def read_noise_std(
    g_prog_us: Tensor, g_drift_us: Tensor, t_s: float, profile: DeviceProfile
) -> Tensor:
    """Absolute 1/f read-noise std (µS) of each device at time ``t_s``."""
    rn = profile.read_noise
    if rn.scale == 0:
        return torch.zeros_like(g_drift_us)
    q_s = evaluate_law(rn.q_s, g_prog_us.abs() / profile.device.g_max_us)
    return g_drift_us.abs() * (rn.scale * read_noise_time_factor(t_s, profile)) * q_s


def conductance_at(
    devices: ProgrammedDevices, t_s: float, profile: DeviceProfile, generator: torch.Generator
) -> Tensor:
    """One read of every device at ``t_s``: drift plus a fresh 1/f noise draw, clamped at 0."""
    g_drift = drifted_conductance(devices.g_prog_us, devices.nu, t_s, profile)
    noise = read_noise_std(devices.g_prog_us, g_drift, t_s, profile) * _randn(g_drift, generator)
    return (g_drift + noise).clamp(min=0.0)
