"""Program-and-verify: closed-loop programming of every device of a crossbar, vectorized.

For every device ``i`` of a layer (all ``2 N in out`` devices at once) with target ``g*_i``:

    write:   ``g_i <- g*_i + sigma_p(g*_i) Z``, ``nu_i ~ |N(mu(x), sigma_nu(x))|``   (one pulse)
    verify:  ``r_i = g_i (1 + t_v/t0)^-nu_i + sigma_r,i(t_v) Z'``      (a read at ``t_v``)
    accept if ``|r_i - g*_i| <= tol``, else write again (one more pulse) and verify again;

at most ``K`` re-writes per device (``max_iterations``), all in µS.  ``tol`` is given in µS
(``tolerance_us``) or as a fraction of ``g_max`` (``tolerance_gmax``).  A verify read is a
device-level read through the crossbar's own physics (:func:`pcm_sim.physics.pcm.conductance_at`
at ``t_v``, with its fresh 1/f read-noise draw); ``reads_per_verify = n`` averages ``n``
independent reads (std ``sigma_r / sqrt(n)``; optimistic for true 1/f noise).  An accepted
device is never read again, as in an iterative write-verify controller.

Modelling decisions:

* A re-write is a new RESET + SET (melt-quench and partial crystallization): it re-draws both
  the programmed conductance *and* the drift exponent ``nu`` (a new amorphous volume starts a new
  structural relaxation), with :func:`pcm_sim.physics.pcm.program_devices`.
* Stuck devices are not known to the controller: they fail every verify, take a pulse each
  round (``K`` extra pulses) and keep their conductance.
* The device-to-device gain drawn at the first write is not part of
  :class:`~pcm_sim.physics.pcm.ProgrammedDevices`, so re-writes use gain 1 (an iterative write
  absorbs a device's gain); profiles with ``d2d_gain_std = 0`` are unaffected.
* One write (initial or re-write) counts as one programming pulse in ``CrossbarArray.pulses``
  (int32, one count per device), the unit of the profile's ``energy.programming_pulse_pj``.
* A write session draws from its own stream (the crossbar's next write epoch), re-takes the
  drift-compensation reference and returns the array to the time it was at.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

if TYPE_CHECKING:
    from pcm_sim.crossbar.tile import CrossbarArray

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_TOLERANCE_GMAX",
    "IterationStats",
    "VerifyOutcome",
    "VerifyReport",
    "program_and_verify",
    "resolve_tolerance_us",
    "verify_devices",
]

DEFAULT_TOLERANCE_GMAX = 0.04
"""Default tolerance: 4 % of ``g_max`` (1 µS on a 25 µS device, about one programming sigma)."""

DEFAULT_MAX_ITERATIONS = 10
"""Default maximum number of re-writes per device."""

PERCENTILES = (50.0, 90.0, 99.0)


def resolve_tolerance_us(
    profile: DeviceProfile,
    tolerance_us: float | None = None,
    tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
) -> float:
    """The verify tolerance in µS: ``tolerance_us`` if given, else ``tolerance_gmax * g_max``."""
    tol = tolerance_us if tolerance_us is not None else tolerance_gmax * profile.device.g_max_us
    if not math.isfinite(tol) or tol <= 0:
        raise ValueError(f"tolerance: expected a finite value > 0 µS, got {tol}")
    return float(tol)


@dataclass(frozen=True)
class IterationStats:
    """Array state after the writes of one round (round 0: before any re-write).

    ``rewritten``: devices written in this round; ``mean_error_us``: mean ``|g - g*|`` over all
    devices of the array (true conductance right after programming, no read noise);
    ``within_tolerance``: fraction of all devices with ``|g - g*| <= tol``.
    """

    iteration: int
    rewritten: int
    mean_error_us: float
    within_tolerance: float


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of program-and-verify on one array (conductances in µS).

    ``error_*``: distribution of the true residual ``|g_prog - g*|`` over all devices;
    ``within_tolerance``: fraction with a true residual within ``tolerance_us``;
    ``failed_verify``: fraction whose last verify read was still outside the tolerance;
    ``pulses_*``: programming pulses per device, all writes since the array was built;
    ``per_iteration``: one :class:`IterationStats` per round, round 0 first.
    """

    tolerance_us: float
    max_iterations: int
    verify_t_s: float
    reads_per_verify: int
    n_devices: int
    iterations: int
    error_mean_us: float
    error_std_us: float
    error_percentiles_us: dict[str, float]
    error_max_us: float
    within_tolerance: float
    failed_verify: float
    pulses_mean: float
    pulses_max: int
    pulses_total: int
    seconds: float
    per_iteration: list[IterationStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class VerifyOutcome:
    """Result of :func:`verify_devices` (tensors shaped like the devices, ``(2, N, in, out)``).

    ``devices``/``pulses``: new states and pulse counts; ``failed``: last verify read outside
    the tolerance; ``iterations``: re-write rounds run; ``per_iteration``: round statistics.
    """

    devices: pcm.ProgrammedDevices
    pulses: Tensor
    failed: Tensor
    iterations: int
    per_iteration: list[IterationStats]


def _rewrite_profile(profile: DeviceProfile) -> DeviceProfile:
    """The profile of a re-write: same noise laws, no new gain or fault draws (see module doc)."""
    dev = profile.device
    if not (dev.d2d_gain_std or dev.stuck_at_gmin_fraction or dev.stuck_at_gmax_fraction):
        return profile
    return profile.with_overrides(
        {
            "device.d2d_gain_std": 0.0,
            "device.stuck_at_gmin_fraction": 0.0,
            "device.stuck_at_gmax_fraction": 0.0,
        }
    )


def verify_devices(
    targets_us: Tensor,
    devices: pcm.ProgrammedDevices,
    pulses: Tensor,
    profile: DeviceProfile,
    tol_us: float,
    max_iterations: int,
    generator: torch.Generator,
    verify_t_s: float = 0.0,
    write: Tensor | None = None,
    reads_per_verify: int = 1,
    track: bool = True,
) -> VerifyOutcome:
    """The vectorized write-verify loop on device tensors ``(2, N, in, out)``; pure.

    ``targets_us``: target conductances; ``devices``/``pulses``: the current state (not
    modified); ``generator``: every write and verify read of the session.
    ``write``: bool mask shaped like the devices; these devices are first written (one pulse
    each) and then verified; ``None`` verifies every device as programmed.
    ``track``: compute the per-round statistics (one pass over all devices per round).
    """
    if max_iterations < 0:
        raise ValueError(f"max_iterations: expected >= 0, got {max_iterations}")
    if reads_per_verify < 1:
        raise ValueError(f"reads_per_verify: expected >= 1, got {reads_per_verify}")
    if not math.isfinite(verify_t_s) or verify_t_s < 0:
        raise ValueError(f"verify_t_s: expected a finite time >= 0 s, got {verify_t_s}")
    rewrite = _rewrite_profile(profile)
    shape = targets_us.shape
    target = targets_us.reshape(-1)  # (D,) all devices, flat
    g = devices.g_prog_us.reshape(-1).clone()  # (D,)
    nu = devices.nu.reshape(-1).clone()  # (D,)
    stuck = devices.stuck.reshape(-1)  # (D,)
    pulses = pulses.reshape(-1).clone()  # (D,) int32

    def write_devices(idx: Tensor) -> None:
        """One pulse on each device ``idx``: fresh g_prog and nu; stuck devices keep theirs."""
        fresh = pcm.program_devices(target[idx], rewrite, generator)
        keep = stuck[idx]
        g[idx] = torch.where(keep, g[idx], fresh.g_prog_us)
        nu[idx] = torch.where(keep, nu[idx], fresh.nu)
        pulses[idx] += 1

    def failing(idx: Tensor) -> Tensor:
        """Indices of ``idx`` whose verify read (mean of ``reads_per_verify``) misses ``tol``."""
        sub = pcm.ProgrammedDevices(g_prog_us=g[idx], nu=nu[idx], stuck=stuck[idx])
        read = pcm.conductance_at(sub, verify_t_s, profile, generator)
        for _ in range(reads_per_verify - 1):
            read = read + pcm.conductance_at(sub, verify_t_s, profile, generator)
        read = read / reads_per_verify
        return idx[(read - target[idx]).abs() > tol_us]

    def stats(iteration: int, rewritten: int) -> IterationStats:
        err = (g - target).abs()
        return IterationStats(
            iteration=iteration,
            rewritten=rewritten,
            mean_error_us=float(err.mean()),
            within_tolerance=float((err <= tol_us).float().mean()),
        )

    if write is not None:
        if write.shape != shape:
            raise ValueError(
                f"write: expected a mask of shape {tuple(shape)}, got {tuple(write.shape)}"
            )
        active = write.reshape(-1).nonzero().squeeze(1)  # (A,) device indices to write
        write_devices(active)
    else:
        active = torch.arange(target.numel(), device=target.device)
    history = [stats(0, int(active.numel()) if write is not None else 0)] if track else []
    rounds = 0
    for iteration in range(1, max_iterations + 1):
        active = failing(active)
        if active.numel() == 0:
            break
        write_devices(active)
        rounds = iteration
        if track:
            history.append(stats(iteration, int(active.numel())))
    if active.numel():
        active = failing(active)  # the last round's writes get their verify read too
    failed = torch.zeros_like(stuck)
    failed[active] = True
    devices = pcm.ProgrammedDevices(
        g_prog_us=g.reshape(shape), nu=nu.reshape(shape), stuck=stuck.reshape(shape)
    )
    return VerifyOutcome(devices, pulses.reshape(shape), failed.reshape(shape), rounds, history)


def program_and_verify(
    crossbar: CrossbarArray,
    tolerance_us: float | None = None,
    tolerance_gmax: float = DEFAULT_TOLERANCE_GMAX,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    verify_t_s: float = 0.0,
    write: Tensor | None = None,
    reads_per_verify: int = 1,
) -> VerifyReport:
    """Write-verify every device of ``crossbar`` (or the ``write`` mask) until ``tol``; report.

    The crossbar already holds its first write (``pulses == 1``); this verifies it and re-writes
    failing devices up to ``max_iterations`` times in one write session of the crossbar
    (:meth:`CrossbarArray.write_session`: its own random stream, a new compensation reference).
    See the module docstring for the equations.
    """
    start = time.perf_counter()
    tol = resolve_tolerance_us(crossbar.profile, tolerance_us, tolerance_gmax)
    outcome = crossbar.write_session(
        tol, max_iterations, write=write, verify_t_s=verify_t_s, reads_per_verify=reads_per_verify
    )
    err = (outcome.devices.g_prog_us - crossbar.g_target_us).abs().reshape(-1)  # (D,)
    ordered = err.sort().values
    n = ordered.numel()
    percentiles = {
        f"p{p:g}": float(ordered[min(n - 1, math.ceil(p / 100.0 * n) - 1)]) for p in PERCENTILES
    }
    pulses = outcome.pulses.reshape(-1)
    return VerifyReport(
        tolerance_us=tol,
        max_iterations=max_iterations,
        verify_t_s=verify_t_s,
        reads_per_verify=reads_per_verify,
        n_devices=n,
        iterations=outcome.iterations,
        error_mean_us=float(err.mean()),
        error_std_us=float(err.std()) if n > 1 else 0.0,
        error_percentiles_us=percentiles,
        error_max_us=float(ordered[-1]),
        within_tolerance=float((err <= tol).float().mean()),
        failed_verify=float(outcome.failed.float().mean()),
        pulses_mean=float(pulses.double().mean()),
        pulses_max=int(pulses.max()),
        pulses_total=int(pulses.long().sum()),
        seconds=time.perf_counter() - start,
        per_iteration=outcome.per_iteration,
    )
