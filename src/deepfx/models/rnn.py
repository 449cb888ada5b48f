"""A recurrent amp model after Wright, Damskägg & Välimäki (2019): one LSTM or GRU layer, a
Linear head and a skip connection from the input to the output."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepfx.models.base import Recurrent

__all__ = ["RNNState", "SkipRNN"]

#: An LSTM's (h, c) or a GRU's h, each (1, B, hidden).
RNNState = tuple[torch.Tensor, torch.Tensor] | torch.Tensor


class SkipRNN(Recurrent):
    """(B, 1, T) → (B, 1, T): y = x + Linear(h) with ``skip``, else Linear(h); h: one RNN layer.

    ``cell`` is ``"lstm"`` or ``"gru"`` with ``hidden`` units (16–64 is typical for amps and
    pedals). The skip connection lets the recurrent layer learn only the difference between
    the effect and its input. The state starts at zero at sample 0 of a file; ``warmup``
    (samples) is the model's ``receptive_field``: the input that training runs in front of
    each excerpt, outside the loss, so the state has left its zero start when the loss begins.
    """

    def __init__(
        self,
        *,
        cell: Literal["lstm", "gru"] = "lstm",
        hidden: int = 32,
        skip: bool = True,
        warmup: int = 2048,
    ) -> None:
        super().__init__()
        self.receptive_field = warmup
        self.skip = skip
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def _run(self, x: torch.Tensor, state: RNNState | None) -> tuple[torch.Tensor, RNNState]:
        h, state = self.rnn(x.transpose(1, 2), state)
        y = self.head(h).transpose(1, 2)
        return (x + y if self.skip else y), state
