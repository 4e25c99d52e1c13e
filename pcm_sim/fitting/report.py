"""The fit report: ``report.md`` with ``laws.png``, ``qq.png`` and ``t0.png``.

* ``laws.png`` -- each law against ``x``: bin estimates with 95 % error bars (1.96 bootstrap
  standard errors; for ``read_noise.q_s`` corrected for the spread of ``x_prog``, see
  :mod:`pcm_sim.fitting.readnoise`), the fitted law from the written profile, its 95 %
  bootstrap band, and the base profile's law (dashed).
* ``qq.png`` -- at each measured time, quantiles (0.5 % .. 99.5 %) of simulated against
  measured conductances relative to their targets, ``g / g_target`` (the targets' own spread
  would hide the device physics), for the fitted and the base profile
  (:mod:`pcm_sim.fitting.compare`).
* ``t0.png`` -- ``chi2(t0) - chi2_min`` (drift residual and programming offsets, see
  :mod:`pcm_sim.fitting.fit`) against ``t0``, with the 95 % bound.
* ``report.md`` -- the data (file, sha256, rows, devices, times), ``t0``, each law's form,
  coefficients and verdict (fitted and base), the checks, and the KS statistics per time.

Figures use :class:`matplotlib.figure.Figure` (no pyplot state); every file is written
atomically (:mod:`pcm_sim.studies.outputs`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pcm_sim.fitting.checks import applied_law
from pcm_sim.fitting.compare import TimeComparison, compare_to_profile
from pcm_sim.fitting.estimators import group_cells
from pcm_sim.fitting.fit import T0_DELTA_CHI2, FitResult
from pcm_sim.fitting.fitted_profile import piece_lines
from pcm_sim.studies.outputs import atomic_output, write_text_atomic

__all__ = ["write_fit_report"]

_TITLES = {
    "programming.sigma_us": "programming noise std (µS)",
    "drift.nu_mean": "drift exponent mean",
    "drift.nu_std": "drift exponent std",
    "read_noise.q_s": "read noise q_s (per sqrt(ln))",
}


def _save(fig: Figure, path: Path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def _laws_figure(result: FitResult, path: Path) -> None:
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, (name, law) in zip(axes.ravel(), result.laws.items(), strict=True):
        x = np.geomspace(min(0.01, law.x_range[0]), 1.0, 300)
        ax.errorbar(law.x, law.value, yerr=1.96 * law.se, fmt="o", ms=3, color="k", label="data")
        ax.fill_between(law.grid, law.band_lo, law.band_hi, color="C0", alpha=0.3, lw=0)
        ax.plot(x, applied_law(result.profile, name, x), color="C0", label=f"fit ({law.form})")
        base = applied_law(result.base, name, x)
        ax.plot(x, base, "--", color="C3", label=f"base {result.base.name}")
        ax.axvspan(x[0], law.x_range[0], color="0.9", lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("x = g / g_max" + (" (programmed)" if name == "read_noise.q_s" else ""))
        ax.set_title(f"{name}: {_TITLES[name]}", fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, path)


def _qq_figure(fitted: list[TimeComparison], base: list[TimeComparison], path: Path) -> None:
    cols = min(len(fitted), 3)
    rows = -(-len(fitted) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, f, b in zip(axes, fitted, base, strict=False):
        lo, hi = float(f.measured_q[0]), float(f.measured_q[-1])
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.plot(b.measured_q, b.simulated_q, "o", ms=4, mfc="none", color="C3",
                label=f"base (D={b.ks_ratio:.3f})")  # fmt: skip
        ax.plot(
            f.measured_q, f.simulated_q, ".", ms=3, color="C0", label=f"fit (D={f.ks_ratio:.3f})"
        )
        ax.set_title(f"t = {f.label}", fontsize=9)
        ax.set_xlabel("measured g / g_target")
        ax.set_ylabel("simulated g / g_target")
        ax.legend(fontsize=7)
    for ax in axes[len(fitted) :]:
        ax.set_visible(False)
    _save(fig, path)


def _t0_figure(result: FitResult, path: Path) -> None:
    t0 = result.t0
    fig = Figure(figsize=(5, 3.4), layout="constrained")
    ax = fig.subplots()
    delta = t0.chi2 - t0.chi2.min()
    ax.plot(t0.grid, np.maximum(delta, 1e-3), "o-", ms=3)
    ax.axhline(T0_DELTA_CHI2, color="0.5", ls=":", label="95 % bound")
    ax.axvline(t0.t0_s, color="C0", label=f"t0 used {t0.t0_s:g} s")
    ax.axvline(
        result.base.drift.t0_s, color="C3", ls="--", label=f"base {result.base.drift.t0_s:g} s"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t0 (s)")
    ax.set_ylabel("chi2 - chi2_min")
    ax.legend(fontsize=7)
    _save(fig, path)


def _verdict_cell(fits: bool) -> str:
    return "fits" if fits else "**does not fit**"


def _markdown(
    result: FitResult, fitted: list[TimeComparison], base: list[TimeComparison], out: str
) -> str:
    m, p = result.measurements, result.profile
    reads = group_cells(m.device, m.t_s, m.g_us).n
    times = ", ".join(result.time_labels)
    temp = f"{m.temperature_k:g} K" if m.temperature_k is not None else "not given"
    lines = [
        f"# Profile fit: `{p.name}`",
        "",
        f"Profile written to `{out}`; base profile `{result.base.name}` (device window, read "
        "duration, periphery, tile, weight cell, compensation and energy kept).",
        "",
        "| data | |",
        "| --- | --- |",
        f"| file | `{m.source}` |",
        f"| sha256 | `{m.sha256}` |",
        f"| rows (reads) | {m.rows} |",
        f"| devices | {m.devices} ({result.excluded_devices} left out: a 0 µS mean read) |",
        f"| times | {times} |",
        f"| reads per device and time | {np.median(reads):g} (median) |",
        f"| temperature | {temp} |",
        f"| method | {result.folds}-fold held-out likelihood, {result.replicates} bootstrap "
        "replicates over devices |",
        "",
        "## t0",
        "",
        f"{result.t0.reason}; dispersion phi = {result.t0.phi:.3f}.",
        "",
        "![t0](t0.png)",
        "",
        "## Laws",
        "",
        "| law | form | fitted profile | base profile |",
        "| --- | --- | --- | --- |",
    ]
    for law in result.laws.values():
        lines.append(
            f"| `{law.name}` | {law.form} | {_verdict_cell(law.verdict.fits)}: "
            f"{law.verdict.reason} | {_verdict_cell(law.base_verdict.fits)}: "
            f"{law.base_verdict.reason} |"
        )
    lines += [
        "",
        "![laws](laws.png)",
        "",
        "Grey: outside the measured range of x, where each fitted law is held at its value at "
        "the nearest measured x. Error bars: 95 % (bootstrap over devices); band: 95 % "
        "bootstrap band of the fitted form.",
        "",
        "Fitted laws as written to the profile:",
        "",
        "```yaml",
    ]
    for law in result.laws.values():
        lines += [f"{law.name}:", *(f"  - {line}" for line in piece_lines(law.law))]
    lines += ["```", "", "Held-out log-likelihood of the best five forms per law:", ""]
    for law in result.laws.values():
        best = sorted(law.scores.items(), key=lambda kv: -kv[1])[:5]
        lines.append(f"- `{law.name}`: " + ", ".join(f"{k} {v:.1f}" for k, v in best))
    lines += ["", "## Checks of the model", "", "| check | verdict |", "| --- | --- |"]
    lines += [f"| {v.subject} | {_verdict_cell(v.fits)}: {v.reason} |" for v in result.checks]
    lines += [
        "",
        "## Simulated against measured conductances",
        "",
        "Two-sample KS tests, one read per device and time; D on g and on g / g_t (g_t = "
        "g_target).",
        "",
        "| time | devices | fit D(g) | p | D(g/g_t) | p | base D(g) | p | D(g/g_t) | p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f, b in zip(fitted, base, strict=True):
        lines.append(
            f"| {f.label} | {f.n} | {f.ks_g:.4f} | {f.p_g:.2g} | {f.ks_ratio:.4f} | "
            f"{f.p_ratio:.2g} | {b.ks_g:.4f} | {b.p_g:.2g} | {b.ks_ratio:.4f} | {b.p_ratio:.2g} |"
        )
    same = sum(f.indistinguishable for f in fitted)
    base_same = sum(b.indistinguishable for b in base)
    lines += [
        "",
        f"Fitted profile indistinguishable from the data at {same} of {len(fitted)} times, "
        f"the base at {base_same}.",
        "",
        "![qq](qq.png)",
        "",
        "QQ plots of g / g_target, 0.5 % to 99.5 % quantiles; D: KS statistic on g / g_target.",
        "",
    ]
    return "\n".join(lines)


def write_fit_report(
    result: FitResult, out_dir: str | Path, profile_path: str = "", seed: int = 0
) -> Path:
    """Write ``report.md``, ``laws.png``, ``qq.png`` and ``t0.png`` to ``out_dir``.

    The fitted and the base profile are simulated on the measured design with chip seed
    ``seed``.  ``profile_path`` names the written profile in the text.  Returns the report path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fitted = compare_to_profile(result.measurements, result.profile, seed)
    base = compare_to_profile(result.measurements, result.base, seed)
    _laws_figure(result, out / "laws.png")
    _qq_figure(fitted, base, out / "qq.png")
    _t0_figure(result, out / "t0.png")
    text = _markdown(result, fitted, base, profile_path or "(not written)")
    return write_text_atomic(out / "report.md", text)
