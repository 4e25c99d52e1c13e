"""Shared fixtures: deterministic CPU generators and small helper factories."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # small tensors: one thread is as fast and immune to oversubscription


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(1234)
