"""Tasks: hand-computed metrics, your own network from the command line (entry point, NIR)."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from torch import nn

import pcm_sim
from pcm_sim.cli import main
from pcm_sim.evaluation import evaluate_on_chips
from pcm_sim.interop.nir_task import nir_task
from pcm_sim.seeds import input_generator


class FixedScores(nn.Module):
    """Returns the input itself: the data's inputs are the scores."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_task_metrics_are_hand_computed() -> None:
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    labels = torch.tensor([1, 1, 1, 0, 0])  # argmax: 1 0 1 0 1 -> correct: T F T T F
    data = [(scores[:3], labels[:3]), (scores[3:], labels[3:])]
    task = pcm_sim.Task(model=FixedScores(), data=data)
    gen = torch.Generator()
    assert task.evaluate(task.model, gen) == {"accuracy": pytest.approx(3 / 5)}
    assert task.evaluate(task.model, gen, limit=4)["accuracy"] == pytest.approx(3 / 4)
    assert task.higher_is_better and task.test_size() == 5
    targets = torch.tensor([[0.0, 1.0]] * 5)
    mse = pcm_sim.Task(model=FixedScores(), data=[(scores, targets)], metric="mse")
    expected = float(((scores - targets) ** 2).mean())
    assert mse.evaluate(mse.model, gen)["mse"] == pytest.approx(expected)
    assert not mse.higher_is_better
    # spiking outputs (T, B, C): the readout counts spikes over time
    spikes = torch.zeros(4, 2, 3)
    spikes[:, 0, 2] = 1.0
    spikes[:3, 1, 0] = 1.0
    spikes[3, 1, 1] = 1.0
    counted = pcm_sim.Task(model=FixedScores(), data=[(spikes, torch.tensor([2, 1]))])
    assert counted.evaluate(counted.model, gen)["accuracy"] == pytest.approx(0.5)
    custom = pcm_sim.Task(
        model=FixedScores(),
        data=data,
        metric=lambda s, y: s[torch.arange(len(y)), y],
        metric_name="p_true",
    )
    assert custom.evaluate(custom.model, gen)["p_true"] == pytest.approx(
        (0.9 + 0.2 + 0.7 + 0.6 + 0.2) / 5
    )


def test_bad_tasks_are_refused() -> None:
    with pytest.raises(pcm_sim.TaskError, match="unknown metric"):
        pcm_sim.Task(model=FixedScores(), data=[], metric="f1")
    with pytest.raises(pcm_sim.TaskError, match="needs a metric_name"):
        pcm_sim.Task(model=FixedScores(), data=[], metric=lambda s, y: s)
    with pytest.raises(pcm_sim.TaskError, match="iterable"):
        pcm_sim.Task(model=FixedScores(), data=3)  # type: ignore[arg-type]
    with pytest.raises(pcm_sim.TaskError, match="empty"):
        t = pcm_sim.Task(model=FixedScores(), data=[])
        t.evaluate(t.model, torch.Generator())


TASK_FILE = """
import torch
from torch import nn
import pcm_sim

def task():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(5)
    x = torch.randn(60, 12, generator=g)
    y = (x[:, :3] * 3).argmax(1)
    return pcm_sim.Task(model=pcm_sim.convert(mlp), data=[(x[:30], y[:30]), (x[30:], y[30:])])

def not_a_task():
    return 42
"""


def test_evaluate_task_from_the_command_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "my_task.py"
    path.write_text(TASK_FILE)
    out = tmp_path / "r.json"
    argv = ["evaluate", "--task", f"{path}:task", "--profile", "pcm_nandakumar2019"]
    argv += ["--times", "1h", "1d", "--chips", "2", "--json", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    task = pcm_sim.tasks.load_entry_point(f"{path}:task")
    software = task.evaluate(task.model, input_generator())["accuracy"]
    assert result["software"]["accuracy"] == software
    direct = evaluate_on_chips(task.model, task, "pcm_nandakumar2019", [3600.0, 86_400.0], 2)
    for row, again in zip(result["rows"], direct["rows"], strict=True):
        assert row["per_chip"] == again["per_chip"]  # the same chips whoever asks
    assert main(["evaluate", "--task", f"{path}:not_a_task"]) == 2
    assert "returned int, expected a pcm_sim.Task" in capsys.readouterr().err
    assert main(["evaluate", "--task", f"{path}:missing"]) == 2
    assert main(["evaluate", "--task", "no_colon"]) == 2
    assert main(["evaluate", str(out), "--task", f"{path}:task"]) == 2  # two sources


def _nir_classifier(path: Path, inputs: int) -> None:
    rng = np.random.default_rng(0)
    tau = np.full(10, 1e-3)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([inputs])}),
            "fc": nir.Affine(
                weight=rng.normal(0, 0.1, (10, inputs)).astype(np.float32),
                bias=np.zeros(10, np.float32),
            ),
            "lif": nir.LIF(
                tau=tau,
                r=tau / 1e-4,
                v_leak=np.zeros(10),
                v_threshold=np.full(10, 0.5),
                v_reset=np.zeros(10),
            ),
            "output": nir.Output(output_type={"output": np.array([10])}),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    nir.write(path, graph)


