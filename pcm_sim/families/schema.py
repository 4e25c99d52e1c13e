"""The fields of a recipe family's ``model``, ``data`` and ``training`` sections, as data.

Each family declares its sections as ``section -> field name -> Field``
(:data:`RecipeSchema`); :func:`pcm_sim.recipes.validate_recipe` checks a recipe against it.
The field sets every family shares live here: the epoch-loop training fields, the
hardware-aware training fields (every family with analog layers reads all of them, through
:func:`pcm_sim.training.loop.setup_hwa`), and the image and chorale data fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CHORALE_DATA",
    "CHORALE_KEYS",
    "COMMON_TRAINING",
    "FASHION_DATA",
    "HWA_TRAINING",
    "IMAGE_TRAINING",
    "TRAIN_LIMIT",
    "Field",
    "FieldType",
    "RecipeSchema",
]

FieldType = Literal[
    "int", "float", "bool", "str", "path", "profile", "ints", "floats", "section", "sections"
]


@dataclass(frozen=True)
class Field:
    """One recipe field: its type, its inclusive range, and whether it must be given.

    ``type``: ``int``, ``float`` (finite), ``bool``, ``str`` (non-empty, one of ``choices`` if
    given), ``path`` (a non-empty string), ``profile`` (a loadable device profile name or path),
    ``ints`` / ``floats`` (lists of ``length`` ``(min, max)`` items, each in range),
    ``section`` (a mapping checked against ``fields``) or ``sections`` (a list of such mappings).
    ``low`` / ``high`` bound a number or each list item (``above``: ``low`` itself excluded).
    ``nullable``: ``null`` is accepted and means "not set".  ``first`` / ``last``: the value an
    integer list must start / end with (the data's input width, the number of classes).
    """

    type: FieldType
    low: float | None = None
    high: float | None = None
    required: bool = False
    nullable: bool = False
    above: bool = False
    choices: tuple[str, ...] = ()
    length: tuple[int, int] | None = None
    first: int | None = None
    last: int | None = None
    fields: Mapping[str, Field] | None = None


RecipeSchema = Mapping[str, Mapping[str, Field]]
"""Section (``model``, ``data``, ``training``) -> field name -> :class:`Field`."""

COMMON_TRAINING: dict[str, Field] = {
    "epochs": Field("int", 1, 100_000, required=True),
    "batch_size": Field("int", 1, 1_000_000, required=True),
    "lr": Field("float", 0.0, 10.0, required=True, above=True),
    "seed": Field("int", 0, 2**63 - 1),
    "progress": Field("bool"),
}
"""Training fields every epoch-based family reads."""

HWA_TRAINING: dict[str, Field] = {
    "hwa_profile": Field("profile", nullable=True),
    "hwa_t_s": Field("float", 0.0, 1e10),
    "hwa_output_noise": Field("bool"),
    "hwa_scale_gradient": Field("bool"),
    "hwa_converters": Field("bool"),
}
"""Hardware-aware training (:func:`pcm_sim.nn.analog.enable_hwa`): the profile to sample chips
from, the time (s) to sample at, the periphery's output noise on every MVM, the noise's
gradient through ``w_max``, and the forward through the tiles' ADCs."""

TRAIN_LIMIT: dict[str, Field] = {"train_limit": Field("int", 1, 10**9, nullable=True)}
"""Train on the first ``train_limit`` samples of the training split only."""

IMAGE_TRAINING: dict[str, Field] = {**COMMON_TRAINING, **HWA_TRAINING, **TRAIN_LIMIT}
"""The ``training`` section of the image families: the epoch loop, hardware-aware training and
``train_limit``."""

FASHION_DATA: dict[str, Field] = {
    "dataset": Field("str", choices=("fashion_mnist", "mnist")),
    "data_dir": Field("path", nullable=True),
}
"""Image data: IDX files (Fashion-MNIST or MNIST, same layout) in ``data_dir``."""

CHORALE_DATA: dict[str, Field] = {
    "dataset": Field("str", choices=("bach_chorales",)),
    "cache_dir": Field("path", nullable=True),
    "max_pieces": Field("int", 1, 100_000, nullable=True),
}
"""Bach chorales from music21's corpus, cached in ``cache_dir``."""

CHORALE_KEYS = Field("int", 88, 88)
"""Piano-roll width of the chorale data (88 keys)."""
