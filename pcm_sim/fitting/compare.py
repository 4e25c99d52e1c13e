"""Simulated against measured conductances, time by time: two-sample KS tests and quantiles.

A profile is simulated on exactly the measured design (the same devices and targets, read at
the same times, as often: :func:`~pcm_sim.fitting.measurements.simulate_like`).  At each time
group (:func:`~pcm_sim.fitting.checks.time_groups`) the first read of every (device, time)
cell is kept from both, so the samples hold one read per device and time (repeated reads of
one device are not independent, which a KS test assumes), and compared by the two-sample
Kolmogorov-Smirnov test on ``g_us`` and on ``g_us / g_target_us`` (the second removes the
spread of the targets and shows the device physics alone).  A profile is indistinguishable
from the data at a time when both p-values are at least ``P_MIN / times`` (Bonferroni over
the time groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

from pcm_sim.fitting.checks import P_MIN, time_groups
from pcm_sim.fitting.estimators import group_cells
from pcm_sim.fitting.measurements import Measurements, simulate_like
from pcm_sim.profiles import DeviceProfile

__all__ = ["PERCENTILES", "TimeComparison", "compare_to_profile"]

PERCENTILES = np.linspace(0.5, 99.5, 199)
"""Quantiles kept for QQ plots (percent)."""


@dataclass(frozen=True)
class TimeComparison:
    """One time group: ``label``, cells ``n``, KS statistic and p-value on ``g`` and on
    ``g / g_target``, quantiles (:data:`PERCENTILES`) of measured and simulated
    ``g / g_target``, and ``indistinguishable`` (both p-values >= ``P_MIN / groups``)."""

    label: str
    n: int
    ks_g: float
    p_g: float
    ks_ratio: float
    p_ratio: float
    measured_q: np.ndarray
    simulated_q: np.ndarray
    indistinguishable: bool


def compare_to_profile(
    m: Measurements, profile: DeviceProfile, seed: int = 0
) -> list[TimeComparison]:
    """Simulate ``profile`` on the design of ``m`` (chip seed ``seed``) and compare each time
    group (see the module docstring)."""
    simulated = simulate_like(m, profile, seed)
    cells = group_cells(m.device, m.t_s, m.g_us)
    first = cells.row  # the first read of each cell, in file order
    group, labels = time_groups(cells.t_s)
    target = m.g_target_us[m.device[first]]
    out = []
    for g, label in enumerate(labels):
        rows = first[group == g]
        meas, sim = m.g_us[rows], simulated[rows]
        ratio = target[group == g]  # the cells' targets
        ks = ks_2samp(meas, sim)
        ks_r = ks_2samp(meas / ratio, sim / ratio)
        bound = P_MIN / len(labels)
        out.append(
            TimeComparison(
                label,
                len(rows),
                float(ks.statistic),
                float(ks.pvalue),
                float(ks_r.statistic),
                float(ks_r.pvalue),
                np.percentile(meas / ratio, PERCENTILES),
                np.percentile(sim / ratio, PERCENTILES),
                bool(ks.pvalue >= bound and ks_r.pvalue >= bound),
            )
        )
    return out
