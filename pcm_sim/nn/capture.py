"""Capture what every layer of a model sees: the calibration inputs of a chip's ADC ranges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MAX_CALIBRATION_ROWS", "layer_inputs"]

MAX_CALIBRATION_ROWS = 4096
"""Layer inputs kept per layer for ADC range calibration (evenly spaced over the batch)."""


def layer_inputs(module: nn.Module, layers: Sequence[nn.Module], batch: Any) -> list[Tensor]:
    """Each of ``layers``' inputs ``(M, in)`` when ``module`` runs ``batch`` (eval mode, no grad).

    At most :data:`MAX_CALIBRATION_ROWS` input vectors are kept per layer, evenly spaced.
    """
    captured: dict[int, list[Tensor]] = {id(layer): [] for layer in layers}

    def hook(layer: nn.Module, args: tuple[Any, ...]) -> None:
        captured[id(layer)].append(args[0].detach().reshape(-1, args[0].shape[-1]))

    handles = [layer.register_forward_pre_hook(hook) for layer in layers]
    try:
        with torch.no_grad():
            module.eval()(batch)
    finally:
        for handle in handles:
            handle.remove()
    inputs = []
    for layer in layers:
        rows = torch.cat(captured[id(layer)]) if captured[id(layer)] else None
        if rows is None:
            raise ValueError("deploy: calibration_input never reached an analog layer")
        stride = max(1, rows.shape[0] // MAX_CALIBRATION_ROWS)
        inputs.append(rows[::stride][:MAX_CALIBRATION_ROWS])
    return inputs
