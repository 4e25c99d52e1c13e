"""Checkpoints: a trained model's weights with its resolved recipe and training profile.

A checkpoint is a ``torch.save`` dict of tensors and plain data: ``format`` (:data:`FORMAT`),
``recipe``, ``hwa_profile`` (the resolved profile dict used for hardware-aware training, or
``None``), ``state_dict``, ``history`` and ``software`` (the software test metric).

Loading runs no code: the file is read with ``torch.load(..., weights_only=True)``, which
unpickles only tensors and plain containers and refuses anything else (a pickled callable) before
it is called.  Format ``pcm-sim-checkpoint/1`` files were read with full unpickling; they are
refused with one line that says to retrain.  Then the required keys (:data:`REQUIRED_KEYS`) and
their types are checked, the recipe is validated against its family's schema, and the weights
must fit the model the recipe builds.
"""

from __future__ import annotations

import os
import pickle
import re
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

FORMAT = "pcm-sim-checkpoint/2"
REQUIRED_KEYS = ("recipe", "state_dict", "software")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, foreign, or does not fit its recipe."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), so an interrupted save loses nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read_payload(path: Path) -> dict[str, Any]:
    """The checkpoint dict, read without running code; format and required keys checked."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (pcm-sim train writes one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if code:
            raise CheckpointError(
                f"{path}: refused: the file holds pickled code ({code.group(1)}) and loading "
                f"never runs code; expected a {FORMAT} checkpoint of tensors and plain data"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (not a torch.save file of tensors and plain "
            f"data); expected a {FORMAT} file"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}); expected a {FORMAT} file"
        ) from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != FORMAT:
        if isinstance(found, str) and found.startswith("pcm-sim-checkpoint/"):
            raise CheckpointError(
                f"{path}: checkpoint format {found}, expected {FORMAT}; "
                "retrain it with pcm-sim train (older checkpoints needed unsafe unpickling)"
            )
        kind = type(payload).__name__ if not isinstance(payload, dict) else "a dict"
        shown = f"format {found!r}" if found is not None else f"{kind} without a format"
        raise CheckpointError(
            f"{path}: not a pcm-sim checkpoint ({shown}), expected format {FORMAT}"
        )
    for key in REQUIRED_KEYS:
        if key not in payload:
            raise CheckpointError(f"{path}: missing key {key!r} (a {FORMAT} checkpoint has it)")
    if not isinstance(payload["state_dict"], dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload["state_dict"].items()
    ):
        raise CheckpointError(f"{path}: state_dict: expected a mapping of names to tensors")
    software = payload["software"]
    if not isinstance(software, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in software.values()
    ):
        raise CheckpointError(f"{path}: software: expected a mapping of metric names to numbers")
    return payload


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint; returns ``(model, payload)``.

    Raises :class:`CheckpointError` (or :class:`~pcm_sim.recipes.RecipeError` for a recipe
    that does not fit its family's schema), one line naming the file and what was expected.
    """
    path = Path(path)
    payload = _read_payload(path)
    recipe = validate_recipe(payload["recipe"], f"{path}: recipe")
    family = FAMILIES[recipe["family"]]
    if family.metric not in payload["software"]:
        raise CheckpointError(f"{path}: software: missing the {family.metric!r} score")
    model = family.build(recipe)
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
    recipe = validate_recipe(recipe, f"{recipe['name']} (with overrides)")
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
