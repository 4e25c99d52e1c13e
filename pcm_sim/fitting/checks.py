"""Verdicts: does a law (fitted or the base profile's) describe the data?  And the bootstrap.

* **A law against its bin estimates** (:func:`law_verdict`): bins hold disjoint sets of
  devices, so ``chi2 = sum_b ((f(x_b) - v_b) / se_b)^2`` has ``bins - params`` degrees of
  freedom; the law fits when ``P(chi2) >= P_MIN``.  ``se_b`` is the bootstrap standard error.
* **A statistic that should be 0 or 1 in several groups** (:func:`groups_verdict`, e.g. the
  mean drift residual at each measured time): the groups may be correlated, so the test is
  the largest ``|z|`` against the Bonferroni bound ``z* = Phi^-1(1 - P_MIN / (2 groups))``.
* **Bootstrap over devices** (:func:`bootstrap`): replicate ``r`` weights every device by a
  Poisson(1) count drawn from ``numpy.random.default_rng((seed, r))``
  (:func:`bootstrap_weights`), drawn once per fit and shared by every law and check.

:func:`applied_law` evaluates a profile's law as the simulator applies it (scales and the
programming-noise reference window included), through :mod:`pcm_sim.physics.pcm`.

:func:`data_checks` runs four checks of the model on the data, each a :func:`groups_verdict`:

1. *programming*: the mean of ``g_prog - g_target`` per x-bin is 0 (the profile programs
   without offset);
2. *drift in time*: the mean weighted residual of the per-device drift fits at each time group
   is 0 (``g`` is a power law of ``(t + t0) / t0``);
3. *read noise in time*: at each time group the repeated-read variance over the law's
   ``q^2 s2(t)`` equals its value over all times (the law's ``sqrt(ln)`` growth);
4. *scatter between times*: per device, ``sum (n / s2) r^2`` over its cells has mean
   ``(cells - 2) q_d^2``, and the repeated reads' ``ss / ((n - 1) s2 G^2)`` has mean ``q_d^2``
   (``G`` the fitted curve; its log-normal error inflates ``1 / G^2`` by ``exp(2 var ln G)``,
   which is removed): their ratio is 1 when reads at different times are as independent as
   repeated reads are.  On a chip whose 1/f noise correlates reads close in time, repeated
   reads spread less than reads hours apart, and the ratio exceeds 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import chi2 as chi2_dist
from scipy.stats import norm

from pcm_sim.fitting.estimators import Cells, DriftRegression, log_time, make_bins
from pcm_sim.physics.pcm import evaluate_law, programming_noise_std
from pcm_sim.profiles import DeviceProfile

__all__ = [
    "LAW_NAMES",
    "P_MIN",
    "Verdict",
    "applied_law",
    "bootstrap",
    "bootstrap_weights",
    "data_checks",
    "groups_verdict",
    "law_verdict",
    "time_groups",
]

MAX_TIME_GROUPS = 12
"""Most groups of read times in the per-time checks (one per distinct time up to this)."""
P_MIN = 1e-3
"""Significance level of every verdict: a law that fits is refused with probability 0.1 %."""
LAW_NAMES = ("programming.sigma_us", "drift.nu_mean", "drift.nu_std", "read_noise.q_s")


@dataclass(frozen=True)
class Verdict:
    """``subject`` fits the data (``fits``) or not, and why (``reason``, one sentence)."""

    subject: str
    fits: bool
    reason: str

    def line(self) -> str:
        """``subject: fits (reason)`` for reports and the command line."""
        return f"{self.subject}: {'fits' if self.fits else 'does not fit'} ({self.reason})"


def applied_law(profile: DeviceProfile, name: str, x: np.ndarray) -> np.ndarray:
    """A law of ``profile`` at ``x`` as simulated: the programming-noise std in µS
    (``scale sigma_us(x) g_max / g_ref``), ``scale nu_mean(x)``, ``scale nu_std(x)`` or
    ``scale q_s(x)``.  ``x``: relative conductances; returns float64 of the same shape."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    if name == "programming.sigma_us":
        values = programming_noise_std(xt * profile.device.g_max_us, profile)
    elif name in ("drift.nu_mean", "drift.nu_std"):
        law = getattr(profile.drift, name.split(".")[1])
        values = profile.drift.scale * evaluate_law(law, xt)
    elif name == "read_noise.q_s":
        values = profile.read_noise.scale * evaluate_law(profile.read_noise.q_s, xt)
    else:
        raise ValueError(f"unknown law {name!r}: expected one of {', '.join(LAW_NAMES)}")
    return values.numpy()


