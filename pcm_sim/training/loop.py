"""A small epoch loop with progress (epoch, loss, metric, ETA) shared by the families."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["EpochTimer", "progress"]

T = TypeVar("T")


def progress(items: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterator[T]:
    """A tqdm bar (rate and ETA) over ``items``; silent when ``enabled`` is false."""
    return iter(
        tqdm(items, total=total, desc=desc, leave=False, disable=not enabled, mininterval=2)
    )


class EpochTimer:
    """Keeps the per-epoch history and logs one line per epoch with the ETA of the rest."""

    def __init__(self, epochs: int, log: Callable[[str], None]) -> None:
        self.epochs = epochs
        self.log = log
        self.start = time.perf_counter()
        self.history: list[dict[str, float]] = []

    def record(self, epoch: int, **metrics: float) -> None:
        """Append ``{"epoch": epoch, **metrics}`` and log ``epoch i/n  name value ...  eta``."""
        self.history.append({"epoch": float(epoch), **metrics})
        elapsed = time.perf_counter() - self.start
        eta = elapsed / epoch * (self.epochs - epoch)
        parts = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"epoch {epoch}/{self.epochs}  {parts}  elapsed {elapsed:.0f}s  eta {eta:.0f}s")
