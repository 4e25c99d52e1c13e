"""Counter-based random streams: every draw of a chip is named, never sequenced.

A chip is a value: fully determined by (weights, profile, chip seed) and by the writes made to it.
Each random draw gets its own generator, seeded from a hash of a *key* that names it:

    ``program``                          first write of the layer (programming noise, nu, faults)
    ``adc``                              converter gain and offset errors of the layer
    ``ranges, e``                        the reads that calibrate the ADC ranges
    ``bank, b``                          block ``b`` of the bank of normals (``crossbar.noise``)
    ``write, e``                         the write session that makes write epoch ``e``
    ``baseline, e``                      compensation reference read right after write epoch ``e``
    ``calibrate, e, t``                  compensation calibration reads at time ``t``
    ``slow, e, t``                       the slow read-noise state drawn at ``drift_to(t)``
    ``read, e, t, k``                    the ``k``-th call (``k = 0, 1, ...``) since ``drift_to(t)``
                                         (with the steps of the slow state at that call)

all prefixed by (chip seed, layer index).  Because no draw depends on how many draws came before
it, the ``k``-th read at ``t`` gives the same numbers whatever times and reads were asked of the
chip before, and whichever entry point asks.  ``t`` enters the key exactly (``float.hex``).
Seeds are the first 63 bits of a BLAKE2b digest of the key; the generator lives on the chip's
device (CPU and CUDA generators give different, each reproducible, numbers for one seed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

__all__ = ["ChipStreams", "stream_seed"]

SEED_BITS = 63


def stream_seed(*key: int | float | str) -> int:
    """A 63-bit seed from a key of ints, floats (exact, via ``float.hex``) and strings."""
    parts = [value.hex() if isinstance(value, float) else str(value) for value in key]
    digest = hashlib.blake2b("/".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)


@dataclass(frozen=True)
class ChipStreams:
    """The named random streams of layer ``layer`` of chip ``chip_seed`` (module docstring)."""

    chip_seed: int
    layer: int

    def __post_init__(self) -> None:
        if isinstance(self.chip_seed, bool) or not isinstance(self.chip_seed, int):
            raise ValueError(f"chip seed: expected an int, got {self.chip_seed!r}")
        if self.chip_seed < 0:
            raise ValueError(f"chip seed: expected an int >= 0, got {self.chip_seed}")
        if self.layer < 0:
            raise ValueError(f"layer index: expected >= 0, got {self.layer}")

    def generator(self, device: torch.device, *key: int | float | str) -> torch.Generator:
        """A fresh generator on ``device`` for the draw named ``key``."""
        seed = stream_seed("pcm-sim", self.chip_seed, self.layer, *key)
        return torch.Generator(device=device).manual_seed(seed)

    def programming(self, device: torch.device) -> torch.Generator:
        """The first write of the layer."""
        return self.generator(device, "program")

    def converters(self, device: torch.device) -> torch.Generator:
        """The layer's converter gain and offset errors (drawn once, with the chip)."""
        return self.generator(device, "adc")

    def range_calibration(self, device: torch.device, epoch: int) -> torch.Generator:
        """The reads that set the layer's ADC ranges (write epoch ``epoch``)."""
        return self.generator(device, "ranges", epoch)

    def bank(self, device: torch.device, block: int) -> torch.Generator:
        """Block ``block`` of the layer's bank of standard normals."""
        return self.generator(device, "bank", block)

    def write(self, device: torch.device, epoch: int) -> torch.Generator:
        """The write session (re-writes and verify reads) that produces write epoch ``epoch``."""
        return self.generator(device, "write", epoch)

    def baseline(self, device: torch.device, epoch: int) -> torch.Generator:
        """The compensation reference read right after write epoch ``epoch``."""
        return self.generator(device, "baseline", epoch)

    def calibration(self, device: torch.device, epoch: int, t_s: float) -> torch.Generator:
        """The compensation calibration reads at ``t_s`` (write epoch ``epoch``)."""
        return self.generator(device, "calibrate", epoch, float(t_s))

    def read(self, device: torch.device, epoch: int, t_s: float, counter: int) -> torch.Generator:
        """The ``counter``-th call since ``drift_to(t_s)`` (write epoch ``epoch``)."""
        return self.generator(device, "read", epoch, float(t_s), counter)

    def slow_state(self, device: torch.device, epoch: int, t_s: float) -> torch.Generator:
        """The slow read-noise state (OU components) drawn at ``drift_to(t_s)``."""
        return self.generator(device, "slow", epoch, float(t_s))