def law_verdict(
    subject: str,
    law_values: np.ndarray,
    x: np.ndarray,
    value: np.ndarray,
    se: np.ndarray,
    n_params: int,
) -> Verdict:
    """Chi-square test of a law (``law_values`` at the bins ``x``) against bin estimates."""
    z = (law_values - value) / se
    chi2 = float(np.sum(z**2))
    dof = max(len(x) - n_params, 1)
    p = float(chi2_dist.sf(chi2, dof))
    i = int(np.argmax(np.abs(z)))
    where = (
        f"at x = {x[i]:.3g} the law gives {law_values[i]:.4g}, the data "
        f"{value[i]:.4g} ± {se[i]:.2g} ({z[i]:+.1f} SE)"
    )
    params = f" - {n_params} parameters" if n_params else ""
    stat = f"chi2 = {chi2:.1f} for {len(x)} bins{params} (p = {p:.2g})"
    if p >= P_MIN:
        return Verdict(subject, True, f"{stat}; largest deviation {z[i]:+.1f} SE at x = {x[i]:.3g}")
    return Verdict(subject, False, f"{stat}; {where}")


def groups_verdict(
    subject: str,
    labels: Sequence[str],
    value: np.ndarray,
    se: np.ndarray,
    expected: float,
    quantity: str,
) -> Verdict:
    """Largest ``|value - expected| / se`` over groups against the Bonferroni bound."""
    z = (value - expected) / se
    z_star = float(norm.isf(P_MIN / (2 * len(value))))
    i = int(np.argmax(np.abs(z)))
    detail = (
        f"{quantity} at {labels[i]} is {value[i]:.4g} ± {se[i]:.2g}, expected {expected:g} "
        f"({z[i]:+.1f} SE; bound {z_star:.1f} SE over {len(value)} groups)"
    )
    return Verdict(subject, bool(abs(z[i]) <= z_star), detail)


def bootstrap_weights(n_devices: int, replicates: int, seed: int) -> np.ndarray:
    """Poisson(1) counts of every device in every replicate: (replicates, devices) uint8, row
    ``r`` from ``numpy.random.default_rng((seed, r))``."""
    out = np.empty((replicates, n_devices), dtype=np.uint8)
    for r in range(replicates):
        out[r] = np.random.default_rng((seed, r)).poisson(1.0, n_devices)
    return out


def bootstrap(
    statistics: Sequence[Callable[[np.ndarray], np.ndarray]], weights: np.ndarray
) -> list[np.ndarray]:
    """Each statistic (a function of (devices,) weights) on every row of ``weights``
    (:func:`bootstrap_weights`); returns one (replicates, k) array per statistic."""
    out: list[list[np.ndarray]] = [[] for _ in statistics]
    for row in weights:
        w = row.astype(np.float64)
        for i, stat in enumerate(statistics):
            out[i].append(stat(w))
    return [np.stack(rows) for rows in out]


