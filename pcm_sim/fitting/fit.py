"""Fit a device profile to measured conductances: ``fit_profile(measurements, base)``.

Steps (equations in :mod:`pcm_sim.fitting.estimators`, law selection in
:mod:`pcm_sim.fitting.laws`, verdicts in :mod:`pcm_sim.fitting.checks`):

1. reads -> cells (device, t); devices binned by ``x = g_target / g_max`` of the base profile;
2. relative read variance per bin from repeated reads (weights of the drift regression);
3. ``t0`` by the minimum of ``chi2(t0) = chi2_drift / phi + chi2_offset``.  ``chi2_drift``:
   total residual of the per-device least squares of the bias-corrected ``ln m`` on ``L(t)``,
   with weights fixed at the base's ``t0`` (with weights that do not move with ``t0`` the
   noise part of ``chi2`` does not depend on ``t0``, so the minimum is consistent; a
   Gauss-Newton fit, or weights that follow ``t0``, would not be: measured 20 % to 85 % off
   at the noisiest devices); ``phi``: its dispersion ``chi2 / dof`` at its own minimum; it
   constrains ``t0`` by the curvature of ``ln g`` in ``ln t`` near ``t ~ t0``.
   ``chi2_offset``: ``sum_b (mean_b(g_prog - g_target) / se_b)^2``: the profile programs
   without offset, and the extrapolation of every device to ``t = 0`` moves with ``t0``
   (by ``nu ln t0`` in ``ln g_prog`` when ``t >> t0``), which constrains ``t0`` even when the
   first read is long after it.  The 95 % interval is where ``chi2 - chi2_min <= 3.84``.
   Two-sided: fitted.  Open-ended: the base's ``t0`` is kept if inside, else the end of the
   interval nearest to it;
4. per-device drift fit at that ``t0`` (log least squares refined by Gauss-Newton on the
   conductance scale) -> ``g_prog``, ``nu`` and their variances;
5. four laws of x -- ``programming.sigma_us`` (std in µS, with ``g_ref_us = g_max_us``),
   ``drift.nu_mean``, ``drift.nu_std`` and ``read_noise.q_s`` (of ``x_prog``, through the
   spread of ``x_prog`` in a bin, :mod:`pcm_sim.fitting.readnoise`) -- each fitted to its bin
   estimates in the form chosen by K-fold held-out likelihood (one-standard-error rule), with
   a band from the bootstrap over devices and the forms the data cannot tell apart;
6. the profile (:mod:`pcm_sim.fitting.fitted_profile`): the base profile with these laws and
   ``t0``, every ``scale`` 1, no device-to-device gain and no stuck devices (both are inside
   the measured spreads); the base's window ``g_min/g_max``, ``levels``, ``t_read_s``,
   read-noise mode, weight cell, tile, periphery, compensation and energy are kept.
   Provenance names the data (file, sha256, rows, devices, times) and the method;
7. verdicts: each law, fitted and base, against the bins; the programmed mean against the
   targets; the drift residual and the read-noise ratio at each time; the scatter between
   times against what the repeated reads predict.

Reads of a device at several times are assumed independent given its ``g_prog`` and ``nu``,
as the simulator draws them.  Devices with a mean read of 0 µS at some time (no logarithm) are
left out and counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import brentq

from pcm_sim.fitting import estimators as est
from pcm_sim.fitting.checks import (
    LAW_NAMES,
    Verdict,
    applied_law,
    bootstrap,
    bootstrap_weights,
    data_checks,
    law_verdict,
)
from pcm_sim.fitting.fitted_profile import build_profile, profile_yaml
from pcm_sim.fitting.laws import fit_binned_law, law_from_form
from pcm_sim.fitting.measurements import MeasurementError, Measurements, read_measurements
from pcm_sim.fitting.readnoise import Smearing, fit_read_noise
from pcm_sim.profiles import DeviceProfile, Law, load_profile

__all__ = ["FitResult", "LawFit", "T0Fit", "fit_profile"]

MAX_BINS = 32  # x-bins per law (one per distinct target when there are at most this many)
MIN_BIN_DEVICES = 20  # fewest devices in an x-bin
MIN_BINS = 3  # fewest x-bins that constrain a law of x
MIN_TIMES = 3
"""Fewest distinct read times per device: 2 for the drift line, 1 to measure its scatter."""
T0_RANGE_S = (1e-2, 1e5)
"""Scanned ``t0`` (s)."""
T0_DELTA_CHI2 = 3.84
"""``chi2`` rise bounding the 95 % interval of one parameter."""
BAND_POINTS = 200


@dataclass(frozen=True)
class LawFit:
    """One fitted law with its data.  Arrays: ``x``/``value``/``se`` (bins,): bin positions,
    estimates and bootstrap standard errors (for ``read_noise.q_s``, corrected for the spread
    of ``x_prog`` in a bin); ``grid`` (200,) and ``band_lo``/``band_hi``/``band_sd``: the
    law's 95 % band and std over the data's range: the bootstrap of the fitted form, widened
    by the forms the held-out likelihood cannot tell from it (band: their envelope; std:
    their std added in quadrature).
    ``observed_value``/``observed_se``: the estimates the verdicts test, as the data see a
    law (:meth:`observed`): the same as ``value``/``se``, except for ``read_noise.q_s``,
    whose raw estimates see the law through ``smear``."""

    name: str
    law: Law
    form: str
    n_params: int
    x: np.ndarray
    value: np.ndarray
    se: np.ndarray
    x_range: tuple[float, float]
    scores: dict[str, float]
    grid: np.ndarray
    band_lo: np.ndarray
    band_hi: np.ndarray
    band_sd: np.ndarray
    observed_value: np.ndarray
    observed_se: np.ndarray
    smear: Smearing | None
    verdict: Verdict
    base_verdict: Verdict

    def observed(self, law: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """A law (a function of x) as the bins see it: (bins,)."""
        return _observed(law, self.x, self.smear)


def _observed(
    law: Callable[[np.ndarray], np.ndarray], x: np.ndarray, smear: Smearing | None
) -> np.ndarray:
    return law(x) if smear is None else smear.forward(law)


@dataclass(frozen=True)
class T0Fit:
    """``t0_s`` used, whether the data constrain it, its 95 % interval (``nan`` = open end),
    the scanned ``grid``/``chi2`` (drift residual / phi + programming offsets) and the drift
    fits' dispersion ``phi = chi2_min / dof``."""

    t0_s: float
    constrained: bool
    interval: tuple[float, float]
    grid: np.ndarray
    chi2: np.ndarray
    phi: float
    reason: str


