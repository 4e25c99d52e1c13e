"""Read noise in time: what the read-noise model changes, on SNU and phasor networks.

1. The law, measured on one-row crossbars (every output one device, only read noise on, one
   day, 1 µs between reads): the structure function ``1 - c(Δ)`` of a device's read noise for
   calls of 1, 32 and 512 rows against the 1/f band law and the 8 OU components, i.e. the
   error of the clocked model's approximations; the issue's measurement (variance between
   successive calls of a layer over the variance of one read across chips, one-hot input).
2. Accuracy: the SNU (Fashion-MNIST, T = 20, ``runs/demo/model.pt``, ``--limit`` images) and
   the phasor network (spiking mode, ``--phasor-limit`` images, ``phasor_fmnist`` trained into
   ``runs/read_noise/phasor_fmnist_hwa`` when missing) at
   1 minute, 1 day and 1 year on ``--chips`` chips of ``pcm_nandakumar2019`` under each
   ``read_noise.model`` (frozen, per_call, clocked, per_read) and without read noise; mean and
   std over chips, and every chip.
3. Where it may matter: few time steps (SNU at T = 5), a 1-epoch SNU
   (``runs/studies/snu1/model.pt``), models trained without hardware-aware noise (trained here
   when missing: SNU 1 epoch, phasor 15 epochs), the aggressive profile, and the chip-to-chip
   spread and yield at one year over ``--spread-chips`` chips, with read noise as the only
   per-chip error (programming noise and drift off) and on the aggressive profile.

Writes ``results/read_noise/read_noise_study.json``, ``accuracy.png``, ``autocovariance.png`` and
``spread.png``.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/read_noise_study.py              # 2,000 images
    OMP_NUM_THREADS=1 .venv/bin/python scripts/read_noise_study.py --limit 500  # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import yaml

from pcm_sim.crossbar.streams import ChipStreams
from pcm_sim.crossbar.tile import CrossbarArray
from pcm_sim.evaluation import evaluate_on_chips
from pcm_sim.physics import pcm
from pcm_sim.profiles import DeviceProfile, load_profile
from pcm_sim.recipes import load_recipe
from pcm_sim.training.checkpoint import load_checkpoint, train_recipe

MODELS = ("frozen", "per_call", "clocked", "per_read", "off")
MINUTE, DAY, YEAR = 60.0, 86_400.0, 365 * 86_400.0
PERIOD = 1e-6

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
)
parser.add_argument("--chips", type=int, default=5)
parser.add_argument("--spread-chips", type=int, default=20)
parser.add_argument("--limit", type=int, default=2000, help="first N test images (SNU)")
parser.add_argument("--phasor-limit", type=int, default=1000, help="first N test images (phasor)")
parser.add_argument("--out", default="results/read_noise")
parser.add_argument("--runs", default="runs/read_noise", help="checkpoints trained here")
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(args.threads)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()
result: dict[str, Any] = {
    "chips": args.chips,
    "test_images": {"snu": args.limit, "phasor": args.phasor_limit},
}


def with_model(profile: str, model: str) -> DeviceProfile:
    """``profile`` with ``read_noise.model`` set (``off``: no read noise at all)."""
    if model == "off":
        return load_profile(profile, overrides={"read_noise.scale": 0.0})
    return load_profile(profile, overrides={"read_noise.model": model})


# 1. the law: device read noise of one-row crossbars ------------------------------------------
def device_noise(model: str, rows: int, calls: int, devices: int = 2048) -> torch.Tensor:
    """``(calls * rows, devices)`` read noise at one day (constant q_s = 0.05, w = w_max)."""
    profile = load_profile(
        "ideal",
        overrides={
            "read_noise.scale": 1.0,
            "read_noise.model": model,
            "read_noise.read_period_s": PERIOD,
            "read_noise.q_s": [{"form": "poly", "coeffs": [0.05]}],
        },
    )
    array = CrossbarArray(torch.full((1, devices), 0.5), profile, ChipStreams(11, 0))
    array.drift_to(DAY)
    with torch.no_grad():
        return torch.cat([array.mvm(torch.ones(rows, 1)) for _ in range(calls)]) - 0.5


law_profile = load_profile("pcm_nandakumar2019", overrides={"read_noise.read_period_s": PERIOD})
taus = pcm.read_noise_time_constants(DAY, law_profile)
var = (0.5 * 0.05 * pcm.read_noise_time_factor(DAY, law_profile)) ** 2
lags = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
structure: dict[str, Any] = {
    "lag_reads": lags,
    "band": [1 - pcm.band_autocorrelation(d * PERIOD, DAY, law_profile) for d in lags],
    "ou_sum": [1 - pcm.ou_autocorrelation(d * PERIOD, taus) for d in lags],
}
for rows, calls in ((1, 16384), (32, 512), (512, 32)):
    noise = device_noise("clocked", rows, calls)
    values: list[float | None] = []
    errors: list[float] = []
    for lag in lags:  # lags up to an eighth of the series, standard error over the devices
        if 8 * lag > noise.shape[0]:
            values.append(None)
            continue
        per_device = (noise[lag:] - noise[:-lag]).double().square().mean(dim=0) / (2 * var)
        values.append(float(per_device.mean()))
        errors.append(float(per_device.std()) / math.sqrt(per_device.numel()))
    structure[f"clocked_{rows}_rows"] = values
    deviation = {
        lag: value - law
        for lag, value, law in zip(lags, values, structure["ou_sum"], strict=True)
        if value is not None
    }
    between = max(abs(d) for lag, d in deviation.items() if lag >= rows)
    within = max((abs(d) for lag, d in deviation.items() if lag < rows), default=0.0)
    structure[f"max_error_{rows}_rows_between_calls"] = between
    structure[f"max_error_{rows}_rows_within_a_call"] = within
    structure[f"max_standard_error_{rows}_rows"] = max(errors)
    print(
        f"calls of {rows:3d} rows: |measured - OU law| <= {between:.4f} at lags >= one call, "
        f"<= {within:.4f} within a call (standard errors <= {max(errors):.4f})"
    )
structure["ou_vs_band_max"] = max(
    abs(a - b) for a, b in zip(structure["ou_sum"], structure["band"], strict=True)
)

# a sample's summed read noise over its T = 20 steps (SNU, B = 128, steps B reads apart)
steps, batch = 20, 128
step_pairs = [(a, b) for a in range(steps) for b in range(steps) if a != b]
exact = (
    steps
    + math.fsum(pcm.ou_autocorrelation(abs(a - b) * batch * PERIOD, taus) for a, b in step_pairs)
) / steps**2
shares = [pcm.ou_mean_correlation(PERIOD, tau, steps * batch) for tau in taus]
modelled = (steps + len(step_pairs) * math.fsum(shares) / len(shares)) / steps**2
structure["snu_sample_mean_variance"] = {
    "exact_1f": exact,
    "clocked": modelled,
    "per_call": 1.0,
    "per_read": 1 / steps,
    "frozen": 1.0,
}
print(
    f"variance of a sample's mean read noise over T=20 (fraction of one read): 1/f {exact:.3f}, "
    f"clocked {modelled:.3f}, per_call 1, frozen 1, per_read {1 / steps:.3f}"
)


# the measurement: successive calls of one layer vs one read across chips
def successive_over_across(model: str, chips: int = 8) -> float:
    profile = load_profile(
        "pcm_nandakumar2019",
        overrides={
            "read_noise.model": model,
            "programming.scale": 0.0,
            "drift.scale": 0.0,
            "periphery.dac_bits": 0,
            "periphery.adc_bits": 0,
            "periphery.output_range": 0.0,
            "periphery.output_noise": 0.0,
            "periphery.bound_management": "none",
            "compensation.mode": "none",
        },
    )
    w = torch.randn(256, 128, generator=torch.Generator().manual_seed(0)) * 0.05
    x = torch.eye(256)[:64]  # one-hot inputs: every output reads one device
    firsts, diffs = [], []
    for chip in range(chips):
        array = CrossbarArray(w, profile, ChipStreams(chip, 0))
        array.drift_to(DAY)
        a, b = array.mvm(x), array.mvm(x)
        firsts.append(a)
        diffs.append((a - b).square().mean() / 2)
    across = torch.stack(firsts).var(dim=0).mean()
    return float(torch.stack(diffs).mean() / across)


structure["successive_over_across"] = {m: successive_over_across(m) for m in MODELS[:4]}
print(
    "variance between successive calls / one read across chips:",
    {m: round(v, 3) for m, v in structure["successive_over_across"].items()},
)
result["law"] = structure

# 2.-3. accuracy ----------------------------------------------------------------------------
runs = Path(args.runs)


def trained(name: str, hardware_aware: bool, epochs: int | None = None) -> Path:
    """``runs/<name>/model.pt`` of a shipped recipe, trained here when missing; without
    hardware-aware noise the recipe's ``training.hwa_*`` keys are dropped."""
    checkpoint = runs / f"{name}_{'hwa' if hardware_aware else 'nohwa'}" / "model.pt"
    if not checkpoint.exists():
        recipe = load_recipe(name)
        if not hardware_aware:
            recipe["training"] = {
                k: v for k, v in recipe["training"].items() if not k.startswith("hwa_")
            }
        if epochs:
            recipe["training"]["epochs"] = epochs
        recipe_file = checkpoint.parent / "recipe.yaml"
        recipe_file.parent.mkdir(parents=True, exist_ok=True)
        recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
        train_recipe(recipe_file, checkpoint.parent)
    return checkpoint


