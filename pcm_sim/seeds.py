"""Seed conventions, in one place.

A chip is named by its chip seed (:func:`pcm_sim.deploy`); the random encoding of test inputs
(Bernoulli rate codes, spike timing) by an *input seed*.  Every entry point that scores a chip
(``pcm-sim evaluate``, sweep cells, ``pcm-sim validate``, ``pcm-sim correct``, HIL studies) and
the software score of a checkpoint encode the test inputs with :data:`EVAL_INPUT_SEED` unless
told otherwise, so the same (checkpoint, profile, chip seed, t, input seed, samples) gives the
same number whichever entry point asks.
"""

from __future__ import annotations

import torch

from pcm_sim.crossbar.streams import stream_seed

__all__ = ["EVAL_INPUT_SEED", "input_generator", "timing_generator"]

EVAL_INPUT_SEED = 1
"""Input-encoding seed of every test-set evaluation (the same for every chip and time)."""


def input_generator(seed: int = EVAL_INPUT_SEED) -> torch.Generator:
    """A fresh CPU generator for encoding test inputs with ``seed``."""
    return torch.Generator().manual_seed(seed)


def timing_generator(inputs: torch.Generator) -> torch.Generator:
    """The spike-timing stream that goes with an input-encoding generator (e.g. the position
    of each input spike inside its coarse window), named after the input generator's seed."""
    return torch.Generator().manual_seed(stream_seed("timing", inputs.initial_seed()))
