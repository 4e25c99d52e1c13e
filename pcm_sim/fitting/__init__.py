"""Fit a device profile to a chip's measured conductances (``pcm-sim profiles fit``).

::

    from pcm_sim.fitting import fit_profile, read_measurements, write_fit_report

    result = fit_profile("my_chip.csv", base="pcm_nandakumar2019", name="my_chip")
    Path("my_chip.yaml").write_text(result.to_yaml())   # loads with pcm_sim.load_profile
    write_fit_report(result, "runs/my_chip_fit")         # report.md, laws.png, qq.png, t0.png
    for verdict in result.verdicts + result.base_verdicts:
        print(verdict.line())

Modules: :mod:`~pcm_sim.fitting.measurements` (the CSV format, its checks, simulated
measurements), :mod:`~pcm_sim.fitting.estimators` (cells, drift regression, t0, moments),
:mod:`~pcm_sim.fitting.laws` (law forms, held-out selection), :mod:`~pcm_sim.fitting.readnoise`
(the read-noise law through the spread of programmed conductance),
:mod:`~pcm_sim.fitting.checks` (verdicts, bootstrap), :mod:`~pcm_sim.fitting.fit` (the fit),
:mod:`~pcm_sim.fitting.fitted_profile` (the profile, its provenance and YAML),
:mod:`~pcm_sim.fitting.compare` (simulated vs measured: KS, quantiles) and
:mod:`~pcm_sim.fitting.report`.
"""

from pcm_sim.fitting.checks import Verdict, applied_law
from pcm_sim.fitting.compare import TimeComparison, compare_to_profile
from pcm_sim.fitting.fit import FitResult, LawFit, T0Fit, fit_profile
from pcm_sim.fitting.measurements import (
    MeasurementError,
    Measurements,
    read_measurements,
    simulate_like,
    simulate_measurements,
    write_measurements_csv,
)
from pcm_sim.fitting.report import write_fit_report

__all__ = [
    "FitResult",
    "LawFit",
    "MeasurementError",
    "Measurements",
    "T0Fit",
    "TimeComparison",
    "Verdict",
    "applied_law",
    "compare_to_profile",
    "fit_profile",
    "read_measurements",
    "simulate_like",
    "simulate_measurements",
    "write_fit_report",
    "write_measurements_csv",
]
