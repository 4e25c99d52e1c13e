"""The LSTM baseline of the chorale task: software only, no analog layers."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["LSTMSequence"]


class LSTMSequence(nn.Module):
    """``keys -> LSTM(hidden) -> Linear(keys)`` logits of the next frame."""

    def __init__(self, keys: int = 88, hidden: int = 42, output_bias: float = -3.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(keys, hidden)
        self.readout = nn.Linear(hidden, keys)
        nn.init.constant_(self.readout.bias, output_bias)  # base-rate logit, as the sSNU

    def forward(self, frames: Tensor) -> Tensor:
        """``(T, B, 88)`` -> ``(T, B, 88)``."""
        h, _ = self.lstm(frames)
        out: Tensor = self.readout(h)
        return out
