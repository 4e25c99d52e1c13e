"""Hostile and careless input: safe checkpoints, strict recipes, bounded profiles, one-line CLI
errors, sweep integrity and validation statistics.  Every refusal has a control that passes."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcm_sim
from pcm_sim import profile_bounds
from pcm_sim.cli import main
from pcm_sim.families import FAMILIES
from pcm_sim.profile_bounds import BOUNDS, MAX_YAML_DEPTH
from pcm_sim.profiles import DeviceProfile, ProfileError, list_profiles, load_profile
from pcm_sim.recipes import RecipeError, list_recipes, load_recipe
from pcm_sim.studies.outputs import atomic_output
from pcm_sim.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    train_recipe,
)

TINY_RECIPE = {
    "name": "hostile_tiny",
    "family": "snu_fmnist",
    "model": {"sizes": [784, 32, 10]},
    "data": {"dataset": "fashion_mnist", "steps": 4},
    "training": {"epochs": 1, "batch_size": 64, "lr": 0.002, "train_limit": 64, "progress": False},
}


def one_line(message: str) -> str:
    assert "\n" not in message.rstrip("\n"), message
    return message


def tiny_payload() -> dict[str, Any]:
    torch.manual_seed(0)
    model = FAMILIES["snu_fmnist"].build(TINY_RECIPE)
    return {
        "recipe": copy.deepcopy(TINY_RECIPE),
        "hwa_profile": None,
        "state_dict": model.state_dict(),
        "history": [],
        "software": {"accuracy": 0.5},
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny SNU checkpoint (no data needed to build it)."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    save_checkpoint(path, tiny_payload())
    return path


class Payload:
    """Unpickling this creates ``marker``: a stand-in for code run by a hostile file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def hostile_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "pcm-sim-checkpoint/2", **tiny_payload(), "x": Payload(marker)}, path)
    return path, marker


# ------------------------------------------------------------------ 1. loading runs no code


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, marker = hostile_checkpoint(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "pickled code" in one_line(str(info.value)) and "pcm-sim-checkpoint/2" in str(info.value)
    assert main(["evaluate", str(path), "--chips", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: full unpickling runs the payload
    assert marker.exists()


def test_old_foreign_and_incomplete_checkpoints_are_refused_in_one_line(
    tmp_path: Path, checkpoint: Path
) -> None:
    model, payload = load_checkpoint(checkpoint)  # control: a complete /2 checkpoint loads
    assert payload["format"] == "pcm-sim-checkpoint/2" and isinstance(model, torch.nn.Module)
    base = {"format": "pcm-sim-checkpoint/2", **tiny_payload()}

    def without(key: str) -> dict[str, Any]:
        return {k: v for k, v in base.items() if k != key}

    cases: dict[str, tuple[Any, str]] = {
        "v1": (
            {**base, "format": "pcm-sim-checkpoint/1"},
            "expected pcm-sim-checkpoint/2; retrain",
        ),
        "foreign": ({"weights": torch.zeros(3)}, "not a pcm-sim checkpoint (a dict without"),
        "list": ([1, 2], "not a pcm-sim checkpoint (list without a format)"),
        "no_recipe": (without("recipe"), "missing key 'recipe'"),
        "no_software": (without("software"), "missing key 'software'"),
        "no_state": (without("state_dict"), "missing key 'state_dict'"),
        "bad_state": ({**base, "state_dict": [1]}, "state_dict: expected a mapping"),
        "bad_recipe": ({**base, "recipe": {**TINY_RECIPE, "colour": 1}}, "unknown key 'colour'"),
    }
    for name, (content, fragment) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(content, path)
        with pytest.raises((CheckpointError, RecipeError)) as info:
            load_checkpoint(path)
        assert fragment in one_line(str(info.value)), name
        assert str(path) in str(info.value)


# ------------------------------------------------------------------ 2. strict recipes


def test_every_shipped_recipe_loads() -> None:
    for name in list_recipes():
        assert load_recipe(name)["family"] in FAMILIES


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda r: r["training"].update(hwa_profil="pcm_nandakumar2019"),
            "did you mean 'hwa_profile'",
        ),
        (lambda r: r["training"].update(lrr=r["training"].pop("lr")), "did you mean 'lr'"),
        (lambda r: r["training"].pop("lr"), "missing required key 'lr'"),
        (lambda r: r["training"].update(lr=-1e-3), "training.lr: expected a finite number > 0"),
        (lambda r: r["training"].update(lr=float("nan")), "training.lr"),
        (lambda r: r["training"].update(lr="fast"), "training.lr"),
        (lambda r: r["training"].update(epochs=0), "training.epochs: expected an integer >= 1"),
        (lambda r: r["training"].update(epochs=1.5), "training.epochs"),
        (lambda r: r["training"].update(batch_size=0), "training.batch_size"),
        (lambda r: r["training"].update(hwa_profile="no_such"), "unknown profile 'no_such'"),
        (lambda r: r["data"].update(steps=0), "data.steps: expected an integer >= 1"),
        (lambda r: r["data"].update(dataset="cifar"), "data.dataset"),
        (lambda r: r["model"].update(sizes=[783, 10]), "expected 784 as the first item"),
        (lambda r: r["model"].update(sizes=[784]), "model.sizes: expected 2..16 items"),
        (lambda r: r["model"].update(decya=0.8), "did you mean 'decay'"),
        (lambda r: r.update(trainig=r.pop("training")), "did you mean 'training'"),
        (lambda r: r.update(family="snu_fmist"), "did you mean 'snu_fmnist'"),
        (lambda r: r.update(name="../escape"), "name: expected"),
    ],
)
def test_bad_recipes_are_refused_with_the_field_and_a_suggestion(
    tmp_path: Path, change: Any, fragment: str
) -> None:
    recipe = load_recipe("snu_fmnist")
    change(recipe)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert fragment in one_line(str(info.value)) and str(path) in str(info.value)