def test_evaluate_nir_file_from_the_command_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fc.nir"
    _nir_classifier(path, 784)
    out = tmp_path / "r.json"
    argv = ["evaluate", "--nir", str(path), "--dt", "1e-4", "--steps", "4", "--limit", "200"]
    assert (
        main([*argv, "--profile", "ideal", "--times", "0", "--chips", "1", "--json", str(out)]) == 0
    )
    result = json.loads(out.read_text())
    task = nir_task(path, 1e-4, 4)
    expected = task.evaluate(task.model, input_generator(), limit=200)["accuracy"]
    assert result["software"]["accuracy"] == expected
    assert 0.0 < expected < 1.0
    assert abs(result["rows"][0]["mean"] - expected) <= 0.02  # the ideal chip: quantized only
    wrong = tmp_path / "wrong.nir"
    _nir_classifier(wrong, 100)
    assert main(["evaluate", "--nir", str(wrong), "--dt", "1e-4", "--steps", "4"]) == 2
    assert "784 pixels, the model's input is [100]" in capsys.readouterr().err
    assert main(["evaluate", "--nir", str(path), "--steps", "4"]) == 2
    assert main(["evaluate", "--nir", str(path), "--dt", "-1", "--steps", "4"]) == 2


def test_sweeps_and_validate_take_your_own_network(tmp_path: Path) -> None:
    import yaml

    from pcm_sim.studies.executors import make_executor
    from pcm_sim.studies.store import ResultStore
    from pcm_sim.studies.sweep import SweepError, load_sweep, run_sweep

    task_file = tmp_path / "my_task.py"
    task_file.write_text(TASK_FILE)
    nir_file = tmp_path / "fc.nir"
    _nir_classifier(nir_file, 784)
    sweep = {
        "name": "own",
        "models": [
            {"task": f"{task_file}:task", "label": "mine"},
            {"nir": str(nir_file), "data": {"dt": 1e-4, "steps": 4}},
        ],
        "profiles": ["pcm_nandakumar2019"],
        "times": ["1d"],
        "chips": 2,
        "evaluation": {"limit": 100},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    db = tmp_path / "own.sqlite"
    executor = make_executor(1, None)
    try:
        run_sweep(load_sweep(path), db, executor, progress=False, log=lambda _: None)
    finally:
        executor.close()
    with ResultStore(db, create=False) as store:
        rows = {
            (r["config"]["model"]["label"], r["config"]["seed"]): r["value"] for r in store.rows()
        }
    task = pcm_sim.tasks.load_entry_point(f"{task_file}:task")
    direct = evaluate_on_chips(task.model, task, "pcm_nandakumar2019", [86_400.0], 2, limit=100)
    assert [rows[("mine", s)] for s in (0, 1)] == direct["rows"][0]["per_chip"]
    nir_source = nir_task(nir_file, 1e-4, 4)
    nir_direct = evaluate_on_chips(
        nir_source.model, nir_source, "pcm_nandakumar2019", [86_400.0], 2, limit=100
    )
    assert [rows[("fc", s)] for s in (0, 1)] == nir_direct["rows"][0]["per_chip"]
    # a validation spec on the task
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "chips": 2,
                "times": ["1d"],
                "samples": 60,
                "requirements": [{"quantity": "accuracy", "at": "1d", "min": 0.0}],
            }
        )
    )
    out = tmp_path / "report"
    argv = ["validate", "--task", f"{task_file}:task", "--profile", "pcm_nandakumar2019"]
    assert main([*argv, "--spec", str(spec), "--out", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["checkpoint"]["task"] == "task" and report["checkpoint"]["kind"] == "task"
    direct60 = evaluate_on_chips(task.model, task, "pcm_nandakumar2019", [86_400.0], 2, limit=60)
    assert report["per_time"][0]["values"] == direct60["rows"][0]["per_chip"]
    spec.write_text(
        yaml.safe_dump(
            {
                "chips": 2,
                "times": ["1d"],
                "samples": 61,
                "requirements": [{"quantity": "accuracy", "at": "1d", "min": 0.0}],
            }
        )
    )
    assert main([*argv, "--spec", str(spec), "--out", str(out), "--no-progress"]) == 2
    # bad entries name what is wrong
    for entry, message in (
        ({"nir": str(nir_file)}, "data: expected a mapping"),
        ({"nir": str(nir_file), "data": {"dt": 1e-4}}, "steps"),
        ({"task": "x:y", "data": {}}, "only with 'nir'"),
        ({"task": "x:y", "checkpoint": "z"}, "exactly one of"),
    ):
        path.write_text(yaml.safe_dump({**sweep, "models": [entry]}))
        with pytest.raises(SweepError, match=message):
            load_sweep(path)
