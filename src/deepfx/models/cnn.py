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
    runs with stride 1, and the first Linear is applied to every POOL-th pooled feature of each
    output's span (one matrix product), so no window's conv work is repeated.
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

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, C, T + 2·(pooled - 1)): the encoder over the left zero-padded input,
        max-pooled with stride 1 (every window's pooled features, interleaved)."""
        return F.max_pool1d(self._encode(F.pad(x, (self.receptive_field - 1, 0))), POOL, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T); output t sees inputs t-window+1 … t (zeros before 0)."""
        h = self.pooled_features(x)
        first, second, last = self.linears
        # each output's pooled features: every POOL-th of a span, as one matrix product (a
        # dilated conv does the same sums several times slower on a CPU)
        features = h.unfold(2, POOL * (self.pooled - 1) + 1, 1)[..., ::POOL]  # (B, C, T, pooled)
        kernel = first.weight.view(first.out_features, -1, self.pooled)
        z = F.relu(torch.einsum("bctp,ocp->bto", features, kernel) + first.bias)
        return last(F.relu(second(z))).transpose(1, 2)

    def onnx_module(self) -> nn.Module:
        """The same network with the Linears as (dilated) convolutions: ONNX has no unfold."""
        return _AsConvolutions(self)


class _AsConvolutions(nn.Module):
    """:class:`SeedCNN` as convolutions only: the first Linear is a conv of dilation POOL over
    the pooled features, the others 1×1 convs."""

    def __init__(self, cnn: SeedCNN) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second, last = self.cnn.linears
        kernel = first.weight.view(first.out_features, -1, self.cnn.pooled)
        h = F.relu(F.conv1d(self.cnn.pooled_features(x), kernel, first.bias, dilation=POOL))
        h = F.relu(F.conv1d(h, second.weight[..., None], second.bias))
        return F.conv1d(h, last.weight[..., None], last.bias)
