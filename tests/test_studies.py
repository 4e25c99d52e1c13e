"""Studies: sweep files, the result store, executors (local pool vs Dask), kill-and-resume,
plots, validation reports and bad input.

A tiny SNU (784-64-10, T = 8, trained on 512 images for one epoch) keeps every cell fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pcm_sim.cli import main
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.studies.executors import DaskExecutor, LocalPool
from pcm_sim.studies.store import ResultStore, StoreError, canonical_json, cell_key
from pcm_sim.studies.sweep import SweepError, load_sweep, parse_sweep, run_sweep
from pcm_sim.training.checkpoint import train_recipe

TINY_RECIPE = {
    "name": "snu_tiny",
    "family": "snu_fmnist",
    "model": {"sizes": [784, 64, 10], "decay": 0.8, "threshold_init": -1.0},
    "data": {"dataset": "fashion_mnist", "steps": 8},
    "training": {
        "epochs": 1,
        "batch_size": 64,
        "lr": 0.002,
        "seed": 0,
        "train_limit": 512,
        "progress": False,
    },
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("studies")


@pytest.fixture(scope="module")
def checkpoint(workdir: Path) -> Path:
    recipe = workdir / "snu_tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    return train_recipe(recipe, workdir / "tiny", log=lambda _: None)


def write_sweep(path: Path, checkpoint: Path, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": "tiny",
        "models": [{"checkpoint": str(checkpoint), "label": "tiny"}],
        "profiles": ["pcm_nandakumar2019"],
        "overrides": {"periphery.adc_bits": [4, 8]},
        "times": ["1min", "1d"],
        "chips": 3,
        "evaluation": {"limit": 64},
    }
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    yield cluster.scheduler_address
    cluster.close()


def cell_rows(db: Path) -> dict[str, tuple[Any, ...]]:
    """key -> (value, scores, config) of every stored cell."""
    with ResultStore(db, create=False) as store:
        return {r["key"]: (r["value"], r["result"]["scores"], r["config"]) for r in store.rows()}


def test_cell_key_is_sha256_of_canonical_json() -> None:
    parts = {"checkpoint_sha256": "ab", "producer": {"b": 1, "a": 2}, "t_s": 60.0, "seed": 3,
             "evaluation": {"mode": "default", "limit": None, "input_seed": 1}}  # fmt: skip
    text = (
        '{"checkpoint_sha256":"ab","evaluation":{"input_seed":1,"limit":null,"mode":"default"},'
        '"producer":{"a":2,"b":1},"seed":3,"t_s":60.0}'
    )
    assert canonical_json(parts) == text
    assert cell_key(parts) == hashlib.sha256(text.encode()).hexdigest()
    reordered = dict(reversed(list(parts.items())))
    assert cell_key(reordered) == cell_key(parts)
    assert cell_key({**parts, "t_s": 61.0}) != cell_key(parts)
    with pytest.raises(ValueError, match="expected fields"):
        cell_key({**parts, "extra": 1})


def test_parse_sweep_grid_and_union(checkpoint: Path) -> None:
    base = {
        "name": "s",
        "models": [{"checkpoint": str(checkpoint)}],
        "profiles": ["pcm_nandakumar2019", "pcm_hermes2023"],
        "times": [60, "1d", "1y"],
        "seeds": [4, 9],
    }
    grid = parse_sweep(
        {**base, "overrides": {"periphery.adc_bits": [4, 6], "drift.scale": [0, 1, 2]}}
    )
    assert len(grid.override_combos) == 6
    assert grid.override_combos[0] == {"periphery.adc_bits": 4, "drift.scale": 0}
    assert grid.times_s == (60.0, 86_400.0, 31_536_000.0)
    assert grid.n_cells == 1 * 2 * 6 * 3 * 2
    union = parse_sweep(
        {
            **base,
            "overrides": [
                {"drift.scale": [0, 1]},
                {"drift.scale": [1, 2]},
                {"programming.scale": [0]},
            ],
        }
    )
    assert union.override_combos == (
        {"drift.scale": 0},
        {"drift.scale": 1},
        {"drift.scale": 2},
        {"programming.scale": 0},
    )
    no_seeds = {k: v for k, v in base.items() if k != "seeds"}
    cases = {
        "times": {**base, "times": [[1]]},
        "chips": {**no_seeds, "chips": 0},
        "seeds and chips": {**base, "chips": 2},
        "override key": {**base, "overrides": {"adc_bits": [4]}},
        "override values": {**base, "overrides": {"periphery.adc_bits": []}},
        "model": {**base, "models": [{"checkpoint": "a", "recipe": "b"}]},
        "unknown key": {**base, "colour": "red"},
    }
    for name, data in cases.items():
        with pytest.raises(SweepError):
            parse_sweep(data)
            pytest.fail(name)


def test_dask_cluster_gives_rows_identical_to_local_pool(
    workdir: Path, checkpoint: Path, dask_address: str
) -> None:
    sweep = load_sweep(write_sweep(workdir / "parity.yaml", checkpoint))
    local_db, dask_db = workdir / "local.sqlite", workdir / "dask.sqlite"
    pool = LocalPool(2)
    try:
        local = run_sweep(sweep, local_db, pool, progress=False, log=lambda _: None)
    finally:
        pool.close()
    dask = DaskExecutor(dask_address)
    try:
        remote = run_sweep(sweep, dask_db, dask, progress=False, log=lambda _: None)
    finally:
        dask.close()
    assert local.ran == remote.ran == 12  # 2 ADC settings x 2 times x 3 chips
    local_rows, dask_rows = cell_rows(local_db), cell_rows(dask_db)
    assert local_rows == dask_rows
    assert len({v[0] for v in local_rows.values()}) > 1  # chips really differ
    # identical configs at different seeds only differ by seed; accuracy is a fraction of 64
    assert all(abs(v[0] * 64 - round(v[0] * 64)) < 1e-9 for v in local_rows.values())
    idle = LocalPool(1)  # spawns no process: nothing is left to run
    try:
        again = run_sweep(sweep, local_db, idle, progress=False, log=lambda _: None)
    finally:
        idle.close()
    assert (again.skipped, again.ran) == (12, 0)


def test_sigkill_midway_then_rerun_keeps_every_finished_cell(
    workdir: Path, checkpoint: Path
) -> None:
    sweep = write_sweep(
        workdir / "kill.yaml",
        checkpoint,
        name="kill",
        overrides={"periphery.adc_bits": [4, 6, 8]},
        chips=2,
        evaluation={"limit": 1000},
    )  # 3 x 2 x 2 = 12 cells
    db = workdir / "kill.sqlite"
    cmd = [sys.executable, "-m", "pcm_sim.cli", "sweep", str(sweep), "--db", str(db)]
    cmd += ["--workers", "1", "--no-progress"]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    before: dict[str, tuple[float, str]] = {}
    try:
        while time.monotonic() < deadline and len(before) < 2:
            time.sleep(0.02)
            if db.exists():
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    try:
                        rows = conn.execute("SELECT key, value, finished_utc FROM cells").fetchall()
                    except sqlite3.OperationalError:  # schema not created yet, or locked
                        continue
                before = {k: (v, f) for k, v, f in rows}
    finally:
        proc.send_signal(signal.SIGKILL)  # the sweep's driver process, midway
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert _group_exits(proc.pid, timeout_s=10.0), "a worker outlived the killed sweep"
    with ResultStore(db, create=False) as store:
        after_kill = {r["key"]: (r["value"], r["finished_utc"]) for r in store.rows()}
    assert 2 <= len(after_kill) < 12, "the kill must land midway"
    assert all(after_kill[k] == v for k, v in before.items())
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({len(after_kill)} already done, {12 - len(after_kill)} run)" in rerun.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone()
    assert total == distinct == 12
    with ResultStore(db, create=False) as store:
        final = {r["key"]: (r["value"], r["finished_utc"]) for r in store.rows()}
    assert all(final[k] == v for k, v in after_kill.items())  # finished cells kept untouched


def _group_exits(pgid: int, timeout_s: float) -> bool:
    """Wait until no process of group ``pgid`` is left; SIGKILL the rest if some remain."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    return False


