"""The seed's LSTM: a stack of LSTM layers reads the signal sample by sample; a Linear head
turns the top layer's output at each step into the output sample."""

from __future__ import annotations

import torch
from torch import nn

from deepfx.models.base import Recurrent

__all__ = ["LSTMState", "SeedLSTM"]

#: The LSTM's (h, c), each (layers, B, hidden).
LSTMState = tuple[torch.Tensor, torch.Tensor]


class SeedLSTM(Recurrent):
    """(B, 1, T) → (B, 1, T): ``layers`` stacked LSTMs of ``hidden`` units and a Linear head.

    The seed project used 7 layers of 800 units; the defaults are a size that trains in
    minutes on a CPU. There is no skip connection: the head alone produces the output. The
    state starts at zero at sample 0 of a file. ``warmup`` (samples) is the model's
    ``receptive_field``: the input that training runs in front of each excerpt, outside the
    loss, so the state has left its zero start when the loss begins.
    """

    def __init__(self, *, layers: int = 2, hidden: int = 32, warmup: int = 2048) -> None:
        super().__init__()
        self.receptive_field = warmup
        self.lstm = nn.LSTM(1, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def _run(self, x: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        h, state = self.lstm(x.transpose(1, 2), state)
        return self.head(h).transpose(1, 2), state
