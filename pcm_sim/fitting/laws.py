"""Law forms fitted to binned estimates, chosen by held-out likelihood, with bootstrap bands.

A law ``f(x)`` is fitted to bin estimates ``v_b +- se_b`` at bin positions ``x_b`` by weighted
least squares, ``min sum_b ((f(x_b) - v_b) / se_b)^2``.  The candidate forms are the profile's
law forms (:class:`pcm_sim.profiles.LawPiece`):

* ``poly0`` .. ``poly3``: ``sum_i c_i x^i``;  ``log``: ``c0 ln x + c1``;
  ``power``: ``c0 x^-c1``;  ``log_clip``: ``clip(c0 ln x + c1, lo, hi)`` (Nandakumar 2019);
* ``log_clip|polyK@b``: ``log_clip`` below the breakpoint ``b`` and, above it, a polynomial
  of degree K (2, 3) that continues it without a jump (the HERMES laws, Le Gallo et al.
  2023); one candidate per breakpoint, at the geometric midpoints between bins.  Continuity
  matters beyond looks: the read-noise law is corrected for the spread of ``x_prog`` within a
  bin using the law itself, and a jump would feed back into that correction.

**Held-out likelihood.**  Devices are split into K folds.  For fold k, each form is fitted to
the bin estimates of the other folds and scored by the Gaussian log-likelihood of fold k's own
bin estimates, ``-1/2 sum_b ((f(x_b) - v_b^k) / se_b^k)^2``, with ``se_b^k = se_b sqrt(n_b /
n_b^k)`` (the full-data bootstrap standard error scaled to the fold's device count).  The
simplest form within one standard error of the largest total over folds wins (the
one-standard-error rule); a form needs more bins than parameters.

**Law in the profile.**  Inside the data's range ``[x_lo, x_hi]`` the law is the fitted form;
outside it is held at its value at the nearest end (two constant pieces), so a law is never
extrapolated beyond what was measured.  Every piece is clipped at 0 from below (stds and
rates), and numbers are rounded to :data:`SIGNIFICANT` significant digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from pcm_sim.fitting.estimators import BinnedEstimator
from pcm_sim.profiles import Law, LawPiece

__all__ = [
    "SIGNIFICANT",
    "Candidate",
    "FittedForm",
    "LawSelection",
    "candidates_for",
    "fit_binned_law",
    "law_from_form",
    "select_form",
]

SIGNIFICANT = 6
"""Significant digits of the numbers written into a fitted law."""
MAX_BREAKPOINTS = 10
"""Most breakpoints tried per two-piece form (evenly spread over the admissible bins)."""
KINK_GRID = 49
"""Grid points over ``ln x`` for the kinks of a clipped log law (then a finer grid around the
best pair: kinks located to 1/600 of the data's range in ``ln x``)."""
POWER_EXPONENT_MAX = 4.0
"""Bound of a power law's exponent (:data:`pcm_sim.profile_bounds.POWER_EXPONENT_LIMIT`)."""


@dataclass(frozen=True)
class FittedForm:
    """A form with its coefficients: ``pieces`` are profile law pieces (no extrapolation)."""

    pieces: tuple[LawPiece, ...]

    def values(self, x: np.ndarray) -> np.ndarray:
        """The law at ``x`` (numpy, float64), with the semantics of
        :func:`pcm_sim.physics.pcm.evaluate_law` (pieces by ``x_below``, then clips)."""
        out = np.zeros_like(x, dtype=np.float64)
        lower = -math.inf
        for piece in self.pieces:
            upper = math.inf if piece.x_below is None else piece.x_below
            c = piece.coeffs
            if piece.form == "log":
                value = c[0] * np.log(x) + c[1]
            elif piece.form == "power":
                value = c[0] * x ** (-c[1])
            else:
                value = np.polynomial.polynomial.polyval(x, c)
            value = np.clip(value, piece.clip_min, piece.clip_max)
            mask = (x >= lower) & (x < upper)
            out = np.where(mask, value, out)
            lower = upper
        return out


def _wls(design: np.ndarray, v: np.ndarray, se: np.ndarray) -> np.ndarray:
    coeffs, *_ = np.linalg.lstsq(design / se[:, None], v / se, rcond=None)
    return coeffs


def _poly(x: np.ndarray, v: np.ndarray, se: np.ndarray, degree: int) -> LawPiece:
    design = np.vander(x, degree + 1, increasing=True)
    return LawPiece("poly", tuple(float(c) for c in _wls(design, v, se)))


def _log(x: np.ndarray, v: np.ndarray, se: np.ndarray) -> LawPiece:
    c0, c1 = _wls(np.stack([np.log(x), np.ones_like(x)], axis=1), v, se)
    return LawPiece("log", (float(c0), float(c1)))


def _power(x: np.ndarray, v: np.ndarray, se: np.ndarray) -> LawPiece:
    pos = v > 0
    if pos.sum() >= 2:
        slope, intercept = np.polyfit(np.log(x[pos]), np.log(v[pos]), 1)
        start = [math.exp(intercept), float(np.clip(-slope, -3.9, 3.9))]
    else:
        start = [max(float(np.mean(v)), 1e-9), 0.0]
    result = least_squares(
        lambda p: (p[0] * x ** (-p[1]) - v) / se,
        start,
        bounds=([0.0, -POWER_EXPONENT_MAX], [np.inf, POWER_EXPONENT_MAX]),
    )
    return LawPiece("power", (float(result.x[0]), float(result.x[1])))


def _clipped_lines(
    u: np.ndarray, v: np.ndarray, se: np.ndarray, k1: np.ndarray, k2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``v = c0 clip(u, k1, k2) + c1`` for every kink pair at once.

    ``u``, ``v``, ``se``: (bins,); ``k1``, ``k2``: (pairs,).  Returns ``(c0, c1, chi2)``, each
    (pairs,), from the closed-form 2x2 normal equations.
    """
    w = 1.0 / se**2
    z = np.clip(u[None, :], k1[:, None], k2[:, None])  # (pairs, bins)
    s_w, s_z, s_zz = w.sum(), z @ w, (z * z) @ w
    s_v, s_zv = (w * v).sum(), z @ (w * v)
    det = s_w * s_zz - s_z**2
    flat = det <= 1e-12 * s_w * np.maximum(s_zz, 1e-300)
    c0 = np.where(flat, 0.0, (s_w * s_zv - s_z * s_v) / np.where(flat, 1.0, det))
    c1 = (s_v - c0 * s_z) / s_w
    chi2 = ((c0[:, None] * z + c1[:, None] - v[None, :]) ** 2) @ w
    return c0, c1, chi2


def _log_clip(x: np.ndarray, v: np.ndarray, se: np.ndarray) -> LawPiece:
    """``clip(c0 ln x + c1, lo, hi)`` = ``c0 clip(ln x, k1, k2) + c1``: linear in ``(c0, c1)``
    for fixed kinks ``k1 <= k2``, so every kink pair of a grid over ``ln x`` is solved in
    closed form, then a finer grid around the best pair (a search, not a local descent, so the
    non-smooth kinks cannot trap it)."""
    u = np.log(x)
    span = float(u.max() - u.min()) or 1.0
    coarse = np.linspace(u.min() - 0.05 * span, u.max() + 0.05 * span, KINK_GRID)
    i, j = np.triu_indices(KINK_GRID)
    c0, c1, chi2 = _clipped_lines(u, v, se, coarse[i], coarse[j])
    best = int(np.argmin(chi2))
    step = coarse[1] - coarse[0]
    fine = np.linspace(-step, step, KINK_GRID // 2 + 1)
    k1 = (coarse[i[best]] + fine)[:, None] + 0 * fine[None, :]
    k2 = (coarse[j[best]] + fine)[None, :] + 0 * fine[:, None]
    keep = (k1 <= k2).ravel()
    k1, k2 = k1.ravel()[keep], k2.ravel()[keep]
    c0, c1, chi2 = _clipped_lines(u, v, se, k1, k2)
    best = int(np.argmin(chi2))
    a, b = c0[best] * k1[best] + c1[best], c0[best] * k2[best] + c1[best]
    return LawPiece(
        "log",
        (float(c0[best]), float(c1[best])),
        clip_min=float(min(a, b)),
        clip_max=float(max(a, b)),
    )


@dataclass(frozen=True)
class Candidate:
    """A form to try: ``name``, parameter count, and for two-piece forms the breakpoint."""

    name: str
    n_params: int
    breakpoint: float | None = None

    def fit(self, x: np.ndarray, v: np.ndarray, se: np.ndarray) -> FittedForm:
        """Weighted least-squares fit to bin estimates ``v`` (+- ``se``) at ``x``."""
        if self.breakpoint is None:
            return FittedForm((_fit_simple(self.name, x, v, se),))
        left_name, right_name = self.name.split("@")[0].split("|")
        left = x < self.breakpoint
        low = _fit_simple(left_name, x[left], v[left], se[left])
        at_break = float(FittedForm((low,)).values(np.array([self.breakpoint]))[0])
        degree = int(right_name[4:])
        high = _poly_through(x[~left], v[~left], se[~left], degree, self.breakpoint, at_break)
        return FittedForm((_with(low, x_below=self.breakpoint), high))

    def pack(self, form: FittedForm) -> np.ndarray:
        """The free parameters of ``form`` (a fit of this candidate), for :meth:`unpack`."""
        first = form.pieces[0]
        params = list(first.coeffs)
        if self.name.startswith("log_clip"):
            params += [first.clip_min or 0.0, first.clip_max or 0.0]
        if self.breakpoint is not None:  # the right piece's Taylor coefficients at the break
            shifted = np.polynomial.Polynomial(form.pieces[1].coeffs)(
                np.polynomial.Polynomial([self.breakpoint, 1.0])
            )
            params += list(np.pad(shifted.coef, (0, 8))[1 : self.n_params - 3])
        return np.array(params, dtype=np.float64)

    def unpack(self, params: np.ndarray) -> FittedForm:
        """The form with parameters ``params`` (as :meth:`pack` orders them)."""
        p = [float(v) for v in params]
        if self.name == "power":
            return FittedForm((LawPiece("power", (p[0], min(max(p[1], -4.0), 4.0))),))
        if self.name.startswith("poly"):
            return FittedForm((LawPiece("poly", tuple(p)),))
        if self.name == "log":
            return FittedForm((LawPiece("log", (p[0], p[1])),))
        low = LawPiece("log", (p[0], p[1]), clip_min=p[2], clip_max=max(p[2], p[3]))
        if self.breakpoint is None:
            return FittedForm((low,))
        at_break = float(FittedForm((low,)).values(np.array([self.breakpoint]))[0])
        right = _poly_from_taylor(self.breakpoint, at_break, p[4:])
        return FittedForm((_with(low, x_below=self.breakpoint), right))

    def refine(
        self, start: FittedForm, residual: Callable[[FittedForm], np.ndarray]
    ) -> tuple[FittedForm, np.ndarray, np.ndarray]:
        """Least squares of ``residual(form)`` over this candidate's parameters, from ``start``
        (to fit a law through a forward model, :mod:`pcm_sim.fitting.readnoise`).  Returns the
        form, its parameters and the residual's Jacobian there, (residuals, parameters)."""
        result = least_squares(lambda p: residual(self.unpack(p)), self.pack(start), x_scale="jac")
        return self.unpack(result.x), result.x, result.jac


def _poly_from_taylor(x0: float, y0: float, d: list[float] | np.ndarray) -> LawPiece:
    """``y0 + sum_{i >= 1} d_i (x - x0)^i`` as a polynomial piece in powers of ``x``:
    ``c_k = sum_{i >= k} d_i C(i, k) (-x0)^(i - k)`` (``d_0 = y0``)."""
    taylor = [y0, *(float(v) for v in d)]
    coeffs = [
        sum(taylor[i] * math.comb(i, k) * (-x0) ** (i - k) for i in range(k, len(taylor)))
        for k in range(len(taylor))
    ]
    return LawPiece("poly", tuple(coeffs))


def _poly_through(
    x: np.ndarray, v: np.ndarray, se: np.ndarray, degree: int, x0: float, y0: float
) -> LawPiece:
    """Weighted least squares of ``y0 + sum_{i >= 1} d_i (x - x0)^i`` (a polynomial through
    ``(x0, y0)``: the law stays continuous at a breakpoint), as coefficients of ``x^i``."""
    design = np.vander(x - x0, degree + 1, increasing=True)[:, 1:]
    return _poly_from_taylor(x0, y0, _wls(design, v - y0, se))


def _fit_simple(name: str, x: np.ndarray, v: np.ndarray, se: np.ndarray) -> LawPiece:
    if name.startswith("poly"):
        return _poly(x, v, se, int(name[4:]))
    return {"log": _log, "power": _power, "log_clip": _log_clip}[name](x, v, se)


_SIMPLE = {"poly0": 1, "poly1": 2, "poly2": 3, "poly3": 4, "log": 2, "power": 2, "log_clip": 4}


def candidates_for(x: np.ndarray) -> list[Candidate]:
    """Every form that the bins at ``x`` (increasing) can constrain (more bins than params)."""
    n = len(x)
    out = [Candidate(name, k) for name, k in _SIMPLE.items() if n > k]
    for right, k_right in (("poly2", 3), ("poly3", 4)):
        # left: log_clip (4 params) on >= 5 bins; right: on > k_right bins
        splits = [i for i in range(5, n - k_right) if n - i > k_right]
        if len(splits) > MAX_BREAKPOINTS:
            pick = np.linspace(0, len(splits) - 1, MAX_BREAKPOINTS).round().astype(int)
            splits = [splits[j] for j in pick]
        for i in splits:
            b = float(math.sqrt(x[i - 1] * x[i]))
            out.append(Candidate(f"log_clip|{right}@{b:.4g}", 4 + k_right, b))
    return out


def select_form(
    x: np.ndarray,
    train: np.ndarray,
    train_se: np.ndarray,
    test: np.ndarray,
    test_se: np.ndarray,
) -> tuple[Candidate, dict[str, float], tuple[Candidate, ...]]:
    """The form chosen by K-fold held-out log-likelihood, with the one-standard-error rule.

    ``train``/``test``: (K, bins) bin estimates of the other folds and of the fold itself;
    ``*_se``: their standard errors (``nan`` or ``inf`` for bins a fold lacks, which are left
    out).  Among the forms whose summed held-out log-likelihood is within one standard error
    of the best (the standard error of the sum of the per-fold differences, ``sqrt(K)`` times
    their std), the one with the fewest parameters wins (Hastie, Tibshirani and Friedman,
    *Elements of Statistical Learning*, 7.10).  Returns the winner, every candidate's sum, and
    the forms within one standard error (the data cannot tell them apart).
    """
    folds = train.shape[0]
    per_fold: dict[str, np.ndarray] = {}
    cands = candidates_for(x)
    for cand in cands:
        scores = np.full(folds, -math.inf)
        for k in range(folds):
            ok = np.isfinite(train[k]) & np.isfinite(train_se[k]) & (train_se[k] > 0)
            held = np.isfinite(test[k]) & np.isfinite(test_se[k]) & (test_se[k] > 0)
            if ok.sum() <= cand.n_params:
                break
            try:
                form = cand.fit(x[ok], train[k][ok], train_se[k][ok])
            except (ValueError, np.linalg.LinAlgError):
                break
            z = (form.values(x[held]) - test[k][held]) / test_se[k][held]
            scores[k] = -0.5 * float(np.sum(z**2))
        per_fold[cand.name] = scores
    totals = {name: float(s.sum()) for name, s in per_fold.items()}
    top = max(totals, key=lambda name: totals[name])
    if not math.isfinite(totals[top]):
        raise ValueError("no law form has fewer parameters than there are x-bins")
    within = []
    for cand in cands:
        diff = per_fold[top] - per_fold[cand.name]
        if np.isfinite(diff).all() and diff.sum() <= math.sqrt(folds) * float(np.std(diff, ddof=1)):
            within.append(cand)
    best = min(within, key=lambda c: (c.n_params, -totals[c.name]))
    return best, totals, tuple(within)


def _round(value: float | None) -> float | None:
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))


