"""The aihwkit backend: profile translation and accuracy parity with our crossbar."""

from __future__ import annotations

import statistics

import pytest
import torch
from torch import nn

import pcm_sim
from pcm_sim.profiles import ProfileError, load_profile

aihwkit = pytest.importorskip("aihwkit")


def test_rpu_config_carries_the_profile() -> None:
    from pcm_sim.backends.aihwkit import rpu_config_from_profile

    cfg = rpu_config_from_profile(load_profile("pcm_hermes2023"))
    assert type(cfg.noise_model).__name__ == "HermesNoiseModel"
    assert cfg.noise_model.g_max == pytest.approx(20.7)
    assert cfg.noise_model.t_0 == 300.0
    assert cfg.forward.inp_res == pytest.approx(1 / 254)
    assert cfg.forward.out_bound == 12.0
    assert cfg.mapping.max_input_size == 256
    nand = rpu_config_from_profile(load_profile("pcm_nandakumar2019"))
    assert type(nand.noise_model).__name__ == "PCMLikeNoiseModel"
    assert nand.noise_model.prog_coeff == [0.26348, 1.9650, -1.1731]
    with pytest.raises(ProfileError, match=r"device\.levels"):
        rpu_config_from_profile(load_profile("pcm_aggressive"))


def test_noise_model_is_recognised_by_the_laws_alone() -> None:
    from pcm_sim.backends.aihwkit import HERMES_LAWS, PCM_LIKE_LAWS, noise_laws
    from pcm_sim.backends.aihwkit import rpu_config_from_profile as config

    assert noise_laws(load_profile("pcm_nandakumar2019")) == PCM_LIKE_LAWS
    assert noise_laws(load_profile("aihwkit_inference")) == PCM_LIKE_LAWS
    assert noise_laws(load_profile("pcm_hermes2023")) == HERMES_LAWS
    nudged = load_profile("pcm_nandakumar2019", overrides={"drift.t0_s": 30.0})
    assert type(config(nudged).noise_model).__name__ == "PCMLikeNoiseModel"  # laws, not names
    other_law = load_profile("pcm_nandakumar2019").to_dict()
    other_law["drift"]["nu_mean"][0]["coeffs"] = [-0.0155, 0.03]
    with pytest.raises(ProfileError, match="match no aihwkit noise model"):
        config(pcm_sim.DeviceProfile.from_dict(other_law))


def test_ideal_profile_matches_matmul_on_aihwkit() -> None:
    layer = pcm_sim.AnalogLinear(40, 7)
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    ref = layer(x).detach()
    pcm_sim.deploy(layer, "ideal", seed=0, backend="aihwkit")
    torch.testing.assert_close(layer(x).detach(), ref, rtol=1e-4, atol=1e-4)


def _separable_task(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A 10-class Gaussian-cluster task in 64 dimensions (hard enough to feel weight noise)."""
    centers = torch.randn(10, 64, generator=gen)
    labels = torch.randint(0, 10, (3000,), generator=gen)
    x = centers[labels] + 2.6 * torch.randn(3000, 64, generator=gen)
    return x, labels


def test_mlp_accuracy_agrees_between_backends_at_one_day() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = _separable_task(gen)
    torch.manual_seed(0)
    model = nn.Sequential(pcm_sim.AnalogLinear(64, 64), nn.ReLU(), pcm_sim.AnalogLinear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        loss = nn.functional.cross_entropy(model(x[:2000]), y[:2000])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_x, test_y = x[2000:], y[2000:]
    software = float((model(test_x).argmax(-1) == test_y).float().mean())
    scores: dict[str, list[float]] = {}
    for backend in ("pcm-sim", "aihwkit"):
        scores[backend] = []
        for seed in range(6):
            for layer in pcm_sim.analog_layers(model):
                layer.to_software()
            pcm_sim.deploy(model, "pcm_nandakumar2019", seed=seed, backend=backend)
            pcm_sim.drift_to(model, 86_400.0)
            with torch.no_grad():
                acc = float((model(test_x).argmax(-1) == test_y).float().mean())
            scores[backend].append(acc)
    ours, theirs = scores["pcm-sim"], scores["aihwkit"]
    spread = max(statistics.stdev(ours), statistics.stdev(theirs), 0.005)
    assert abs(statistics.fmean(ours) - statistics.fmean(theirs)) <= 2 * spread
    assert statistics.fmean(ours) < software  # the chip costs accuracy
