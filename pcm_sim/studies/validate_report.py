"""Validation reports: ``report.md``, ``report.json`` and ``validation.png``, written atomically.

Renders the report dict of :func:`pcm_sim.studies.validate.run_validation`: the verdict and every
requirement (measured value, worst case, yield with its Clopper-Pearson interval), the metric per
chip over drift time, the hardware used, the work per inference and the energy and latency
ESTIMATES with the profile's cited source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pcm_sim.studies.outputs import atomic_output, write_text_atomic
from pcm_sim.studies.validation_spec import PER_INFERENCE_QUANTITIES

__all__ = ["write_report"]


def _plot(report: dict[str, Any], path: Path) -> None:
    metric = report["metric"]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, ex = fig.subplots(1, 2)
    labels = [p["label"] for p in report["per_time"]]
    positions = list(range(1, len(labels) + 1))
    ax.boxplot(
        [p["values"] for p in report["per_time"]], positions=positions, widths=0.5, showfliers=False
    )
    for x, p in zip(positions, report["per_time"], strict=True):
        jitter = np.linspace(-0.12, 0.12, len(p["values"])) if len(p["values"]) > 1 else [0.0]
        ax.scatter(x + np.asarray(jitter), p["values"], s=10, alpha=0.6, color="tab:blue")
    for req in report["requirements"]:
        if req["quantity"] == metric and req["at_s"] is not None:
            x = positions[[p["t_s"] for p in report["per_time"]].index(req["at_s"])]
            for bound in (req["min"], req["max"]):
                if bound is not None:
                    color = "tab:green" if req["passed"] else "tab:red"
                    ax.hlines(bound, x - 0.35, x + 0.35, colors=color, linestyles="--")
    ax.set_xticks(positions, labels)
    ax.set_xlabel("time after programming")
    ax.set_ylabel(f"{metric} per chip")
    ax.set_title(f"{report['chips']} chips of {report['profile']['name']} (dashed: spec)")
    ax.grid(alpha=0.3)
    parts = (("cell_reads_nj", "cell reads"), ("dac_nj", "DAC"), ("adc_nj", "ADC"))
    bottom = np.zeros(len(labels))
    for key, name in parts:
        heights = np.array([w[key] for w in report["work"]])
        ex.bar(labels, heights, bottom=bottom, label=name)
        bottom += heights
    ex.set_ylabel("nJ per inference (ESTIMATE)")
    ex.set_title("energy per inference: ESTIMATE from the profile's figures")
    ex.legend(fontsize=8)
    ex.grid(alpha=0.3, axis="y")
    fig.suptitle(
        f"pre-silicon validation: {report['name']} ({'PASS' if report['passed'] else 'FAIL'})"
    )
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def _markdown(report: dict[str, Any], figure: str) -> str:
    metric = report["metric"]
    ck, prof, hw = report["checkpoint"], report["profile"], report["hardware"]
    met = sum(r["passed"] for r in report["requirements"])
    software = ck["software"].get(metric)
    lines = [
        f"# Pre-silicon validation: {report['name']}",
        "",
        f"**Verdict: {'PASS' if report['passed'] else 'FAIL'}** "
        f"({met}/{len(report['requirements'])} requirements met)",
        "",
        f"- Checkpoint: `{ck['path']}` (sha256 `{ck['sha256'][:16]}…`), "
        + (f"recipe `{ck['recipe']}`" if ck.get("recipe") else f"task `{ck.get('task')}`")
        + (f", software {metric} {software:.4f}" if software is not None else ""),
        f"- Profile: `{prof['name']}` ({prof['source']})"
        + (f" with overrides `{json.dumps(prof['overrides'])}`" if prof["overrides"] else "")
        + f"; source: {prof['provenance']['source']}",
        f"- {report['chips']} chips (seeds {report['seeds'][0]}..{report['seeds'][-1]}), "
        f"{report['samples']} test items per chip and time, input seed {report['input_seed']}, "
        f"mode `{report['mode']}`; pcm-sim {report['pcm_sim_version']}, {report['created_utc']}",
        "",
        "## Requirements",
        "",
        "| # | quantity | at | bound | measured | worst case | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(report["requirements"], 1):
        if r["yield"] is not None:
            low, high = r["yield_ci95"]
            measured = (
                f"yield {100 * r['yield']:.1f} % (95 % CI {100 * low:.1f}-{100 * high:.1f} %, "
                f"lower bound {100 * r['yield_lower_95']:.1f} %)"
            )
            worst = f"chip {r['worst']:.6g}"
        else:
            measured = f"{r['measured']:.6g}"
            worst = "" if r["at"] or r["quantity"] not in PER_INFERENCE_QUANTITIES else "worst time"
        at = r["at"] or ("worst time" if r["quantity"] in PER_INFERENCE_QUANTITIES else "-")
        result = "pass" if r["passed"] else "**FAIL**"
        lines.append(
            f"| {i} | {r['quantity']} | {at} | {r['bound']} | {measured} | {worst} | {result} |"
        )
    lines += [
        "",
        f"## {metric} over drift time ({report['chips']} chips)",
        "",
        "| time | mean | std | min | 5 % | median | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in report["per_time"]:
        lines.append(
            f"| {p['label']} | {p['mean']:.4f} | {p['std']:.4f} | {p['min']:.4f} | {p['p05']:.4f} "
            f"| {p['median']:.4f} | {p['max']:.4f} |"
        )
    lines += [
        "",
        f"![{metric} per chip and energy estimate]({figure})",
        "",
        "## Hardware used",
        "",
        "| layer | in x out | inputs | tiles | PCM devices |",
        "|---|---|---|---|---|",
    ]
    for layer in hw["layers"]:
        kind = "spikes (no DAC)" if layer["binary_input"] else "graded (DAC)"
        lines.append(
            f"| `{layer['name']}` | {layer['in']} x {layer['out']} | {kind} | {layer['n_tiles']} "
            f"| {layer['n_devices']:,} |"
        )
    lines += [
        f"| **total** | | | **{hw['tiles']}** | **{hw['devices']:,}** |",
        "",
        "## Work per inference (measured input spike rates, mean over chips)",
        "",
        "| time | layer | input vectors | input rate | tile MVMs (dense) | ADC conv. | DAC conv. "
        "| cell reads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in report["work"]:
        for layer in w["layers"]:
            lines.append(
                f"| {w['label']} | `{layer['name']}` | {layer['vectors']:.1f} "
                f"| {layer['input_rate']:.3f} "
                f"| {layer['tile_mvms']:.1f} ({layer['tile_mvms_dense']:.1f}) "
                f"| {layer['adc_conversions']:,.0f} | {layer['dac_conversions']:,.0f} "
                f"| {layer['cell_reads']:,.0f} |"
            )
    e = prof["energy"]
    lines += [
        "",
        "Spike inputs drive rows without a DAC; a tile with no spike in its rows is skipped "
        "(event-driven), so tile MVMs and ADC conversions count only tiles with at least one "
        "input spike; dense counts in parentheses.",
        "",
        "## Energy and latency per inference: ESTIMATES",
        "",
        "> These are **estimates**, not measurements: counts above times per-operation figures "
        f"from the profile (cell read {e['cell_read_pj']} pJ, DAC {e['dac_conversion_pj']} pJ, "
        f"ADC {e['adc_conversion_pj']} pJ per conversion, {e['mvm_latency_ns']} ns per MVM, "
        f"{e['programming_pulse_pj']} pJ per programming pulse). Source: {e['source'].strip()} "
        "Analog array and converters only (no digital neuron updates or data movement); "
        "latency assumes the tiles of a layer run in parallel and layers and time steps run "
        "one after the other.",
        "",
        "| time | cell reads (nJ) | DAC (nJ) | ADC (nJ) | energy (nJ) | latency (µs) |",
        "|---|---|---|---|---|---|",
    ]
    for w in report["work"]:
        lines.append(
            f"| {w['label']} | {w['cell_reads_nj']:.3f} | {w['dac_nj']:.3f} | {w['adc_nj']:.3f} "
            f"| {w['energy_nj']:.3f} | {w['latency_us']:.2f} |"
        )
    lines += [
        "",
        f"Programming (once per chip, estimate): {hw['programming_pulses']:,.0f} pulses, "
        f"{hw['programming_energy_uj']:.3f} µJ.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``validation.png`` into ``out_dir``, each
    atomically (:mod:`pcm_sim.studies.outputs`)."""
    figure = out_dir / "validation.png"
    _plot(report, figure)
    json_path = write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    md_path = write_text_atomic(out_dir / "report.md", _markdown(report, figure.name))
    return [md_path, json_path, figure]
