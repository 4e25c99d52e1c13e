"""Spike encodings of static inputs."""

from __future__ import annotations

import torch

__all__ = ["bernoulli_rate_code"]


def bernoulli_rate_code(
    images: torch.Tensor, steps: int, generator: torch.Generator
) -> torch.Tensor:
    """Bernoulli (Poisson-like) rate coding of intensities into spike trains.

    At every time step each input element fires independently with probability equal to its
    intensity, so the expected spike count of an element over ``steps`` steps is
    ``steps * intensity`` and its empirical rate has standard deviation
    ``sqrt(p * (1 - p) / steps)``. An intensity of exactly 0 never fires; exactly 1 always
    fires.

    Args:
        images: Intensities (firing probability per step), shape ``(B, D)``, values in
            ``[0, 1]``; any floating dtype, on any device.
        steps: Number of time steps ``T`` (>= 1).
        generator: Random generator used for every draw; must live on ``images.device``.

    Returns:
        float32 spikes in ``{0, 1}``, shape ``(T, B, D)``, on ``images.device``.

    Raises:
        ValueError: ``images`` is not 2-D, is not floating point, contains NaN or values
            outside ``[0, 1]``, or ``steps < 1``.
    """
    if images.dim() != 2:
        raise ValueError(f"images must have shape (B, D), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating tensor in [0, 1], got {images.dtype}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if bool(torch.isnan(images).any()):
        raise ValueError("images contain NaN; expected intensities in [0, 1]")
    if images.numel() and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
        raise ValueError(
            f"images must lie in [0, 1], got range [{float(images.min())}, {float(images.max())}]"
        )
    probs = images.to(torch.float32)
    uniform = torch.rand(
        (steps, *probs.shape), generator=generator, device=probs.device, dtype=torch.float32
    )
    # rand is in [0, 1): P(u < p) == p exactly, including p == 0 and p == 1.
    return (uniform < probs).to(torch.float32)
