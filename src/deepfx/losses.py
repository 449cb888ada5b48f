"""Loss functions: pre-emphasised ESR for training; plain ESR, MR-STFT and log-mel distance for
evaluation."""

from __future__ import annotations

import math

import auraloss
import librosa
import numpy as np
import torch
from torch import nn

__all__ = ["ESRLoss", "TrainingLoss", "esr", "log_mel_distance", "mrstft"]


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


class TrainingLoss(nn.Module):
    """A training objective by name: ``esr`` (pre-emphasised, :class:`ESRLoss`), ``mrstft``
    (auraloss' multi-resolution STFT loss, FFT sizes 512/1024/2048 samples) or their sum."""

    def __init__(self, name: str, pre_emphasis: float = 0.85) -> None:
        super().__init__()
        parts = name.split("+")
        if not parts or any(part not in ("esr", "mrstft") for part in parts):
            raise ValueError(f"unknown loss {name!r}; use esr, mrstft or esr+mrstft")
        self.esr = ESRLoss(pre_emphasis) if "esr" in parts else None
        self.mrstft = auraloss.freq.MultiResolutionSTFTLoss() if "mrstft" in parts else None

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the prediction ``input`` against ``target``, both (B, 1, T)."""
        terms = [fn(input, target) for fn in (self.esr, self.mrstft) if fn is not None]
        return sum(terms[1:], terms[0])


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


#: Log-mel analysis of :func:`log_mel_distance`: FFT size and hop (samples), mel bands, range (dB).
_MEL_FFT, _MEL_HOP, _MEL_BANDS, _MEL_RANGE_DB = 2048, 512, 128, 80.0


def _log_mel(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mel power spectrogram of a 1-D signal in dB (10·log10 of the power), (bands, frames)."""
    power = librosa.feature.melspectrogram(
        y=np.asarray(x, dtype=np.float32),
        sr=sample_rate,
        n_fft=_MEL_FFT,
        hop_length=_MEL_HOP,
        n_mels=_MEL_BANDS,
    )
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def log_mel_distance(prediction: np.ndarray, target: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference (dB) of two equally long 1-D signals' log-mel power spectrograms.

    librosa's mel spectrogram (2048-sample FFT, 512-sample hop, 128 bands) of each, in dB, both
    clipped below at the target's maximum − 80 dB, so silence and inaudible detail far below
    the target's level count as equal. Insensitive to phase, unlike ESR: the metric for
    effects such as pitch shifting.
    """
    if np.shape(prediction) != np.shape(target) or np.ndim(target) != 1:
        raise ValueError(
            "expected two 1-D signals of one length, "
            f"got {np.shape(prediction)} and {np.shape(target)}"
        )
    want = _log_mel(target, sample_rate)
    floor = want.max() - _MEL_RANGE_DB
    got = np.maximum(_log_mel(prediction, sample_rate), floor)
    return float(np.mean(np.abs(got - np.maximum(want, floor))))
