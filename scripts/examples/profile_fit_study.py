"""Fit device profiles to measured conductances: the example file, round trips, a wrong base.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/examples/profile_fit_study.py`` (about 3
minutes on 2 cores).  Writes:

* ``scripts/examples/chip_measurements.csv``: the example measurement file.  pcm-sim ships no
  real measurements, so it is a *synthetic* chip: 1,000 devices simulated from
  ``pcm_hermes2023`` (chip seed 2023), programmed to 24 target levels from 5 % to 100 % of
  g_max, each read twice at 1 min, 1 h, 1 day, 1 week and 1 month, at 300 K;
* ``results/profile_fit/``: for each round trip (``pcm_nandakumar2019``, ``pcm_hermes2023``:
  100,000 devices, 1,000,000 reads written to CSV, read back and fitted on the source profile
  as base) and for the wrong base (data with twice the drift of ``pcm_nandakumar2019`` fitted
  on ``pcm_nandakumar2019``): the fitted profile ``<case>.yaml``, its report
  ``<case>/report.md`` (+ PNGs), and ``summary.json`` with the fit times and every figure
  below.

Per case: the time to read the CSV and fit it (one process, ``OMP_NUM_THREADS=1``); t0 and its
interval; for each law, the largest deviation of the fitted law from the source law in units
of the bootstrap band (programming and drift laws, on 200 points of x; bound: Scheffe's
simultaneous bound ``sqrt(chi2_{k, 0.999})`` for the form's k parameters) or, for the
read-noise law, as the data see it (through the spread of programmed conductance, in standard
errors of the bins; bound: Bonferroni over the bins); every verdict; two-sample KS at every
time.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import chi2, norm

from pcm_sim.fitting import (
    applied_law,
    compare_to_profile,
    fit_profile,
    read_measurements,
    simulate_measurements,
    write_fit_report,
    write_measurements_csv,
)
from pcm_sim.fitting.checks import P_MIN
from pcm_sim.profiles import load_profile
from pcm_sim.studies.outputs import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "results" / "profile_fit"
TIMES = (60.0, 3600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0)
LEVELS = np.geomspace(0.05, 1.0, 24)  # target x = g_target / g_max


def targets(g_max_us: float, devices: int) -> np.ndarray:
    """Device i is programmed to level i mod 24 (µS)."""
    return LEVELS[np.arange(devices) % len(LEVELS)] * g_max_us


# 1. the example measurement file (small: 10,000 rows)
hermes = load_profile("pcm_hermes2023")
example = simulate_measurements(
    hermes, targets(hermes.device.g_max_us, 1000), TIMES, reads=2, seed=2023, temperature_k=300.0
)
example_path = write_measurements_csv(example, ROOT / "scripts/examples/chip_measurements.csv", 6)
print(f"{example_path}: {example.rows} rows, {example_path.stat().st_size / 1e3:.0f} kB")

# 2. round trips and 3. the wrong base, each from a 1,000,000-row CSV
cases = {
    "round_trip_nandakumar2019": ("pcm_nandakumar2019", {}, "pcm_nandakumar2019"),
    "round_trip_hermes2023": ("pcm_hermes2023", {}, "pcm_hermes2023"),
    "double_drift_on_nandakumar2019": (
        "pcm_nandakumar2019",
        {"drift.scale": 2.0},
        "pcm_nandakumar2019",
    ),
}
summary: dict[str, dict] = {}
with tempfile.TemporaryDirectory() as tmp:
    for case, (source_name, overrides, base_name) in cases.items():
        source = load_profile(source_name, overrides=overrides)
        data = simulate_measurements(
            source, targets(source.device.g_max_us, 100_000), TIMES, reads=2, seed=7
        )
        csv_path = write_measurements_csv(data, Path(tmp) / f"{case}.csv")
        start = time.perf_counter()
        measured = read_measurements(csv_path)
        read_s = time.perf_counter() - start
        result = fit_profile(measured, base_name, name=case)
        fit_s = time.perf_counter() - start
        write_text_atomic(OUT / f"{case}.yaml", result.to_yaml())
        write_fit_report(result, OUT / case, profile_path=f"results/profile_fit/{case}.yaml")
        laws = {}
        for name, law in result.laws.items():
            source_law = partial(applied_law, source, name)
            fitted_law = partial(applied_law, result.profile, name)
            if law.smear is None:  # pointwise, against the bootstrap band of the fitted form
                z = np.abs(fitted_law(law.grid) - source_law(law.grid))
                deviation = float(np.max(z / law.band_sd))
                bound = math.sqrt(chi2.ppf(1 - P_MIN, law.n_params))
            else:  # read noise, as the data see it
                z = np.abs(law.observed(fitted_law) - law.observed(source_law)) / law.observed_se
                deviation = float(np.max(z))
                bound = float(norm.isf(P_MIN / (2 * len(law.x))))
            laws[name] = {"form": law.form, "deviation": deviation, "bound": bound}
        ks = {
            label: [
                {"time": c.label, "D": c.ks_ratio, "p": min(c.p_g, c.p_ratio),
                 "indistinguishable": c.indistinguishable}
                for c in compare_to_profile(measured, profile, seed=11)
            ]
            for label, profile in (("fitted", result.profile), ("base", result.base))
        }  # fmt: skip
        summary[case] = {
            "rows": measured.rows,
            "devices": measured.devices,
            "read_csv_s": round(read_s, 2),
            "read_and_fit_s": round(fit_s, 2),
            "t0": result.t0.reason,
            "laws": laws,
            "verdicts": [v.line() for v in result.verdicts],
            "base_verdicts": [v.line() for v in result.base_verdicts],
            "ks": ks,
        }
        print(
            f"{case}: {measured.rows} reads read and fitted in {fit_s:.1f} s (CSV {read_s:.1f} s)"
        )
        print(f"  t0_s: {result.t0.reason}")
        for name, info in laws.items():
            deviation, bound = info["deviation"], info["bound"]
            print(f"  {name}: {info['form']}, deviation {deviation:.2f} (bound {bound:.2f})")
        for v in (*result.verdicts, *result.base_verdicts):
            print(f"  {v.line()}")
        for label, rows in ks.items():
            same = sum(r["indistinguishable"] for r in rows)
            print(f"  {label}: indistinguishable at {same} of {len(rows)} times")

write_text_atomic(OUT / "summary.json", json.dumps(summary, indent=2) + "\n")
print(f"wrote {OUT / 'summary.json'}")
