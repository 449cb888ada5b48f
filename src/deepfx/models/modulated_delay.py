"""LFO-driven modulated delay lines with feedback: the DSP structure of chorus and flanger.

    y[n] = dry·x[n] + Σ_j wet_j·v_j[n − d_j(n)],  v_j[n] = x[n] + feedback·v_j[n − d_j(n)],
    d_j(n) = centre + depth·sin(2π·rate·n/sample_rate + phase + offset_j)

for the ``voices`` j (offset_0 = 0: one LFO, the others' phases spread as a multi-voice
chorus spreads them)
(d clipped to a least and a longest delay), with x read between samples by linear
interpolation (differentiable in d). The feedback loop is unrolled: v[n − d(n)] is the sum
over k = 1 … ``echoes`` of feedback^(k−1)·x[n − τ_k(n)], τ_1 = d(n), τ_(k+1) = τ_k + d(n − τ_k)
(each trip round the loop reads the delay the LFO had when the sample entered it), exact up
to the echoes left out. Rate (Hz), phase (rad), centre and depth (ms), feedback, dry and wet
gains, voice offsets are learned; :meth:`ModulatedDelay.initialise` measures the delay frame
by frame on training audio, fits the LFO to it, then the feedback, adds voices while they
explain the output better, and solves the gains, so that gradient training only has to
polish (the loss is far from convex in rate and phase).
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
#: :meth:`ModulatedDelay.initialise`: seconds of audio the feedback is fitted on, the feedback
#: values tried (then a finer grid around the best), and the level (of the first echo) below
#: which later echoes are left out of the model.
FEEDBACK_SECONDS = 8.0
FEEDBACK_GRID = np.linspace(-0.95, 0.95, 39)
ECHO_FLOOR = 0.01
#: :meth:`ModulatedDelay.initialise`: LFO phase offsets tried for each further voice, and the
#: share of the output's energy a voice must explain to be kept.
VOICE_OFFSETS = np.linspace(0.0, 2 * np.pi, 49)[1:-1]
VOICE_FLOOR = 0.01

#: Stream state: the last ``receptive_field - 1`` input samples (B, 1, ·) and the index of the
#: next sample in the file (B,) int64.
DelayState = dict[str, torch.Tensor]


class ModulatedDelay(nn.Module):
    """(B, 1, T) → (B, 1, T): the input plus the outputs of sine-modulated delay lines (the
    voices, one LFO at spread phases) whose outputs feed back into them.

    The delay is clipped to [``min_delay_ms``, ``max_delay_ms``] (rounded up to whole
    samples; a bucket-brigade or digital chorus has a least delay too). ``init_rate_hz`` is
    the LFO rate before :meth:`initialise` or training. ``echoes`` (a buffer, 1 … ``max_echoes``;
    1 until :meth:`initialise` fits a feedback) is how many trips round the feedback loop the
    model follows; ``voices`` (a buffer, 1 … ``max_voices``) how many delay lines it reads. ``receptive_field`` (samples) is echoes × the longest delay + 1: the span
    the output depends on when the delay is at its longest.
    """

    time_variant = True

    def __init__(
        self,
        *,
        min_delay_ms: float = 1.0,
        max_delay_ms: float = 30.0,
        init_rate_hz: float = 0.5,
        max_echoes: int = 16,
        max_voices: int = 3,
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
        self.max_echoes = max_echoes
        self.lfo = SineLFO(init_rate_hz, sample_rate)
        max_ms = self.max_delay * 1000 / sample_rate
        self.raw_centre = nn.Parameter(torch.tensor(0.4 * max_ms / DELAY_SCALE))
        self.raw_depth = nn.Parameter(torch.tensor(0.1 * max_ms / DELAY_SCALE))
        self.dry = nn.Parameter(torch.tensor(1.0))
        self.wet = nn.Parameter(torch.tensor(0.5))
        self.feedback = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("echoes", torch.ones((), dtype=torch.int64))  # set by initialise
        #: The voices after the first: LFO phase offsets (rad) and gains.
        self.max_voices = max_voices
        self.voice_offsets = nn.Parameter(torch.zeros(max_voices - 1))
        self.voice_gains = nn.Parameter(torch.zeros(max_voices - 1))
        self.register_buffer("voices", torch.ones((), dtype=torch.int64))  # set by initialise

    @property
    def receptive_field(self) -> int:
        """echoes × the longest delay + 1 (samples; the + 1: see :meth:`_echoes`)."""
        return int(self.echoes) * (self.max_delay - 1) + 1

    def delay(
        self, n: torch.Tensor, before: torch.Tensor | None = None, ahead: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Delay (samples) at the int64 sample indices ``n`` (``before`` samples earlier, if
        given; ``ahead`` rad of LFO phase ahead, another voice's), clipped to ``delay_range``."""
        ms = (self.raw_centre + self.raw_depth * self.lfo(n, before, ahead)) * DELAY_SCALE
        return (ms * (self.sample_rate / 1000)).clamp(*self.delay_range)

    def _echoes(
        self, x: torch.Tensor, start: torch.Tensor, count: int, ahead: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, 1, T) read at n − τ_k(n) for k = 1 … ``count`` (the voice whose LFO is
        ``ahead`` rad ahead), by linear interpolation; zeros before x[..., 0]: (B, count, T).

        The sample n − floor(τ) − 1 is read even when its weight is 0 (τ at its longest):
        hence the receptive field's extra sample."""
        t = torch.arange(x.shape[-1], device=x.device)
        n = start[:, None] + t  # (B, T)
        pad = count * (self.max_delay - 1) + 1
        padded = nn.functional.pad(x[:, 0], (pad, 0))
        total = self.delay(n, ahead=ahead)
        reads = []
        for k in range(count):
            if k:
                total = total + self.delay(n, total, ahead)
            whole = torch.floor(total).detach()
            frac = total - whole
            newer = t + pad - whole.long()  # index of x[n - floor(τ)] in the padded x
            a = padded.gather(1, newer)
            b = padded.gather(1, newer - 1)
            reads.append(a + frac * (b - a))
        return torch.stack(reads, dim=1)

    def _line(
        self, x: torch.Tensor, start: torch.Tensor, ahead: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One voice's delay-line output v[n − d(n)] (B, 1, T) for input x (B, 1, T)."""
        count = int(self.echoes)
        reads = self._echoes(x, start, count, ahead)
        if count == 1:
            return reads
        gains = self.feedback ** torch.arange(count, device=x.device, dtype=x.dtype)
        return torch.einsum("bkt,k->bt", reads, gains)[:, None]

    def forward(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """(B, 1, T), ``start`` (B,) int64 = file index of x[..., 0] → (B, 1, T)."""
        y = self.dry * x + self.wet * self._line(x, start)
        for j in range(int(self.voices) - 1):
            y = y + self.voice_gains[j] * self._line(x, start, self.voice_offsets[j])
        return y

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
        """Fit the LFO, feedback and gains to one training file from its sample 0 (1-D float32
        each; the first seconds of it, see :func:`~deepfx.models.lfo.analysis_signals`; too
        short a file leaves the model as it is).

        The delay is measured in frames (the integer delay whose copy, beside the input, best
        explains the output), a sine is fitted to that track (rate, phase, centre, depth),
        then the feedback (:meth:`_fit_feedback`), the voices and the gains by least squares
        (:meth:`_add_voices`).
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
        self.raw_centre.fill_(centre / DELAY_SCALE)
        self.raw_depth.fill_(depth / DELAY_SCALE)
        self.lfo.set(rate, phase, origin)
        feedback = self._fit_feedback(x, y)
        self.feedback.fill_(feedback)
        self.echoes.fill_(1)  # a start fitted before (see deepfx.train) may have left more
        if abs(feedback) >= ECHO_FLOOR:
            needed = math.ceil(math.log(ECHO_FLOOR) / math.log(abs(feedback)))
            self.echoes.fill_(min(max(needed, 1), self.max_echoes))
        self._add_voices(x, y)

    def _fit_feedback(self, x: np.ndarray, y: np.ndarray) -> float:
        """The feedback of the least-squares fit y ≈ dry·x + wet·Σ_k feedback^(k−1)·e_k
        on the first FEEDBACK_SECONDS (e_k: x after k trips round the delay line, up to
        ``max_echoes``): feedback on FEEDBACK_GRID, then on a grid 20 times finer around the
        best; dry and wet solved for each."""
        signal, start, n = self._fit_signal(x)
        reads = self._echoes(signal, start, self.max_echoes)[0].cpu().double().numpy()

        def fit(feedback: float) -> tuple[float, np.ndarray]:
            return _least_squares([x[:n], (feedback ** np.arange(self.max_echoes)) @ reads], y[:n])

        step = FEEDBACK_GRID[1] - FEEDBACK_GRID[0]
        best = min(FEEDBACK_GRID, key=lambda f: fit(f)[0])
        fine = np.clip(best + np.linspace(-step, step, 41), FEEDBACK_GRID[0], FEEDBACK_GRID[-1])
        return float(min(fine, key=lambda f: fit(f)[0]))

    def _add_voices(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add voices one by one, each at the phase offset (of VOICE_OFFSETS) that explains
        most of the output beside the voices before it, while one explains at least
        VOICE_FLOOR of the output's energy; then solve dry and every voice's gain."""
        signal, start, n = self._fit_signal(x)

        def line(offset: float | None) -> np.ndarray:
            ahead = None if offset is None else torch.tensor(offset, dtype=signal.dtype)
            return self._line(signal, start, ahead)[0, 0].cpu().double().numpy()

        regressors, offsets = [x[:n], line(None)], []
        error, gains = _least_squares(regressors, y[:n])
        floor = VOICE_FLOOR * float(np.sum(y[:n] ** 2))
        while len(offsets) < self.max_voices - 1:
            tried = [(_least_squares([*regressors, line(o)], y[:n]), o) for o in VOICE_OFFSETS]
            (better, fitted), offset = min(tried, key=lambda t: t[0][0])
            if error - better < floor:
                break
            regressors.append(line(offset))
            offsets.append(float(offset))
            error, gains = better, fitted
        self.voices.fill_(1 + len(offsets))
        self.dry.fill_(float(gains[0]))
        self.wet.fill_(float(gains[1]))
        self.voice_offsets.zero_()
        self.voice_gains.zero_()
        for j, offset in enumerate(offsets):
            self.voice_offsets[j] = offset
            self.voice_gains[j] = float(gains[2 + j])

    def _fit_signal(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The first FEEDBACK_SECONDS of ``x`` as a (1, 1, n) tensor, its start, and n."""
        n = min(len(x), int(FEEDBACK_SECONDS * self.sample_rate))
        signal = torch.as_tensor(x[:n], dtype=self.dry.dtype, device=self.dry.device)
        return signal.view(1, 1, -1), torch.zeros(1, dtype=torch.int64, device=signal.device), n


def _least_squares(regressors: list[np.ndarray], target: np.ndarray) -> tuple[float, np.ndarray]:
    """(squared error, gains) of the least-squares fit target ≈ Σ gains_i·regressors_i."""
    basis = np.stack(regressors, axis=1)
    gains, *_ = np.linalg.lstsq(basis, target, rcond=None)
    return float(np.sum((target - basis @ gains) ** 2)), gains