def time_groups(t_s: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Group read times: one group per distinct time when there are at most
    :data:`MAX_TIME_GROUPS`, else groups of about equal count.  Returns the group of every
    element of ``t_s`` and a label per group (``1 h``, or ``50 min-1.2 h`` for a range)."""
    from pcm_sim.studies.plots import time_label

    group, n_groups = make_bins(t_s, MAX_TIME_GROUPS, 1)
    labels = []
    for g in range(n_groups):
        ts = t_s[group == g]
        lo, hi = time_label(float(ts.min())), time_label(float(ts.max()))
        labels.append(lo if lo == hi else f"{lo}-{hi}")
    return group, tuple(labels)


def data_checks(
    cells: Cells,
    used: np.ndarray,
    reg: DriftRegression,
    arrays: dict[str, Any],
    x_labels: Sequence[str],
    profile: DeviceProfile,
    weights: np.ndarray,
) -> tuple[tuple[Verdict, ...], tuple[str, ...]]:
    """The four checks of the module docstring, with bootstrap standard errors; returns the
    verdicts and the labels of the time groups.  ``used``: (devices,) devices in the fit;
    ``arrays``: ``offset`` (weights -> mean ``g_prog - g_target`` per x-bin), ``x_p``
    (devices,), ``rep`` (cells,) cells with repeated reads, ``rn_num``/``rn_den`` their
    ``ss / s2`` and ``(n - 1) g^2``, ``v`` and ``s2`` (cells,) from the fit."""
    c = cells
    n_devices = len(used)
    used_cell = used[c.device]
    group, labels = time_groups(c.t_s)
    n_groups = len(labels)
    rep = arrays["rep"]
    q2 = applied_law(profile, "read_noise.q_s", arrays["x_p"][c.device[rep]]) ** 2
    rep_group, rep_dev = group[rep], c.device[rep]

    def by_group(
        w: np.ndarray, values: np.ndarray, cells_dev: np.ndarray, g: np.ndarray
    ) -> np.ndarray:
        return np.bincount(g, w[cells_dev] * values, minlength=n_groups)

    def residual(w: np.ndarray) -> np.ndarray:
        wc = np.where(used_cell, 1.0, 0.0)
        return by_group(w, wc * reg.residual, c.device, group) / by_group(w, wc, c.device, group)

    def read_ratio(w: np.ndarray) -> np.ndarray:
        num = by_group(w, arrays["rn_num"], rep_dev, rep_group)
        den = by_group(w, arrays["rn_den"] * q2, rep_dev, rep_group)
        return (num / den) / (num.sum() / den.sum())

    # check 4 (module docstring)
    q2_cell = np.where(used_cell, arrays["v"] / arrays["s2"], 0.0)
    between = np.bincount(c.device, q2_cell * reg.residual**2, minlength=n_devices)
    L = log_time(c.t_s, reg.t0_s)
    fit_var = np.where(used_cell, reg.fit_var, 0.0)
    G2 = np.exp(2 * (reg.a[c.device] - reg.nu[c.device] * L) - 2 * fit_var * q2_cell)
    within = c.ss[rep] / (arrays["s2"][rep] * G2[rep])

    def scatter(w: np.ndarray) -> np.ndarray:
        wd = w * used
        between_mean = np.sum(wd * between) / np.sum(wd * reg.dof)
        wc = w[rep_dev]
        return np.array([between_mean / (np.sum(wc * within) / np.sum(wc * (c.n[rep] - 1)))])

    stats = [arrays["offset"], residual, read_ratio, scatter]
    boot = bootstrap(stats, weights)
    ones = np.ones(n_devices)
    values = [s(ones) for s in stats]
    ses = [np.nanstd(b, axis=0, ddof=1) for b in boot]
    specs = [
        ("programming: mean of g_prog equals g_target", x_labels, 0.0,
         "mean g_prog - g_target (µS)"),
        ("drift: power law in (t + t0) / t0", labels, 0.0, "mean weighted residual"),
        ("read_noise: law in time (repeated reads)", labels, 1.0,
         "read variance / law, relative to all times"),
        ("read_noise: repeated reads explain the scatter between times", ["all times"], 1.0,
         "residual variance / read-noise prediction"),
    ]  # fmt: skip
    verdicts = tuple(
        groups_verdict(subject, lab, v, se, expected, quantity)
        for (subject, lab, expected, quantity), v, se in zip(specs, values, ses, strict=True)
    )
    return verdicts, labels