def test_nested_recipe_sections_are_strict_and_overrides_are_checked(tmp_path: Path) -> None:
    recipe = load_recipe("phasor_conv_fmnist")
    recipe["model"]["conv"][1]["kernl"] = 3
    recipe["model"]["spiking"]["cyclse"] = 4
    path = tmp_path / "phasor.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=r"model\.conv\[1\]: unknown key 'kernl' \(did you mean"):
        load_recipe(path)
    del recipe["model"]["conv"][1]["kernl"]
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match=r"model\.spiking: unknown key 'cyclse'"):
        load_recipe(path)
    del recipe["model"]["spiking"]["cyclse"]
    path.write_text(yaml.safe_dump(recipe))
    assert load_recipe(path)["model"]["spiking"]["cycles"] == 16  # control
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump(TINY_RECIPE))
    with pytest.raises(RecipeError, match=r"training\.epochs: expected an integer >= 1 and <="):
        train_recipe(tiny, tmp_path / "never", {"epochs": 0}, log=lambda _: None)
    assert not (tmp_path / "never").exists()  # refused before any work


# ------------------------------------------------------------------ 3. bounded profiles


def nested(depth: int) -> str:
    return (
        "device:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, depth)) + "  " * depth + "1\n"
    )


def test_deep_or_huge_yaml_is_one_line_not_a_recursion_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ProfileError, match=f"nested deeper than {MAX_YAML_DEPTH}") as info:
        load_profile(path)
    one_line(str(info.value))
    path.write_text(nested(MAX_YAML_DEPTH + 5))
    with pytest.raises(ProfileError, match="nested deeper"):
        load_profile(path)
    path.write_text(nested(MAX_YAML_DEPTH - 2))  # control: nesting within the limit parses
    with pytest.raises(ProfileError, match="device: unknown key 'k1'"):
        load_profile(path)
    monkeypatch.setattr(profile_bounds, "MAX_YAML_NODES", 1000)  # a small limit, same code
    path.write_text("[" + "1, " * 1000 + "1]")
    with pytest.raises(ProfileError, match="more than 1000 YAML nodes"):
        load_profile(path)
    path.write_text("[" + "1, " * 990 + "1]")  # control: within the limit, refused later
    with pytest.raises(ProfileError, match="profile: expected a mapping, got list"):
        load_profile(path)
    path.write_text("[" * 50 + "]" * 50)
    with pytest.raises(RecipeError, match="nested deeper"):  # recipes share the reader
        load_recipe(path)


