"""The read-noise law ``q(x_prog)`` from repeated reads, through the spread of ``x_prog``.

The simulator's 1/f read noise has relative std ``q(x_prog) sqrt(s2(t))`` with ``x_prog =
g_prog / g_max`` the *programmed* conductance, which the data give only through a noisy
estimate; binning devices by that estimate would select devices by their noise.  Bins are
therefore by target ``x`` (:mod:`pcm_sim.fitting.estimators`), and a bin's ratio estimate
``sum ss / s2 / sum (n - 1) g^2`` estimates the forward model

    ``R_b[q] = sum_d w_d E[x_p^2 q(x_p)^2] / sum_d w_d E[x_p^2]``,
    ``x_p ~ N(x_d, sigma_p(x_d) / g_max)`` (clamped at 1e-6),

``w_d`` the device's repeated-read degrees of freedom, ``sigma_p`` the fitted programming law
(the drift exponent does not depend on ``x_p`` given the target, so it cancels).  The
expectations use 24-point Gauss-Hermite nodes per device, pooled per bin into at most
:data:`NODES_PER_BIN` nodes (the weighted mean ``x`` of equal slots in ``ln x``).

The form is chosen (:func:`pcm_sim.fitting.laws.fit_binned_law`) on estimates corrected by
``q(x_b)^2 / R_b[q]`` for the current law, twice from the raw estimates; the chosen form's
parameters are then fitted to the raw estimates through the forward model,
``min sum_b ((sqrt(R_b[q]) - sqrt(raw_b)) / se_b)^2`` (no inversion, so sharp features of the
law, such as the HERMES law's floor, are not smeared into the fit).  Bootstrap replicates are
refitted by one Gauss-Newton step from that fit.  The law covers the range of ``x_prog`` the
bins see (:meth:`Smearing.support`), wider than the targets' range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pcm_sim.fitting.estimators import BinnedEstimator
from pcm_sim.fitting.laws import FittedForm, LawSelection, fit_binned_law

__all__ = ["NODES_PER_BIN", "ReadNoiseFit", "Smearing", "fit_read_noise", "smearing"]

NODES_PER_BIN = 64
SUPPORT_TAIL = 0.01
"""Weight left out at each end of the range of ``x_prog`` a fitted read-noise law covers."""
SELECTION_PASSES = 2
"""Corrections of the raw estimates before the form is chosen (law -> factor -> law)."""

_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / math.sqrt(2 * math.pi)  # E f(Z) = sum w_i f(z_i) for Z ~ N(0, 1)


@dataclass(frozen=True)
class Smearing:
    """The distribution of ``x_prog`` in each bin, weighted by ``x_prog^2``: ``nodes`` and
    ``weights`` (bins, NODES_PER_BIN), weights summing to 1 per bin."""

    nodes: np.ndarray
    weights: np.ndarray

    def forward(self, q: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """``sqrt(R_b[q])`` for a law ``q`` (a function of x): (bins,)."""
        return np.sqrt(np.sum(self.weights * q(self.nodes) ** 2, axis=1))

    def support(self, tail: float = SUPPORT_TAIL) -> tuple[float, float]:
        """The range of ``x_prog`` the bins see: from the lowest bin's ``tail`` quantile of
        its weighted nodes to the highest bin's ``1 - tail`` quantile."""
        order = np.argsort(self.nodes, axis=1)
        x = np.take_along_axis(self.nodes, order, axis=1)
        cum = np.cumsum(np.take_along_axis(self.weights, order, axis=1), axis=1)
        low = x[0][np.searchsorted(cum[0], tail)]
        high = x[-1][min(np.searchsorted(cum[-1], 1 - tail), x.shape[1] - 1)]
        return float(low), float(high)


