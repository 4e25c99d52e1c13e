"""Where the cells of a study run: a local process pool or a Dask distributed cluster.

Every executor maps a picklable top-level function over a list of picklable items and yields
``(index, result)`` pairs in completion order, so the caller can store each result the moment it
exists.  The first failing item stops the run: queued items are cancelled and its exception is
re-raised in the caller.

* :class:`LocalPool` -- ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start
  method (no inherited torch thread pools or locks), ``workers`` processes.
* :class:`DaskExecutor` -- a ``distributed.Client`` on an existing scheduler
  (``tcp://HOST:PORT``), or on a :class:`distributed.LocalCluster` it starts itself
  (``address="local"``: ``workers`` processes with one thread each).  Workers must be able to
  import ``pcm_sim`` and read the checkpoint files (a shared file system); the cell function
  checks each checkpoint's SHA-256, so a worker with a different file fails loudly.

Cells fix ``torch.set_num_threads(1)`` themselves, so a cell's numbers never depend on the
executor that ran it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

__all__ = ["DaskExecutor", "Executor", "LocalPool", "make_executor"]


class Executor(Protocol):
    """Runs ``fn`` over items; see the module docstring."""

    description: str

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(items[index]))`` as each finishes."""
        ...

    def close(self) -> None:
        """Release workers (and a cluster this executor started)."""
        ...


PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """Exit this worker once its parent is gone (e.g. the sweep was killed with SIGKILL)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _init_worker(parent_pid: int) -> None:
    """Pool-process initializer: one torch thread; no orphan outliving a killed sweep.

    A worker blocked on the task queue would never see the queue close (every worker holds its
    write end), so a daemon thread polls the parent's pid every ``PARENT_POLL_S`` seconds.
    """
    import torch

    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


class LocalPool:
    """A pool of ``workers`` spawned local processes."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"--workers: expected >= 1, got {workers}")
        self.workers = workers
        self.description = f"{workers} local worker{'s' if workers > 1 else ''}"
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Submit every item, yield results as they complete."""
        pending: dict[Future[Any], int] = {
            self._pool.submit(fn, it): i for i, it in enumerate(items)
        }
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Cancel queued items and stop the worker processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Cells on a Dask distributed cluster (existing scheduler or a LocalCluster).

    Args:
        address: ``tcp://HOST:PORT`` (or any address ``distributed.Client`` accepts), or
            ``"local"`` to start a ``LocalCluster`` of ``workers`` single-threaded processes.
        workers: worker processes of the local cluster (ignored for an existing scheduler).
    """

    def __init__(self, address: str, workers: int = 1) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        if address == "local":
            if workers < 1:
                raise ValueError(f"--workers: expected >= 1, got {workers}")
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            address = self._cluster.scheduler_address
        try:
            self._client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise ValueError(f"--scheduler {address}: cannot connect ({exc})") from None
        n = len(self._client.scheduler_info(n_workers=-1).get("workers", {}))
        self.description = f"Dask scheduler {address} ({n} worker{'s' if n != 1 else ''})"

    def imap_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Submit every item as a task, yield results as they complete."""
        from distributed import as_completed

        futures = [self._client.submit(fn, it, pure=False) for it in items]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                yield index[future.key], future.result()
        finally:
            self._client.cancel(futures)

    def close(self) -> None:
        """Disconnect (and stop the LocalCluster if this executor started one)."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int | None = None, scheduler: str | None = None) -> Executor:
    """``LocalPool(workers)`` (default 1) or ``DaskExecutor(scheduler, workers)``."""
    if scheduler:
        return DaskExecutor(scheduler, workers if workers is not None else os.cpu_count() or 1)
    return LocalPool(workers if workers is not None else 1)