def test_plot_writes_figures_and_csv(workdir: Path, checkpoint: Path, dask_address: str) -> None:
    sweep = load_sweep(write_sweep(workdir / "plot.yaml", checkpoint, chips=2))
    db = workdir / "plot.sqlite"
    dask = DaskExecutor(dask_address)
    try:
        run_sweep(sweep, db, dask, progress=False, log=lambda _: None)
    finally:
        dask.close()
    out = workdir / "plots"
    assert main(["plot", str(db), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "cells.csv",
        "drift_tiny.png",
        "robustness_periphery.adc_bits.png",
        "summary.csv",
    ]
    assert all(
        (out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if n.endswith(".png")
    )
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 2 * 2  # 2 ADC settings x 2 times
    assert summary[0].split(",")[:4] == ["model", "profile", "overrides", "periphery.adc_bits"]
    cells = (out / "cells.csv").read_text().splitlines()
    assert len(cells) == 1 + 8 and {line.split(",")[0] for line in cells[1:]} == set(cell_rows(db))


def test_validate_report_counts_and_verdicts(
    workdir: Path, checkpoint: Path, dask_address: str
) -> None:
    spec = {
        "name": "tiny-check",
        "chips": 2,
        "times": ["1h", "1d"],
        "samples": 64,
        "requirements": [
            {"quantity": "accuracy", "at": "1d", "min": 0.2, "min_yield": 0.5},
            {"quantity": "mean_accuracy", "at": "1h", "min": 0.2},
            {"quantity": "devices", "max": 200_000},
            {"quantity": "tiles", "max": 3},
            {"quantity": "energy_nj", "max": 1e6},
            {"quantity": "latency_us", "max": 1e6},
        ],
    }
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = workdir / "report"
    args = ["validate", str(checkpoint), "--profile", "pcm_nandakumar2019", "--spec"]
    args += [str(spec_path), "--out", str(out), "--scheduler", dask_address, "--no-progress"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# Pre-silicon validation: tiny-check")
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"
    # 784 x 64 and 64 x 10 weights, a differential pair each; 512-row tiles: 2 + 1 tiles
    assert report["hardware"]["devices"] == 2 * (784 * 64 + 64 * 10) == 101_632
    assert report["hardware"]["tiles"] == 3
    assert report["passed"] and len(report["per_time"]) == 2
    images, _ = load_fashion_mnist(None, "test")
    for work in report["work"]:
        first = work["layers"][0]
        assert first["vectors"] == 8.0  # T = 8 input vectors per inference
        assert first["dac_conversions"] == 0.0  # spikes drive the rows
        # Bernoulli rate code: the mean input spike rate is the mean pixel intensity
        assert first["input_rate"] == pytest.approx(float(images[:64].mean()), abs=0.01)
        assert first["adc_conversions"] <= 8 * 2 * 64  # <= T x row tiles x outputs
        e = report["profile"]["energy"]
        reads = sum(layer["cell_reads"] for layer in work["layers"])
        adc = sum(layer["adc_conversions"] for layer in work["layers"])
        expected = (reads * e["cell_read_pj"] + adc * e["adc_conversion_pj"]) / 1e3
        assert work["energy_nj"] == pytest.approx(expected)
    spec["requirements"] = [{"quantity": "accuracy", "at": "1d", "min": 0.999}]
    spec_path.write_text(yaml.safe_dump(spec))
    assert main(args) == 1
    report = json.loads((out / "report.json").read_text())
    assert not report["passed"] and report["requirements"][0]["yield"] == 0.0


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("pcm-sim: error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_exits_2_with_one_line_and_corrupts_nothing(
    workdir: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_sweep(workdir / "good.yaml", checkpoint)
    malformed = workdir / "malformed.yaml"
    malformed.write_text("name: x\nmodels: [\n")
    cases = {
        "malformed YAML": malformed,
        "unknown key": write_sweep(workdir / "b1.yaml", checkpoint, colour="red"),
        "unknown profile": write_sweep(workdir / "b2.yaml", checkpoint, profiles=["no_such"]),
        "bad override": write_sweep(workdir / "b3.yaml", checkpoint, overrides={"tile.nope": [1]}),
        "missing checkpoint": write_sweep(
            workdir / "b4.yaml", checkpoint, models=[{"checkpoint": str(workdir / "none.pt")}]
        ),
        "bad mode": write_sweep(workdir / "b5.yaml", checkpoint, evaluation={"mode": "warp"}),
    }
    for name, path in cases.items():
        db = workdir / f"bad-{name.replace(' ', '_')}.sqlite"
        _one_line_error(capsys, ["sweep", str(path), "--db", str(db)])
        assert not db.exists(), name
    no_workers = workdir / "no_workers.sqlite"
    _one_line_error(capsys, ["sweep", str(good), "--db", str(no_workers), "--workers", "0"])
    assert not no_workers.exists()
    foreign = workdir / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE cells (x INTEGER)")
    corrupt = workdir / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + os.urandom(4080))
    text = workdir / "text.sqlite"
    text.write_text("not a database\n")
    for db in (foreign, corrupt, text):
        content = db.read_bytes()
        err = _one_line_error(capsys, ["sweep", str(good), "--db", str(db)])
        assert str(db) in err
        assert db.read_bytes() == content
        _one_line_error(capsys, ["plot", str(db), "--out", str(workdir / "p")])
    with pytest.raises(StoreError, match="not a pcm-sim sweep database"):
        ResultStore(foreign)
    _one_line_error(capsys, ["plot", str(workdir / "missing.sqlite")])
    spec = workdir / "badspec.yaml"
    base = {"chips": 2, "times": ["1d"], "samples": 8}
    for bad_spec in (
        {**base, "requirements": [{"quantity": "speed", "max": 1}]},
        {**base, "requirements": [{"quantity": "accuracy", "at": "1y", "min": 0.5}]},
        {**base, "chips": 0, "requirements": [{"quantity": "tiles", "max": 1}]},
        {**base, "requirements": []},
    ):
        spec.write_text(yaml.safe_dump(bad_spec))
        args = ["validate", str(checkpoint), "--profile", "pcm_nandakumar2019", "--spec", str(spec)]
        _one_line_error(capsys, [*args, "--out", str(workdir / "never")])
    ok_spec = {
        "chips": 1,
        "times": ["1d"],
        "samples": 8,
        "requirements": [{"quantity": "energy_nj", "max": 1}],
    }
    spec.write_text(yaml.safe_dump(ok_spec))
    args = ["validate", str(checkpoint), "--profile", "ideal", "--spec", str(spec)]
    assert "no energy figures" in _one_line_error(capsys, [*args, "--out", str(workdir / "never")])
    args = ["validate", str(workdir / "none.pt"), "--profile", "ideal", "--spec", str(spec)]
    _one_line_error(capsys, [*args, "--out", str(workdir / "never")])
    assert not (workdir / "never").exists()
