"""Estimators of the device laws from reads: cells, x-bins, drift regression, t0, moments.

The model is the profile's (:mod:`pcm_sim.physics.pcm`), with ``x = g_target / g_max``,
``L(t) = ln((t + t0) / t0)`` and ``s2(t) = ln((t + t0 + t_read) / (2 t_read))``::

    g_prog = g_target + sigma_p(x) N(0, 1)                    programming (µS)
    nu     = |N(mu(x), sigma_nu(x))|                          drift exponent
    read   = g_prog e^(-nu L(t)) (1 + q(x_prog) sqrt(s2(t)) N(0, 1))   one read (µS)

Reads are grouped into *cells*: the reads of one device at one ``t_s`` (:func:`group_cells`).

* **Read noise.**  In a cell of ``n`` reads with sum of squared deviations ``ss``,
  ``E[ss] = (n - 1) g(t)^2 q^2 s2(t)``; ``g(t)^2`` is estimated without bias by the mean of
  the products of two different reads, ``m^2 - ss / (n (n - 1))``.  Pooled over the cells of a
  bin: ``q^2 = sum(ss / s2) / sum((n - 1) g^2)`` (a ratio estimator).
* **Drift.**  Per device, least squares of ``ln m`` (``m`` the cell mean) on ``L(t)``, refined
  by Gauss-Newton on the conductance scale (:func:`drift_regression`), weights ``n / v`` with
  ``v = q^2 s2`` the relative variance of one read, pooled over the devices of a target bin.
  The residual variance ``rss / (m - 2)`` over the device's ``m`` cells gives each
  device's ``var(nu)`` and ``var(a)``, so measurement error is removed from the spreads below
  without trusting the read-noise law.
* **t0** minimizes the total weighted residual ``chi2(t0)`` of the linear (log) fits of all
  devices (:func:`scan_t0`); the curvature of ``ln g`` vs ``ln t`` near ``t ~ t0``
  constrains it.
* **Programming.**  ``g_prog = e^(a - var(a) / 2)`` (``a`` is unbiased for ``ln g_prog``);
  ``e = g_prog - g_target`` has ``E[e^2] = sigma_p^2 + g_prog^2 var(a)``, so
  ``sigma_p^2 = mean(e^2) - mean(g_prog^2 var(a))``.
* **Read-noise law.**  Bins are by target, so no noisy estimate of ``x_prog`` selects devices;
  a bin's ratio estimate is ``sum g_prog^2 q(x_prog)^2 / sum g_prog^2`` over devices whose
  ``x_prog ~ N(x, sigma_p(x) / g_max)`` (:mod:`pcm_sim.fitting.readnoise`).
* **Drift laws.**  ``nu_hat = |Z| + err`` with ``Z ~ N(mu, sigma_nu)``: ``E nu_hat`` is the
  folded-normal mean and ``E nu_hat^2 - E var(nu) = mu^2 + sigma_nu^2``; the two moments give
  ``(mu, sigma_nu)`` (:func:`folded_normal_params`).

Every estimator is a function of per-device weights (a fold's indicator, a bootstrap's Poisson
counts), vectorized with :func:`numpy.bincount`: there is no loop over devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import norm

__all__ = [
    "BinnedEstimator",
    "Cells",
    "DriftRegression",
    "LogFitSums",
    "drift_regression",
    "folded_normal_params",
    "group_cells",
    "log_time",
    "make_bins",
    "pooled_read_variance",
    "read_time_factor",
    "scan_t0",
]


@dataclass(frozen=True)
class Cells:
    """Reads grouped by (device, t_s); every array has shape (cells,).

    ``n``: reads in the cell; ``mean``: their mean (µS); ``ss``: sum of squared deviations
    from the mean (µS²); ``g2``: unbiased estimate of the squared conductance (µS², ``mean^2``
    for single reads); ``row``: the cell's first row in the measurements.
    """

    device: np.ndarray
    t_s: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    ss: np.ndarray
    g2: np.ndarray
    row: np.ndarray


def group_cells(device: np.ndarray, t_s: np.ndarray, g_us: np.ndarray) -> Cells:
    """Group row-aligned reads by (device, t_s) (one sort, then :func:`numpy.add.reduceat`)."""
    order = np.lexsort((t_s, device))
    dev, t, g = device[order], t_s[order], g_us[order]
    start = np.flatnonzero(np.r_[True, (np.diff(dev) != 0) | (np.diff(t) != 0)])
    n = np.diff(np.r_[start, len(g)])
    mean = np.add.reduceat(g, start) / n
    ss = np.add.reduceat((g - np.repeat(mean, n)) ** 2, start)
    pairs = np.maximum(n * (n - 1), 1)
    g2 = np.where(n > 1, mean**2 - ss / pairs, mean**2)
    return Cells(dev[start], t[start], n, mean, ss, g2, order[start])


def log_time(t_s: np.ndarray, t0_s: float) -> np.ndarray:
    """``L = ln((t + t0) / t0)``: the drift clock (``g(t) = g_prog e^(-nu L)``)."""
    return np.log1p(t_s / t0_s)


def read_time_factor(t_s: np.ndarray, t0_s: float, t_read_s: float) -> np.ndarray:
    """``s2 = ln((t + t0 + t_read) / (2 t_read))``: growth of the 1/f read variance with time
    (the square of :func:`pcm_sim.physics.pcm.read_noise_time_factor`)."""
    return np.log((t_s + t0_s + t_read_s) / (2.0 * t_read_s))


def make_bins(x: np.ndarray, max_bins: int, min_count: int) -> tuple[np.ndarray, int]:
    """Bin index of every element of ``x``: one bin per distinct value when there are at most
    ``max_bins`` of them, otherwise bins of about equal count (equal values share a bin); a
    bin with fewer than ``min_count`` elements is merged into its neighbour.  Returns
    ``(bins, n_bins)``, bins numbered by increasing ``x``.
    """
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(values) <= max_bins:
        raw = np.arange(len(values))
    else:
        n_bins = max(1, min(max_bins, len(x) // max(min_count, 1)))
        before = np.cumsum(counts) - counts
        raw = np.floor(before * n_bins / len(x)).astype(np.int64)
    _, raw = np.unique(raw, return_inverse=True)
    sizes = np.bincount(raw, weights=counts).astype(np.int64)
    label, current, filled = np.empty(len(sizes), dtype=np.int64), 0, 0
    for b, size in enumerate(sizes):  # a loop over bins (at most max_bins), not devices
        label[b] = current
        filled += size
        if filled >= min_count:
            current, filled = current + 1, 0
    if filled and current > 0:  # a small last bin joins the one before it
        label[label == current] = current - 1
    n_bins = int(label.max()) + 1
    return label[raw][inverse], n_bins


def pooled_read_variance(
    cells: Cells, cell_bin: np.ndarray, n_bins: int, s2: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Pooled ``q^2`` of each bin from its cells with repeated reads: the ratio estimator
    ``sum(w ss / s2) / sum(w (n - 1) g^2)`` (``w``: per-cell weights).  Bins without repeated
    reads are ``nan``.  Returns (n_bins,)."""
    rep = cells.n > 1
    num = np.bincount(cell_bin[rep], weights[rep] * cells.ss[rep] / s2[rep], minlength=n_bins)
    den = np.bincount(
        cell_bin[rep], weights[rep] * (cells.n[rep] - 1) * cells.g2[rep], minlength=n_bins
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


@dataclass(frozen=True)
class DriftRegression:
    """Per-device fit of ``g(t) = e^a e^(-nu L(t))`` at one ``t0_s``; arrays (devices,).

    ``a``: ln of the programmed conductance (ln µS); ``nu``: drift exponent; ``var_a``,
    ``var_nu``: their variances from the residual variance ``rss / dof``; ``rss``: weighted
    residual sum of squares; ``dof``: cells - 2.  ``residual``: (cells,) weighted residual
    ``sqrt(w) r`` of every cell (0 for cells of unused devices); ``fit_var``: (cells,)
    ``1 / S_w + (L - L_bar)^2 / S_LL``, the variance of the fitted ``ln G`` at the cell when
    the weights are inverse variances.
    """

    t0_s: float
    a: np.ndarray
    nu: np.ndarray
    var_a: np.ndarray
    var_nu: np.ndarray
    rss: np.ndarray
    dof: np.ndarray
    residual: np.ndarray
    fit_var: np.ndarray

    @property
    def chi2(self) -> float:
        """Total weighted residual over devices."""
        return float(self.rss.sum())


def _lines(
    d: np.ndarray, L: np.ndarray, z: np.ndarray, w: np.ndarray, n_devices: int
) -> tuple[np.ndarray, ...]:
    """Per-device weighted least squares ``z = c - b L`` (two passes of bincounts).

    Returns ``(c, b, residual * sqrt(w), s_w, L_bar, s_LL)``, arrays (devices,) and (cells,).
    """

    def per_device(values: np.ndarray) -> np.ndarray:
        return np.bincount(d, values, minlength=n_devices)

    s_w = per_device(w)
    safe = np.where(s_w > 0, s_w, 1.0)
    L_bar, z_bar = per_device(w * L) / safe, per_device(w * z) / safe
    dL, dz = L - L_bar[d], z - z_bar[d]
    s_LL = per_device(w * dL * dL)
    slope = per_device(w * dL * dz) / np.where(s_LL > 0, s_LL, 1.0)
    resid = np.sqrt(w) * (dz - slope[d] * dL)
    return z_bar - slope * L_bar, -slope, resid, safe, L_bar, s_LL


def drift_regression(
    cells: Cells, v: np.ndarray, t0_s: float, n_devices: int, iterations: int = 12
) -> DriftRegression:
    """Per-device drift fit: log least squares, then Gauss-Newton on the conductance scale.

    ``v``: (cells,) relative variance of one read (``q^2 s2``; 0 leaves a cell out), so a
    cell mean ``m`` of ``n`` reads has variance ``G^2 v / n`` around ``G = e^(a - nu L)``.
    The start is least squares of ``ln m + v / (2 n) + 3 v^2 / (4 n^2)`` (the log of a mean of
    ``n`` Gaussian reads, bias-corrected to fourth order) on ``L`` with weights ``w = n / v``
    (``iterations = 0`` stops there: a linear fit); each Gauss-Newton
    step regresses ``r = m / G - 1 + h / (2 w)`` on ``(1, -L)`` with the same weights, whose
    fixed point solves ``sum w r (1, L) = 0``.  ``E m = G`` makes this unbiased to first order,
    whereas ``ln m`` is biased by ``-v / (2 n)`` (up to 4 % at the noisiest devices), which
    would bend the drift curve and bias ``t0``; the term ``h / (2 w)`` (``h`` the cell's
    leverage, ``1 / w`` the relative variance of ``m``) removes the second-order bias
    ``E[m / G - 1] = -h / (2 w)`` that the fitted ``G`` itself brings.  Devices need at least 3
    cells with ``v > 0``.
    """
    L = log_time(cells.t_s, t0_s)
    d = cells.device
    ok = v > 0
    w = np.where(ok, cells.n / np.where(ok, v, 1.0), 0.0)
    rel = v / cells.n  # relative variance of a cell mean; ln m is biased by -rel/2 - 3 rel^2/4
    with np.errstate(divide="ignore"):
        z = np.where(ok, np.log(np.where(ok, cells.mean, 1.0)) + rel / 2 + 0.75 * rel**2, 0.0)
    a, nu, resid, s_w, L_bar, s_LL = _lines(d, L, z, w, n_devices)
    for _ in range(iterations):
        # leverage h of each cell; h v / (2 n) is the second-order bias of m / G - 1
        h = w * (1.0 / s_w[d] + (L - L_bar[d]) ** 2 / np.where(s_LL > 0, s_LL, np.inf)[d])
        G = np.exp(a[d] - nu[d] * L)
        rel = np.where(ok, cells.mean / G - 1.0 + h / (2.0 * np.where(ok, w, 1.0)), 0.0)
        da, dnu, resid, s_w, L_bar, s_LL = _lines(d, L, rel, w, n_devices)
        a, nu = a + da, nu + dnu
        if max(float(np.abs(da).max()), float(np.abs(dnu).max())) < 1e-10:
            break
    rss = np.bincount(d, resid**2, minlength=n_devices)
    dof = np.bincount(d, ok.astype(np.float64), minlength=n_devices) - 2
    s2 = rss / np.maximum(dof, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_nu = s2 / s_LL
        var_a = s2 * (1.0 / s_w + L_bar**2 / s_LL)
        fit_var = 1.0 / s_w[d] + (L - L_bar[d]) ** 2 / s_LL[d]
    return DriftRegression(t0_s, a, nu, var_a, var_nu, rss, dof, resid, fit_var)


@dataclass(frozen=True)
class LogFitSums:
    """The log-linear drift fit of every device at any ``t0``, from sums kept by distinct time.

    ``y = ln m + v / (2 n) + 3 v^2 / (4 n^2)`` is fitted on ``L(t) = ln((t + t0) / t0)`` with
    weights ``w = n / v`` (as :func:`drift_regression` with ``iterations = 0``).  ``L`` depends
    on the cell only through its time, so with ``yc = y - y_bar`` (the device's weighted mean,
    which does not depend on ``t0``) every sum the fit needs is a sparse (devices, times)
    matrix times a vector of ``L`` at the distinct times: ``S_wL = W L``, ``S_wLL = W L^2``,
    ``S_wLy = Wy L``; then ``slope = S_wLy / S_LLc``, ``S_LLc = S_wLL - S_wL^2 / S_w`` and
    ``rss = S_wyy - S_wLy^2 / S_LLc``.  One evaluation costs a sparse product over the cells.
    """

    times: np.ndarray
    W: sparse.csr_matrix
    Wy: sparse.csr_matrix
    s_w: np.ndarray
    s_wyy: np.ndarray
    y_bar: np.ndarray
    dof: np.ndarray

    @classmethod
    def build(cls, cells: Cells, v: np.ndarray, n_devices: int) -> LogFitSums:
        """Sums of the cells' weights ``n / v`` and centered ``y`` (``v = 0``: cell left out)."""
        ok = v > 0
        w = np.where(ok, cells.n / np.where(ok, v, 1.0), 0.0)
        rel = v / cells.n
        with np.errstate(divide="ignore"):
            y = np.where(ok, np.log(np.where(ok, cells.mean, 1.0)) + rel / 2 + 0.75 * rel**2, 0.0)
        d = cells.device
        s_w = np.bincount(d, w, minlength=n_devices)
        y_bar = np.bincount(d, w * y, minlength=n_devices) / np.where(s_w > 0, s_w, 1.0)
        yc = y - y_bar[d]
        times, k = np.unique(cells.t_s, return_inverse=True)
        shape = (n_devices, len(times))
        W = sparse.csr_matrix((w, (d, k)), shape=shape)
        Wy = sparse.csr_matrix((w * yc, (d, k)), shape=shape)
        s_wyy = np.bincount(d, w * yc**2, minlength=n_devices)
        dof = np.bincount(d, ok.astype(np.float64), minlength=n_devices) - 2
        return cls(times, W, Wy, s_w, s_wyy, y_bar, dof)

    def at(self, t0_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(a, nu, var_a, rss)`` of every device, (devices,) each, for one ``t0``."""
        L = log_time(self.times, t0_s)
        safe = np.where(self.s_w > 0, self.s_w, 1.0)
        L_bar = (self.W @ L) / safe
        s_LL = self.W @ L**2 - L_bar**2 * self.s_w
        s_LL = np.where(s_LL > 0, s_LL, np.inf)
        s_Ly = self.Wy @ L
        slope = s_Ly / s_LL
        rss = np.maximum(self.s_wyy - s_Ly * slope, 0.0)
        var_a = rss / np.maximum(self.dof, 1) * (1.0 / safe + L_bar**2 / s_LL)
        return self.y_bar - slope * L_bar, -slope, var_a, rss


def scan_t0(
    fit_at: Callable[[float], float], low_s: float, high_s: float, per_decade: int = 8
) -> tuple[np.ndarray, np.ndarray, float]:
    """``chi2(t0)`` on a log grid from ``low_s`` to ``high_s`` and its refined minimum.

    ``fit_at(t0)`` returns the total weighted residual.  The minimum of the grid is refined by
    a bounded scalar search in ``ln t0`` between its neighbours.  Returns ``(grid, chi2,
    t0_best)``.
    """
    from scipy.optimize import minimize_scalar

    decades = math.log10(high_s / low_s)
    grid = np.logspace(math.log10(low_s), math.log10(high_s), int(decades * per_decade) + 1)
    chi2 = np.array([fit_at(float(t0)) for t0 in grid])
    i = int(np.argmin(chi2))
    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, len(grid) - 1)])
    best = minimize_scalar(
        lambda u: fit_at(math.exp(u)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-4}
    )
    t0 = math.exp(float(best.x)) if best.fun <= chi2[i] else float(grid[i])
    return grid, chi2, t0


_THETA = np.linspace(0.0, 40.0, 8001)
_M1 = np.sqrt(2 / np.pi) * np.exp(-(_THETA**2) / 2) + _THETA * (1 - 2 * norm.cdf(-_THETA))
_RATIO = _M1**2 / (1 + _THETA**2)  # (E|Z|)^2 / E Z^2 for Z ~ N(theta, 1): 2/pi .. 1, increasing


def folded_normal_params(m1: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` of ``Z ~ N(mu, sigma)`` from ``m1 = E|Z|`` and ``m2 = E Z^2``.

    ``E|Z| = sigma sqrt(2/pi) e^(-theta^2/2) + mu (1 - 2 Phi(-theta))``, ``theta = mu / sigma``,
    and ``E Z^2 = mu^2 + sigma^2``; the ratio ``m1^2 / m2`` is increasing in ``theta`` and is
    inverted on a table.  ``m1^2 >= m2`` (no spread left) gives ``sigma = 0``, ``mu = m1``.
    """
    m1 = np.asarray(m1, dtype=np.float64)
    m2 = np.asarray(m2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(m2 > 0, m1**2 / m2, np.inf)
    theta = np.interp(np.minimum(ratio, 1.0), _RATIO, _THETA)
    sigma = np.sqrt(np.maximum(m2, 0.0) / (1 + theta**2))
    mu = theta * sigma
    flat = ratio >= _RATIO[-1]
    sigma = np.where(flat, np.sqrt(np.maximum(m2 - m1**2, 0.0)), sigma)
    mu = np.where(flat, m1, mu)
    return mu, sigma


@dataclass(frozen=True)
class BinnedEstimator:
    """One law's estimate per x-bin, as a function of per-device weights.

    ``name``: dotted profile field; ``x``: (bins,) mean ``x`` of each bin; ``device_bin``:
    (devices,) bin of each device, -1 for devices that do not enter this law; ``x_range``:
    the first and last bin's ``x`` (where the data constrain the law); ``estimate(w)``:
    (devices,) weights -> (bins,) estimates.
    """

    name: str
    x: np.ndarray
    device_bin: np.ndarray
    x_range: tuple[float, float]
    estimate: Callable[[np.ndarray], np.ndarray]

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return len(self.x)

    def counts(self, weights: np.ndarray) -> np.ndarray:
        """Total device weight per bin: (bins,)."""
        used = self.device_bin >= 0
        return np.bincount(self.device_bin[used], weights[used], minlength=self.n_bins)
