"""The family registry, the family protocol's HIL task, and the shared chip-correction study."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from pcm_sim.evaluation import score_chip
from pcm_sim.families import FAMILIES
from pcm_sim.profiles import load_profile
from pcm_sim.recipes import validate_recipe
from pcm_sim.training.correction import CorrectionCase, correction_study, summarize_case
from pcm_sim.training.hil import HILConfig

SNU = {
    "name": "tiny_snu",
    "family": "snu_fmnist",
    "model": {"sizes": [784, 8, 10]},
    "data": {"dataset": "fashion_mnist", "steps": 3},
    "training": {"epochs": 1, "batch_size": 8, "lr": 0.001, "progress": False},
}
LAZY_CHECK = """
import sys
from pcm_sim.families import FAMILIES
from pcm_sim.recipes import load_recipe
FAMILIES["snu_fmnist"].build(load_recipe("snu_fmnist"))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"gymnasium", "scipy"})
load_recipe("coarse_lif_cartpole")
print(heavy, "gymnasium" in sys.modules)
"""


@pytest.fixture(autouse=True)
def synthetic_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """32 random images with labels stand in for both splits."""
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(32, 784, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    monkeypatch.setattr(
        "pcm_sim.families.data.load_fashion_mnist", lambda data_dir, split: (images, labels)
    )


def test_a_family_is_imported_only_when_a_recipe_names_it() -> None:
    out = subprocess.run(
        [sys.executable, "-c", LAZY_CHECK], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["[]", "True"]  # SNU: neither; CartPole (the control): gymnasium


def test_registry_knows_every_family_without_loading_it() -> None:
    assert set(FAMILIES) >= {"snu_fmnist", "coarse_lif_cartpole", "lstm_chorales"}
    assert "no_such_family" not in FAMILIES and len(FAMILIES) == len(list(FAMILIES))


def test_hil_task_draws_rate_coded_batches_and_refuses_a_rule_without_gradients() -> None:
    recipe = validate_recipe(SNU, "tiny")
    task = FAMILIES["snu_fmnist"].hil_task(recipe, batch_size=5)
    spikes, labels = task.batch(torch.Generator().manual_seed(1))
    assert spikes.shape == (3, 5, 784) and labels.shape == (5,)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    again, _ = task.batch(torch.Generator().manual_seed(1))
    assert torch.equal(spikes, again)
    torch.manual_seed(0)
    model = FAMILIES["snu_fmnist"].build(recipe)
    loss = task.loss(model, (spikes, labels))
    assert loss.requires_grad and loss.item() > 0
    dsn: dict[str, Any] = {
        **SNU,
        "family": "dsn_fmnist",
        "model": {"sizes": [784, 8, 10], "steps": 2},
        "data": {"dataset": "fashion_mnist"},
    }
    dsn_recipe = validate_recipe(dsn, "tiny")
    dsn_task = FAMILIES["dsn_fmnist"].hil_task(dsn_recipe, batch_size=4)
    dsn_model = FAMILIES["dsn_fmnist"].build(dsn_recipe).train()
    with pytest.raises(ValueError, match="not by the gradient of a loss"):
        dsn_task.loss(dsn_model, dsn_task.batch(torch.Generator().manual_seed(1)))
    cartpole = FAMILIES["coarse_lif_cartpole"]
    with pytest.raises(ValueError, match="trained by its own loop"):
        cartpole.hil_task({}, batch_size=4)


def test_correction_study_scores_open_loop_chips_as_score_chip_does() -> None:
    recipe = validate_recipe(SNU, "tiny")
    torch.manual_seed(0)
    model = FAMILIES["snu_fmnist"].build(recipe)
    profile = load_profile("pcm_nandakumar2019", overrides={"programming.scale": 3.0})
    hil = HILConfig(steps=2, batch_size=4, t_s=3600.0)
    cases = [
        CorrectionCase("open", "open", (3600.0,)),
        CorrectionCase("verify", "verify", (3600.0,)),
        CorrectionCase("hil", "hil", (3600.0,), hil),
    ]
    runs = correction_study(model, recipe, profile, cases, [4, 5], limit=24)
    assert [(r["chip_seed"], r["case"]) for r in runs] == [
        (chip, case.name) for chip in (4, 5) for case in cases
    ]
    for chip in (4, 5):  # one definition of "the metric of chip s at t"
        direct = score_chip(model, recipe, profile, chip, [3600.0], limit=24)
        assert [r["values"] for r in runs if r["case"] == "open" and r["chip_seed"] == chip] == [
            direct
        ]
    opened = summarize_case(runs, "open", 3600.0)
    verified = summarize_case(runs, "verify", 3600.0)
    assert opened["pulses_mean"] == 1.0  # one write per device
    assert verified["pulses_mean"] > 1.0  # the verify re-writes are counted
    assert len(summarize_case(runs, "hil", 3600.0)["per_chip"]) == 2
    assert all(len(r["hil"]["losses"]) == 2 for r in runs if r["case"] == "hil")
    with pytest.raises(ValueError, match="no run of case 'open' scored at t = 60 s"):
        summarize_case(runs, "open", 60.0)
