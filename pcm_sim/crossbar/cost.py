"""The crossbar work of an evaluation: operation counts and energy/latency ESTIMATES.

:class:`OpCounter` counts, with forward pre-hooks on every analog layer, what one evaluation
asks of the arrays; :func:`work_per_inference` turns the counts into per-inference work and
:func:`estimates` into energy and latency from the profile's ``energy`` section.

Work per inference (one test item; counts from the measured inputs of each analog layer with
``in`` inputs, ``out`` outputs, ``R`` row tiles, ``C`` column tiles, ``d`` devices per weight;
``V`` input vectors, ``S`` nonzero inputs, ``A`` (vector, row-tile) pairs with a nonzero input,
``V_a`` vectors with a nonzero input, all divided by ``samples``, which must not exceed the test
split):

=====================  =============================  =============================
quantity               spike inputs (no DAC)          graded inputs
=====================  =============================  =============================
``tile_mvms``          ``A * C`` (event-driven)       ``V * R * C``
``adc_conversions``    ``A * out``                    ``V * R * out``
``dac_conversions``    0                              ``V * in``
cell reads             ``S * out * d``                ``V * in * out * d``
MVM steps              ``V_a``                        ``V``
=====================  =============================  =============================

ESTIMATES (from the profile's ``energy`` section, which cites its source; not measurements):
``energy_nj = (cell_reads * cell_read_pj + dac * dac_conversion_pj + adc *
adc_conversion_pj) / 1000`` per inference (analog array and converters only: no digital
neuron updates, no data movement); ``latency_us = MVM steps * mvm_latency_ns / 1000`` per
inference, assuming the tiles of a layer work in parallel and layers and time steps run one
after the other; ``programming_energy_uj = pulses * programming_pulse_pj / 1e6`` once per chip.
``devices`` and ``tiles`` are summed over layers (``CrossbarArray.n_devices``, ``n_tiles``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from pcm_sim.nn.analog import AnalogLinear
from pcm_sim.profiles import DeviceProfile

__all__ = ["OpCounter", "estimates", "work_per_inference"]


class OpCounter:
    """Counts the crossbar work of one evaluation with forward pre-hooks on every analog layer.

    For each :class:`AnalogLinear` with ``in`` inputs on ``R`` row tiles of ``rows`` inputs, an
    input batch ``x`` ``(..., in)`` adds ``N = x.numel() / in`` input *vectors*; ``nonzero`` =
    number of nonzero inputs (spikes, for binary layers); ``row_tile_activations`` = number of
    (vector, row tile) pairs with at least one nonzero input; ``active_vectors`` = vectors with
    at least one nonzero input.  Counting reads the inputs only; it changes no result.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [(n, m) for n, m in model.named_modules() if isinstance(m, AnalogLinear)]
        self.counts = {
            name: {"vectors": 0, "active_vectors": 0, "nonzero": 0, "row_tile_activations": 0}
            for name, _ in self.layers
        }
        self._handles = [
            layer.register_forward_pre_hook(self._hook(name, layer)) for name, layer in self.layers
        ]

    def _hook(self, name: str, layer: AnalogLinear) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        counts = self.counts[name]

        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if layer.deployed_backend != "pcm-sim":
                raise RuntimeError(f"OpCounter: layer {name} is not on a pcm-sim crossbar")
            geometry = layer.chip_geometry()
            x: Tensor = args[0].detach()
            active = x.reshape(-1, layer.in_features) != 0  # (N, in)
            pad = geometry["n_row_tiles"] * geometry["rows"] - layer.in_features
            tiles = torch.nn.functional.pad(active, (0, pad)).reshape(
                -1, geometry["n_row_tiles"], geometry["rows"]
            )  # (N, R, rows)
            per_tile = tiles.any(dim=-1)  # (N, R)
            counts["vectors"] += active.shape[0]
            counts["active_vectors"] += int(per_tile.any(dim=-1).sum())
            counts["nonzero"] += int(active.sum())
            counts["row_tile_activations"] += int(per_tile.sum())

        return hook

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()

    def summary(self) -> list[dict[str, Any]]:
        """Per layer: shape, tiles, devices, programming pulses, and the counts."""
        rows = []
        for name, layer in self.layers:
            geometry = layer.chip_geometry()
            rows.append(
                {
                    "name": name,
                    "in": layer.in_features,
                    "out": layer.out_features,
                    "binary_input": layer.binary_input,
                    "n_row_tiles": geometry["n_row_tiles"],
                    "n_col_tiles": geometry["n_col_tiles"],
                    "n_tiles": geometry["n_tiles"],
                    "n_devices": geometry["n_devices"],
                    "pulses": int(layer.chip_pulses().sum()),
                    **self.counts[name],
                }
            )
        return rows


def work_per_inference(ops: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    """Per-layer work per inference (module docstring) from an :meth:`OpCounter.summary`."""
    rows = []
    for layer in ops:
        d = layer["n_devices"] / (layer["in"] * layer["out"])  # devices per weight
        v, s, a = layer["vectors"], layer["nonzero"], layer["row_tile_activations"]
        if layer["binary_input"]:
            tile_mvms, adc, dac = a * layer["n_col_tiles"], a * layer["out"], 0
            reads, steps = s * layer["out"] * d, layer["active_vectors"]
        else:
            tile_mvms = v * layer["n_row_tiles"] * layer["n_col_tiles"]
            adc, dac = v * layer["n_row_tiles"] * layer["out"], v * layer["in"]
            reads, steps = v * layer["in"] * layer["out"] * d, v
        rows.append(
            {
                "name": layer["name"],
                "vectors": v / samples,
                "input_rate": s / (v * layer["in"]) if v else 0.0,
                "tile_mvms": tile_mvms / samples,
                "tile_mvms_dense": v * layer["n_tiles"] / samples,
                "adc_conversions": adc / samples,
                "dac_conversions": dac / samples,
                "cell_reads": reads / samples,
                "mvm_steps": steps / samples,
            }
        )
    return rows


def estimates(work: list[dict[str, Any]], profile: DeviceProfile) -> dict[str, float]:
    """Energy (nJ) and latency (µs) ESTIMATES per inference from the profile's energy figures."""
    e = profile.energy
    reads = sum(w["cell_reads"] for w in work)
    dac = sum(w["dac_conversions"] for w in work)
    adc = sum(w["adc_conversions"] for w in work)
    steps = sum(w["mvm_steps"] for w in work)
    return {
        "cell_reads_nj": reads * e.cell_read_pj / 1e3,
        "dac_nj": dac * e.dac_conversion_pj / 1e3,
        "adc_nj": adc * e.adc_conversion_pj / 1e3,
        "energy_nj": (
            reads * e.cell_read_pj + dac * e.dac_conversion_pj + adc * e.adc_conversion_pj
        )
        / 1e3,
        "latency_us": steps * e.mvm_latency_ns / 1e3,
    }
