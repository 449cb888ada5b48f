"""WaveNet-style temporal convolutional network: a stack of dilated causal convolutions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TCN"]


class _Layer(nn.Module):
    """One dilated causal conv with a gated (tanh·sigmoid) or tanh activation.

    Returns the residual-updated signal and this layer's skip contribution.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, gated: bool) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.gated = gated
        width = 2 * channels if gated else channels
        self.conv = nn.Conv1d(channels, width, kernel_size, dilation=dilation)
        self.out = nn.Conv1d(channels, 2 * channels, 1)  # residual and skip, one matmul

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv(F.pad(x, (self.pad, 0)))
        if self.gated:
            a, b = h.chunk(2, dim=1)
            h = torch.tanh(a) * torch.sigmoid(b)
        else:
            h = torch.tanh(h)
        residual, skip = self.out(h).chunk(2, dim=1)
        return x + residual, skip


class TCN(nn.Module):
    """(B, 1, T) → (B, 1, T): 1×1 conv in, ``stacks`` × ``dilations`` causal layers, 1×1 head.

    Each layer is a dilated conv (``kernel_size`` taps) with a ``"gated"`` (tanh·sigmoid, as in
    WaveNet) or ``"tanh"`` activation, then a residual and a skip 1×1 conv. Each layer left-pads
    its own input, so output t depends on inputs t - receptive_field + 1 … t only; the head
    reads the sum of all layers' skip outputs. The defaults are the size of Neural Amp
    Modeler's "standard" WaveNet: two stacks of dilations 1…512, ~15 k parameters, a
    receptive field of 4093 samples.
    """

    def __init__(
        self,
        *,
        channels: int = 12,
        kernel_size: int = 3,
        dilations: Sequence[int] = tuple(2**i for i in range(10)),
        stacks: int = 2,
        activation: Literal["gated", "tanh"] = "tanh",
    ) -> None:
        super().__init__()
        dilations = [int(d) for d in dilations] * stacks
        self.receptive_field = 1 + (kernel_size - 1) * sum(dilations)
        self.input = nn.Conv1d(1, channels, 1)
        self.layers = nn.ModuleList(
            _Layer(channels, kernel_size, d, activation == "gated") for d in dilations
        )
        self.head = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x)
        skips = torch.zeros_like(x)
        for layer in self.layers:
            x, skip = layer(x)
            skips = skips + skip
        return self.head(skips)
