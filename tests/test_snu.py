"""SNU / sSNU dynamics against hand-computed values, and a short train-deploy-evaluate run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from pcm_sim.evaluation import evaluate_on_chips
from pcm_sim.families import FAMILIES
from pcm_sim.functional.snu import SNUParams, SNUState, heaviside_tanh, snu_step
from pcm_sim.nn.snu import SNULayer
from pcm_sim.training.checkpoint import CheckpointError, load_checkpoint, train_recipe


def _run(inputs: list[float], params: SNUParams, b: float = -1.0) -> list[tuple[float, float]]:
    state = SNUState(s=torch.zeros(1, 1), y=torch.zeros(1, 1))
    out = []
    for a in inputs:
        y, state = snu_step(torch.tensor([[a]]), state, torch.tensor([b]), params)
        out.append((float(state.s), float(y)))
    return out


def test_snu_step_matches_hand_computed_trajectory() -> None:
    # s_t = relu(a_t + 0.8 s_{t-1} (1 - y_{t-1})), y_t = H(s_t - 1)
    got = _run([0.6, 0.6, 0.6, 0.0], SNUParams(decay=0.8))
    expected = [(0.6, 0.0), (1.08, 1.0), (0.6, 0.0), (0.48, 0.0)]
    for (s, y), (s_ref, y_ref) in zip(got, expected, strict=True):
        assert s == pytest.approx(s_ref, abs=1e-6) and y == y_ref


def test_ssnu_step_matches_hand_computed_trajectory() -> None:
    got = _run([0.6, 0.6, -0.2], SNUParams(decay=0.8, soft=True))
    s0 = 0.6
    y0 = 1 / (1 + math.exp(-(s0 - 1)))
    s1 = 0.6 + 0.8 * s0 * (1 - y0)
    y1 = 1 / (1 + math.exp(-(s1 - 1)))
    s2 = max(0.0, -0.2 + 0.8 * s1 * (1 - y1))
    y2 = 1 / (1 + math.exp(-(s2 - 1)))
    flat = [v for pair in got for v in pair]
    assert flat == pytest.approx([s0, y0, s1, y1, s2, y2], abs=1e-6)


def test_leaky_relu_and_lateral_inhibition() -> None:
    got = _run([-1.0], SNUParams(decay=0.8, leak=0.1))
    assert got[0][0] == pytest.approx(-0.1)
    # lateral inhibition: the layer's maximum output resets every unit
    state = SNUState(s=torch.tensor([[0.5, 0.5]]), y=torch.tensor([[1.0, 0.0]]))
    params = SNUParams(decay=0.8, lateral_inhibition=True)
    _, new = snu_step(torch.zeros(1, 2), state, torch.tensor([-1.0, -1.0]), params)
    assert new.s.tolist() == [[0.0, 0.0]]


def test_per_unit_decay_matches_hand_computed_values() -> None:
    # two units, decays 0.5 and 0.9, no spike yet: s_1 = relu(a + l s_0)
    state = SNUState(s=torch.tensor([[1.0, 1.0]]), y=torch.tensor([[0.0, 0.0]]))
    decay = torch.tensor([0.5, 0.9])
    _, new = snu_step(
        torch.tensor([[0.2, 0.2]]), state, torch.tensor([-1.0, -1.0]), SNUParams(), decay
    )
    torch.testing.assert_close(new.s, torch.tensor([[0.7, 1.1]]))


def test_trainable_decay_starts_at_decay_and_learns() -> None:
    torch.manual_seed(0)
    layer = SNULayer(3, 2, soft=True, decay=0.8, trainable_decay=True)
    assert layer.decay_logit is not None
    torch.testing.assert_close(torch.sigmoid(layer.decay_logit), torch.full((2,), 0.8))
    y, _ = layer(torch.rand(5, 4, 3))
    y.sum().backward()
    assert layer.decay_logit.grad is not None and layer.decay_logit.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="decay"):
        SNULayer(3, 2, decay=0.0, trainable_decay=True)


def test_step_gradient_is_tanh_derivative() -> None:
    v = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    heaviside_tanh(v).sum().backward()
    assert v.grad is not None
    torch.testing.assert_close(v.grad, 1 - torch.tanh(v.detach()) ** 2)
    assert heaviside_tanh(v.detach()).tolist() == [0.0, 0.0, 1.0]


def test_bad_snu_params_are_refused() -> None:
    with pytest.raises(ValueError, match="decay"):
        SNUParams(decay=1.5)


def _fashion_available() -> bool:
    return Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists()


@pytest.mark.skipif(not _fashion_available(), reason="dataset-fashion-mnist not installed")
def test_train_deploy_evaluate_snu_end_to_end(tmp_path: Path) -> None:
    ckpt = train_recipe(
        "snu_fmnist",
        tmp_path,
        {"epochs": 1, "train_limit": 2048, "progress": False},
        log=lambda _msg: None,
    )
    model, payload = load_checkpoint(ckpt)
    recipe = payload["recipe"]
    assert payload["software"]["accuracy"] > 0.5  # chance is 0.1
    ideal = evaluate_on_chips(model, recipe, "ideal", [0.0], chips=1, limit=300)
    software = FAMILIES["snu_fmnist"].evaluate(
        model, recipe, torch.Generator().manual_seed(1), limit=300
    )
    assert ideal["rows"][0]["mean"] == pytest.approx(software["accuracy"], abs=0.01)
    pcm = evaluate_on_chips(model, recipe, "pcm_nandakumar2019", [86_400.0], chips=2, limit=300)
    row = pcm["rows"][0]
    assert len(row["per_chip"]) == 2 and row["per_chip"][0] != row["per_chip"][1]
    assert row["mean"] > 0.4


def test_ssnu_chorales_pipeline_end_to_end(tmp_path: Path) -> None:
    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(
        "name: tiny_chorales\nfamily: ssnu_chorales\n"
        "model: {keys: 88, hidden: 20}\n"
        f"data: {{cache_dir: '{tmp_path}', max_pieces: 40}}\n"
        "training: {epochs: 2, batch_size: 4, lr: 0.01, seed: 0, progress: false}\n"
    )
    ckpt = train_recipe(recipe_path, tmp_path / "run", log=lambda _msg: None)
    model, payload = load_checkpoint(ckpt)
    nll = payload["software"]["nll"]
    assert 0 < nll < 88 * math.log(2)  # better than guessing p = 0.5 on every key
    result = evaluate_on_chips(model, payload["recipe"], "pcm_nandakumar2019", [3600.0], chips=2)
    assert all(math.isfinite(v) for v in result["rows"][0]["per_chip"])


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a pcm-sim checkpoint"):
        load_checkpoint(foreign)