checkpoints = {
    "snu": Path("runs/demo/model.pt"),  # make demo: snu_fmnist, 4 epochs, hardware-aware
    "snu_1epoch": Path("runs/studies/snu1/model.pt"),  # the 1-epoch hardware-aware SNU
    "snu_nohwa": trained("snu_fmnist", hardware_aware=False, epochs=1),
    "phasor": trained("phasor_fmnist", hardware_aware=True),
    "phasor_nohwa": trained("phasor_fmnist", hardware_aware=False),
}
conditions = [  # label, checkpoint, profile, mode, times, T override
    ("snu", "snu", "pcm_nandakumar2019", "default", (MINUTE, DAY, YEAR), None),
    ("phasor", "phasor", "pcm_nandakumar2019", "spiking", (MINUTE, DAY, YEAR), None),
    ("snu T=5", "snu", "pcm_nandakumar2019", "default", (DAY, YEAR), 5),
    ("snu 1 epoch", "snu_1epoch", "pcm_nandakumar2019", "default", (DAY, YEAR), None),
    ("snu no HWA", "snu_nohwa", "pcm_nandakumar2019", "default", (DAY, YEAR), None),
    ("phasor no HWA", "phasor_nohwa", "pcm_nandakumar2019", "spiking", (DAY, YEAR), None),
    ("snu aggressive", "snu", "pcm_aggressive", "default", (DAY, YEAR), None),
    ("phasor aggressive", "phasor", "pcm_aggressive", "spiking", (DAY, YEAR), None),
]
accuracy: dict[str, Any] = {}
for label, key, profile_name, mode, times, steps_override in conditions:
    if not checkpoints[key].exists():
        print(f"{label}: no checkpoint at {checkpoints[key]}, skipped")
        continue
    model, payload = load_checkpoint(checkpoints[key])
    recipe = copy.deepcopy(payload["recipe"])
    if steps_override:
        recipe["data"]["steps"] = steps_override
    entry: dict[str, Any] = {"checkpoint": str(checkpoints[key]), "profile": profile_name}
    entry["mode"], entry["steps"] = mode, recipe["data"].get("steps")
    for noise_model in MODELS:
        t0 = time.perf_counter()
        run = evaluate_on_chips(
            model,
            recipe,
            with_model(profile_name, noise_model),
            times,
            args.chips,
            mode,
            limit=args.phasor_limit if mode == "spiking" else args.limit,
        )
        entry[noise_model] = run["rows"]
        cells = "  ".join(
            f"{r['label']} {100 * r['mean']:.2f}±{100 * r['std']:.2f}" for r in run["rows"]
        )
        print(
            f"{label:18s} {noise_model:8s} {cells}  ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    accuracy[label] = entry
result["accuracy"] = accuracy

# chip-to-chip spread and yield at one year: the SNU on --spread-chips chips, read noise alone
# (no programming noise, no drift: the other per-chip errors off) and the aggressive profile;
# yield = chips within 1 pp of the mean chip without read noise
spread: dict[str, Any] = {"chips": args.spread_chips, "test_images": args.limit}
model, payload = load_checkpoint(checkpoints["snu"])
alone = {"programming.scale": 0.0, "drift.scale": 0.0}
for case, profile_name, extra in (
    ("read noise alone", "pcm_nandakumar2019", alone),
    ("pcm_aggressive", "pcm_aggressive", {}),
):
    spread[case] = {}
    for noise_model in MODELS:
        prof = with_model(profile_name, noise_model)
        run = evaluate_on_chips(
            model,
            payload["recipe"],
            prof.with_overrides(extra) if extra else prof,
            (YEAR,),
            args.spread_chips,
            limit=args.limit,
        )
        per_chip = run["rows"][0]["per_chip"]
        spread[case][noise_model] = {
            "mean": statistics.fmean(per_chip),
            "std": statistics.stdev(per_chip),
            "min": min(per_chip),
            "per_chip": per_chip,
        }
    floor = spread[case]["off"]["mean"] - 0.01
    for noise_model in MODELS:
        row = spread[case][noise_model]
        row["yield"] = sum(v >= floor for v in row["per_chip"]) / len(row["per_chip"])
        print(
            f"{case} at 1 year, {noise_model:8s}: {100 * row['mean']:.2f} ± "
            f"{100 * row['std']:.2f} (min {100 * row['min']:.2f}, yield {row['yield']:.2f}) "
            f"over {args.spread_chips} chips",
            flush=True,
        )
result["spread_1_year"] = spread
result["seconds"] = time.perf_counter() - start
(out / "read_noise_study.json").write_text(json.dumps(result, indent=2))

# figures -----------------------------------------------------------------------------------
fig, ax = plt.subplots(figsize=(6.4, 4.2))
x = [d * PERIOD for d in lags]
ax.plot(x, structure["band"], "k-", label="1/f band law")
ax.plot(x, structure["ou_sum"], "k--", label="8 OU components")
for rows, color in ((1, "tab:blue"), (32, "tab:orange"), (512, "tab:red")):
    pts = [(xi, v) for xi, v in zip(x, structure[f"clocked_{rows}_rows"], strict=True) if v]
    ax.plot(*zip(*pts, strict=True), "o", color=color, label=f"clocked, calls of {rows} rows")
ax.set_xscale("log")
ax.set_xlabel("time between two reads (s), 1 µs per read")
ax.set_ylabel("1 - correlation of a device's read noise")
ax.set_title("read noise in time, one day after programming")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "autocovariance.png", dpi=150)

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
colors = dict(zip(MODELS, ("tab:purple", "tab:orange", "tab:blue", "tab:green", "k"), strict=True))
for ax, label in zip(axes, ("snu", "phasor"), strict=True):
    if label not in accuracy:
        continue
    for i, noise_model in enumerate(MODELS):
        rows = accuracy[label][noise_model]
        t = [r["t_s"] * (1.0 + 0.08 * (i - 2)) for r in rows]  # small offsets, no overlap
        ax.errorbar(
            t,
            [100 * r["mean"] for r in rows],
            yerr=[100 * r["std"] for r in rows],
            marker="o",
            capsize=3,
            color=colors[noise_model],
            label=noise_model,
        )
    ax.set_xscale("log")
    ax.set_xticks([MINUTE, DAY, YEAR], ["1 min", "1 day", "1 year"])
    images = args.phasor_limit if label == "phasor" else args.limit
    ax.set_title(f"{label} on pcm_nandakumar2019 ({args.chips} chips, {images} images)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out / "accuracy.png", dpi=150)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, case in zip(axes, ("read noise alone", "pcm_aggressive"), strict=True):
    for i, noise_model in enumerate(MODELS):
        chips = [100 * v for v in spread[case][noise_model]["per_chip"]]
        ax.plot([i] * len(chips), chips, "o", alpha=0.5, color=colors[noise_model])
        ax.errorbar(i + 0.25, statistics.fmean(chips), yerr=statistics.stdev(chips), fmt="k_")
    ax.set_xticks(range(len(MODELS)), MODELS)
    ax.set_ylabel("test accuracy at 1 year (%)")
    ax.set_title(f"SNU, {case}: {args.spread_chips} chips, {args.limit} images")
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(out / "spread.png", dpi=150)
print(
    f"wrote {out}/read_noise_study.json, accuracy.png, autocovariance.png, spread.png "
    f"({time.perf_counter() - start:.0f} s)"
)
