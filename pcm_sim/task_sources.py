"""Where a model and its task come from: a checkpoint, a Python entry point, or a NIR file.

``pcm-sim evaluate`` (and the Python API) accept any of the three:

- ``checkpoint``: a trained recipe (:func:`pcm_sim.training.checkpoint.load_checkpoint`); its
  task is the recipe's (:class:`~pcm_sim.tasks.RecipeTask`);
- ``task``: ``package.module:function`` or ``file.py:function`` returning a
  :class:`~pcm_sim.tasks.Task` (:func:`~pcm_sim.tasks.load_entry_point`);
- ``nir``: a NIR graph file plus a data spec (``dt``, ``steps``, ``encoding``, ``data_dir``;
  :func:`~pcm_sim.interop.nir_task.nir_task`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcm_sim.seeds import EVAL_INPUT_SEED, input_generator
from pcm_sim.tasks import EvaluationTask, RecipeTask, TaskError, load_entry_point

__all__ = ["NIR_DATA_KEYS", "SOURCE_KINDS", "Source", "load_source"]

SOURCE_KINDS = ("checkpoint", "task", "nir")
NIR_DATA_KEYS = {"dt", "steps", "encoding", "data_dir"}
"""The data spec of a NIR source (``dt`` and ``steps`` required)."""


def _hash_tensors(digest: Any, tensors: Iterable[torch.Tensor]) -> None:
    for tensor in tensors:
        t = tensor.detach().to("cpu").contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


@dataclass
class Source:
    """A model, the task that scores it, and its software score (``None`` until computed)."""

    kind: str
    ref: str
    model: nn.Module
    task: EvaluationTask
    software: dict[str, float] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """SHA-256 of what the source computes: the checkpoint or NIR file's bytes, or (an entry
        point) the model's weights and buffers and the test data, plus the source's options."""
        digest = hashlib.sha256(json.dumps([self.kind, self.options], sort_keys=True).encode())
        if self.kind in ("checkpoint", "nir"):
            digest.update(Path(self.ref).read_bytes())
            return digest.hexdigest()
        state = self.model.state_dict()
        digest.update(json.dumps(sorted(state)).encode())
        _hash_tensors(digest, (state[k] for k in sorted(state)))
        data = getattr(self.task, "data", [])
        for inputs, target in data:
            _hash_tensors(digest, (inputs, target))
        return digest.hexdigest()

    def software_score(
        self, mode: str = "default", limit: int | None = None, input_seed: int = EVAL_INPUT_SEED
    ) -> float:
        """The metric in software (the checkpoint's stored value when the whole split is asked)."""
        if self.software is not None and limit is None and mode == "default":
            return float(self.software[self.task.metric_name])
        scores = self.task.evaluate(
            copy.deepcopy(self.model), input_generator(input_seed), mode, limit
        )
        return float(scores[self.task.metric_name])


def load_source(kind: str, ref: str, options: dict[str, Any] | None = None) -> Source:
    """Load a model and its task (module docstring); bad input raises one-line ``ValueError``s."""
    opts = dict(options or {})
    if kind == "checkpoint":
        from pcm_sim.training.checkpoint import load_checkpoint

        model, payload = load_checkpoint(ref)
        recipe = payload["recipe"]
        if opts.get("data_dir"):
            recipe["data"]["data_dir"] = opts["data_dir"]
        return Source(kind, ref, model, RecipeTask(recipe), payload["software"], opts)
    if kind == "task":
        task = load_entry_point(ref)
        return Source(kind, ref, task.model, task, None, opts)
    if kind == "nir":
        from pcm_sim.interop.nir_task import nir_task

        missing = [k for k in ("dt", "steps") if opts.get(k) is None]
        if missing:
            raise TaskError(f"nir {ref}: the data spec needs {' and '.join(missing)}")
        task = nir_task(
            ref,
            float(opts["dt"]),
            int(opts["steps"]),
            str(opts.get("encoding") or "rate"),
            opts.get("data_dir"),
        )
        return Source(kind, ref, task.model, task, None, opts)
    raise TaskError(f"source kind {kind!r} unknown; expected one of {SOURCE_KINDS}")