def smearing(
    x_target: np.ndarray,
    sigma_x: np.ndarray,
    weight: np.ndarray,
    device_bin: np.ndarray,
    n_bins: int,
) -> Smearing:
    """Nodes of ``x_p ~ N(x_target, sigma_x)`` per device (devices with ``device_bin`` -1 left
    out), weighted by ``weight x_p^2``, pooled per bin into equal slots of ``ln x``."""
    use = device_bin >= 0
    xp = np.maximum(x_target[use, None] + sigma_x[use, None] * _GH_Z[None, :], 1e-6)
    w = weight[use, None] * _GH_W[None, :] * xp**2
    b = np.broadcast_to(device_bin[use, None], xp.shape).ravel()
    u, w = np.log(xp).ravel(), w.ravel()
    lo = np.full(n_bins, np.inf)
    hi = np.full(n_bins, -np.inf)
    np.minimum.at(lo, b, u)
    np.maximum.at(hi, b, u)
    width = np.where(hi > lo, hi - lo, 1.0)
    slot = np.minimum(((u - lo[b]) / width[b] * NODES_PER_BIN).astype(np.int64), NODES_PER_BIN - 1)
    key = b * NODES_PER_BIN + slot
    size = n_bins * NODES_PER_BIN
    mass = np.bincount(key, w, minlength=size)
    mean_x = np.bincount(key, w * np.exp(u), minlength=size) / np.where(mass > 0, mass, 1.0)
    mass = mass.reshape(n_bins, NODES_PER_BIN)
    nodes = np.where(mass > 0, mean_x.reshape(n_bins, NODES_PER_BIN), 1.0)
    return Smearing(nodes, mass / mass.sum(axis=1, keepdims=True))


def _scaled(
    estimate: Callable[[np.ndarray], np.ndarray], factor: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    return lambda w: estimate(w) * factor


@dataclass(frozen=True)
class ReadNoiseFit:
    """The read-noise law's fit: ``selection`` (the form, with *corrected* bin estimates for
    display and the bootstrap replicates refitted through the forward model in ``curves``
    order), the ``raw`` estimates and their standard errors ``raw_se``, and ``smear``."""

    selection: LawSelection
    raw: np.ndarray
    raw_se: np.ndarray
    smear: Smearing
    replicate_forms: tuple[FittedForm, ...]


def fit_read_noise(
    raw: BinnedEstimator,
    raw_boot: np.ndarray,
    x_target: np.ndarray,
    sigma_x: np.ndarray,
    rep_dof: np.ndarray,
    folds: int,
    seed: int,
) -> ReadNoiseFit:
    """Fit ``read_noise.q_s`` (see the module docstring).  ``raw``: the ratio estimator per
    target bin, ``raw_boot`` (replicates, bins) its bootstrap replicates; ``x_target``,
    ``sigma_x`` (programming std / g_max), ``rep_dof``: (devices,).  Bootstrap replicates are
    refitted by one Gauss-Newton step from the fit (their distance from it is small)."""
    smear = smearing(x_target, sigma_x, rep_dof, raw.device_bin, raw.n_bins)
    fitted = fit_binned_law(raw, raw_boot, folds, seed)
    factor = np.ones(raw.n_bins)
    for _ in range(SELECTION_PASSES):
        factor = fitted.form.values(raw.x) / smear.forward(fitted.form.values)
        corrected = dataclasses.replace(raw, estimate=_scaled(raw.estimate, factor))
        fitted = fit_binned_law(corrected, raw_boot * factor, folds, seed)
    raw_value, raw_se = fitted.value / factor, fitted.se / factor
    best = fitted.best
    form, params, jac = best.refine(
        fitted.form, lambda f: (smear.forward(f.values) - raw_value) / raw_se
    )
    at_fit = (smear.forward(form.values) - raw_value) / raw_se
    residuals = at_fit[None, :] + (raw_value - raw_boot) / raw_se  # (replicates, bins)
    steps = -np.linalg.lstsq(jac, residuals.T, rcond=None)[0].T  # (replicates, params)
    reps = tuple(best.unpack(params + step) for step in steps)
    final = form.values(raw.x) / smear.forward(form.values)
    selection = LawSelection(
        best, raw_value * final, raw_se * final, raw_boot * final, form, fitted.scores,
        fitted.alternatives,
    )  # fmt: skip
    return ReadNoiseFit(selection, raw_value, raw_se, smear, reps)
