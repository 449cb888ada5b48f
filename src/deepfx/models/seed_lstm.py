"""The seed's LSTM: a stack of LSTM layers reads the signal sample by sample; a Linear head
turns the top layer's output at each step into the output sample."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSTMState", "SeedLSTM"]

#: The LSTM's (h, c), each (layers, B, hidden).
LSTMState = tuple[torch.Tensor, torch.Tensor]


class SeedLSTM(nn.Module):
    """(B, 1, T) → (B, 1, T): ``layers`` stacked LSTMs of ``hidden`` units and a Linear head.

    The seed project used 7 layers of 800 units; the defaults are a size that trains in
    minutes on a CPU. There is no skip connection: the head alone produces the output. The
    state starts at zero at sample 0 of a file. ``warmup`` (samples) is the model's
    ``receptive_field``: the input that training runs in front of each excerpt, outside the
    loss, so the state has left its zero start when the loss begins.
    """

    #: Trained with truncated back-propagation through time (deepfx.models.base).
    tbptt = True

    def __init__(self, *, layers: int = 2, hidden: int = 32, warmup: int = 2048) -> None:
        super().__init__()
        self.receptive_field = warmup
        self.lstm = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def _run(self, x: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        h, state = self.lstm(x.transpose(1, 2), state)
        return self.head(h).transpose(1, 2), state

    def stream(
        self, x: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, LSTMState | None]:
        """The next block (B, 1, n) after ``state`` (None: file start) → (B, 1, n), new state."""
        if x.shape[-1] == 0:
            return torch.zeros_like(x), state
        return self._run(x, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T) from a zero state."""
        return self._run(x, None)[0]
