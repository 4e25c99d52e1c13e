"""A NIR file plus a data spec as a :class:`~pcm_sim.tasks.Task` (``pcm-sim evaluate --nir``).

The data spec: a directory of IDX files (Fashion-MNIST or MNIST layout, test split), an
encoding of the ``[0, 1]`` pixel intensities into ``T = steps`` frames, and the graph's input
shape (its ``Input`` node, e.g. ``[1, 28, 28]`` or ``[784]``):

- ``rate``: Bernoulli spikes, one draw per pixel and step with probability = intensity
  (:func:`pcm_sim.data.bernoulli_rate_code`), from the evaluation's input generator;
- ``direct``: the intensities themselves at every step (a constant input current).

The metric is classification accuracy on the output's spike count (sum over ``T``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pcm_sim.data import bernoulli_rate_code
from pcm_sim.data.fashion_mnist import load_fashion_mnist
from pcm_sim.interop.nir import NIRModel, from_nir
from pcm_sim.profiles import DeviceProfile
from pcm_sim.tasks import Task, TaskError

__all__ = ["ENCODINGS", "encode_images", "idx_batches", "nir_task"]

ENCODINGS = ("rate", "direct")
CALIBRATION_IMAGES = 128
CALIBRATION_SEED = 0
BATCH = 1000


def encode_images(
    images: Tensor, steps: int, encoding: str, shape: tuple[int, ...], generator: torch.Generator
) -> Tensor:
    """``(B, D)`` intensities -> ``(steps, B, *shape)`` model input (module docstring)."""
    if math.prod(shape) != images.shape[1]:
        raise TaskError(
            f"data: images have {images.shape[1]} pixels, the model's input is {list(shape)}"
        )
    if encoding == "rate":
        frames = bernoulli_rate_code(images, steps, generator)
    elif encoding == "direct":
        frames = images.unsqueeze(0).expand(steps, *images.shape)
    else:
        raise TaskError(f"data: encoding {encoding!r} unknown; expected one of {ENCODINGS}")
    return frames.reshape(steps, images.shape[0], *shape)


def idx_batches(data_dir: str | Path | None, split: str = "test") -> list[tuple[Tensor, Tensor]]:
    """The IDX split as batches of ``(images (B, 784), labels (B,))``."""
    try:
        images, labels = load_fashion_mnist(data_dir, split)  # type: ignore[arg-type]
    except (FileNotFoundError, ValueError) as exc:
        raise TaskError(f"data: {exc}") from None
    return [
        (images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, images.shape[0], BATCH)
    ]


def nir_task(
    path: str | Path,
    dt: float,
    steps: int,
    encoding: str = "rate",
    data_dir: str | Path | None = None,
    profile: str | DeviceProfile | None = None,
) -> Task:
    """The NIR graph at ``path`` (Euler step ``dt`` s) scored on the IDX test split."""
    if steps < 1:
        raise TaskError(f"data: steps: expected >= 1, got {steps}")
    if encoding not in ENCODINGS:
        raise TaskError(f"data: encoding {encoding!r} unknown; expected one of {ENCODINGS}")
    model = from_nir(path, dt, profile)
    shape = _input_shape(model)
    data = idx_batches(data_dir, "test")
    train_images = idx_batches(data_dir, "train")[0][0][:CALIBRATION_IMAGES]
    calibration = encode_images(
        train_images, steps, encoding, shape, torch.Generator().manual_seed(CALIBRATION_SEED)
    )

    def encode(images: Tensor, generator: torch.Generator) -> Tensor:
        return encode_images(images, steps, encoding, shape, generator)

    return Task(
        model=model,
        data=data,
        metric="accuracy",
        encode=encode,
        calibration=calibration,
        name=Path(path).stem,
    )


def _input_shape(model: NIRModel) -> tuple[int, ...]:
    shape: Any = model.io_types.get(model.input_name)
    if shape is None or shape.ndim != 1 or shape.size == 0:
        raise TaskError("data: the NIR graph's Input node has no shape; expected e.g. [1, 28, 28]")
    return tuple(int(s) for s in shape)
