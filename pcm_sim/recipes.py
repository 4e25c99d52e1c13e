"""Model recipes: YAML files naming a network family, its architecture, data and training.

A recipe is a mapping with ``name`` (``[A-Za-z0-9][A-Za-z0-9_.-]*``, it names the default output
directory), ``family`` (a key of :data:`pcm_sim.families.FAMILIES`), ``model``, ``data``,
``training`` and optional ``description`` and ``expected`` (published figures, for reports:
names to numbers).  Recipes ship as package data (``models/``) and resolve by name or path.

Each family declares the fields of its ``model``, ``data`` and ``training`` sections as data
(``schema``: section -> field name -> :class:`~pcm_sim.families.schema.Field`).
:func:`validate_recipe` checks a recipe against it before any work starts: unknown keys at any
level are refused with the nearest valid name suggested, missing required keys are named, and
every value's type and range is checked (numbers finite, ``hwa_profile`` a loadable profile).
Errors are one line naming the file, the dotted field, what was expected and what was found.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pcm_sim.families import FAMILIES
from pcm_sim.families.schema import Field
from pcm_sim.files import resolve_yaml, shipped_dir, shipped_names
from pcm_sim.profiles import ProfileError, _read_yaml, load_profile

__all__ = [
    "RecipeError",
    "list_recipes",
    "load_recipe",
    "recipe_dir",
    "validate_recipe",
]

REQUIRED_SECTIONS = ("name", "family", "model", "data", "training")
OPTIONAL_SECTIONS = ("expected", "description")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class RecipeError(ValueError):
    """A model recipe is malformed; the message names the file and what was expected."""


def recipe_dir() -> Path:
    """Directory of the shipped recipes."""
    return shipped_dir("models")


def list_recipes() -> list[str]:
    """Names of the shipped recipes."""
    return shipped_names(recipe_dir())


def _unknown(where: str, key: Any, allowed: list[str]) -> RecipeError:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(allowed)}"
    return RecipeError(f"{where}: unknown key {key!r} ({hint})")


def _range_text(field: Field) -> str:
    """``>= 1 and <= 100000``: integers written out, floats in ``%g``."""

    def text(x: float) -> str:
        return str(x) if isinstance(x, int) else f"{x:g}"

    parts = []
    if field.low is not None:
        parts.append(f"{'>' if field.above else '>='} {text(field.low)}")
    if field.high is not None:
        parts.append(f"<= {text(field.high)}")
    return " and ".join(parts)


def _check_number(value: Any, field: Field, where: str, kind: str) -> None:
    """An int (``kind == "int"``) or a finite number within the field's range."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or (isinstance(value, float) and math.isfinite(value))
    limits = _range_text(field)
    expected = ("an integer" if kind == "int" else "a finite number") + (
        f" {limits}" if limits else ""
    )
    if not (is_int if kind == "int" else is_number):
        raise RecipeError(f"{where}: expected {expected}, got {value!r}")
    low_ok = field.low is None or (value > field.low if field.above else value >= field.low)
    if not (low_ok and (field.high is None or value <= field.high)):
        raise RecipeError(f"{where}: expected {expected}, got {value!r}")


def _check_list(value: Any, field: Field, where: str) -> None:
    if not isinstance(value, list | tuple):
        raise RecipeError(f"{where}: expected a list, got {value!r}")
    low, high = field.length or (0, 1_000)
    if not low <= len(value) <= high:
        count = f"{low}" if low == high else f"{low}..{high}"
        raise RecipeError(f"{where}: expected {count} items, got {len(value)}")
    item = "int" if field.type == "ints" else "float"
    for i, element in enumerate(value):
        _check_number(element, field, f"{where}[{i}]", item)
    for name, index, wanted in (("first", 0, field.first), ("last", -1, field.last)):
        if wanted is not None and value and value[index] != wanted:
            raise RecipeError(
                f"{where}: expected {wanted} as the {name} item (fixed by the data), "
                f"got {value[index]!r}"
            )


def _check_value(value: Any, field: Field, where: str) -> None:
    """Check one value against its field (see :class:`Field`)."""
    if value is None and field.nullable:
        return
    kind = field.type
    if kind in ("int", "float"):
        _check_number(value, field, where, kind)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise RecipeError(f"{where}: expected true or false, got {value!r}")
    elif kind in ("str", "path", "profile"):
        if not isinstance(value, str) or not value:
            raise RecipeError(f"{where}: expected a non-empty string, got {value!r}")
        if field.choices and value not in field.choices:
            raise RecipeError(f"{where}: expected one of {list(field.choices)}, got {value!r}")
        if kind == "profile":
            try:
                load_profile(value)
            except ProfileError as exc:
                raise RecipeError(f"{where}: {exc}") from None
    elif kind in ("ints", "floats"):
        _check_list(value, field, where)
    elif kind == "section":
        _check_section(value, field.fields or {}, where)
    else:  # sections
        if not isinstance(value, list | tuple):
            raise RecipeError(f"{where}: expected a list of mappings, got {value!r}")
        low, high = field.length or (0, 1_000)
        if not low <= len(value) <= high:
            raise RecipeError(f"{where}: expected {low}..{high} items, got {len(value)}")
        for i, item in enumerate(value):
            _check_section(item, field.fields or {}, f"{where}[{i}]")


def _check_section(data: Any, fields: Mapping[str, Field], where: str) -> None:
    """A mapping with only known keys, every required key, and valid values."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in fields:
            raise _unknown(where, key, list(fields))
    for name, field in fields.items():
        if name not in data:
            if field.required:
                raise RecipeError(f"{where}: missing required key {name!r}")
            continue
        _check_value(data[name], field, f"{where}.{name}")


def validate_recipe(data: Any, source: str) -> dict[str, Any]:
    """Check a recipe against its family's schema (see the module docstring); returns it."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in REQUIRED_SECTIONS + OPTIONAL_SECTIONS:
            raise _unknown(source, key, [*REQUIRED_SECTIONS, *OPTIONAL_SECTIONS])
    for key in REQUIRED_SECTIONS:
        if key not in data:
            raise RecipeError(f"{source}: missing required section {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise RecipeError(f"{source}: name: expected [A-Za-z0-9][A-Za-z0-9_.-]*, got {name!r}")
    family = data["family"]
    if not isinstance(family, str) or family not in FAMILIES:
        close = difflib.get_close_matches(str(family), list(FAMILIES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(FAMILIES)}"
        raise RecipeError(f"{source}: family: unknown family {family!r} ({hint})")
    if "description" in data and not isinstance(data["description"], str):
        raise RecipeError(f"{source}: description: expected a string")
    expected = data.get("expected", {})
    if not isinstance(expected, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in expected.values()
    ):
        raise RecipeError(f"{source}: expected: expected a mapping of names to finite numbers")
    schema = FAMILIES[family].schema
    for section in ("model", "data", "training"):
        _check_section(data[section], schema[section], f"{source}: {section}")
    return data


def load_recipe(name_or_path: str | Path) -> dict[str, Any]:
    """Load a recipe by shipped name (``snu_fmnist``) or YAML path, validated."""
    path = resolve_yaml(name_or_path, recipe_dir(), "recipe", RecipeError)
    try:
        data = _read_yaml(path)
    except ProfileError as exc:
        raise RecipeError(str(exc)) from None
    return validate_recipe(data, str(path))