@dataclass(frozen=True)
class FitResult:
    """A fitted profile, the laws with their data, and every verdict."""

    profile: DeviceProfile
    base: DeviceProfile
    measurements: Measurements
    laws: dict[str, LawFit]
    t0: T0Fit
    checks: tuple[Verdict, ...]
    time_labels: tuple[str, ...]
    excluded_devices: int
    folds: int
    replicates: int

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        """The fitted laws' verdicts, then the checks."""
        return tuple(f.verdict for f in self.laws.values()) + self.checks

    @property
    def base_verdicts(self) -> tuple[Verdict, ...]:
        """The base profile's laws against the same bins."""
        return tuple(f.base_verdict for f in self.laws.values())

    def to_yaml(self) -> str:
        """The profile as YAML (one line per law piece), with a comment header naming the
        data and the fit."""
        m = self.measurements
        lines = [
            f"# Device profile {self.profile.name!r} fitted by `pcm-sim profiles fit`",
            f"# from {m.source} (sha256 {m.sha256}) on base {self.base.name!r}.",
            f"# t0_s: {self.t0.reason}",
            *(f"# {f.name}: form {f.form}" for f in self.laws.values()),
        ]
        return "\n".join(lines) + "\n" + profile_yaml(self.profile.to_dict())


@dataclass(frozen=True)
class _Design:
    m: Measurements
    cells: est.Cells
    x: np.ndarray  # (devices,) x of the target
    used: np.ndarray  # (devices,) bool
    bin: np.ndarray  # (devices,) x-bin of the target, -1 unused
    n_bins: int
    t_read_s: float
    g_max_us: float


