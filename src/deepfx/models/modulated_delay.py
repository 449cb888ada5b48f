"""An LFO-driven modulated delay line: the DSP structure of chorus and flanger effects.

    y[n] = dry·x[n] + wet·x[n − d(n)],  d(n) = centre + depth·sin(2π·rate·n/sample_rate + phase)

(d clipped to a least and a longest delay), with x read between samples by linear
interpolation (differentiable in d). Rate (Hz), phase (rad), centre and depth (ms), dry and
wet gains are learned; :meth:`ModulatedDelay.initialise` measures the delay frame by frame on
training audio and fits the LFO to it, so that gradient training only has to polish (the
loss is far from convex in rate and phase).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import torch
from torch import nn

from deepfx.models.base import HyperparameterError
from deepfx.models.lfo import (
    MAX_RATE_HZ,
    SineLFO,
    analysis_signals,
    check_init_rate,
    energy_centroids,
    explained_energy,
    fit_sine,
    peak_track,
)

__all__ = ["ModulatedDelay"]

#: ms per unit of the raw centre and depth parameters: an Adam step of lr 5e-3 moves them by
#: at most 1.5e-3 ms (0.07 samples at 44.1 kHz).
DELAY_SCALE = 0.3
#: Frame length and hop (samples) of the delay measurement in :meth:`ModulatedDelay.initialise`.
FRAME = 2048
HOP = 1024
#: Delays (ms) closer than this to a frame's best one do not count as its runner-up.
EXCLUDE_MS = 0.5
#: Residual (ms) of a frame's delay from the fitted sine beyond which it counts as mis-measured.
TOLERANCE_MS = 0.3

#: Stream state: the last ``receptive_field - 1`` input samples (B, 1, ·) and the index of the
#: next sample in the file (B,) int64.
DelayState = dict[str, torch.Tensor]


class ModulatedDelay(nn.Module):
    """(B, 1, T) → (B, 1, T): the input plus a copy delayed by a sine-modulated delay.

    The delay is clipped to [``min_delay_ms``, ``max_delay_ms``] (rounded up to whole
    samples; a bucket-brigade or digital chorus has a least delay too). ``init_rate_hz`` is
    the LFO rate before :meth:`initialise` or training. ``receptive_field`` (samples) is the
    longest delay + 1: the span the output depends on when the delay is at its longest.
    """

    time_variant = True

    def __init__(
        self,
        *,
        min_delay_ms: float = 1.0,
        max_delay_ms: float = 30.0,
        init_rate_hz: float = 0.5,
        sample_rate: int,
    ) -> None:
        super().__init__()
        if not 0 < max_delay_ms <= 1000:
            raise HyperparameterError(
                "max_delay_ms", f"must be in (0, 1000] ms, got {max_delay_ms}"
            )
        #: Length of the delay line (samples): the delay is at most ``max_delay - 1``.
        self.max_delay = max(2, math.ceil(max_delay_ms * sample_rate / 1000) + 1)
        #: Range of the delay (samples).
        self.delay_range = (min_delay_ms * sample_rate / 1000, float(self.max_delay - 1))
        if not 0 <= min_delay_ms < max_delay_ms:
            raise HyperparameterError(
                "min_delay_ms",
                f"must be in [0, max_delay_ms = {max_delay_ms}) ms, got {min_delay_ms}",
            )
        check_init_rate(init_rate_hz)
        self.sample_rate = sample_rate
        self.receptive_field = self.max_delay
        self.lfo = SineLFO(init_rate_hz, sample_rate)
        max_ms = self.max_delay * 1000 / sample_rate
        self.raw_centre = nn.Parameter(torch.tensor(0.4 * max_ms / DELAY_SCALE))
        self.raw_depth = nn.Parameter(torch.tensor(0.1 * max_ms / DELAY_SCALE))
        self.dry = nn.Parameter(torch.tensor(1.0))
        self.wet = nn.Parameter(torch.tensor(0.5))

    def delay(self, n: torch.Tensor) -> torch.Tensor:
        """Delay (samples) at the int64 sample indices ``n``, clipped to ``delay_range``."""
        ms = (self.raw_centre + self.raw_depth * self.lfo(n)) * DELAY_SCALE
        return (ms * (self.sample_rate / 1000)).clamp(*self.delay_range)

    def _wet(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """x (B, 1, T) read at n − d(n), by linear interpolation; zeros before x[..., 0].

        The sample n − floor(d) − 1 is read even when its weight is 0 (d at its longest):
        hence the delay line's extra sample."""
        t = torch.arange(x.shape[-1], device=x.device)
        d = self.delay(start[:, None] + t)  # (B, T)
        whole = torch.floor(d).detach()
        frac = d - whole
        newer = t + self.max_delay - whole.long()  # index of x[n - floor(d)] in the padded x
        padded = nn.functional.pad(x[:, 0], (self.max_delay, 0))
        a = padded.gather(1, newer)
        b = padded.gather(1, newer - 1)
        return (a + frac * (b - a))[:, None]

    def forward(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """(B, 1, T), ``start`` (B,) int64 = file index of x[..., 0] → (B, 1, T)."""
        return self.dry * x + self.wet * self._wet(x, start)

    def stream(
        self, x: torch.Tensor, state: DelayState | None
    ) -> tuple[torch.Tensor, DelayState]:
        """The next block (B, 1, n) after ``state`` (None: file start) → (B, 1, n), new state."""
        history = self.receptive_field - 1
        if state is None:
            state = {
                "input": x.new_zeros(x.shape[0], 1, history),
                "position": torch.zeros(x.shape[0], dtype=torch.int64, device=x.device),
            }
        joined = torch.cat([state["input"], x], dim=-1)
        y = self(joined, state["position"] - history)[..., history:]
        return y, {"input": joined[..., -history:], "position": state["position"] + x.shape[-1]}

    def _delay_track(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per frame of FRAME samples: its time (energy centroid of x, samples), delay (ms)
        and weight (see :func:`peak_track`) of the best fit y ≈ a·x + b·x delayed by an
        integer number of samples (all delays at once by FFT cross-correlation)."""
        m = self.max_delay
        starts = np.arange(0, len(x) - FRAME + 1, HOP)
        frame = starts[:, None] + np.arange(FRAME)
        xf, yf = x[frame], y[frame]
        xe = np.concatenate([np.zeros(m), x])[starts[:, None] + np.arange(FRAME + m)]
        size = scipy.fft.next_fast_len(FRAME + m, real=True)
        spectrum = scipy.fft.rfft(xe, size)

        def by_delay(a: np.ndarray) -> np.ndarray:
            """Σ a[i]·x[s + i − d] for d = 0 … m (columns)."""
            lag = scipy.fft.irfft(np.conj(scipy.fft.rfft(a, size)) * spectrum, size)
            return lag[:, m::-1]

        energy = np.concatenate([np.zeros((len(starts), 1)), np.cumsum(xe**2, axis=1)], axis=1)
        sww = (energy[:, FRAME:] - energy[:, : m + 1])[:, ::-1]
        sxx = np.sum(xf**2, axis=1, keepdims=True)
        syx = np.sum(yf * xf, axis=1, keepdims=True)
        score = explained_energy(sxx, sww, by_delay(xf), syx, by_delay(yf))[:, 1:]
        grid = np.arange(1, m + 1) * 1000 / self.sample_rate
        exclude = round(EXCLUDE_MS * self.sample_rate / 1000)
        delay, weight = peak_track(score, grid, np.sum(yf**2, axis=1), exclude)
        return energy_centroids(x, frame), delay, weight

    @torch.no_grad()
    def initialise(self, clean: np.ndarray, processed: np.ndarray) -> None:
        """Fit the LFO and gains to one training file from its sample 0 (1-D float32 each; the
        first seconds of it, see :func:`~deepfx.models.lfo.analysis_signals`; too short a file
        leaves the model as it is).

        The delay is measured in frames (the integer delay whose copy, beside the input, best
        explains the output), a sine is fitted to that track (rate, phase, centre, depth),
        and dry and wet gains are then solved by least squares.
        """
        signals = analysis_signals(clean, processed, 4 * FRAME, self.sample_rate)
        if signals is None:
            return
        x, y = signals
        origin = len(x) // 2
        centres, delay_ms, weight = self._delay_track(x, y)
        centre, depth, rate, phase = fit_sine(
            (centres - origin) / self.sample_rate, delay_ms, weight, MAX_RATE_HZ, TOLERANCE_MS,
            tuple(d * 1000 / self.sample_rate for d in self.delay_range),
        )
        self.lfo.set(rate, phase, origin)
        self.raw_centre.fill_(centre / DELAY_SCALE)
        self.raw_depth.fill_(depth / DELAY_SCALE)
        signal = torch.as_tensor(x, dtype=self.dry.dtype, device=self.dry.device).view(1, 1, -1)
        start = torch.zeros(1, dtype=torch.int64, device=self.dry.device)
        wet = self._wet(signal, start)[0, 0].cpu().double().numpy()
        gains, *_ = np.linalg.lstsq(np.stack([x, wet], axis=1), y, rcond=None)
        self.dry.fill_(float(gains[0]))
        self.wet.fill_(float(gains[1]))
