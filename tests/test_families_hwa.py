"""Every family honours every ``training.hwa_*`` key of its recipe, through the one training loop.

Each family trains a tiny network for one epoch on synthetic data; a pre-forward hook on every
analog layer records the hardware-aware settings the layer trains with.  A recipe that sets one
key turns on exactly that setting (the others stay off: a key wired to the wrong setting fails),
a recipe without ``hwa_profile`` trains without noise, and noise is off after training.  The
LSTM baseline has no analog layers, so its recipe refuses the keys.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from pcm_sim.families import FAMILIES
from pcm_sim.nn.analog import analog_layers
from pcm_sim.recipes import RecipeError, validate_recipe

EPOCH = {"epochs": 1, "batch_size": 8, "lr": 0.001, "progress": False}
IMAGES = {"dataset": "fashion_mnist"}
TINY: dict[str, dict[str, Any]] = {
    "snu_fmnist": {"model": {"sizes": [784, 8, 10]}, "data": {**IMAGES, "steps": 2}},
    "phasor_fmnist": {"model": {"hidden": [8], "classes": 10}, "data": IMAGES},
    "coarse_lif_fmnist": {
        "model": {"channels": [2, 2], "hidden": 8},
        "data": {**IMAGES, "steps": 2},
    },
    "dsn_fmnist": {"model": {"sizes": [784, 8, 10], "steps": 2}, "data": IMAGES},
    "ssnu_chorales": {"model": {"hidden": 6}, "data": {"dataset": "bach_chorales"}},
    "coarse_lif_cartpole": {
        "model": {"sizes": [9, 8, 2]},
        "data": {"steps": 2, "state_scale": [1.0] * 4, "train_box": [0.1] * 4},
        "training": {
            "box_samples": 16,
            "dagger_iterations": 0,
            "episodes_per_iteration": 1,
            "epochs_per_iteration": 1,
            "batch_size": 8,
            "lr": 0.001,
        },
    },
}
FLAGS = {
    "hwa_output_noise": "hwa_output_noise",
    "hwa_scale_gradient": "hwa_scale_gradient",
    "hwa_converters": "hwa_converters",
}
"""Recipe key -> the analog layer attribute it turns on."""


def tiny_recipe(family: str, **training: Any) -> dict[str, Any]:
    """A validated tiny recipe of ``family`` with extra ``training`` keys."""
    spec = TINY[family]
    recipe = {
        "name": f"tiny_{family}",
        "family": family,
        "model": spec["model"],
        "data": spec["data"],
        "training": {**spec.get("training", EPOCH), **training},
    }
    return validate_recipe(copy.deepcopy(recipe), "tiny")


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Images and piano rolls drawn at random, so no data set is read."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(16, 784, generator=gen)
    labels = torch.randint(0, 10, (16,), generator=gen)
    rolls = [(torch.rand(12, 88, generator=gen) < 0.1).float() for _ in range(4)]
    monkeypatch.setattr(
        "pcm_sim.families.data.load_fashion_mnist", lambda data_dir, split: (images, labels)
    )
    monkeypatch.setattr(
        "pcm_sim.families.data.load_chorales",
        lambda cache_dir, max_pieces, progress: {"train": rolls, "valid": rolls, "test": rolls},
    )


def settings_seen_in_training(family: str, recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit the family's model; per analog layer, its HWA settings at its first training read."""
    torch.manual_seed(0)
    model = FAMILIES[family].build(recipe)
    layers = analog_layers(model)
    seen: dict[int, dict[str, Any]] = {}

    def record(layer: nn.Module, _: Any) -> None:
        if layer.training and id(layer) not in seen:
            on = layer.hwa_generator is not None
            seen[id(layer)] = {
                "on": on,
                "profile": layer.profile.name if on else None,
                "t_s": layer.hwa_t_s if on else None,
                **{attr: getattr(layer, attr) for attr in FLAGS.values()},
            }

    for layer in layers:
        layer.register_forward_pre_hook(record)
    FAMILIES[family].fit(model, recipe, torch.Generator().manual_seed(0), lambda _: None)
    assert all(layer.hwa_generator is None for layer in layers)  # off after training
    assert len(seen) == len(layers) > 0  # every analog layer trained
    return list(seen.values())


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_hwa_key_turns_on_its_setting_in_every_analog_layer(family: str) -> None:
    plain = settings_seen_in_training(family, tiny_recipe(family))
    assert not any(layer["on"] for layer in plain)  # no hwa_profile: no noise
    base = {"hwa_profile": "pcm_nandakumar2019", "hwa_t_s": 3600.0}
    sampled = settings_seen_in_training(family, tiny_recipe(family, **base))
    for layer in sampled:
        assert layer["on"] and layer["profile"] == "pcm_nandakumar2019"
        assert layer["t_s"] == 3600.0
        assert not any(layer[attr] for attr in FLAGS.values())
    for key, attr in FLAGS.items():
        layers = settings_seen_in_training(family, tiny_recipe(family, **base, **{key: True}))
        for layer in layers:
            assert layer["on"] and layer[attr], (key, layer)
            assert not any(layer[other] for other in FLAGS.values() if other != attr), (key, layer)


def test_hwa_noise_changes_what_the_network_learns() -> None:
    def weights(**training: Any) -> torch.Tensor:
        recipe = tiny_recipe("phasor_fmnist", **training)
        torch.manual_seed(0)
        model = FAMILIES["phasor_fmnist"].build(recipe)
        FAMILIES["phasor_fmnist"].fit(model, recipe, torch.Generator().manual_seed(0), print)
        return analog_layers(model)[0].weight.detach().clone()

    clean, again = weights(), weights()
    noisy = weights(hwa_profile="pcm_nandakumar2019", hwa_output_noise=True)
    assert torch.equal(clean, again)  # training is deterministic
    assert not torch.equal(clean, noisy)  # the noise reached the gradients


def test_the_software_baseline_refuses_hwa_keys() -> None:
    recipe = {
        "name": "tiny_lstm",
        "family": "lstm_chorales",
        "model": {"hidden": 4},
        "data": {"dataset": "bach_chorales"},
        "training": {"epochs": 1, "batch_size": 2, "lr": 0.01},
    }
    assert analog_layers(FAMILIES["lstm_chorales"].build(validate_recipe(recipe, "x"))) == []
    for key, value in [("hwa_profile", "pcm_nandakumar2019"), ("hwa_output_noise", True)]:
        bad = copy.deepcopy(recipe)
        bad["training"][key] = value
        with pytest.raises(RecipeError, match=f"unknown key '{key}'"):
            validate_recipe(bad, "x")
