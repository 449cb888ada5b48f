"""The seed's CNN: a window of past samples predicts the current sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepfx.models.base import HyperparameterError

__all__ = ["SeedCNN"]

#: Conv1d layers of the window encoder.
CONV_LAYERS = 6
#: Taps of each conv layer (samples); the convs are unpadded ("valid").
KERNEL_SIZE = 3
#: Max-pool width and stride (samples) after the conv layers.
POOL = 2


class SeedCNN(nn.Module):
    """A window of ``window`` samples ending at t predicts output sample t.

    Per window: 6 unpadded Conv1d layers (3 taps, ReLU after each), a max-pool of 2, then
    3 Linear layers (``hidden`` → ``hidden`` → 1, ReLU between). :meth:`predict_windows` is that
    literal per-window form. :meth:`forward` computes the same numbers for every window of a
    sequence at once: the convs run once over the whole (left zero-padded) sequence, the pool
    runs with stride 1, and the first Linear is applied as a convolution with dilation 2 over
    the pooled features, so no window's conv work is repeated.
    """

    def __init__(self, *, window: int = 64, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        conv_out = window - CONV_LAYERS * (KERNEL_SIZE - 1)
        if conv_out < POOL or conv_out % POOL:
            raise HyperparameterError(
                "window",
                f"{window} does not fit the {CONV_LAYERS} conv layers; "
                f"use an even number of samples >= {CONV_LAYERS * (KERNEL_SIZE - 1) + POOL}",
            )
        self.receptive_field = window
        self.pooled = conv_out // POOL
        self.convs = nn.ModuleList(
            nn.Conv1d(1 if i == 0 else channels, channels, KERNEL_SIZE)
            for i in range(CONV_LAYERS)
        )
        self.linears = nn.ModuleList(
            [
                nn.Linear(channels * self.pooled, hidden),
                nn.Linear(hidden, hidden),
                nn.Linear(hidden, 1),
            ]
        )

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x))
        return x

    def predict_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, 1, window) input windows → (N, 1) predictions of each window's last sample."""
        h = F.max_pool1d(self._encode(windows), POOL).flatten(1)
        first, second, last = self.linears
        return last(F.relu(second(F.relu(first(h)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T); output t sees inputs t-window+1 … t (zeros before 0)."""
        h = self._encode(F.pad(x, (self.receptive_field - 1, 0)))
        h = F.max_pool1d(h, POOL, stride=1)
        first, second, last = self.linears
        kernel = first.weight.view(first.out_features, -1, self.pooled)
        h = F.relu(F.conv1d(h, kernel, first.bias, dilation=POOL))
        h = F.relu(F.conv1d(h, second.weight[..., None], second.bias))
        return F.conv1d(h, last.weight[..., None], last.bias)
