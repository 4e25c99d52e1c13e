"""Read noise in time: how the 1/f noise of the successive reads of an array is related.

**The law.**  A device read ``t`` seconds after programming carries 1/f noise of variance
``σ² = σ_q² L``, ``L = ln(τ_hi / τ_lo)`` nats, ``τ_lo = 2 t_read``, ``τ_hi = t + t0 + t_read``
(aihwkit's ``sqrt(ln((t + t0 + t_read) / (2 t_read)))`` law, :mod:`pcm_sim.physics.pcm`).  Here
it is a sum of ``K = 8`` Ornstein-Uhlenbeck (OU) components per cell (the devices of a cell add
in quadrature; a sum of independent OU processes of one ``τ`` is one OU process):

    ``ζ(s) = σ sum_k z_k(s) / sqrt(K)``,  ``z_k`` stationary OU, unit variance, time ``τ_k``,
    ``τ_k = τ_lo (τ_hi / τ_lo)^((k + 1/2) / K)``: evenly spaced in ``ln τ``, equal variance per
    decade; ``Var ζ = σ²`` exactly (the per-read std is aihwkit's) and two reads ``Δ`` apart have
    correlation ``c(Δ) = (1/K) sum_k exp(-Δ / τ_k)``, within 0.012 (one day) of the continuous 1/f
    band law ``[E1(Δ/τ_hi) - E1(Δ/τ_lo)] / L``.  A component advances exactly over ``Δ`` seconds
    by the AR(1) step ``z <- ρ z + sqrt(1 - ρ²) ε``, ``ρ = exp(-Δ / τ_k)``.

**The clock.**  Each array has a read clock ``s`` (seconds since ``drift_to``).  A call of ``N``
rows (a forward read of ``x (..., in)`` or a transposed read) is ``N`` reads back to back, one
every ``P = read_period_s``, in the memory order of the rows (for a spiking layer's ``(T, B,
in)`` call that is step after step, the ``B`` samples of a step consecutive, as a chip that runs
``B`` inferences in lockstep); calls follow each other back to back (``s += N P`` per call).
Calibration reads (compensation, ADC ranges) see the noise at the current clock without moving
it; a bound-management re-read repeats its row within the same read slot.

**The modes** (``read_noise.model``), every draw named in :mod:`pcm_sim.crossbar.streams`:

* ``frozen``: ``ζ = σ sum_k z_k(0) / sqrt(K)`` drawn at ``drift_to`` and seen by every read
  (the compensation read too): aihwkit's semantics.
* ``per_call``: a fresh ``ζ`` per call, shared by its rows (a noisy copy ``W + σ Z``).
* ``per_read``: a fresh ``ζ`` per row, through the exact per-output law ``sqrt(u² @ σ²) ξ``.
* ``clocked`` (default): per call of ``N`` rows at clock ``s`` (``D = N P``):

  1. components slower than a quarter of the call (``τ_k >= D / 4``) keep a state, drawn at
     ``drift_to`` from the stationary law (``slow`` stream of ``(seed, layer, epoch, t)``) and
     advanced by exact AR(1) steps over the clock elapsed since its last step, at a call's start
     once at least ``τ_k / 4`` has elapsed (at every call when ``τ_k / 4 <= D``), so a state is
     held at most ``τ_k / 4 + D``; the innovations come from the call's own draws;
  2. within a call (the middle band, ``P < τ_k < D``, and every other component), component
     ``k``'s correlation between reads ``n`` and ``m``, ``ρ_k^|n-m|`` with ``ρ_k = exp(-P/τ_k)``,
     is replaced by its mean over the call's ``N (N - 1)`` ordered pairs of reads,
     ``a_k(N) = 2 / (N (N - 1)) sum_{d=1}^{N-1} (N - d) ρ_k^d`` (1 for ``N = 1``): a share
     ``sqrt(a_k)`` held for the call and a share ``sqrt(1 - a_k)`` fresh on every read.  Among
     "held plus independent" models this is the closest to the call's covariance matrix (least
     squares); it keeps every read's variance and the variance of the mean of the call's reads
     exactly, and it does not depend on the order of the rows within a call;
  3. components faster than that (``τ_k < D / 4``) draw their held share afresh for each call
     (one array-sized draw for all of them): their correlation between two reads a call apart,
     at most ``e^-4``, is dropped.

  A call reads ``held = W + σ (sum_{τ_k >= D/4} sqrt(a_k / K) z_k + sqrt(sum_{τ_k < D/4} a_k / K)
  Z)`` (the lazily stepped terms cached between calls) plus the fresh share
  ``f = sum_k (1 - a_k) / K`` through the exact per-output law (one extra matmul, skipped for a
  one-row call, where ``f = 0``).

**Measured error** of a device's ``1 - c(Δ)`` against the 8 OU components (one day, 1 µs per
read, 2048 devices, ``scripts/read_noise_study.py`` → ``results/read_noise/``; standard errors
<= 0.001): calls of 1 row <= 0.0025 at every lag; calls of 32 rows <= 0.012 at lags of one call
or more and up to 0.089 within a call (at one read apart: 0.130 instead of 0.043, the in-call
mean); calls of 512 rows <= 0.009 and 0.19.  What the split keeps exactly matters most to a
spiking layer: the variance of a sample's mean read noise over its T = 20 steps (an SNU call of
T x B = 20 x 128 rows, step after step) is 0.722 of one read's against 0.716 for the 1/f law
(``per_call`` and ``frozen``: 1, ``per_read``: 0.05).  The 8 components differ from the
continuous band law by at most 0.0116 of the variance at one day (0.0154 at one year).  The
persistent state is ``K`` floats per cell (4 per device of a differential pair), saved with the
chip.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pcm_sim.crossbar import mapping
from pcm_sim.crossbar.layout import TileLayout
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile

__all__ = [
    "LAZY_STEP",
    "PERSISTENT",
    "CallNoise",
    "ReadNoiseClock",
    "ReadState",
    "independent_reads",
    "read_state",
    "shared_read",
]

Normals = Callable[[torch.Size], Tensor]

PERSISTENT = 0.25
"""Components with ``τ_k >= PERSISTENT * D`` keep their state across calls of duration ``D``;
faster ones are redrawn for each call (their correlation a call apart is ``<= e^-4``)."""
LAZY_STEP = 0.25
"""A slow component steps once at least ``LAZY_STEP * τ_k`` of clock has elapsed since its last
step (held in between: the phase-averaged covariance error of holding an OU process over
windows of ``ε τ`` is at most about ``ε² / 8`` of its variance, 0.8 % here, 0.1 % of the
total)."""


@dataclass(frozen=True)
class ReadState:
    """Tiled mean weights, read-noise std and variance at one time, ``(R, rows, out)`` each."""

    w: Tensor
    sigma: Tensor
    var: Tensor
    has_read_noise: bool


def read_state(
    devices: pcm.ProgrammedDevices, t_s: float, profile: DeviceProfile, layout: TileLayout
) -> ReadState:
    """Drifted normalized weights and 1/f read noise of ``devices`` (2, N, in, out) at ``t_s``."""
    g_prog, nu = devices.g_prog_us, devices.nu
    g_drift = pcm.drifted_conductance(g_prog, nu, t_s, profile)
    sigma = pcm.read_noise_std(g_prog, g_drift, t_s, profile)
    span = profile.device.g_max_us - profile.device.g_min_us
    n = g_prog.shape[1]
    w_norm = mapping.normalized_weights(g_drift, profile)  # (in, out)
    var = sigma.square().sum(dim=(0, 1)) / (n * span) ** 2  # (in, out)
    return ReadState(
        w=layout.tile(w_norm),
        sigma=layout.tile(var.sqrt()),
        var=layout.tile(var),
        has_read_noise=bool(profile.read_noise.scale > 0),
    )


@dataclass(frozen=True)
class CallNoise:
    """The read noise of one call: ``held`` ``(R, rows, out)``, the array every row of the call
    reads (mean weights plus the shared noise), and ``fresh``, the fraction of each device's
    variance ``state.var`` drawn afresh on every row (the per-output law ``sqrt(fresh u² @ var)``).
    """

    held: Tensor
    fresh: float


def shared_read(state: ReadState, normals: Normals) -> CallNoise:
    """One read of the whole array shared by the rows of a call: ``W + σ Z``."""
    if not state.has_read_noise:
        return CallNoise(state.w, 0.0)
    return CallNoise(torch.addcmul(state.w, state.sigma, normals(state.w.shape)), 0.0)


def independent_reads(state: ReadState) -> CallNoise:
    """An independent read per row: the mean weights and the whole variance fresh."""
    return CallNoise(state.w, 1.0 if state.has_read_noise else 0.0)


class ReadNoiseClock:
    """The read noise of one array after ``drift_to(t_s)``: its mode, read clock and, for
    ``clocked`` and ``frozen``, the OU components ``z`` ``(K, R, rows, out)`` drawn from
    ``generator`` (``slow`` stream) as ``(K, in, out)`` standard normals, then tiled."""

    def __init__(
        self,
        state: ReadState,
        layout: TileLayout,
        profile: DeviceProfile,
        t_s: float,
        generator: torch.Generator,
    ) -> None:
        self.state, self.layout = state, layout
        self.model = profile.read_noise.model if state.has_read_noise else "per_call"
        self.period_s = profile.read_noise.read_period_s
        self.taus = pcm.read_noise_time_constants(t_s, profile)
        self.clock_s = 0.0
        self.stepped_s = [0.0] * len(self.taus)
        self._cache: tuple[tuple[Any, ...], Tensor] | None = None
        self.z: Tensor | None = None
        if self.model in ("clocked", "frozen"):
            shape = (len(self.taus), layout.in_features, state.w.shape[-1])
            z = torch.randn(shape, generator=generator, device=state.w.device)
            self.z = torch.stack([layout.tile(z_k) for z_k in z])  # (K, R, rows, out)
        self.frozen: Tensor | None = None
        if self.model == "frozen":
            assert self.z is not None
            total = self.z.sum(dim=0) / math.sqrt(len(self.taus))  # (R, rows, out), unit variance
            self.frozen = torch.addcmul(state.w, state.sigma, total)
            self.z = None  # the draw is all a frozen chip keeps

    def read(self, n_reads: int, normals: Normals, advance: bool = True) -> CallNoise:
        """The noise of a call of ``n_reads`` rows (module docstring).  Calibration reads
        (``advance=False``) see the state at the current clock: nothing steps, the clock stays."""
        if self.model == "per_call":
            return shared_read(self.state, normals)
        if self.model == "per_read":
            return independent_reads(self.state)
        if self.model == "frozen":
            assert self.frozen is not None
            return CallNoise(self.frozen, 0.0)
        noise = self._clocked(n_reads, normals, advance)
        if advance:
            self.clock_s += n_reads * self.period_s
        return noise

    def _clocked(self, n: int, normals: Normals, advance: bool) -> CallNoise:
        """Held array and fresh share of a clocked call of ``n`` rows (module docstring).

        The call's array-sized normals are one draw ``(2 m + 1, R, rows, out)``: the
        innovations of the ``m`` components that step (each ``copysign`` of two windows, so
        windows of the noise bank that overlap give uncorrelated values and the state, which
        sums windows of several calls, has no correlation across devices) and the fresh held
        share ``Z``.  The held array is ``W + σ (S + sum_every c_k z_k + c_rest Z)``: ``S`` sums
        the components that step at most every few calls and is cached (a function of their
        states and ``n`` only, so a saved and reloaded chip reads bit for bit as the original).
        """
        assert self.z is not None
        duration = n * self.period_s
        persistent = [tau >= PERSISTENT * duration for tau in self.taus]
        every = [
            p and LAZY_STEP * tau <= duration for p, tau in zip(persistent, self.taus, strict=True)
        ]
        elapsed = [self.clock_s - s for s in self.stepped_s]
        due = [
            k
            for k, p in enumerate(persistent)
            if advance and p and elapsed[k] > 0 and elapsed[k] >= LAZY_STEP * self.taus[k]
        ]
        shares = [pcm.ou_mean_correlation(self.period_s, tau, n) for tau in self.taus]
        rest = math.fsum(a for a, p in zip(shares, persistent, strict=True) if not p) / len(shares)
        draws = 2 * len(due) + (1 if rest > 0 else 0)
        drawn = normals(torch.Size((draws, *self.state.w.shape))) if draws else None
        for i, k in enumerate(due):  # exact AR(1) steps over the elapsed clock
            assert drawn is not None
            rho = math.exp(-elapsed[k] / self.taus[k])
            eps = torch.copysign(drawn[2 * i], drawn[2 * i + 1])
            self.z[k].mul_(rho).add_(eps, alpha=math.sqrt(1.0 - rho * rho))
            self.stepped_s[k] = self.clock_s
        coeffs = [math.sqrt(a / len(shares)) for a in shares]
        rare_set = tuple(k for k, p in enumerate(persistent) if p and not every[k])
        key = (n, rare_set, tuple(self.stepped_s[k] for k in rare_set))
        if self._cache is None or self._cache[0] != key:
            slow = torch.zeros_like(self.state.w)
            for k in rare_set:
                slow.add_(self.z[k], alpha=coeffs[k])
            self._cache = (key, torch.addcmul(self.state.w, self.state.sigma, slow))
        weights = self._cache[1]
        terms = [(self.z[k], coeffs[k]) for k, e in enumerate(every) if e]
        if drawn is not None and rest > 0:
            terms.append((drawn[-1], math.sqrt(rest)))
        for i, (term, coeff) in enumerate(terms):  # W_S + σ c_k z_k + ... (the cache untouched)
            if i == 0:
                weights = torch.addcmul(weights, self.state.sigma, term, value=coeff)
            else:
                weights.addcmul_(self.state.sigma, term, value=coeff)
        fresh = max(0.0, 1.0 - math.fsum(shares) / len(shares))
        return CallNoise(weights, fresh)

    def export(self) -> dict[str, Any]:
        """The clock and the slow state as plain data and a CPU tensor ``(K, in, out)`` (or
        ``None`` outside ``clocked``): what a saved chip needs to read on exactly."""
        slow = None
        if self.model == "clocked":
            assert self.z is not None
            slow = torch.stack([self.layout.untile(z_k) for z_k in self.z]).detach().cpu()
        return {"read_clock_s": self.clock_s, "slow_stepped_s": list(self.stepped_s), "slow": slow}

    def restore(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`export` (after ``drift_to`` to the same time)."""
        self.clock_s = float(saved["read_clock_s"])
        self.stepped_s = [float(s) for s in saved["slow_stepped_s"]]
        if self.model == "clocked" and saved["slow"] is not None:
            z = saved["slow"].to(self.state.w.device)
            self.z = torch.stack([self.layout.tile(z_k) for z_k in z])
        self._cache = None