def _with(piece: LawPiece, **changes: float | None) -> LawPiece:
    fields = {
        "form": piece.form,
        "coeffs": piece.coeffs,
        "x_below": piece.x_below,
        "clip_min": piece.clip_min,
        "clip_max": piece.clip_max,
    }
    fields.update(changes)
    return LawPiece(**fields)  # type: ignore[arg-type]


def law_from_form(form: FittedForm, x_lo: float, x_hi: float) -> Law:
    """The profile law: ``form`` on ``[x_lo, x_hi]``, constant outside, clipped at 0, rounded.

    ``x_hi >= 1`` needs no upper constant piece (the profile's x never exceeds 1 by much).
    """
    pieces = []
    for piece in form.pieces:
        clip_min = max(piece.clip_min if piece.clip_min is not None else 0.0, 0.0)
        clip_max = piece.clip_max
        if clip_max is not None:
            clip_max = max(clip_max, clip_min)
        pieces.append(
            LawPiece(
                piece.form,
                tuple(_round(c) or 0.0 for c in piece.coeffs),
                x_below=_round(piece.x_below),
                clip_min=_round(clip_min),
                clip_max=_round(clip_max),
            )
        )
    rounded = FittedForm(tuple(pieces))
    edges = np.array([x_lo, x_hi])
    at_lo, at_hi = (float(v) for v in rounded.values(edges))
    low = LawPiece("poly", (_round(at_lo) or 0.0,), x_below=_round(x_lo))
    if x_hi < 1.0:
        pieces[-1] = _with(pieces[-1], x_below=_round(x_hi))
        pieces.append(LawPiece("poly", (_round(at_hi) or 0.0,)))
    return Law((low, *pieces))


