"""Fitting a device profile to measured conductances (``pcm-sim profiles fit``).

Round trips: data simulated from each shipped PCM profile (10,000 devices, 24 target levels,
1 min to 1 month, two reads per time; 100,000 devices in
``scripts/examples/profile_fit_study.py``) are fitted back on that profile as base.  The fitted
laws must lie within the fit's bootstrap band of the source laws (Scheffe's simultaneous bound
for the form's parameters), the read-noise law as the data see it within Bonferroni-bounded
standard errors, t0's interval must hold the source's, every verdict must say "fits" and
simulated conductances must be indistinguishable from the data (two-sample KS at every time).
Negative controls: the same bands refuse the source laws scaled by 1.25, and data with twice
the drift are a misfit of the base (verdicts and KS) that the fit recovers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2, norm

from pcm_sim.cli import main
from pcm_sim.fitting import (
    FitResult,
    LawFit,
    Measurements,
    applied_law,
    compare_to_profile,
    fit_profile,
    read_measurements,
    simulate_like,
    simulate_measurements,
    write_measurements_csv,
)
from pcm_sim.fitting import estimators as est
from pcm_sim.fitting.checks import P_MIN
from pcm_sim.fitting.laws import Candidate, FittedForm, candidates_for, law_from_form
from pcm_sim.fitting.readnoise import smearing
from pcm_sim.physics.pcm import evaluate_law
from pcm_sim.profiles import DeviceProfile, load_profile

TIMES = (60.0, 3600.0, 86_400.0, 7 * 86_400.0, 30 * 86_400.0)
LEVELS = np.geomspace(0.05, 1.0, 24)
N_DEVICES = 10_000
EXAMPLE = Path(__file__).parents[1] / "scripts" / "examples" / "chip_measurements.csv"


def simulate(profile: DeviceProfile, devices: int, seed: int, reads: int = 2) -> Measurements:
    targets = LEVELS[np.arange(devices) % len(LEVELS)] * profile.device.g_max_us
    return simulate_measurements(profile, targets, TIMES, reads, seed)


@pytest.fixture(scope="module")
def fits() -> dict[str, tuple[DeviceProfile, Measurements, FitResult]]:
    """Each case: (source profile, data, fit on the base)."""
    cases = {
        "pcm_nandakumar2019": (load_profile("pcm_nandakumar2019"), "pcm_nandakumar2019"),
        "pcm_hermes2023": (load_profile("pcm_hermes2023"), "pcm_hermes2023"),
        "double_drift": (
            load_profile("pcm_nandakumar2019", overrides={"drift.scale": 2.0}),
            "pcm_nandakumar2019",
        ),
    }
    out = {}
    for seed, (case, (source, base)) in enumerate(cases.items()):
        data = simulate(source, N_DEVICES, seed=seed + 1)
        out[case] = (source, data, fit_profile(data, base, seed=seed))
    return out


def deviation(law: LawFit, fitted: DeviceProfile, reference: DeviceProfile, scale: float = 1.0):
    """Largest deviation of ``fitted``'s law from ``scale`` x ``reference``'s, and its bound."""
    fit = partial(applied_law, fitted, law.name)
    ref = partial(applied_law, reference, law.name)
    if law.smear is None:  # on 200 points of x, in units of the bootstrap band
        z = np.abs(fit(law.grid) - scale * ref(law.grid)) / law.band_sd
        return float(z.max()), math.sqrt(chi2.ppf(1 - P_MIN, law.n_params))
    # read noise through the spread of programmed conductance, in standard errors of the bins
    seen = law.observed(lambda x: scale * ref(x))
    z = np.abs(law.observed(fit) - seen) / law.observed_se
    return float(z.max()), float(norm.isf(P_MIN / (2 * len(law.x))))


@pytest.mark.parametrize("case", ["pcm_nandakumar2019", "pcm_hermes2023"])
def test_round_trip_recovers_the_source_laws(fits, case: str) -> None:
    source, _, result = fits[case]
    low, high = result.t0.interval
    assert result.t0.constrained and low <= source.drift.t0_s <= high, result.t0.reason
    for name, law in result.laws.items():
        dev, bound = deviation(law, result.profile, source)
        assert dev <= bound, f"{case} {name} ({law.form}): {dev:.2f} > {bound:.2f}"


@pytest.mark.parametrize("case", ["pcm_nandakumar2019", "pcm_hermes2023"])
def test_round_trip_bands_refuse_a_real_mismatch(fits, case: str) -> None:
    """Negative control: the same bounds refuse every source law scaled by 1.25."""
    source, _, result = fits[case]
    for name, law in result.laws.items():
        dev, bound = deviation(law, result.profile, source, scale=1.25)
        assert dev > 2 * bound, f"{case} {name}: {dev:.2f} <= 2 x {bound:.2f}"


@pytest.mark.parametrize("case", ["pcm_nandakumar2019", "pcm_hermes2023"])
def test_round_trip_verdicts_fit_and_simulation_is_indistinguishable(fits, case: str) -> None:
    _, data, result = fits[case]
    for verdict in (*result.verdicts, *result.base_verdicts):
        assert verdict.fits, verdict.line()
    for comparison in compare_to_profile(data, result.profile, seed=99):
        assert comparison.indistinguishable, comparison


def test_wrong_base_is_detected_and_recovered(fits) -> None:
    """Data with twice the drift of the base: the base's drift laws and its simulated
    conductances do not fit after 1 min; the fitted profile recovers the doubled laws."""
    source, data, result = fits["double_drift"]
    verdicts = {v.subject.split(" ")[0]: v for v in result.base_verdicts}
    assert not verdicts["drift.nu_mean"].fits and not verdicts["drift.nu_std"].fits
    assert verdicts["programming.sigma_us"].fits and verdicts["read_noise.q_s"].fits
    base_ks = compare_to_profile(data, result.base, seed=5)
    assert not any(c.indistinguishable for c in base_ks[1:]), base_ks  # 1 h onwards
    assert all(c.indistinguishable for c in compare_to_profile(data, result.profile, seed=5))
    for name in ("drift.nu_mean", "drift.nu_std"):
        dev, bound = deviation(result.laws[name], result.profile, source)
        assert dev <= bound, f"{name}: {dev:.2f} > {bound:.2f}"
    assert all(v.fits for v in result.verdicts), [v.line() for v in result.verdicts]


def test_fitted_profile_loads_and_names_its_data(fits, tmp_path: Path) -> None:
    _, data, result = fits["pcm_hermes2023"]
    path = tmp_path / "my_chip.yaml"
    path.write_text(result.to_yaml())
    loaded = load_profile(path)
    assert loaded == result.profile
    assert loaded.periphery == result.base.periphery and loaded.tile == result.base.tile
    assert loaded.read_noise.t_read_s == result.base.read_noise.t_read_s
    source = loaded.provenance.source
    assert data.sha256 in source and f"{data.rows} rows" in source
    assert f"{data.devices} devices" in source and "held-out" in loaded.provenance.note


# ------------------------------------------------------------------ estimators, golden values


def test_folded_normal_moments_are_inverted() -> None:
    mu, sigma = np.array([0.05, 0.01, 0.0, 0.1]), np.array([0.03, 0.03, 0.02, 1e-9])
    theta = mu / sigma
    m1 = sigma * np.sqrt(2 / np.pi) * np.exp(-(theta**2) / 2) + mu * (1 - 2 * norm.cdf(-theta))
    got_mu, got_sigma = est.folded_normal_params(m1, mu**2 + sigma**2)
    np.testing.assert_allclose(got_mu, mu, atol=2e-5)
    np.testing.assert_allclose(got_sigma, sigma, atol=2e-5)


def test_drift_regression_and_t0_are_exact_on_noiseless_data() -> None:
    g_prog, nu = np.array([5.0, 12.0, 20.0]), np.array([0.03, 0.06, 0.1])
    device = np.repeat(np.arange(3), len(TIMES))
    t = np.tile(TIMES, 3)
    g = g_prog[device] * ((t + 20.0) / 20.0) ** -nu[device]
    cells = est.group_cells(device, t, g)
    v = np.full(len(t), 1e-12)  # the weights' relative read variance; no noise corrections
    reg = est.drift_regression(cells, v, 20.0, 3)
    np.testing.assert_allclose(np.exp(reg.a), g_prog, rtol=1e-9)
    np.testing.assert_allclose(reg.nu, nu, rtol=1e-9)
    assert reg.chi2 < 1e-12

    def chi2_at(t0: float) -> float:
        return est.drift_regression(cells, v, t0, 3, iterations=0).chi2

    _, _, best = est.scan_t0(chi2_at, 1e-2, 1e5)
    assert best == pytest.approx(20.0, rel=1e-3)


def test_log_fit_sums_equal_the_per_cell_regression() -> None:
    """Parity: the sparse by-time sums of the t0 scan against the per-cell reference fit, on
    noisy data with unequal reads per cell; a wrong t0 changes the fit (negative control)."""
    profile = load_profile("pcm_hermes2023")
    data = simulate(profile, 500, seed=8, reads=3)
    keep = np.random.default_rng(0).random(data.rows) > 0.2  # cells of 1..3 reads
    cells = est.group_cells(data.device[keep], data.t_s[keep], data.g_us[keep])
    v = np.full(len(cells.n), 4e-3) * (1 + est.log_time(cells.t_s, 300.0))
    sums = est.LogFitSums.build(cells, v, data.devices)
    for t0 in (30.0, 300.0, 3000.0):
        ref = est.drift_regression(cells, v, t0, data.devices, iterations=0)
        a, nu, var_a, rss = sums.at(t0)
        for got, want in ((a, ref.a), (nu, ref.nu), (var_a, ref.var_a), (rss, ref.rss)):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    assert not np.allclose(sums.at(30.0)[1], sums.at(300.0)[1], rtol=1e-3)


def test_bins_one_per_level_or_equal_counts_small_bins_merged() -> None:
    levels = np.repeat([0.1, 0.2, 0.5], [30, 30, 5])
    bins, n = est.make_bins(levels, 32, 20)
    assert n == 2 and set(bins[:30]) == {0} and set(bins[30:]) == {1}  # 5 devices join 0.2
    x = np.random.default_rng(0).random(1000)
    bins, n = est.make_bins(x, 10, 20)
    assert n == 10 and np.all(np.bincount(bins) == 100)
    assert np.all(np.diff([x[bins == b].max() for b in range(n)]) > 0)


def test_law_is_constant_outside_the_data_and_continuous_at_a_breakpoint() -> None:
    x = np.geomspace(0.05, 0.9, 20)
    v = np.where(x < 0.2, -0.01 * np.log(x), 0.016 + 0.01 * (x - 0.2) - 0.02 * (x - 0.2) ** 2)
    cand = next(c for c in candidates_for(x) if c.name.startswith("log_clip|poly2"))
    form = cand.fit(x, v, np.full_like(x, 1e-4))
    at = form.pieces[0].x_below
    assert at is not None
    left, right = (
        FittedForm((dataclasses.replace(p, x_below=None),)).values(np.array([at]))[0]
        for p in form.pieces
    )
    assert left == pytest.approx(right, abs=1e-12)  # continuous
    assert np.allclose(cand.unpack(cand.pack(form)).values(x), form.values(x), atol=1e-12)
    law = law_from_form(form, 0.05, 0.9)
    import torch

    values = evaluate_law(law, torch.tensor([0.0, 0.01, 0.05, 0.9, 0.95, 1.0], dtype=torch.float64))
    edges = form.values(np.array([0.05, 0.9]))
    np.testing.assert_allclose(values.numpy()[:3], edges[0], rtol=1e-5)
    np.testing.assert_allclose(values.numpy()[3:], edges[1], rtol=1e-5)


def test_log_clip_finds_the_nandakumar_kinks() -> None:
    x = np.geomspace(0.005, 1.0, 30)
    v = np.clip(-0.0155 * np.log(x) + 0.0244, 0.049, 0.1)
    form = Candidate("log_clip", 4).fit(x, v, np.full_like(x, 1e-4))
    np.testing.assert_allclose(form.values(x), v, atol=2e-4)


def test_smearing_without_programming_spread_is_the_law_itself() -> None:
    x = np.repeat(LEVELS, 3)
    bins = np.repeat(np.arange(len(LEVELS)), 3)
    smear = smearing(x, np.zeros_like(x), np.ones_like(x), bins, len(LEVELS))

    def q(xs: np.ndarray) -> np.ndarray:
        return 0.0088 * xs**-0.65

    np.testing.assert_allclose(smear.forward(q), q(LEVELS), rtol=1e-9)
    wide = smearing(x, 0.3 * x, np.ones_like(x), bins, len(LEVELS))
    assert np.all(wide.forward(q) < q(LEVELS))  # a convex, falling law seen through a spread


# ------------------------------------------------------------------ the file format


def test_csv_round_trip_and_simulation_is_reproducible(tmp_path: Path) -> None:
    profile = load_profile("pcm_hermes2023")
    data = simulate(profile, 100, seed=3)
    path = write_measurements_csv(data, tmp_path / "m.csv")
    back = read_measurements(path)
    assert back.device_names == data.device_names and back.rows == data.rows
    np.testing.assert_allclose(back.g_us, data.g_us, rtol=1e-6)
    np.testing.assert_array_equal(back.read, data.read)
    assert back.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(simulate_like(back, profile, 4), simulate_like(back, profile, 4))
    assert not np.array_equal(simulate_like(back, profile, 4), simulate_like(back, profile, 5))


def test_example_file_is_small_and_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert EXAMPLE.stat().st_size < 500_000
    out, report = tmp_path / "my_chip.yaml", tmp_path / "report"
    argv = ["profiles", "fit", str(EXAMPLE), "--base", "pcm_hermes2023", "--out", str(out)]
    assert main([*argv, "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "t0_s:" in text and "read_noise.q_s (fitted" in text
    profile = load_profile(out)
    assert profile.name == "my_chip"
    digest = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert digest in profile.provenance.source and "10000 rows" in profile.provenance.source
    assert {p.name for p in report.iterdir()} == {"report.md", "laws.png", "qq.png", "t0.png"}
    assert "Simulated against measured" in (report / "report.md").read_text()
    assert main(["profiles", "check", str(out)]) == 0


# ------------------------------------------------------------------ bad input: one line, exit 2

HEADER = "device,g_target_us,t_s,g_us,read"


def rows(devices: int = 80, times: tuple[float, ...] = (60.0, 3600.0, 86_400.0), reads: int = 2):
    out = []
    for d in range(devices):
        target = 2.0 + (d % 4) * 5.0
        for t in times:
            for r in range(reads):
                out.append(f"d{d},{target},{t:g},{target * (1 - 0.01 * r):.4f},{r}")
    return out


BAD_INPUTS = [  # (label, file content, fragment of the one-line error)
    ("missing", "device,g_target_us,t_s\nd0,1,60\n", "missing column 'g_us'"),
    ("unknown", "device,g_target_us,t_s,g_us,wafer\nd0,1,60,1,w\n", "unknown column 'wafer'"),
    ("text", f"{HEADER}\nd0,5,60,abc,0\n", "line 2: g_us 'abc' is not a number"),
    ("negative", f"{HEADER}\nd0,5,60,-0.3,0\n", "line 2: g_us is -0.3, expected a conductance"),
    ("before", f"{HEADER}\nd0,5,-1,4.9,0\n", "line 2: t_s is -1, expected a time >= 0"),
    ("nan", f"{HEADER}\nd0,5,60,nan,0\n", "g_us is nan, expected a finite number"),
    ("fields", f"{HEADER}\nd0,5,60\n", "line 2: 3 fields, expected 5"),
    ("empty", "", "empty file"),
    ("header", f"{HEADER}\n", "no data rows"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
    ("twice", f"{HEADER}\nd0,5,60,4.9,0\nd0,5,60,4.8,0\n", "line 3: a second row with the same"),
    ("target", f"{HEADER}\nd0,5,60,4.9,0\nd0,6,3600,4.8,0\n", "expected one target per device"),
    ("window", "\n".join([HEADER, *rows()]).replace("d0,2.0,", "d0,40,"), "exceeds the base"),
    ("times", "\n".join([HEADER, *rows(times=(60.0, 3600.0))]), "drift.nu_mean and drift.nu_std"),
    ("repeats", "\n".join([HEADER, *rows(reads=1)]), "read_noise.q_s needs repeated reads"),
    ("devices", "\n".join([HEADER, *rows(devices=12)]), "need at least 3 target bins of 20"),
    (
        "temperature",
        "device,g_target_us,t_s,g_us,temperature_k\nd0,5,60,4.9,300\nd1,5,60,4.9,358\n",
        "fit each temperature",
    ),
]


@pytest.mark.parametrize(
    ("label", "content", "fragment"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_measurements_refused_in_one_line_nothing_written(
    label: str,
    content: str | bytes,
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "m.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out, report = tmp_path / "chip.yaml", tmp_path / "report"
    assert main(["profiles", "fit", str(path), "--out", str(out), "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcm-sim: error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert not out.exists() and not report.exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--out", "chip.txt"], "expected a .yaml or .yml path"),
        (["--out", "chip.yaml", "--base", "no_such"], "unknown profile 'no_such'"),
        (["--out", "chip.yaml", "--seed", "-1"], "expected an integer >= 0"),
        (["--out", "chip.yaml", "--report", "a_file"], "is a file, expected a directory"),
    ],
)
def test_bad_arguments_refused(
    extra: list[str], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    assert main(["profiles", "fit", str(EXAMPLE), *extra]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "chip.yaml").exists()
