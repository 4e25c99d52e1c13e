"""Checkpoints: a trained model's weights with its resolved recipe and training profile.

A checkpoint is a ``torch.save`` dict: ``format`` (``pcm-sim-checkpoint/1``), ``recipe``,
``hwa_profile`` (the resolved profile dict used for hardware-aware training, or ``None``),
``state_dict``, ``history`` and ``software`` (the software test metric).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcm_sim.families import FAMILIES
from pcm_sim.profiles import load_profile
from pcm_sim.recipes import load_recipe, validate_recipe
from pcm_sim.seeds import input_generator

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint", "train_recipe"]

FORMAT = "pcm-sim-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, foreign, or does not fit its recipe."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so an interrupted save loses nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint; returns ``(model, payload)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a pcm-sim checkpoint (expected format {FORMAT})")
    recipe = validate_recipe(payload["recipe"], str(path))
    model = FAMILIES[recipe["family"]].build(recipe)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the recipe's model: {first}") from None
    return model, payload


def train_recipe(
    recipe_name: str | Path,
    out_dir: Path,
    overrides: dict[str, Any] | None = None,
    log: Any = print,
    data_overrides: dict[str, Any] | None = None,
) -> Path:
    """Train a recipe in software (hardware-aware if configured) and write ``out_dir/model.pt``.

    ``overrides`` replace ``training`` fields (e.g. ``{"epochs": 2}``), ``data_overrides``
    ``data`` fields (e.g. ``{"data_dir": ...}``).
    """
    recipe = load_recipe(recipe_name)
    recipe["training"].update(overrides or {})
    recipe["data"].update(data_overrides or {})
    family = FAMILIES[recipe["family"]]
    seed = int(recipe["training"].get("seed", 0))
    torch.manual_seed(seed)  # parameter initialisation of torch modules
    model = family.build(recipe)
    generator = torch.Generator().manual_seed(seed)
    hwa = recipe["training"].get("hwa_profile")
    hwa_profile = load_profile(hwa).to_dict() if hwa else None
    log(f"training {recipe['name']} ({recipe['family']}), seed {seed}")
    start = time.perf_counter()
    history = family.fit(model, recipe, generator, log)
    train_s = time.perf_counter() - start
    software = family.evaluate(model, recipe, input_generator())
    log(f"software test {family.metric}: {software[family.metric]:.4f} (trained in {train_s:.0f}s)")
    path = out_dir / "model.pt"
    save_checkpoint(
        path,
        {
            "recipe": recipe,
            "hwa_profile": hwa_profile,
            "state_dict": model.state_dict(),
            "history": history,
            "software": software,
            "train_seconds": train_s,
        },
    )
    return path
