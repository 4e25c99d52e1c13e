"""Crossbar engine: weight mapping, tiling, periphery and the vectorized MVM."""

from pcm_sim.crossbar.tile import CrossbarArray

__all__ = ["CrossbarArray"]
