"""A causal pitch shifter by any frequency ratio (2 = one octave up, 0.5 = one down, 1.4983 =
a fifth up) with a learned output spectral envelope and the effect's own lag.

Every ``grain // 4`` samples (the hop) the last ``n_fft`` input samples are windowed (Hann) and
transposed. An integer ``ratio`` transposes in the frequency domain: the frame is
zero-padded to ``ratio · n_fft`` and transformed; bin k then lies at k / ratio of the frequency
of bin k of an ``n_fft``-point transform, so keeping the magnitude and multiplying the phase by
``ratio`` (X · (X / |X|)^(ratio - 1)) gives the spectrum of the frame transposed up by
``ratio``. Multiplying phases keeps both the absolute phase of steady partials (successive
frames agree, so no phase propagation is needed) and the position of events inside the frame.
The inverse transform is the transposed frame under the analysis window squeezed ``ratio``
times about its centre. Any other ratio takes a phase vocoder: output bin j gets the
magnitude of input bin j / ratio (interpolated) and a phase that advances from frame to frame
by ``ratio`` times that bin's instantaneous frequency (measured from the phase change since
the last frame); its whole frames are overlap-added under a second Hann window, so it answers
``n_fft - 1`` samples late (its ``latency``; ``delay`` and ``grain`` serve the integer path).
For the integer path, the model keeps the ``grain``-sample piece of it that starts ``delay``
samples before the frame's last sample, divides out that envelope, and overlap-adds the
pieces (Hann, 4× overlap) from the frame's last sample on. So output t renders the input
around t - ``delay``: causal, with a latency (attribute ``latency``) of ``delay`` samples.

Pedalboard compensates Rubber Band's latency (its output even leads the input a little), so a
causal model trails it; the log-mel distance to the effect is far smaller when the host
compensates ``latency`` too (drops the first ``latency`` output samples). The default
(``n_fft`` 2048, piece centred in the frame, ``delay`` 1087) is the best compensated setting
measured; without compensation ``n_fft`` 1536, ``delay`` 704 trails the effect least.

Learned: the output gain in dB at ``n_bands`` frequencies spaced evenly on the mel scale
(0 Hz … Nyquist), linearly interpolated (in mel) between them for every bin. No dry signal:
measured, any dry leak only moves the output further from Rubber Band's (pedalboard's
``PitchShift``).

Many shifters (Rubber Band's LV2 plugin: 8192 samples; octave dividers) answer late and do not
say so. :meth:`PitchShifter.initialise` measures that ``lag`` (samples, up to ``max_lag_ms``)
from the training audio and delays the input by it: unlike ``latency``, the lag is the effect's
and stays in the output.

Training: the phase of the effect's output is arbitrary, so ESR is meaningless. Call
:meth:`PitchShifter.initialise` (closed form, seconds), then, if at all, fine-tune on a
magnitude loss (auraloss' multi-resolution STFT loss).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from deepfx.models.base import HyperparameterError

__all__ = ["PitchShifter", "PitchShifterState"]

#: (input history (B, n_fft - 1 + lag), pending overlap-add output (B, grain), samples seen mod
#: hop (), and for the phase vocoder the last frame's analysis and synthesis phases (B, bins),
#: float64; NaN analysis phases at the file start).
PitchShifterState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

#: Smallest squeezed-window value the kept piece may sit under (it is divided out).
_MIN_ENVELOPE = 0.05
#: initialise(): analysis of the level match (FFT size, hop, samples) and the range (dB) below
#: the processed signal's loudest band in which frames count.
_FIT_FFT, _FIT_HOP, _FIT_RANGE_DB = 2048, 512, 60.0
#: initialise(): largest gain (dB) it sets, up or down.
_FIT_LIMIT_DB = 24.0
#: initialise(): the model runs over the clean signal in blocks of this many samples.
_FIT_CHUNK = 65_536
#: initialise(): resolution (samples) of the lag search: frames of the level envelopes.
_LAG_HOP = 64
#: Ratios this close to an integer take the frequency-domain (phase-multiplying) path.
_INTEGER_TOLERANCE = 1e-9


def _hann(n: int) -> torch.Tensor:
    """sin²(π (i + ½) / n), i = 0 … n-1: symmetric about (n - 1) / 2, no zero end points;
    copies shifted by n/4 sum to 2."""
    return torch.sin(math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n) ** 2


def _band_weights(freqs_hz: np.ndarray, n_bands: int, sample_rate: int) -> np.ndarray:
    """(len(freqs_hz), n_bands) weights interpolating linearly in mel between ``n_bands`` points
    spaced evenly on the mel scale from 0 Hz to the Nyquist frequency (each row sums to 1)."""

    def mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    points = np.linspace(0.0, mel(np.asarray(sample_rate / 2.0)), n_bands)
    return np.stack([np.interp(mel(freqs_hz), points, row) for row in np.eye(n_bands)], 1)


class PitchShifter(nn.Module):
    """(B, 1, T) → (B, 1, T): the input transposed ``ratio`` times in frequency, ``delay``
    samples late (plus the effect's own ``lag``), with a learned output equaliser.

    ``n_fft`` (samples, even): analysis window (longer: sharper partials, slower onsets);
    ``grain`` (samples, multiple of 4): piece overlap-added per frame, 4 per grain;
    ``delay`` (samples): the latency, i.e. how far before the frame end the kept piece starts;
    ``ratio``: output/input frequency (2: octave up, 0.5: octave down, 2^(7/12): a fifth up);
    ``n_bands``: learned gains (mel-spaced); ``max_lag_ms``: the longest lag of the effect that
    :meth:`initialise` looks for (0: none). Frames end at every multiple of the hop counted
    from the first sample given (a fixed grid, so ``stream`` carries it across blocks).
    ``receptive_field`` is ``n_fft + grain - 1`` plus the lag: the span for outputs whose oldest contributing frame ends exactly ``grain - 1`` samples
    earlier; other outputs reach up to ``hop - 1`` samples less far back.
    The effect is judged by the log-mel distance (``METRIC``): a transposed waveform's error is
    mostly phase and says little.
    """

    METRIC = "log_mel"

    def __init__(
        self,
        *,
        n_fft: int = 2048,
        grain: int = 128,
        delay: int = 1087,
        ratio: float = 2.0,
        n_bands: int = 48,
        max_lag_ms: float = 300.0,
        sample_rate: int,
    ) -> None:
        super().__init__()
        if not 0.25 <= ratio <= 4.0 or ratio == 1.0:
            raise HyperparameterError("ratio", f"must be in [0.25, 4] and not 1, got {ratio}")
        if not 0.0 <= max_lag_ms <= 2000.0:
            raise HyperparameterError("max_lag_ms", f"must be in [0, 2000] ms, got {max_lag_ms}")
        if n_fft % 2:
            raise HyperparameterError("n_fft", f"must be even, got {n_fft}")
        if grain % 4 or grain > n_fft:
            raise HyperparameterError("grain", f"must be a multiple of 4 up to n_fft, got {grain}")
        if n_bands < 2:
            raise HyperparameterError("n_bands", f"must be at least 2, got {n_bands}")
        first = n_fft - 1 - delay  # frame position of the kept piece's first sample
        if first < 0 or first + grain > n_fft:
            raise HyperparameterError(
                "delay",
                f"must lie in [grain - 1, n_fft - 1] = [{grain - 1}, {n_fft - 1}], got {delay}",
            )
        window = _hann(n_fft)
        centre = (n_fft - 1) / 2
        piece = torch.arange(first, first + grain, dtype=torch.float64)
        squeezed = centre + ratio * (piece - centre)
        inside = (squeezed >= -0.5) & (squeezed <= n_fft - 0.5)
        envelope = torch.where(
            inside, torch.sin(math.pi * (squeezed + 0.5) / n_fft) ** 2, torch.zeros(())
        )
        if envelope.min() < _MIN_ENVELOPE:
            raise HyperparameterError(
                "delay",
                f"{delay} keeps a piece where the squeezed window falls below {_MIN_ENVELOPE}; "
                f"with ratio {ratio}, keep the piece nearer the middle of the {n_fft}-sample frame",
            )
        self.n_fft, self.grain, self.hop, self.ratio = n_fft, grain, grain // 4, ratio
        #: The integer ratio of the frequency-domain path, or None (the phase vocoder).
        self.whole = round(ratio) if abs(ratio - round(ratio)) < _INTEGER_TOLERANCE else None
        self.sample_rate = int(sample_rate)
        self.max_lag = int(round(max_lag_ms * sample_rate / 1000))  # samples
        self.register_buffer("lag", torch.zeros((), dtype=torch.int64))  # set by initialise
        #: Samples each frame adds to the output: the kept piece, or the vocoder's whole frame.
        self.span = grain if self.whole else n_fft
        self.latency = delay if self.whole else n_fft - 1  # samples
        self._first = first
        self.register_buffer("window", window.float(), persistent=False)
        # synthesis weight: Hann over the piece (its 4 overlapping copies sum to 2) over the
        # transposed frame's envelope: the squeezed window, times ratio (the frame's spectral
        # peaks keep their height while the output bins are ratio times wider)
        synthesis = _hann(grain) / (2.0 * ratio * envelope)
        if self.whole is None:  # whole frames under a second Hann window, overlap-added
            synthesis = _hann(n_fft) * self.hop / torch.sum(_hann(n_fft) ** 2)
        self.register_buffer("synthesis", synthesis.float(), persistent=False)
        # phase vocoder: output bin j reads input bin j / ratio (interpolated; none past Nyquist)
        source = torch.arange(n_fft // 2 + 1, dtype=torch.float64) / ratio
        lower = source.floor().clamp(max=n_fft // 2 - 1)
        self.register_buffer("source_bin", lower.long(), persistent=False)
        self.register_buffer("source_weight", (source - lower).clamp(max=1.0), persistent=False)
        self.register_buffer("source_inside", (source <= n_fft // 2).double(), persistent=False)
        # dB gain of each of the n_fft/2 + 1 output bins = interpolation (bins, bands) @ gains
        freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
        weights = _band_weights(freqs, n_bands, sample_rate)
        self.register_buffer("interpolation", torch.from_numpy(weights).float(), persistent=False)
        self.gains_db = nn.Parameter(torch.zeros(n_bands))

    @property
    def receptive_field(self) -> int:
        return self.n_fft + self.span - 1 + int(self.lag)

    def _vocoded(
        self, spectrum: torch.Tensor, analysis: torch.Tensor, synthesis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Phase-vocoder transposition of frame spectra (B, M, bins) after the last frame's
        analysis and synthesis phases (B, bins; NaN analysis: the file start) → transposed
        spectra and the new last phases."""
        bins = torch.arange(spectrum.shape[-1], dtype=torch.float64, device=spectrum.device)
        advance = 2 * math.pi * bins * self.hop / self.n_fft  # a bin centre's phase per hop
        phase = torch.angle(spectrum).double()
        before = torch.cat([analysis[:, None], phase[:, :-1]], dim=1)
        before = torch.where(torch.isnan(before), phase - advance, before)
        deviation = torch.remainder(phase - before - advance + math.pi, 2 * math.pi) - math.pi
        per_hop = advance + deviation  # instantaneous frequency (rad per hop), per input bin
        lo, w, inside = self.source_bin, self.source_weight, self.source_inside
        magnitude = spectrum.abs().double()
        magnitude = (magnitude[..., lo] * (1 - w) + magnitude[..., lo + 1] * w) * inside
        nearest = torch.where(w < 0.5, lo, lo + 1)
        step = self.ratio * per_hop[..., nearest]
        out_phase = synthesis[:, None] + torch.cumsum(step, dim=1)
        shifted = torch.polar(magnitude, out_phase).to(spectrum.dtype)
        return shifted, phase[:, -1], torch.remainder(out_phase[:, -1], 2 * math.pi)

    def _pieces(
        self, frames: torch.Tensor, analysis: torch.Tensor, synthesis: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, M, n_fft) input frames → (B, M, grain) weighted output pieces, and the phase
        vocoder's last phases (passed through on the integer path)."""
        with torch.no_grad():
            windowed = frames * self.window.to(frames.dtype)
            if self.whole is None:
                shifted, analysis, synthesis = self._vocoded(
                    torch.fft.rfft(windowed), analysis, synthesis
                )
            else:
                spectrum = torch.fft.rfft(windowed, n=self.whole * self.n_fft)
                spectrum = spectrum[..., : self.n_fft // 2 + 1]
                unit = spectrum / spectrum.abs().clamp_min(torch.finfo(frames.dtype).tiny)
                shifted = spectrum * unit ** (self.whole - 1)
        gain = torch.pow(10.0, (self.interpolation @ self.gains_db) / 20.0).to(frames.dtype)
        frame = torch.fft.irfft(shifted * gain, n=self.n_fft)
        if self.whole is None:
            return frame * self.synthesis.to(frames.dtype), analysis, synthesis
        piece = frame[..., self._first : self._first + self.grain] * self.synthesis.to(frames.dtype)
        return piece, analysis, synthesis

    def initial_state(self, x: torch.Tensor) -> PitchShifterState:
        """The state at sample 0 of a file for a batch like ``x`` (B, 1, n)."""
        b, bins = x.shape[0], self.n_fft // 2 + 1
        return (
            x.new_zeros(b, self.n_fft - 1 + int(self.lag)),
            x.new_zeros(b, self.span),
            torch.zeros((), dtype=torch.int64, device=x.device),
            torch.full((b, bins), math.nan, dtype=torch.float64, device=x.device),
            torch.zeros(b, bins, dtype=torch.float64, device=x.device),
        )

    def stream(
        self, x: torch.Tensor, state: PitchShifterState | None
    ) -> tuple[torch.Tensor, PitchShifterState]:
        """The next block (B, 1, n) after ``state`` (None: file start) → (B, 1, n), new state."""
        history, pending, phase, analysis, synthesis = (
            self.initial_state(x) if state is None else state
        )
        n = x.shape[-1]
        # block sample j is buffer[j + n_fft - 1 + lag]; frames see the input lag samples late
        buffer = torch.cat([history, x[:, 0]], dim=-1)
        first_end = int(-phase.item()) % self.hop  # first block index that ends a frame
        out = F.pad(pending, (0, n))  # (B, n + span): output from this block's first sample on
        if first_end < n:
            # frame m ends at block index first_end + m·hop, on the input of lag samples before
            frames = buffer[:, first_end : buffer.shape[-1] - int(self.lag)].unfold(
                -1, self.n_fft, self.hop
            )
            pieces, analysis, synthesis = self._pieces(frames, analysis, synthesis)  # (B, M, grain)
            count = pieces.shape[1]
            span = (count - 1) * self.hop + self.span
            added = F.fold(
                pieces.transpose(1, 2), (1, span), kernel_size=(1, self.span), stride=(1, self.hop)
            )[:, 0, 0]
            out = out + F.pad(added, (first_end, n + self.span - first_end - span))
        state = (buffer[:, n:], out[:, n:], (phase + n) % self.hop, analysis, synthesis)
        return out[:, None, :n], state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T), frames on the grid counted from x[..., 0]."""
        return self.stream(x, None)[0]

    @torch.no_grad()
    def initialise(self, clean: np.ndarray, processed: np.ndarray) -> None:
        """Measure the effect's ``lag``, then set the band gains so that the output's level in
        each band matches ``processed``.

        ``clean`` and ``processed`` are 1-D float32 training signals (samples) of one length.
        Per band, the median over frames of the dB difference between the band energies of
        ``processed`` and of the output, over the frames where both lie within 60 dB of their
        loudest band (a band the model leaves empty is not boosted to match the effect's
        artefacts there), the output moved ``latency`` samples earlier to line up with
        ``processed``; at most ±24 dB. The model runs once, at 0 dB; the gains then act on
        its power spectrogram, and three rounds correct what the interpolation between bands
        smooths.
        """
        self.gains_db.zero_()
        source = torch.from_numpy(np.asarray(clean, dtype=np.float32)).view(1, 1, -1)
        output, state = [], None
        for start in range(0, source.shape[-1], _FIT_CHUNK):
            y, state = self.stream(source[..., start : start + _FIT_CHUNK], state)
            output.append(y.view(-1))
        aligned = torch.cat(output)[self.latency :]
        wanted = torch.from_numpy(np.asarray(processed, dtype=np.float32))[: aligned.numel()]
        self.lag.fill_(self._lag(aligned.double().numpy(), wanted.double().numpy()))
        aligned = F.pad(aligned, (int(self.lag), 0))[: aligned.numel()]  # the input, lag later
        power = self._power(aligned)  # (bins, frames)
        freqs = np.arange(power.shape[0]) * self.sample_rate / _FIT_FFT
        bands = torch.from_numpy(_band_weights(freqs, self.gains_db.numel(), self.sample_rate))
        bands = bands.to(power.dtype)  # (bins, bands): how each band's gain reaches each bin
        target = self._db(bands.T @ self._power(wanted))
        plain = self._db(bands.T @ power)
        counts = (target > target.max() - _FIT_RANGE_DB) & (plain > plain.max() - _FIT_RANGE_DB)
        gains = torch.zeros(bands.shape[1], dtype=power.dtype)
        for _ in range(3):
            gained = power * torch.pow(10.0, bands @ gains / 10.0)[:, None]
            difference = torch.where(counts, target - self._db(bands.T @ gained), torch.nan)
            gains += torch.nan_to_num(torch.nanmedian(difference, dim=1).values)
            gains.clamp_(-_FIT_LIMIT_DB, _FIT_LIMIT_DB)
        self.gains_db.copy_(gains)

    def _lag(self, output: np.ndarray, processed: np.ndarray) -> int:
        """The lag (samples, 0 … ``max_lag``, in steps of _LAG_HOP) by which ``processed`` trails
        ``output`` (1-D): near where their log-level envelopes correlate best, the one with the
        smallest mean log-spectral difference (or 0 if that is smaller still)."""
        frames = min(len(output), len(processed)) // _LAG_HOP
        if self.max_lag < _LAG_HOP or frames < 4:
            return 0

        def envelope(x: np.ndarray) -> np.ndarray:
            energy = np.square(x[: frames * _LAG_HOP]).reshape(frames, _LAG_HOP).sum(axis=1)
            level = np.log10(energy + 1e-10 * energy.max() + 1e-30)
            return level - level.mean()

        a, b = envelope(output), envelope(processed)
        lags = np.arange(min(self.max_lag // _LAG_HOP, frames - 2) + 1)
        score = scipy.signal.correlate(b, a, mode="full", method="fft")[frames - 1 + lags]
        coarse = int(lags[np.argmax(score / (frames - lags))] * _LAG_HOP)
        # onsets smear over a frame, so the envelopes only get near: the log spectrum decides
        candidates = sorted({0, *(max(0, coarse + k * _LAG_HOP) for k in range(-8, 9))})
        wanted = self._db(self._power(torch.from_numpy(processed)))
        errors = [float((self._db(self._power(torch.from_numpy(
            np.pad(output, (lag, 0))[: len(output)]))) - wanted).abs().mean()) for lag in candidates]
        return candidates[int(np.argmin(errors))]

    @staticmethod
    def _power(x: torch.Tensor) -> torch.Tensor:
        """(bins, frames) power spectrogram of a 1-D signal (Hann, _FIT_FFT, _FIT_HOP), float64."""
        window = torch.hann_window(_FIT_FFT, dtype=torch.float64)
        spectrum = torch.stft(x.double(), _FIT_FFT, _FIT_HOP, window=window, return_complex=True)
        return spectrum.abs() ** 2

    @staticmethod
    def _db(energy: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(energy + 1e-12)