@dataclass(frozen=True)
class LawSelection:
    """One law's selection and fit: the winning candidate, bin estimates and their bootstrap
    standard errors and replicates, the fitted form, every candidate's held-out score, and
    ``alternatives``: every form within one standard error of the best, fitted to all data
    (their spread is the part of the law's uncertainty that comes from its form)."""

    best: Candidate
    value: np.ndarray
    se: np.ndarray
    boot: np.ndarray
    form: FittedForm
    scores: dict[str, float]
    alternatives: tuple[FittedForm, ...]


def fit_binned_law(
    estimator: BinnedEstimator, boot: np.ndarray, folds: int, seed: int
) -> LawSelection:
    """Select and fit the form of one law.  ``boot``: (replicates, bins) bootstrap replicates
    of ``estimator``'s bin estimates (their std is the standard error); devices are split into
    ``folds`` folds (seeded) for :func:`select_form`."""
    n_dev = len(estimator.device_bin)
    ones = np.ones(n_dev)
    value = estimator.estimate(ones)
    se = np.nanstd(boot, axis=0, ddof=1)
    se = np.maximum(se, 1e-6 * max(float(np.nanmax(se)), 1e-300))
    fold = np.random.default_rng(seed).permutation(n_dev) % folds
    counts = estimator.counts(ones)
    train: list[np.ndarray] = []
    train_se: list[np.ndarray] = []
    test: list[np.ndarray] = []
    test_se: list[np.ndarray] = []
    for k in range(folds):
        for mask, values, ses in ((fold != k, train, train_se), (fold == k, test, test_se)):
            wk = mask.astype(np.float64)
            nk = estimator.counts(wk)
            values.append(estimator.estimate(wk))
            with np.errstate(divide="ignore"):
                ses.append(np.where(nk > 1, se * np.sqrt(counts / np.maximum(nk, 1)), np.inf))
    best, scores, within = select_form(
        estimator.x, np.stack(train), np.stack(train_se), np.stack(test), np.stack(test_se)
    )
    alternatives = tuple(c.fit(estimator.x, value, se) for c in within)
    return LawSelection(
        best, value, se, boot, best.fit(estimator.x, value, se), scores, alternatives
    )