def with_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The Nandakumar-2019 profile dict with dotted fields (list items by index) changed."""
    data = load_profile("pcm_nandakumar2019").to_dict()
    for dotted, value in changes.items():
        node: Any = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(leaf) if isinstance(node, list) else leaf] = value
    return data


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"read_noise.q_s.0.clip_max": None}, "power law c0 * x^-c1 is inf at x = 0"),
        (
            {"drift.t0_s": 1e-6, "read_noise.t_read_s": 1e-6},
            "read_noise.t_read_s: expected < drift.t0_s",
        ),
        ({"device.g_max_us": 1e300}, "device.g_max_us: expected 0.01..1000"),
        ({"programming.scale": 1e300}, "programming.scale: expected 0..100"),
        ({"periphery.output_range": 1e300}, "periphery.output_range: expected 0..65536"),
        ({"programming.sigma_us.0.coeffs.0": 1e300}, "coeffs[0]: expected |value| <= 1e+06"),
        ({"programming.sigma_us.0.coeffs.0": -5.0}, "programming.sigma_us: expected finite"),
        ({"programming.g_ref_us": 0.5}, "expected a std at most g_ref_us = 0.5"),
        ({"drift.nu_std.0.clip_min": -0.5}, "drift.nu_std: expected finite values in 0..1"),
        ({"device.g_min_us": 20.0}, "device.g_min_us: expected <= g_max_us / 2"),
        ({"drift.nu_mean.0.clip_min": 0.2}, "clip_min: expected <= clip_max"),
        ({"read_noise.q_s.0.coeffs.1": 9.0}, "a power exponent in -4..4"),
    ],
)
def test_profile_bounds_and_law_checks_refuse_with_one_line(
    changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ProfileError) as info:
        DeviceProfile.from_dict(with_changes(changes), "mine.yaml")
    assert fragment in one_line(str(info.value)) and str(info.value).startswith("mine.yaml: ")


@pytest.mark.parametrize(
    "changes",
    [
        {"read_noise.q_s.0.clip_max": 0.5},  # a clipped power law is finite at x = 0
        {"drift.t0_s": 1e-6, "read_noise.t_read_s": 9e-7},  # t_read just below t0
        {"device.g_max_us": 1000.0},  # the bounds are inclusive
        {"device.g_min_us": 12.5},  # exactly g_max / 2
        {"programming.g_ref_us": 1.1},  # sigma_us peaks at 1.05 µS
        {"read_noise.q_s.0.coeffs.1": 4.0},
    ],
)
def test_profile_bound_controls_load(changes: dict[str, Any]) -> None:
    profile = DeviceProfile.from_dict(with_changes(changes))
    refused_or_finite(profile.to_dict())


def test_every_numeric_profile_field_is_bounded() -> None:
    profile = load_profile("pcm_nandakumar2019").to_dict()
    numeric = {
        f"{section}.{name}"
        for section, fields in profile.items()
        if isinstance(fields, dict)
        for name, value in fields.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    missing = numeric - set(BOUNDS)
    assert not missing, f"numeric profile fields without a bound in BOUNDS: {sorted(missing)}"
    assert set(BOUNDS) <= numeric  # no stale entry


MISSING = object()
FIXED_MUTATIONS: list[Any] = [
    math.nan, math.inf, -math.inf, 1e300, -1e300, 1e39, -1.0, 0, 0.0, 1e-30,
    "x", [1.0], {"a": 1}, True, None, MISSING,
]  # fmt: skip


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in leaves(v, (*path, i))]
    return [path]


SHIPPED = {name: load_profile(name).to_dict() for name in list_profiles()}
LEAVES = [(name, path) for name, data in SHIPPED.items() for path in leaves(data)]


def mutated(name: str, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(SHIPPED[name])
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is MISSING:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def refused_or_finite(data: dict[str, Any]) -> None:
    """The property: a profile is refused in one line, or a small layer on it stays finite."""
    try:
        profile = DeviceProfile.from_dict(data, "mutant.yaml")
    except ProfileError as exc:
        one_line(str(exc))
        return
    generator = torch.Generator().manual_seed(0)
    layer = pcm_sim.AnalogLinear(24, 8, profile=profile)
    with torch.no_grad():
        layer.weight.copy_(0.2 * torch.randn(8, 24, generator=generator))
        pcm_sim.deploy(layer, profile, seed=0)
        pcm_sim.drift_to(layer, 86_400.0)
        y = layer(torch.randn(4, 24, generator=generator))
    assert torch.isfinite(y).all(), data


def test_every_leaf_of_every_shipped_profile_mutated_is_refused_or_finite() -> None:
    for name, path in LEAVES:
        for value in FIXED_MUTATIONS:
            refused_or_finite(mutated(name, path, value))
        dotted = ".".join(str(p) for p in path)
        if dotted in BOUNDS:  # the edges of a bound load and simulate finitely
            bound = BOUNDS[dotted]
            for edge in (bound.low, bound.high):
                refused_or_finite(mutated(name, path, edge))


@settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    leaf=st.sampled_from(LEAVES),
    value=st.one_of(
        st.sampled_from(FIXED_MUTATIONS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.text(max_size=5),
    ),
)
def test_profile_mutations_are_refused_in_one_line_or_simulate_finitely(
    leaf: tuple[str, tuple[Any, ...]], value: Any
) -> None:
    refused_or_finite(mutated(leaf[0], leaf[1], value))


def test_atomic_output_leaves_nothing_half_written(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    with atomic_output(target) as tmp:  # control: a complete write replaces the file
        tmp.write_text("new")
    assert target.read_text() == "new" and len(list(target.parent.iterdir())) == 1


# ------------------------------------------------------------------ 4. every CLI command


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> dict[str, str]:
    """Good and bad input files, by name, for the command table."""
    from pcm_sim.studies.store import ResultStore

    d = tmp_path_factory.mktemp("inputs")
    (d / "a_dir").mkdir()
    (d / "a_file").write_text("not a directory\n")
    evil, _ = hostile_checkpoint(d)
    torch.save({**tiny_payload(), "format": "pcm-sim-checkpoint/1"}, d / "v1.pt")
    profiles = {
        "nan_profile": with_changes({"device.g_max_us": math.nan}),
        "power_profile": with_changes({"read_noise.q_s.0.clip_max": None}),
        "tread_profile": with_changes({"drift.t0_s": 1e-6, "read_noise.t_read_s": 2e-6}),
    }
    for name, data in profiles.items():
        (d / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (d / "deep.yaml").write_text("[" * 100 + "]" * 100)
    recipes = {
        "tiny_recipe": TINY_RECIPE,
        "typo_recipe": {**TINY_RECIPE, "training": {**TINY_RECIPE["training"], "hwa_profil": "x"}},
        "nolr_recipe": {**TINY_RECIPE, "training": {"epochs": 1, "batch_size": 8}},
    }
    sweep = {
        "name": "bad",
        "models": [{"checkpoint": str(checkpoint), "label": "tiny"}],
        "profiles": ["pcm_nandakumar2019"],
        "times": ["1d"],
        "chips": 1,
        "evaluation": {"limit": 8},
    }
    requirement = {"quantity": "accuracy", "at": "1d", "min": 0.0}
    spec = {"chips": 1, "times": ["1d"], "samples": 8, "requirements": [requirement]}
    documents = {
        **recipes,
        "good_sweep": sweep,
        "unknown_sweep": {**sweep, "colour": "red"},
        "times_sweep": {**sweep, "times": ["soon"]},
        "good_spec": spec,
        "samples_spec": {**spec, "samples": 20_000},
        "lower_spec": {**spec, "requirements": [{**requirement, "min_yield_lower_95": 1.0}]},
        "unknown_spec": {**spec, "colour": "red"},
    }
    for name, data in documents.items():
        (d / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (d / "malformed.yaml").write_text("name: x\nmodels: [\n")
    ResultStore(d / "empty.sqlite").close()
    import sqlite3

    with sqlite3.connect(d / "foreign.sqlite") as conn:
        conn.execute("CREATE TABLE cells (x INTEGER)")
    paths = {p.stem if p.is_file() else p.name: str(p) for p in d.iterdir()}
    paths |= {"ck": str(checkpoint), "evil": str(evil), "missing": str(d / "missing")}
    return paths


CLI_CASES = [
    # command, arguments, what the one line must say
    ("profiles", "show no_such", "unknown profile 'no_such'"),
    ("profiles", "check {missing}.yaml", "cannot read file"),
    ("profiles", "check {a_dir}", "cannot read file"),
    ("profiles", "check {deep}", "nested deeper than 20"),
    ("profiles", "check {nan_profile}", "device.g_max_us: expected a finite number"),
    ("profiles", "check {power_profile}", "give it a clip_max"),
    ("profiles", "check {tread_profile}", "read_noise.t_read_s: expected < drift.t0_s"),
    ("profiles", "list extra", "unrecognized arguments: extra"),
    ("train", "no_such_recipe --out {out}/t", "unknown recipe 'no_such_recipe'"),
    ("train", "{typo_recipe} --out {out}/t", "did you mean 'hwa_profile'"),
    ("train", "{nolr_recipe} --out {out}/t", "missing required key 'lr'"),
    ("train", "{tiny_recipe} --epochs 0 --out {out}/t", "--epochs: expected an integer >= 1"),
    ("train", "{tiny_recipe} --epochs abc --out {out}/t", "--epochs: expected an integer"),
    ("train", "{tiny_recipe} --out {a_file}", "is a file, expected a directory"),
    ("train", "{tiny_recipe} --out {a_file}/sub", "a_file is not a directory"),
    ("train", "{tiny_recipe} --data-dir {missing} --out {out}/t", "expected an existing directory"),
    ("train", "{deep} --out {out}/t", "nested deeper than 20"),
    ("evaluate", "{ck} --limit -5 --json {out}/e.json", "--limit: expected an integer >= 1"),
    ("evaluate", "{ck} --limit 0 --json {out}/e.json", "--limit: expected an integer >= 1"),
    ("evaluate", "{ck} --chips 0 --json {out}/e.json", "--chips: expected an integer >= 1"),
    ("evaluate", "{ck} --seed -1 --json {out}/e.json", "--seed: expected an integer >= 0"),
    ("evaluate", "{ck} --times garbage --json {out}/e.json", "--times: expected a time >= 0"),
    ("evaluate", "{ck} --times -1 --json {out}/e.json", "--times: expected a time >= 0"),
    ("evaluate", "{ck} --times nan 1e400 --json {out}/e.json", "--times: expected a time"),
    ("evaluate", "{missing}.pt --json {out}/e.json", "no such checkpoint file"),
    ("evaluate", "{a_dir} --json {out}/e.json", "is a directory, expected a checkpoint"),
    ("evaluate", "{evil} --json {out}/e.json", "holds pickled code"),
    ("evaluate", "{v1} --json {out}/e.json", "expected pcm-sim-checkpoint/2; retrain"),
    ("evaluate", "{ck} --json {a_dir}", "is a directory, expected a file path"),
    ("evaluate", "{ck} --json {a_file}/e.json", "a_file is not a directory"),
    ("evaluate", "{ck} --profile no_such --json {out}/e.json", "unknown profile 'no_such'"),
    ("evaluate", "{ck} --chip {a_file} --json {out}/e.json", "chip file"),
    ("evaluate", "{ck} --backend bogus", "invalid choice: 'bogus'"),
    ("bench", "--json {a_dir}", "is a directory, expected a file path"),
    ("bench", "--json {a_file}/b.json", "a_file is not a directory"),
    ("bench", "--jsn {out}/b.json", "unrecognized arguments: --jsn"),
    ("bench", "--quick extra", "unrecognized arguments: extra"),
    ("bench", "--json", "expected one argument"),
    ("demo", "--chips 0 --out {out}/d", "--chips: expected an integer >= 1"),
    ("demo", "--epochs 0 --out {out}/d", "--epochs: expected an integer >= 1"),
    ("demo", "--epochs x --out {out}/d", "--epochs: expected an integer >= 1"),
    ("demo", "--out {a_file}", "is a file, expected a directory"),
    ("demo", "--out {a_file}/d", "a_file is not a directory"),
    ("demo", "--profile no_such --out {out}/d", "unknown profile 'no_such'"),
    ("demo", "--data-dir {missing} --out {out}/d", "expected an existing directory"),
    ("sweep", "{good_sweep} --workers 0 --db {out}/s.sqlite", "--workers: expected an integer"),
    ("sweep", "{good_sweep} --db {a_dir}", "is a directory, expected a file path"),
    ("sweep", "{good_sweep} --db {a_file}/s.sqlite", "a_file is not a directory"),
    ("sweep", "{good_sweep} --db {a_file}", "not a SQLite database"),
    ("sweep", "{good_sweep} --status --db {foreign}", "not a pcm-sim sweep database"),
    ("sweep", "{malformed} --db {out}/s.sqlite", "malformed YAML"),
    ("sweep", "{missing}.yaml --db {out}/s.sqlite", "no such sweep file"),
    ("sweep", "{unknown_sweep} --db {out}/s.sqlite", "unknown key 'colour'"),
    ("sweep", "{times_sweep} --db {out}/s.sqlite", "times: time 'soon'"),
    ("plot", "{missing}.sqlite --out {out}/p", "no such sweep database"),
    ("plot", "{a_file} --out {out}/p", "not a SQLite database"),
    ("plot", "{a_dir} --out {out}/p", "not a regular file"),
    ("plot", "{foreign} --out {out}/p", "not a pcm-sim sweep database"),
    ("plot", "{empty} --out {out}/p", "holds no finished cells yet"),
    ("plot", "{empty} --out {a_file}", "is a file, expected a directory"),
    ("validate", "{ck} --profile ideal --spec {good_spec} --out {out}/v --chips 0", "--chips"),
    ("validate", "{ck} --profile ideal --spec {good_spec} --out {out}/v --workers 0", "--workers"),
    ("validate", "{ck} --profile ideal --spec {good_spec} --out {a_file}", "is a file"),
    ("validate", "{ck} --profile ideal --spec {samples_spec} --out {out}/v", "exceeds the test"),
    ("validate", "{ck} --profile ideal --spec {lower_spec} --out {out}/v", "in (0, 1), got 1.0"),
    ("validate", "{ck} --profile ideal --spec {unknown_spec} --out {out}/v", "unknown key"),
    ("validate", "{ck} --profile ideal --spec {missing}.yaml --out {out}/v", "no such spec"),
    ("validate", "{missing}.pt --profile ideal --spec {good_spec} --out {out}/v", "no such check"),
    ("validate", "{ck} --profile no_such --spec {good_spec} --out {out}/v", "unknown profile"),
    ("validate", "{ck} --profile ideal --out {out}/v", "required: --spec"),
    ("correct", "{ck} --chips 0 --json {out}/c.json", "--chips: expected an integer >= 1"),
    ("correct", "{ck} --limit -5 --json {out}/c.json", "--limit: expected an integer >= 1"),
    ("correct", "{ck} --t garbage --json {out}/c.json", "--t: expected a time >= 0"),
    ("correct", "{ck} --lr 0 --json {out}/c.json", "--lr: expected a finite number > 0"),
    ("correct", "{ck} --steps 0 --json {out}/c.json", "--steps: expected an integer >= 1"),
    ("correct", "{ck} --tolerance 0 --json {out}/c.json", "--tolerance: expected a fraction"),
    ("correct", "{ck} --granularity 2 --json {out}/c.json", "--granularity: expected a fraction"),
    ("correct", "{ck} --max-iterations -1", "--max-iterations: expected an integer >= 0"),
    ("correct", "{ck} --save-chip {a_dir}", "is a directory, expected a file path"),
    ("correct", "{ck} --json {a_dir}", "is a directory, expected a file path"),
    ("correct", "{missing}.pt --json {out}/c.json", "no such checkpoint file"),
    ("correct", "{ck} --method bogus", "invalid choice: 'bogus'"),
    ("correct", "{ck} --profile no_such --json {out}/c.json", "unknown profile 'no_such'"),
]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize(("command", "arguments", "fragment"), CLI_CASES)
def test_every_command_refuses_bad_input_in_one_line_and_writes_nothing(
    command: str,
    arguments: str,
    fragment: str,
    files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # default outputs (runs/...) would land here
    inputs = Path(files["a_dir"]).parent
    before, before_inputs = tree(tmp_path), tree(inputs)
    argv = [command, *arguments.format(**files, out=tmp_path / "out").split()]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcm-sim: error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert tree(tmp_path) == before and tree(inputs) == before_inputs  # nothing written


def test_each_command_has_at_least_five_bad_inputs() -> None:
    counts = {c: sum(case[0] == c for case in CLI_CASES) for c, *_ in CLI_CASES}
    assert set(counts) == {
        "profiles", "train", "evaluate", "bench", "demo", "sweep", "plot", "validate", "correct"
    }  # fmt: skip
    assert min(counts.values()) >= 5, counts


def test_good_input_control_runs(
    files: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "e.json"
    assert main(["evaluate", files["ck"], "--chips", "1", "--times", "1d", "--limit", "8",
                 "--json", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["rows"][0]["t_s"] == 86_400.0
    assert [p.name for p in tmp_path.iterdir()] == ["e.json"]  # no temporary file left
    assert main(["profiles", "check", files["tiny_recipe"]]) == 2  # a recipe is not a profile
    assert "unknown key" in capsys.readouterr().err


# ------------------------------------------------------------------ 5. sweep integrity


class InProcess:
    """An executor that runs cells one after the other in this process."""

    description = "in-process"

    def imap_unordered(self, fn: Any, items: list[Any]) -> Any:
        for index, item in enumerate(items):
            yield index, fn(item)

    def close(self) -> None:
        pass


def test_cells_made_by_other_code_or_inputs_are_stale_and_replaced(
    tmp_path: Path,
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pcm_sim.profiles import profile_dir
    from pcm_sim.studies import cells
    from pcm_sim.studies.store import ResultStore
    from pcm_sim.studies.sweep import load_sweep, run_sweep, sweep_status

    chip = tmp_path / "my_chip.yaml"
    chip.write_text((profile_dir() / "pcm_nandakumar2019.yaml").read_text())
    spec = {
        "name": "stale",
        "models": [{"checkpoint": str(checkpoint), "label": "tiny"}],
        "profiles": [str(chip)],
        "times": ["1min", "1d"],
        "chips": 2,
        "evaluation": {"limit": 16},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    sweep, db = load_sweep(tmp_path / "s.yaml"), tmp_path / "s.sqlite"

    def status() -> tuple[int, int, int, int]:
        s = sweep_status(sweep, db)
        return s.cells, s.done, s.stale, s.todo

    assert status() == (4, 0, 0, 4) and not db.exists()  # status writes nothing
    assert main(["sweep", str(tmp_path / "s.yaml"), "--db", str(db), "--status"]) == 0
    assert "4 cells: 0 done, 4 to do (0 of them stale" in capsys.readouterr().out
    assert not db.exists()
    first = run_sweep(sweep, db, InProcess(), progress=False, log=lambda _: None)
    assert (first.ran, first.stale) == (4, 0) and status() == (4, 4, 0, 0)
    with ResultStore(db, create=False) as store:
        first_keys = store.finished_keys()
    chip.write_text(chip.read_text() + "# a comment changes no field\n")
    assert status() == (4, 4, 0, 0)  # control: the same resolved profile, the same cells
    monkeypatch.setattr(cells, "CELL_VERSION", cells.CELL_VERSION + 1)
    assert status() == (4, 0, 4, 4)  # other cell code
    monkeypatch.undo()
    monkeypatch.setattr(pcm_sim, "__version__", "99.0")
    assert status() == (4, 0, 4, 4)  # another package version
    monkeypatch.undo()
    chip.write_text(chip.read_text().replace("scale: 1.0\n  nu_mean", "scale: 2.0\n  nu_mean"))
    assert load_profile(chip).drift.scale == 2.0
    assert status() == (4, 0, 4, 4)  # the profile changed: every cell is stale
    second = run_sweep(sweep, db, InProcess(), progress=False, log=lambda _: None)
    assert (second.ran, second.stale, second.skipped) == (4, 4, 0)
    assert status() == (4, 4, 0, 0)
    with ResultStore(db, create=False) as store:
        rows = list(store.rows())
    assert len(rows) == 4 and {r["key"] for r in rows}.isdisjoint(first_keys)  # replaced
    assert {r["config"]["profile"]["resolved"]["drift"]["scale"] for r in rows} == {2.0}
    recipe = tiny_payload()["recipe"]
    profile = load_profile("ideal").to_dict()
    changed = {**recipe, "training": {**recipe["training"], "lr": 0.1}}
    assert cells.producer(profile, recipe) != cells.producer(profile, changed)
    assert cells.producer(profile, recipe) == cells.producer(profile, copy.deepcopy(recipe))


def test_a_dask_worker_killed_mid_cell_loses_no_finished_cell(
    tmp_path: Path, checkpoint: Path
) -> None:
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    import psutil

    spec = {
        "name": "dask_kill",
        "models": [{"checkpoint": str(checkpoint), "label": "tiny"}],
        "profiles": ["pcm_nandakumar2019"],
        "overrides": {"periphery.adc_bits": [4, 6, 8]},
        "times": ["1min", "1d"],
        "chips": 2,
        "evaluation": {"limit": 1000},
    }  # 12 cells of about a second each
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    db = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "pcm_sim.cli", "sweep", str(tmp_path / "s.yaml"), "--db"]
    cmd += [str(db), "--scheduler", "local", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, text=True)
    before: dict[str, tuple[float, str]] = {}
    killed: float | None = None
    try:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    rows = conn.execute("SELECT key, value, finished_utc FROM cells").fetchall()
            except sqlite3.OperationalError:  # no database or schema yet
                continue
            workers = [
                p
                for p in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(p.cmdline())
            ]
            if rows and len(workers) == 2:
                before = {k: (v, f) for k, v, f in rows}
                usage = {p.pid: p.cpu_percent(interval=0.1) for p in workers}
                busy = next(p for p in workers if usage[p.pid] == max(usage.values()))
                busy.send_signal(signal.SIGKILL)  # the worker process, in the middle of a cell
                killed = usage[busy.pid]
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed is not None and 1 <= len(before) < 12, "the kill must land midway"
    assert killed > 20.0, "the killed worker was computing a cell (CPU % over 0.1 s)"
    assert proc.returncode == 0 and "(0 already done, 12 run)" in out
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM cells").fetchone()
        rows = conn.execute("SELECT key, value, finished_utc FROM cells").fetchall()
    after = {k: (v, f) for k, v, f in rows}
    assert total == distinct == 12
    assert all(after[k] == v for k, v in before.items())  # finished cells kept untouched


# ------------------------------------------------------------------ 6. validation statistics


def test_yield_statistics_are_clopper_pearson() -> None:
    from pcm_sim.studies.validate import yield_statistics

    all_pass = yield_statistics(20, 20)
    assert all_pass["yield"] == 1.0
    assert all_pass["lower_95"] == pytest.approx(0.05 ** (1 / 20))  # = 0.8609
    assert all_pass["ci95"] == pytest.approx([0.025 ** (1 / 20), 1.0])
    none_pass = yield_statistics(0, 10)
    assert none_pass["lower_95"] == 0.0
    assert none_pass["ci95"] == pytest.approx([0.0, 1 - 0.025 ** (1 / 10)])  # = 0.3085
    half = yield_statistics(5, 10)  # the textbook interval of 5/10
    assert half["ci95"] == pytest.approx([0.187086, 0.812914], abs=1e-6)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        yield_statistics(11, 10)


def judged(req: Any, values: list[float], per_inference: list[float]) -> dict[str, Any]:
    from pcm_sim.studies.validate import _judge

    per_time = [{"t_s": 60.0, "values": values, "mean": sum(values) / len(values)}]
    work = [{"t_s": float(i), "energy_nj": e, "layers": []} for i, e in enumerate(per_inference)]
    hardware = {"devices": 10, "tiles": 1, "programming_energy_uj": 1.0}
    return _judge(req, "accuracy", per_time, work, hardware)


def test_worst_cases_follow_the_bound_direction_and_yield_can_need_confidence() -> None:
    from pcm_sim.studies.validation_spec import Requirement

    energy = [3.0, 1.0, 2.0]  # per inference at three times
    low = judged(Requirement("energy_nj", min=1.5), [0.9], energy)
    assert (low["measured"], low["passed"]) == (1.0, False)  # the minimum for a min bound
    high = judged(Requirement("energy_nj", max=2.5), [0.9], energy)
    assert (high["measured"], high["passed"]) == (3.0, False)  # the maximum for a max bound
    assert judged(Requirement("energy_nj", min=0.5, max=2.5), [0.9], energy)["measured"] == 3.0
    assert judged(Requirement("energy_nj", max=5.0), [0.9], energy)["passed"]  # control
    chips = [0.9, 0.7, 0.8]
    per_chip = judged(Requirement("accuracy", 60.0, min=0.75, min_yield=0.6), chips, energy)
    assert per_chip["worst"] == 0.7 and per_chip["yield"] == pytest.approx(2 / 3)
    assert per_chip["passed"]
    assert judged(Requirement("accuracy", 60.0, max=0.85), chips, energy)["worst"] == 0.9
    two = [0.9, 0.9]  # both chips pass: yield 1, but two chips prove little
    sure = judged(Requirement("accuracy", 60.0, min=0.5, min_yield_lower_95=0.8), two, energy)
    assert sure["yield"] == 1.0 and sure["yield_lower_95"] == pytest.approx(0.05**0.5)
    assert not sure["passed"]
    assert judged(Requirement("accuracy", 60.0, min=0.5, min_yield_lower_95=0.2), two, energy)[
        "passed"
    ]  # control: a bound two chips can give


def test_samples_are_checked_against_the_test_split() -> None:
    from pcm_sim.studies.validate import count_test_items

    assert count_test_items(TINY_RECIPE) == 10_000  # Fashion-MNIST test images
    assert count_test_items(load_recipe("coarse_lif_cartpole")) is None  # generated episodes
