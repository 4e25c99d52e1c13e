"""Network families: the glue between a recipe and a network (which data, network and metric).

:data:`FAMILIES` maps a recipe's ``family`` key to its :class:`~pcm_sim.families.base.Family`.
A family's module is imported the first time a recipe names it, so loading an SNU recipe
imports neither gymnasium nor scipy (CartPole's needs).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from pcm_sim.families.base import Family, ProgressFn

__all__ = ["FAMILIES", "Family", "ProgressFn"]

_WHERE = {
    "snu_fmnist": ("snu", "SNU_FASHION"),
    "ssnu_chorales": ("chorales", "SSNU_CHORALES"),
    "lstm_chorales": ("chorales", "LSTM_CHORALES"),
    "dsn_fmnist": ("dsn", "DSN_FASHION"),
    "coarse_lif_fmnist": ("coarse_lif", "COARSE_LIF_FASHION"),
    "coarse_lif_cartpole": ("cartpole", "CARTPOLE"),
    "phasor_fmnist": ("phasor", "PHASOR_FASHION"),
}
"""Family key -> (module of :mod:`pcm_sim.families`, name of its :class:`Family` value)."""


class _Registry(Mapping[str, Family]):
    """The family keys, each family loaded (and kept) on first access."""

    def __init__(self) -> None:
        self._loaded: dict[str, Family] = {}

    def __getitem__(self, key: str) -> Family:
        if key not in self._loaded:
            module, name = _WHERE[key]
            family = getattr(importlib.import_module(f"pcm_sim.families.{module}"), name)
            assert isinstance(family, Family)
            self._loaded[key] = family
        return self._loaded[key]

    def __contains__(self, key: object) -> bool:
        return key in _WHERE

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


FAMILIES: Mapping[str, Family] = _Registry()
