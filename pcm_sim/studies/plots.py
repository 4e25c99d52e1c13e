"""Figures and CSV export of a sweep database.

* ``drift_<model>.png`` -- metric vs drift time: the mean over chips (line) and the min..max
  range over chips (band); one line per profile (one panel per profile when overrides are
  swept, with one line per override combination).
* ``robustness_<knob>.png`` -- for every swept override field ("knob"): metric vs the knob's
  value, one panel per (model, profile), one line per drift time (and per value of the other
  knobs), mean over chips with +-1 std error bars.  The knob's value is read from each cell's
  *resolved* profile, so in a union of one-knob grids the shared baseline cell joins every
  knob's curve; lines with fewer than two knob values are not drawn.
* ``cells.csv`` (one row per cell) and ``summary.csv`` (mean, std, min, max over chips per
  model, profile, override combination and time), with one column per knob.

Every file is written atomically (:mod:`pcm_sim.studies.outputs`).

Matplotlib is used through :class:`matplotlib.figure.Figure` (no pyplot state, no display).
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pcm_sim.studies.outputs import atomic_output
from pcm_sim.studies.store import ResultStore, canonical_json

__all__ = [
    "export_csv",
    "load_rows",
    "plot_database",
    "plot_drift",
    "plot_robustness",
    "time_label",
]

_CELL_ID = ("key", "sweep", "model", "profile")
"""``cells.csv`` columns before the overrides, each a cell's value as it is."""
_CELL_SCORE = ("t_s", "seed", "metric", "value")
"""``cells.csv`` columns after the knobs, each a cell's value as it is."""
_UNITS = (("y", 31_536_000.0), ("mo", 2_592_000.0), ("d", 86_400.0), ("h", 3600.0), ("min", 60.0))


def time_label(t_s: float) -> str:
    """``86400 -> "1 d"``, ``90 -> "1.5 min"``, ``2 -> "2 s"``."""
    for unit, seconds in _UNITS:
        if t_s >= seconds:
            return f"{t_s / seconds:.3g} {unit}"
    return f"{t_s:.3g} s"


def load_rows(db: str | Path) -> list[dict[str, Any]]:
    """Every cell of a sweep database (read-only); raises if the database holds none."""
    with ResultStore(db, create=False) as store:
        rows = list(store.rows())
    if not rows:
        raise ValueError(f"{db}: the sweep database holds no finished cells yet")
    return rows


def _resolved(row: dict[str, Any], dotted: str) -> Any:
    node: Any = row["config"]["profile"]["resolved"]
    for part in dotted.split("."):
        node = node[part]
    return node


