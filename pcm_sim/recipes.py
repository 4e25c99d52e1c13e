"""Model recipes: YAML files naming a network family, its architecture, data and training.

A recipe is a mapping with ``name``, ``family`` (a key of :data:`pcm_sim.families.FAMILIES`),
``model``, ``data``, ``training`` and optional ``expected`` (published figures, for reports).
Recipes ship as package data (``models/``) and resolve by name or path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pcm_sim.profiles import ProfileError, _read_yaml

__all__ = ["RecipeError", "list_recipes", "load_recipe", "recipe_dir"]

REQUIRED_SECTIONS = ("name", "family", "model", "data", "training")
OPTIONAL_SECTIONS = ("expected", "description")


class RecipeError(ValueError):
    """A model recipe is malformed; the message names the file and what was expected."""


def recipe_dir() -> Path:
    """Directory of the shipped recipes."""
    return Path(str(resources.files("pcm_sim") / "data_files" / "models"))


def list_recipes() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def validate_recipe(data: Any, source: str) -> dict[str, Any]:
    """Check the recipe's top-level structure and family; returns it unchanged."""
    from pcm_sim.families import FAMILIES

    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping, got {type(data).__name__}")
    for key in REQUIRED_SECTIONS:
        if key not in data:
            raise RecipeError(f"{source}: missing required section {key!r}")
    unknown = sorted(set(data) - set(REQUIRED_SECTIONS) - set(OPTIONAL_SECTIONS))
    if unknown:
        raise RecipeError(f"{source}: unknown section {unknown[0]!r}")
    if data["family"] not in FAMILIES:
        raise RecipeError(
            f"{source}: unknown family {data['family']!r}, expected one of {sorted(FAMILIES)}"
        )
    for key in ("model", "data", "training"):
        if not isinstance(data[key], dict):
            raise RecipeError(f"{source}: section {key!r} must be a mapping")
    return data


def load_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """Load a recipe by shipped name (``snu_fmnist``) or YAML path."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.exists()):
        path = recipe_dir() / f"{text}.yaml"
        if not path.exists():
            raise RecipeError(
                f"unknown recipe {text!r}: expected a YAML path or one of {list_recipes()}"
            )
    try:
        data = _read_yaml(path)
    except ProfileError as exc:
        raise RecipeError(str(exc)) from None
    return validate_recipe(data, str(path))
