"""CartPole control (gymnasium ``CartPole-v1``) with a coarse-scale LIF spiking policy.

Policy: the cart-pole state ``s = (x, ẋ, θ, θ̇)`` is scaled by ``state_scale`` and split into
positive and negative parts plus a constant input, ``u = [relu(s/σ), relu(-s/σ), 1]`` (9 inputs),
fed as an input current for ``T`` steps to a :class:`~pcm_sim.nn.coarse_lif.CoarseLIFMLP`
``9 - hidden - hidden - 2`` (coarse-scale LIF neurons, no biases); the action (0 = push left,
1 = push right) is the output neuron with more spikes (ties broken by membrane potential).

Training (in software): imitation of a linear-quadratic regulator by dataset aggregation
(DAgger, Ross et al., AISTATS 2011).  The expert pushes right when ``-K s > 0``, with ``K`` the
continuous-time LQR gain of CartPole linearised about the upright position
(gymnasium's constants: g = 9.8 m/s², cart 1.0 kg, pole 0.1 kg, half-length 0.5 m), ``Q =
diag(q)``, ``R = 1``.  The dataset starts with states drawn uniformly from a box and grows with
the states the current policy visits, each labelled by the expert; the policy is trained with
backpropagation through the ``T`` steps (surrogate gradient) on the cross-entropy of
``readout_scale * logits``, with Adam (one optimizer for the whole run, constant learning rate),
optionally hardware-aware (every ``training.hwa_*`` key, as the epoch-based families).

Metric: the average return (steps balanced, at most 500) over ``episodes`` episodes whose initial
states come from the seeds ``eval_seed + i`` (the same episodes on every chip).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import scipy.linalg
import torch
from torch import Generator, Tensor, nn

from pcm_sim.families.base import Family, History, Limit, ProgressFn, Recipe, Scores
from pcm_sim.families.schema import HWA_TRAINING, Field, RecipeSchema
from pcm_sim.nn.analog import enable_hwa
from pcm_sim.nn.coarse_lif import CoarseLIFMLP
from pcm_sim.training.batches import SampleData, cross_entropy
from pcm_sim.training.loop import setup_hwa, train_epoch

__all__ = ["CARTPOLE", "encode_state", "lqr_gain", "rollout"]

GRAVITY = 9.8
"""m/s², gymnasium CartPole-v1."""
CART_MASS = 1.0
"""kg, gymnasium CartPole-v1."""
POLE_MASS = 0.1
"""kg, gymnasium CartPole-v1."""
POLE_HALF_LENGTH = 0.5
"""m, gymnasium CartPole-v1 (``length`` is half the pole's length)."""
MAX_RETURN = 500.0
"""CartPole-v1 truncates episodes at 500 steps."""
SCHEMA: RecipeSchema = {
    "model": {
        "sizes": Field("ints", 1, 100_000, required=True, length=(2, 16), first=9, last=2),
        "tau": Field("float", 0.0, 1e4, above=True),
        "beta": Field("float", 0.0, 1e3, above=True),
        "readout_scale": Field("float", 0.0, 1e3, above=True),
    },
    "data": {  # one positive number per state variable (x, x_dot, theta, theta_dot)
        "steps": Field("int", 1, 10_000, required=True),
        "state_scale": Field("floats", 0.0, 1e6, required=True, above=True, length=(4, 4)),
        "train_box": Field("floats", 0.0, 1e6, required=True, above=True, length=(4, 4)),
        "lqr_q": Field("floats", 0.0, 1e6, above=True, length=(4, 4)),
        "episodes": Field("int", 1, 100_000),
        "eval_seed": Field("int", 0, 2**31 - 1),
    },
    "training": {
        "box_samples": Field("int", 1, 10**8, required=True),
        "dagger_iterations": Field("int", 0, 10_000, required=True),
        "dagger_beta": Field("float", 0.0, 1.0),
        "episodes_per_iteration": Field("int", 1, 100_000, required=True),
        "epochs_per_iteration": Field("int", 1, 100_000, required=True),
        "batch_size": Field("int", 1, 1_000_000, required=True),
        "lr": Field("float", 0.0, 10.0, required=True, above=True),
        "seed": Field("int", 0, 2**63 - 1),
        **HWA_TRAINING,
    },
}


def lqr_gain(q: tuple[float, float, float, float] = (1.0, 1.0, 10.0, 1.0)) -> np.ndarray:
    """Continuous-time LQR gain ``K`` ``(4,)`` of CartPole linearised upright (force input, N).

    Linearisation of gymnasium's equations at ``θ = θ̇ = 0`` with ``M = m_c + m_p``,
    ``d = l (4/3 - m_p / M)``: ``θ̈ = (g θ - F/M) / d``, ``ẍ = F/M - m_p l θ̈ / M``.
    """
    m_total = CART_MASS + POLE_MASS
    d = POLE_HALF_LENGTH * (4.0 / 3.0 - POLE_MASS / m_total)
    k = POLE_MASS * POLE_HALF_LENGTH / m_total
    a = np.array(
        [[0, 1, 0, 0], [0, 0, -k * GRAVITY / d, 0], [0, 0, 0, 1], [0, 0, GRAVITY / d, 0]], float
    )
    b = np.array([[0], [1 / m_total + k / (m_total * d)], [0], [-1 / (m_total * d)]], float)
    p = scipy.linalg.solve_continuous_are(a, b, np.diag(q), np.eye(1))
    gain: np.ndarray = (b.T @ p).ravel()
    return gain


def expert_action(states: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """LQR expert: push right (1) when ``-K s > 0``; ``states`` ``(N, 4)`` -> ``(N,)`` int64."""
    return (-(states @ gain) > 0).astype(np.int64)


def encode_state(states: Tensor, scale: Tensor, steps: int) -> Tensor:
    """``(B, 4)`` states -> input current ``(T, B, 9)``, ``[relu(s/σ), relu(-s/σ), 1]`` per step."""
    z = states / scale  # (B, 4)
    u = torch.cat([torch.relu(z), torch.relu(-z), torch.ones_like(z[:, :1])], dim=-1)  # (B, 9)
    return u.unsqueeze(0).expand(steps, *u.shape)


def rollout(
    policy: nn.Module,
    scale: Tensor,
    steps: int,
    seeds: list[int],
    gain: np.ndarray | None = None,
    beta: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[list[float], np.ndarray]:
    """Run one episode per seed (batched over episodes); returns returns and visited states.

    With ``beta > 0`` (DAgger mixing) each step follows the expert with probability ``beta``.
    """
    envs = [gym.make("CartPole-v1") for _ in seeds]
    states = np.stack([env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)])
    active = np.ones(len(envs), bool)
    returns = [0.0] * len(envs)
    visited = []
    with torch.no_grad():
        while active.any():
            idx = np.flatnonzero(active)
            batch = torch.as_tensor(states[idx], dtype=torch.float32)
            visited.append(states[idx].copy())
            actions = policy(encode_state(batch, scale, steps)).argmax(-1).numpy()
            if beta > 0:
                assert gain is not None and generator is not None
                use_expert = torch.rand(len(idx), generator=generator).numpy() < beta
                actions = np.where(use_expert, expert_action(states[idx], gain), actions)
            for j, i in enumerate(idx):
                obs, reward, terminated, truncated, _ = envs[i].step(int(actions[j]))
                states[i] = obs
                returns[i] += float(reward)
                if terminated or truncated:
                    active[i] = False
    for env in envs:
        env.close()
    return returns, np.concatenate(visited)


def build(recipe: Recipe) -> nn.Module:
    """The recipe's network (parameters drawn from torch's global generator)."""
    m = recipe["model"]
    return CoarseLIFMLP(
        list(m["sizes"]), float(m.get("tau", 2.0)), float(m.get("beta", 5.0)), analog_input=True
    )


def _scale(recipe: Recipe) -> Tensor:
    return torch.tensor(recipe["data"]["state_scale"], dtype=torch.float32)


def _train_policy(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    states: Tensor,
    labels: Tensor,
    recipe: Recipe,
    generator: torch.Generator,
) -> float:
    """``epochs_per_iteration`` epochs on the aggregated dataset; returns the last mean loss."""
    tr = recipe["training"]
    steps, scale = int(recipe["data"]["steps"]), _scale(recipe)
    objective = cross_entropy(float(recipe["model"].get("readout_scale", 2.0)))
    data = SampleData(
        states, labels, int(tr["batch_size"]), objective, lambda s, _: encode_state(s, scale, steps)
    )
    loss = 0.0
    for _ in range(int(tr["epochs_per_iteration"])):
        row = train_epoch(
            model, optimizer, data.epoch(generator), data.loss, data.batches(), show_progress=False
        )
        loss = row["loss"]
    model.eval()
    return loss


def train(model: nn.Module, recipe: Recipe, generator: torch.Generator, log: ProgressFn) -> History:
    """DAgger on the LQR expert (module docstring); one history row per iteration."""
    tr, data = recipe["training"], recipe["data"]
    q0, q1, q2, q3 = (float(q) for q in data.get("lqr_q", (1.0, 1.0, 10.0, 1.0)))
    gain = lqr_gain((q0, q1, q2, q3))
    steps, scale = int(data["steps"]), _scale(recipe)
    box = torch.tensor(data["train_box"], dtype=torch.float32)
    n_box = int(tr["box_samples"])
    states = (2.0 * torch.rand(n_box, 4, generator=generator) - 1.0) * box  # (N, 4)
    labels = torch.from_numpy(expert_action(states.numpy(), gain))
    opt = torch.optim.Adam(model.parameters(), lr=float(tr["lr"]))
    setup_hwa(model, tr, log)
    history = []
    episodes = int(tr["episodes_per_iteration"])
    try:
        for iteration in range(int(tr["dagger_iterations"])):
            loss = _train_policy(model, opt, states, labels, recipe, generator)
            beta = float(tr.get("dagger_beta", 0.5)) ** (iteration + 1)
            seeds = [10_000 * (iteration + 1) + i for i in range(episodes)]
            returns, visited = rollout(model, scale, steps, seeds, gain, beta, generator)
            states = torch.cat([states, torch.as_tensor(visited, dtype=torch.float32)])
            labels = torch.cat([labels, torch.from_numpy(expert_action(visited, gain))])
            row = {
                "iteration": float(iteration + 1),
                "loss": loss,
                "mean_return": float(np.mean(returns)),
                "dataset": float(len(states)),
            }
            history.append(row)
            log(
                f"DAgger {iteration + 1}: loss {loss:.4f}  return {row['mean_return']:.1f} "
                f"(expert share {beta:.2f})  dataset {len(states)}"
            )
        loss = _train_policy(model, opt, states, labels, recipe, generator)
    finally:
        enable_hwa(model, None, seed=0)
    history.append(
        {"iteration": float(len(history) + 1), "loss": loss, "dataset": float(len(states))}
    )
    return history


def score(model: nn.Module, recipe: Recipe, gen: Generator, mode: str, limit: Limit) -> Scores:
    """Average return over ``limit`` (default ``data.episodes``) seeded episodes."""
    data = recipe["data"]
    episodes = limit or int(data.get("episodes", 100))
    seeds = [int(data.get("eval_seed", 1_000_000)) + i for i in range(episodes)]
    returns, _ = rollout(model, _scale(recipe), int(data["steps"]), seeds)
    return {"return": float(np.mean(returns)), "min_return": float(np.min(returns))}


CARTPOLE = Family(
    title="the CartPole policy",
    metric="return",
    higher_is_better=True,
    schema=SCHEMA,
    build=build,
    score=score,
    train=train,
)
