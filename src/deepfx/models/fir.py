"""A learned long FIR filter (linear, time-invariant) applied by FFT convolution."""

from __future__ import annotations

import numpy as np
import torch
from scipy.fft import next_fast_len
from scipy.linalg import solve_toeplitz
from torch import nn

from deepfx.models.base import HyperparameterError

__all__ = ["RIDGE", "FIR", "fft_convolve", "wiener_taps"]

#: Ridge added to the input's autocorrelation at lag 0, relative to it: bands whose input power
#: lies more than 60 dB below the average spectral level are pulled towards a gain of zero
#: instead of being fitted to round-off.
RIDGE = 1e-6


def fft_convolve(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution of ``x`` (..., T) with ``taps`` (N,), cut to T samples.

    Exact up to FFT round-off (about 1e-7 of the signal in float32, 1e-15 in float64), so an
    output sample depends on later input samples only at that level.
    """
    n = x.shape[-1]
    size = next_fast_len(n + taps.shape[-1] - 1, real=True)
    spectrum = torch.fft.rfft(x, size) * torch.fft.rfft(taps, size)
    return torch.fft.irfft(spectrum, size)[..., :n]


def wiener_taps(
    clean: np.ndarray, processed: np.ndarray, taps: int, ridge: float = RIDGE
) -> np.ndarray:
    """Least-squares FIR (``taps`` samples, float64) from ``clean`` to ``processed`` (1-D).

    Solves the Wiener-Hopf equations R h = p: R is the Toeplitz matrix of the input's
    autocorrelation (lags 0 … taps-1, ``ridge`` (default :data:`RIDGE`) added at lag 0), p the
    cross-correlation of output and input; both come from one FFT of the whole signal and
    the system is solved by Levinson recursion (O(taps²) operations: about 1 s for 26 k taps).
    """
    x = np.asarray(clean, dtype=np.float64)
    y = np.asarray(processed, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"clean and processed must be 1-D signals of one length, got {x.shape} and {y.shape}"
        )
    size = next_fast_len(len(x) + taps, real=True)
    spectrum = np.fft.rfft(x, size)
    autocorrelation = np.fft.irfft(np.abs(spectrum) ** 2, size)[:taps]
    cross = np.fft.irfft(np.conj(spectrum) * np.fft.rfft(y, size), size)[:taps]
    if not autocorrelation[0] > 0:
        raise ValueError("clean is silent: a filter cannot be estimated from it")
    autocorrelation[0] *= 1.0 + ridge
    return solve_toeplitz(autocorrelation, cross)


class FIR(nn.Module):
    """(B, 1, T) → (B, 1, T): convolution with ``length_ms`` of learned impulse response.

    Models linear time-invariant effects with finite memory (filters, delay, reverb tails cut
    where they have decayed). The learned parameters are the impulse response's discrete
    Fourier transform (real and imaginary part per bin, ``taps // 2 + 1`` bins), not the taps:
    each Adam step then moves every frequency band by about the learning rate whatever its
    level in the training signal, which converges far faster than moving taps. It starts as
    the identity (a unit impulse); :meth:`initialise` fits it in closed form, after which
    gradient steps should be small (learning rate about 1e-4: at 5e-3 Adam's first steps add
    about 3e-4 of ESR to an exact fit). The receptive field is the number of taps,
    ``round(length_ms · sample_rate / 1000)``.
    """

    def __init__(self, *, length_ms: float = 600.0, sample_rate: int) -> None:
        super().__init__()
        taps = int(round(length_ms * 1e-3 * sample_rate))
        if taps < 1:
            sample_ms = 1e3 / sample_rate
            raise HyperparameterError(
                "length_ms", f"must be at least one sample ({sample_ms:.4g} ms), got {length_ms}"
            )
        self.receptive_field = taps
        response = torch.zeros(taps // 2 + 1, 2)
        response[:, 0] = 1.0
        self.response = nn.Parameter(response)

    def taps(self) -> torch.Tensor:
        """The impulse response (``receptive_field`` samples) the parameters stand for."""
        return torch.fft.irfft(torch.view_as_complex(self.response), self.receptive_field)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft_convolve(x, self.taps())

    @torch.no_grad()
    def onnx_module(self) -> nn.Module:
        """This filter as a direct causal convolution (zeros padded before the input, then a
        ``Conv1d`` holding the taps), which ONNX expresses; it has no complex numbers for the
        FFT. Equal to :meth:`forward` up to float32 round-off; a snapshot of the current taps."""
        taps = self.taps()
        conv = nn.Conv1d(1, 1, taps.numel(), bias=False)
        conv.weight.copy_(taps.flip(-1).view(1, 1, -1))  # Conv1d correlates: reverse the taps
        return nn.Sequential(nn.ConstantPad1d((taps.numel() - 1, 0), 0.0), conv)

    @torch.no_grad()
    def initialise(self, clean: np.ndarray, processed: np.ndarray) -> None:
        """Set the filter to the least-squares fit (:func:`wiener_taps`) of ``processed`` from
        ``clean`` (1-D float32 training signals of equal length)."""
        taps = wiener_taps(clean, processed, self.receptive_field)
        response = np.fft.rfft(taps)
        self.response.copy_(torch.from_numpy(np.stack([response.real, response.imag], axis=-1)))
