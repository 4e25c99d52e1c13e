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
    """Formats one line per epoch with the ETA of the remaining epochs."""

    def __init__(self, epochs: int, log: Callable[[str], None]) -> None:
        self.epochs = epochs
        self.log = log
        self.start = time.perf_counter()

    def report(self, epoch: int, **metrics: float) -> None:
        """Log ``epoch i/n  name value ...  elapsed  eta`` for the finished 1-based ``epoch``."""
        elapsed = time.perf_counter() - self.start
        eta = elapsed / epoch * (self.epochs - epoch)
        parts = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.log(f"epoch {epoch}/{self.epochs}  {parts}  elapsed {elapsed:.0f}s  eta {eta:.0f}s")
