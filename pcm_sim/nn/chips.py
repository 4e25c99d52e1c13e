"""Saved chips: every programmed layer's device state in a file of tensors and plain data.

A chip file is a ``torch.save`` dict read back with ``weights_only=True`` (no pickled code is
ever run): ``format`` (:data:`CHIP_FILE_FORMAT`), ``chip_seed``, ``profile`` (the resolved
profile dict) and ``layers``, one :meth:`~pcm_sim.crossbar.tile.CrossbarArray.state_dict` per
analog layer in :func:`~pcm_sim.nn.analog.analog_layers` order: target and programmed
conductances (µS), drift exponents, stuck-device mask, pulse counts, ``w_max``, the write epoch,
the compensation reference, the time the chip was at, its read counter and read clock and, under
``read_noise.model: clocked``, the slow read-noise state (``K = 8`` OU components per cell, 4
floats per device of a differential pair, with the clock of their last step).  Because every
read is drawn from streams named by (chip seed, layer, write epoch, t, read counter), a loaded
chip reads exactly as the saved one would, at every ``t``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcm_sim.crossbar.tile import CHIP_STATE_FORMAT
from pcm_sim.nn.analog import analog_layers
from pcm_sim.physics.pcm import READ_NOISE_COMPONENTS
from pcm_sim.profiles import DeviceProfile, ProfileError

__all__ = ["CHIP_FILE_FORMAT", "ChipFileError", "load_chip", "save_chip"]

CHIP_FILE_FORMAT = "pcm-sim-chip/1"


class ChipFileError(ValueError):
    """A chip file is missing, unreadable, foreign, or does not fit the model."""


def save_chip(model: nn.Module, path: str | Path) -> Path:
    """Write every programmed layer of ``model`` to ``path`` atomically; returns the path."""
    layers = analog_layers(model)
    if not layers or any(layer.deployed_backend != "pcm-sim" for layer in layers):
        raise ChipFileError(
            "save_chip: every analog layer must be programmed on a pcm-sim crossbar "
            "(pcm_sim.deploy with backend 'pcm-sim')"
        )
    states = [layer.chip_state() for layer in layers]
    seeds = {state["chip_seed"] for state in states}
    payload: dict[str, Any] = {
        "format": CHIP_FILE_FORMAT,
        "chip_seed": states[0]["chip_seed"] if len(seeds) == 1 else None,
        "profile": states[0]["profile"],
        "layers": states,
    }
    path = Path(path)
    if path.is_dir():
        raise ChipFileError(f"{path}: is a directory, expected a chip file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _check_layer(where: str, state: Any, in_f: int, out_f: int, profile: DeviceProfile) -> None:
    """Refuse, in one line, a layer state that does not fit a layer ``in_f x out_f``."""
    if not isinstance(state, dict) or state.get("format") != CHIP_STATE_FORMAT:
        raise ChipFileError(f"{where}: expected a crossbar state ({CHIP_STATE_FORMAT})")
    if state.get("shape") != [in_f, out_f]:
        raise ChipFileError(
            f"{where}: shape {state.get('shape')} does not fit the model's layer [{in_f}, {out_f}]"
        )
    n = profile.weight_cell.devices_per_polarity
    device_shape = (2, n, in_f, out_f)
    tiles = -(-in_f // profile.tile.rows)
    scale_shapes: dict[str, list[tuple[int, ...]]] = {
        "layer": [()],
        "column": [(out_f,)],
        "tile": [(in_f, 1)],
        "tile_column": [(in_f, out_f)],
    }
    column = profile.compensation.mode == "column"
    baseline: tuple[int, ...] = (out_f,) if column else ()
    if profile.compensation.mode == "none":
        baseline = ()
    elif profile.weight_cell.scaling in ("tile", "tile_column"):
        baseline = (tiles, 1, out_f if column else 1)
    expected_shapes: dict[str, list[tuple[int, ...]]] = {
        "w_max": scale_shapes[profile.weight_cell.scaling],
        "baseline": [baseline],
        "out_range": [(), (tiles, 1, 1), (tiles, 1, out_f)],
    }
    expected = {
        "g_target_us": (device_shape, torch.float32),
        "g_prog_us": (device_shape, torch.float32),
        "nu": (device_shape, torch.float32),
        "stuck": (device_shape, torch.bool),
        "pulses": (device_shape, torch.int32),
    }
    for name, (dims, dtype) in expected.items():
        value = state.get(name)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != dims:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ChipFileError(f"{where}: {name}: expected shape {dims}, got {got}")
        if value.dtype != dtype:
            raise ChipFileError(f"{where}: {name}: expected {dtype}, got {value.dtype}")
    for name, shapes in expected_shapes.items():
        value = state.get(name)
        if not isinstance(value, torch.Tensor) or tuple(value.shape) not in shapes:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ChipFileError(
                f"{where}: {name}: expected a tensor of shape {shapes[0]}, got {got}"
            )
    per = profile.periphery
    for name, drawn in (("adc_gain", per.adc_gain_std), ("adc_offset_lsb", per.adc_offset_lsb_std)):
        value = state.get(name)
        if not drawn and value is None:
            continue
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (tiles, 1, out_f):
            expected_what = f"shape {(tiles, 1, out_f)}" if drawn else "None"
            raise ChipFileError(f"{where}: {name}: expected {expected_what} for this profile")
        if value.dtype != torch.float32 or not bool(torch.isfinite(value).all()):
            raise ChipFileError(f"{where}: {name}: expected finite float32 values")
    for name in ("g_prog_us", "nu", "w_max", "baseline", "out_range"):
        if not bool(torch.isfinite(state[name]).all()):
            raise ChipFileError(f"{where}: {name}: expected finite values")
    if bool((state["out_range"] < 0).any()):
        raise ChipFileError(f"{where}: out_range: expected ADC ranges >= 0")
    for name in ("chip_seed", "layer", "write_epoch", "read_counter"):
        value = state.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ChipFileError(f"{where}: {name}: expected an int >= 0, got {value!r}")
    for name in ("t_s", "read_clock_s"):
        t_s = state.get(name)
        if not isinstance(t_s, float) or not (0.0 <= t_s < float("inf")):
            raise ChipFileError(f"{where}: {name}: expected a finite time >= 0, got {t_s!r}")
    _check_read_noise_state(where, state, in_f, out_f, profile)


def _check_read_noise_state(
    where: str, state: dict[str, Any], in_f: int, out_f: int, profile: DeviceProfile
) -> None:
    """The slow read-noise state: ``K`` step clocks in ``[0, read_clock_s]`` and, for a clocked
    profile with read noise, ``K x in x out`` finite float32 components (else ``None``)."""
    k = READ_NOISE_COMPONENTS
    clock = state["read_clock_s"]
    stepped = state.get("slow_stepped_s")
    if (
        not isinstance(stepped, list)
        or len(stepped) != k
        or not all(isinstance(s, float) and 0.0 <= s <= clock for s in stepped)
    ):
        raise ChipFileError(
            f"{where}: slow_stepped_s: expected {k} times in [0, read_clock_s], got {stepped!r}"
        )
    slow = state.get("slow")
    clocked = profile.read_noise.model == "clocked" and profile.read_noise.scale > 0
    if not clocked:
        if slow is not None:
            raise ChipFileError(f"{where}: slow: expected None for this profile's read noise")
        return
    if not isinstance(slow, torch.Tensor) or tuple(slow.shape) != (k, in_f, out_f):
        got = tuple(slow.shape) if isinstance(slow, torch.Tensor) else type(slow).__name__
        raise ChipFileError(f"{where}: slow: expected shape {(k, in_f, out_f)}, got {got}")
    if slow.dtype != torch.float32 or not bool(torch.isfinite(slow).all()):
        raise ChipFileError(f"{where}: slow: expected finite float32 values")


def load_chip(model: nn.Module, path: str | Path) -> nn.Module:
    """Install the chip saved at ``path`` into ``model`` (same architecture); returns ``model``.

    The file is read with ``weights_only=True``.  A file that does not fit (format, layer count,
    shapes, dtypes, profile schema) is refused with one line naming the first mismatch, and the
    model is left as it was.  Each layer is restored at the time it was saved at.
    """
    path = Path(path)
    if not path.is_file():
        raise ChipFileError(f"{path}: no such chip file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ChipFileError(
            f"{path}: not a readable chip file ({type(exc).__name__}; only tensors and plain "
            "data are accepted)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHIP_FILE_FORMAT:
        raise ChipFileError(f"{path}: not a pcm-sim chip file (expected format {CHIP_FILE_FORMAT})")
    layers = analog_layers(model)
    states = payload.get("layers")
    if not isinstance(states, list) or len(states) != len(layers):
        count = len(states) if isinstance(states, list) else "no"
        raise ChipFileError(f"{path}: {count} layers in the file, the model has {len(layers)}")
    profiles = []
    for index, (layer, state) in enumerate(zip(layers, states, strict=True)):
        where = f"{path}: layer {index}"
        try:
            profile = DeviceProfile.from_dict(state.get("profile"), f"{where} profile")
        except (ProfileError, AttributeError, TypeError) as exc:
            raise ChipFileError(
                f"{where}: profile does not fit this version's schema: {exc}"
            ) from None
        _check_layer(where, state, layer.in_features, layer.out_features, profile)
        profiles.append(profile)
    for layer, state, profile in zip(layers, states, profiles, strict=True):
        layer.load_chip_state(state, profile)
    model.eval()
    return model
