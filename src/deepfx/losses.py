"""Loss functions: pre-emphasised ESR for training, plain ESR and MR-STFT for evaluation."""

from __future__ import annotations

import math

import auraloss
import numpy as np
import torch
from torch import nn

__all__ = ["ESRLoss", "esr", "mrstft"]


class ESRLoss(nn.Module):
    """Error-to-signal ratio after first-order pre-emphasis (Wright & Välimäki, 2019).

    Both signals (B, 1, T) pass auraloss' FIR high-pass y[n] = x[n-1] - coef·x[n] (zero before
    n = 0); the loss is sum((target - input)²) / sum(target²) over the whole batch, one ratio,
    so a near-silent excerpt cannot dominate the batch.
    """

    def __init__(self, pre_emphasis: float = 0.85) -> None:
        super().__init__()
        if isinstance(pre_emphasis, bool) or not isinstance(pre_emphasis, (int, float)) or not (
            math.isfinite(pre_emphasis) and 0.0 <= pre_emphasis <= 1.0
        ):
            raise ValueError(f"pre_emphasis must be a number in [0, 1], got {pre_emphasis!r}")
        self.pre_emphasis = float(pre_emphasis)
        # ntaps=3 makes auraloss pad by one sample (its default, 101, pads by 50 and appends
        # 98 samples, one of them the unfiltered last input sample).
        self.filter = auraloss.perceptual.FIRFilter(
            filter_type="hp", coef=self.pre_emphasis, ntaps=3
        )
        self.esr = auraloss.time.ESRLoss()

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the prediction ``input`` against ``target``, both (B, 1, T)."""
        input, target = self.filter(input, target)
        return self.esr(input.reshape(1, 1, -1), target.reshape(1, 1, -1))


def _as_batch(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(1, 1, -1)


def esr(prediction: np.ndarray, target: np.ndarray) -> float:
    """Plain error-to-signal ratio sum((target - prediction)²) / sum(target²) of 1-D signals."""
    return float(auraloss.time.ESRLoss()(_as_batch(prediction), _as_batch(target)))


def mrstft(prediction: np.ndarray, target: np.ndarray) -> float:
    """auraloss' multi-resolution STFT loss (FFT sizes 512/1024/2048 samples) of two 1-D signals."""
    with torch.no_grad():
        loss = auraloss.freq.MultiResolutionSTFTLoss()
        return float(loss(_as_batch(prediction), _as_batch(target)))