def _design(m: Measurements, base: DeviceProfile) -> _Design:
    g_max = base.device.g_max_us
    worst = int(np.argmax(m.g_target_us))
    if m.g_target_us[worst] > g_max:
        raise MeasurementError(
            f"{m.device_label(worst)}: g_target_us {m.g_target_us[worst]:g} exceeds the base "
            f"profile's g_max_us {g_max:g} (expected targets in (0, g_max_us]; choose a base "
            "profile with a wider window)"
        )
    cells = est.group_cells(m.device, m.t_s, m.g_us)
    per_device = np.bincount(cells.device, minlength=m.devices)
    fewest = int(np.argmin(per_device))
    if per_device[fewest] < MIN_TIMES:
        raise MeasurementError(
            f"{m.device_label(fewest)}: reads at {per_device[fewest]} distinct t_s; "
            f"drift.nu_mean and drift.nu_std need at least {MIN_TIMES} per device "
            "(2 for the drift line, 1 more to measure its scatter)"
        )
    if not (cells.n > 1).any():
        raise MeasurementError(
            f"{m.source}: every device is read once per time; read_noise.q_s needs repeated "
            "reads (2 or more rows of one device at one t_s)"
        )
    zero = np.bincount(cells.device[cells.mean <= 0], minlength=m.devices) > 0
    used = ~zero
    x = m.g_target_us / g_max
    bins = np.full(m.devices, -1, dtype=np.int64)
    bins[used], n_bins = est.make_bins(x[used], MAX_BINS, MIN_BIN_DEVICES)
    if n_bins < MIN_BINS or int(used.sum()) < MIN_BINS * MIN_BIN_DEVICES:
        raise MeasurementError(
            f"{m.source}: {int(used.sum())} usable devices at {len(np.unique(x[used]))} "
            "distinct g_target_us; programming.sigma_us, drift.nu_mean and drift.nu_std need "
            f"at least {MIN_BINS} target bins of {MIN_BIN_DEVICES} devices "
            f"({MIN_BINS} distinct targets, {MIN_BINS * MIN_BIN_DEVICES} devices)"
        )
    return _Design(m, cells, x, used, bins, n_bins, base.read_noise.t_read_s, g_max)