def _knobs(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Override fields that take more than one resolved value across the rows."""
    keys = sorted({k for row in rows for k in row["overrides"]})
    return [k for k in keys if len({canonical_json(_resolved(r, k)) for r in rows}) > 1]


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "chips": len(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _combo_label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "as profiled"


def _sort_key(key: str, value: Any) -> tuple[str, int, float, str]:
    """Order override combinations by field, then numerically (numbers) or by text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (key, 0, float(value), "")
    return (key, 1, 0.0, str(value))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _panels(n: int) -> tuple[Figure, list[Axes]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    width, height = (5.2, 3.9) if n > 1 else (7.0, 4.6)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for extra in axes.flat[n:]:
        extra.set_visible(False)
    return fig, list(axes.flat[:n])


def _time_axis(ax: Axes, times: Sequence[float]) -> None:
    positive = [t for t in times if t > 0]
    if positive and len(positive) < len(times):
        ax.set_xscale("symlog", linthresh=min(positive))
    elif positive:
        ax.set_xscale("log")
    ax.set_xticks(sorted(times), [time_label(t) if t else "0" for t in sorted(times)])
    ax.minorticks_off()
    ax.set_xlabel("time after programming")


def _save_png(fig: Figure, title: str, path: Path) -> Path:
    """Title ``fig`` and write it to ``path`` as a PNG (atomically); returns ``path``."""
    fig.suptitle(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    return path


def plot_drift(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One ``drift_<model>.png`` per model (see the module docstring).

    Profiles without override combinations share one panel (one line per profile); otherwise
    each profile gets a panel with one line per combination.
    """
    paths = []
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        lines: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        labels: dict[tuple[str, str], str] = {}
        order: dict[tuple[str, str], tuple[Any, ...]] = {}
        for r in mine:
            group = (r["profile"], canonical_json(r["overrides"]))
            lines[group][r["t_s"]].append(r["value"])
            labels[group] = _combo_label(r["overrides"])
            order[group] = (r["profile"], *(_sort_key(k, v) for k, v in r["overrides"].items()))
        profiles = sorted({p for p, _ in lines})
        shared = len(lines) == len(profiles)  # one line per profile: compare them in one panel
        panels = ["all profiles"] if shared else profiles
        fig, axes = _panels(len(panels))
        for ax, panel in zip(axes, panels, strict=True):
            chips = 0
            if len(lines) > 10:
                ax.set_prop_cycle(color=[colormaps["tab20"](i) for i in range(20)])
            for (profile, combo), by_time in sorted(lines.items(), key=lambda kv: order[kv[0]]):
                if not shared and profile != panel:
                    continue
                times = sorted(by_time)
                stats = [_stats(by_time[t]) for t in times]
                chips = max(chips, *(len(v) for v in by_time.values()))
                label = labels[(profile, combo)]
                if shared:
                    label = profile if label == "as profiled" else f"{profile} ({label})"
                (line,) = ax.plot(times, [s["mean"] for s in stats], marker="o", label=label)
                ax.fill_between(
                    times,
                    [s["min"] for s in stats],
                    [s["max"] for s in stats],
                    color=line.get_color(),
                    alpha=0.2,
                    linewidth=0,
                )
            _time_axis(ax, sorted({r["t_s"] for r in mine}))
            ax.set_title(f"{panel} ({chips} chips)")
            ax.set_ylabel(f"{mine[0]['metric']} (line: mean, band: min..max over chips)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        title = f"{model}: {mine[0]['metric']} vs drift time"
        paths.append(_save_png(fig, title, out_dir / f"drift_{_slug(model)}.png"))
    return paths


def plot_robustness(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One ``robustness_<knob>.png`` per swept knob (see the module docstring)."""
    knobs = _knobs(rows)
    paths = []
    for knob in knobs:
        others = [k for k in knobs if k != knob]
        pairs = sorted({(r["model"], r["profile"]) for r in rows})
        drawn: list[tuple[Axes, str, str]] = []
        fig, axes = _panels(len(pairs))
        for ax, (model, profile) in zip(axes, pairs, strict=True):
            lines: dict[tuple[float, str], dict[str, list[float]]] = defaultdict(
                lambda: defaultdict(list)
            )
            values: dict[str, Any] = {}
            for r in rows:
                if (r["model"], r["profile"]) != (model, profile):
                    continue
                rest = ", ".join(f"{k}={_resolved(r, k)}" for k in others)
                x = _resolved(r, knob)
                values[canonical_json(x)] = x
                lines[(r["t_s"], rest)][canonical_json(x)].append(r["value"])
            numeric = all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()
            )
            order = sorted(values, key=lambda k: values[k] if numeric else str(values[k]))
            position = {k: (values[k] if numeric else i) for i, k in enumerate(order)}
            curves = {key: by_x for key, by_x in lines.items() if len(by_x) >= 2}
            rests = {rest for _, rest in curves}
            for (t_s, rest), by_x in sorted(curves.items()):
                xs = sorted(by_x, key=lambda k: position[k])
                stats = [_stats(by_x[k]) for k in xs]
                label = time_label(t_s) + (f"; {rest}" if len(rests) > 1 else "")
                ax.errorbar(
                    [position[k] for k in xs],
                    [s["mean"] for s in stats],
                    yerr=[s["std"] for s in stats],
                    marker="o",
                    capsize=3,
                    label=label,
                )
            if not numeric:
                ax.set_xticks([position[k] for k in order], [str(values[k]) for k in order])
            ax.set_xlabel(knob)
            metric = next(r["metric"] for r in rows if r["model"] == model)
            ax.set_ylabel(f"{metric} (mean +- std over chips)", fontsize=8)
            fixed = f"\n{next(iter(rests))}" if len(rests) == 1 and next(iter(rests)) else ""
            ax.set_title(f"{model} on {profile}{fixed}", fontsize=9)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7, title="drift time", title_fontsize=7)
                drawn.append((ax, model, profile))
        if not drawn:
            continue
        title = f"robustness to {knob}"
        paths.append(_save_png(fig, title, out_dir / f"robustness_{_slug(knob)}.png"))
    return paths


def export_csv(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``cells.csv`` and ``summary.csv`` (see the module docstring)."""
    knobs = _knobs(rows)
    cells_path = out_dir / "cells.csv"
    with atomic_output(cells_path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [*_CELL_ID, "overrides", *knobs, *_CELL_SCORE, "seconds", "worker", "finished_utc"]
        )
        for r in rows:
            writer.writerow(
                [
                    *(r[column] for column in _CELL_ID),
                    json.dumps(r["overrides"]),
                    *(_resolved(r, k) for k in knobs),
                    *(r[column] for column in _CELL_SCORE),
                    f"{r['result']['seconds']:.3f}",
                    r["result"]["worker"],
                    r["finished_utc"],
                ]
            )
    groups: dict[tuple[str, str, str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["model"], r["profile"], canonical_json(r["overrides"]), r["t_s"])].append(r)
    summary_path = out_dir / "summary.csv"
    with atomic_output(summary_path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "model",
                "profile",
                "overrides",
                *knobs,
                "t_s",
                "metric",
                "chips",
                "mean",
                "std",
                "min",
                "max",
            ]
        )
        for (model, profile, overrides, t_s), members in sorted(groups.items()):
            s = _stats([m["value"] for m in members])
            first = members[0]
            writer.writerow(
                [
                    model,
                    profile,
                    overrides,
                    *(_resolved(first, k) for k in knobs),
                    t_s,
                    first["metric"],
                    s["chips"],
                    f"{s['mean']:.6f}",
                    f"{s['std']:.6f}",
                    f"{s['min']:.6f}",
                    f"{s['max']:.6f}",
                ]
            )
    return [cells_path, summary_path]


def plot_database(db: str | Path, out_dir: str | Path) -> list[Path]:
    """All figures and CSV files of a sweep database into ``out_dir``; returns their paths."""
    rows = load_rows(db)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return plot_drift(rows, out) + plot_robustness(rows, out) + export_csv(rows, out)