def _read_variance(d: _Design, t0_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative variance ``v = q^2 s2`` of one read per cell, ``q^2`` the ratio estimate pooled
    over the devices of each target bin (independent of any one device's reads, so weights
    built on it leave every fit unbiased; ``v = 0`` for unused devices), and ``s2``."""
    c = d.cells
    s2 = est.read_time_factor(c.t_s, t0_s, d.t_read_s)
    cell_bin = d.bin[c.device]
    ok = cell_bin >= 0
    b = np.where(ok, cell_bin, 0)
    q2 = est.pooled_read_variance(c, b, d.n_bins, s2, ok.astype(np.float64))
    overall = est.pooled_read_variance(c, np.zeros_like(b), 1, s2, ok.astype(np.float64))[0]
    q2 = np.where(np.isfinite(q2) & (q2 > 0), q2, overall)
    return np.where(ok, q2[b] * s2, 0.0), s2


def _fit_t0(d: _Design, base: DeviceProfile) -> T0Fit:
    """``t0`` and its 95 % interval (see the module docstring)."""
    n_dev, base_t0 = d.m.devices, base.drift.t0_s
    v = _read_variance(d, base_t0)[0]  # weights fixed while t0 moves
    b = np.where(d.used, d.bin, 0)
    count = np.bincount(b, d.used.astype(np.float64), minlength=d.n_bins)

    sums = est.LogFitSums.build(d.cells, v, n_dev)

    def offset_chi2(a: np.ndarray, var_a: np.ndarray) -> float:
        """sum over bins of (mean of g_prog - g_target / its standard error)^2."""
        e = np.where(d.used, np.exp(a - var_a / 2) - d.m.g_target_us, 0.0)
        mean = np.bincount(b, e, minlength=d.n_bins) / count
        var = np.bincount(b, e**2, minlength=d.n_bins) / count - mean**2
        return float(np.sum(mean**2 / (var / (count - 1))))

    _, _, best_curvature = est.scan_t0(lambda t0: float(sums.at(t0)[3].sum()), *T0_RANGE_S)
    phi = float(sums.at(best_curvature)[3].sum()) / float(sums.dof[d.used].sum())

    def chi2_at(t0: float) -> float:
        a, _, var_a, rss = sums.at(t0)
        return float(rss.sum()) / phi + offset_chi2(a, var_a)

    grid, chi2, best = est.scan_t0(chi2_at, *T0_RANGE_S)
    minimum = chi2_at(best)
    delta = chi2 - minimum

    def excess(u: float) -> float:
        return chi2_at(math.exp(u)) - minimum - T0_DELTA_CHI2

    def end(j: int) -> float:  # where the bound is crossed between grid[j] and the minimum
        return math.exp(brentq(excess, math.log(grid[j]), math.log(best), xtol=1e-6))

    below = np.flatnonzero((grid < best) & (delta > T0_DELTA_CHI2))
    above = np.flatnonzero((grid > best) & (delta > T0_DELTA_CHI2))
    low = end(int(below.max())) if below.size else math.nan
    high = end(int(above.min())) if above.size else math.nan
    span = f"{low:.3g}" if math.isfinite(low) else f"< {grid[0]:g}"
    span += f"..{high:.3g} s" if math.isfinite(high) else f", > {grid[-1]:g} s"
    if math.isfinite(low) and math.isfinite(high):
        t0, constrained, why = best, True, f"fitted: {best:.4g} s, 95 % interval {span}"
    elif (math.isnan(low) or low <= base_t0) and (math.isnan(high) or base_t0 <= high):
        t0, constrained = base_t0, False
        why = f"kept from the base ({base_t0:g} s): the data allow {span} (open-ended)"
    else:
        t0 = high if math.isfinite(high) and base_t0 > high else low
        constrained = False
        why = f"{t0:.4g} s, the end of the open interval {span} nearest the base's {base_t0:g} s"
    return T0Fit(_sig(t0), constrained, (low, high), grid, chi2, phi, why)


def _sig(value: float) -> float:
    return float(f"{value:.6g}")


def _estimators(
    d: _Design, reg: est.DriftRegression, s2: np.ndarray
) -> tuple[dict[str, est.BinnedEstimator], dict[str, Any]]:
    """The law estimators (``read_noise.q_s`` before its smearing factor, see
    :func:`~pcm_sim.fitting.estimators.read_noise_smearing`), and arrays the checks reuse."""
    m, c = d.m, d.cells
    used = d.used
    g_prog = np.where(used, np.exp(reg.a - reg.var_a / 2), np.nan)
    e = np.where(used, g_prog - m.g_target_us, 0.0)
    u = np.where(used, g_prog**2 * reg.var_a, 0.0)
    nu = np.where(used, reg.nu, 0.0)
    var_nu = np.where(used, reg.var_nu, 0.0)
    x_t = np.array([d.x[d.bin == b].mean() for b in range(d.n_bins)])
    b = np.where(used, d.bin, 0)

    def sums(w: np.ndarray, values: np.ndarray | float) -> np.ndarray:
        return np.bincount(b, w * used * values, minlength=d.n_bins)

    def sigma_p(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.maximum(sums(w, e**2) - sums(w, u), 0.0) / sums(w, 1.0))

    def drift(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            n = sums(w, 1.0)
            return est.folded_normal_params(sums(w, nu) / n, sums(w, nu**2 - var_nu) / n)

    rep = (c.n > 1) & used[c.device]
    rep_dof = np.bincount(c.device[rep], (c.n[rep] - 1).astype(np.float64), minlength=m.devices)
    has_rep = rep_dof > 0
    rn_bin = np.full(m.devices, -1, dtype=np.int64)
    rn_bin[has_rep], rn_bins = est.make_bins(d.x[has_rep], MAX_BINS, MIN_BIN_DEVICES)
    if rn_bins < MIN_BINS or int(has_rep.sum()) < MIN_BINS * MIN_BIN_DEVICES:
        raise MeasurementError(
            f"{m.source}: {int(has_rep.sum())} devices have repeated reads; read_noise.q_s "
            f"needs repeated reads on at least {MIN_BINS * MIN_BIN_DEVICES} devices in "
            f"{MIN_BINS} target bins of {MIN_BIN_DEVICES}"
        )
    rn_dev, rn_cb = c.device[rep], rn_bin[c.device[rep]]
    rn_num, rn_den = c.ss[rep] / s2[rep], (c.n[rep] - 1) * c.g2[rep]

    def q_raw(w: np.ndarray) -> np.ndarray:
        wc = w[rn_dev]
        num = np.bincount(rn_cb, wc * rn_num, minlength=rn_bins)
        den = np.bincount(rn_cb, wc * rn_den, minlength=rn_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.maximum(num, 0.0) / den)

    x_rn = np.array([d.x[rn_bin == k].mean() for k in range(rn_bins)])
    t_range = (float(x_t[0]), float(x_t[-1]))
    laws = {
        "programming.sigma_us": est.BinnedEstimator(
            "programming.sigma_us", x_t, d.bin, t_range, sigma_p
        ),
        "drift.nu_mean": est.BinnedEstimator(
            "drift.nu_mean", x_t, d.bin, t_range, lambda w: drift(w)[0]
        ),
        "drift.nu_std": est.BinnedEstimator(
            "drift.nu_std", x_t, d.bin, t_range, lambda w: drift(w)[1]
        ),
        "read_noise.q_s": est.BinnedEstimator(
            "read_noise.q_s", x_rn, rn_bin, (float(x_rn[0]), float(x_rn[-1])), q_raw
        ),
    }
    arrays = {
        "offset": lambda w: sums(w, e) / sums(w, 1.0),
        "x_p": np.where(used, g_prog / d.g_max_us, np.nan),
        "rep": rep,
        "rep_dof": rep_dof,
        "rn_num": rn_num,
        "rn_den": rn_den,
    }
    return laws, arrays


def fit_profile(
    measurements: Measurements | str | Path,
    base: str | Path | DeviceProfile = "pcm_nandakumar2019",
    *,
    name: str = "fitted",
    folds: int = 5,
    replicates: int = 100,
    seed: int = 0,
) -> FitResult:
    """Fit a device profile to measurements (a :class:`Measurements` or a CSV path).

    ``base``: the profile whose window, read duration, periphery and tile are kept;
    ``folds``: K of the held-out selection; ``replicates``: bootstrap replicates over devices;
    ``seed``: folds and bootstrap.  Raises :class:`MeasurementError` (one line) when the data
    cannot constrain a law.
    """
    if folds < 2 or replicates < 10:
        raise ValueError(f"expected folds >= 2 and replicates >= 10, got {folds}, {replicates}")
    m = measurements if isinstance(measurements, Measurements) else read_measurements(measurements)
    base_profile = load_profile(base)
    d = _design(m, base_profile)
    t0 = _fit_t0(d, base_profile)
    v, s2 = _read_variance(d, t0.t0_s)
    reg = est.drift_regression(d.cells, v, t0.t0_s, m.devices)
    estimators, arrays = _estimators(d, reg, s2)
    arrays.update(v=v, s2=s2)
    weights = bootstrap_weights(m.devices, replicates, seed)
    replicas = bootstrap([estimators[k].estimate for k in LAW_NAMES], weights)
    boots = dict(zip(LAW_NAMES, replicas, strict=True))
    fitted = {k: fit_binned_law(estimators[k], boots[k], folds, seed) for k in LAW_NAMES[:3]}
    sigma_x = fitted["programming.sigma_us"].form.values(d.x) / d.g_max_us
    rn = fit_read_noise(
        estimators["read_noise.q_s"], boots["read_noise.q_s"], d.x, sigma_x, arrays["rep_dof"],
        folds, seed,
    )  # fmt: skip
    fitted["read_noise.q_s"] = rn.selection
    estimators["read_noise.q_s"] = dataclasses.replace(
        estimators["read_noise.q_s"], x_range=rn.smear.support()
    )
    profile_laws = {k: law_from_form(f.form, *estimators[k].x_range) for k, f in fitted.items()}
    profile = build_profile(base_profile, profile_laws, t0.t0_s, m, name, int((~d.used).sum()))
    laws = {}
    for law_name, f in fitted.items():
        e = estimators[law_name]
        grid = np.geomspace(*e.x_range, BAND_POINTS)
        if law_name == "read_noise.q_s":  # tested through the forward model, on raw estimates
            curves = np.stack([form.values(grid) for form in rn.replicate_forms])
            smear, value, se = rn.smear, rn.raw, rn.raw_se
        else:
            curves = np.stack([f.best.fit(e.x, r, f.se).values(grid) for r in f.boot])
            smear, value, se = None, f.value, f.se
        verdicts = [
            law_verdict(
                f"{law_name} ({label})",
                _observed(partial(applied_law, prof, law_name), e.x, smear),
                e.x, value, se, n_params,
            )
            for label, prof, n_params in (
                (f"fitted, {f.best.name}", profile, f.best.n_params),
                (f"base {base_profile.name}", base_profile, 0),
            )
        ]  # fmt: skip
        alternatives = np.stack([form.values(grid) for form in f.alternatives])
        band_lo = np.minimum(np.nanpercentile(curves, 2.5, axis=0), alternatives.min(axis=0))
        band_hi = np.maximum(np.nanpercentile(curves, 97.5, axis=0), alternatives.max(axis=0))
        band_sd = np.hypot(np.nanstd(curves, axis=0, ddof=1), alternatives.std(axis=0))
        laws[law_name] = LawFit(
            law_name, profile_laws[law_name], f.best.name, f.best.n_params, e.x, f.value, f.se,
            e.x_range, f.scores, grid, band_lo, band_hi, band_sd, value, se, smear, *verdicts,
        )  # fmt: skip
    x_labels = [f"x = {x:.3g}" for x in estimators["programming.sigma_us"].x]
    checks, labels = data_checks(d.cells, d.used, reg, arrays, x_labels, profile, weights)
    return FitResult(
        profile, base_profile, m, laws, t0, checks, labels, int((~d.used).sum()), folds,
        replicates,
    )  # fmt: skip
