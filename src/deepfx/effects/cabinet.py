"""deepfx's ``Cabinet`` chain entry: a synthesised guitar speaker-cabinet impulse response.

The response is built from textbook parts, deterministically (no randomness):
a 2nd-order high-pass at half the resonance (the sealed-box roll-off), a +6 dB resonance
peak at ``resonance_hz``, an 8th-order Butterworth low-pass at ``cutoff_hz`` (the steep
treble loss of a 10-12" speaker), three narrow notches in the upper mid-range (cone
break-up) and an exponential decay over ``length_ms``. It is normalised to a peak gain of
0 dB and applied by exact FFT convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, oaconvolve, sosfilt

__all__ = ["Cabinet"]

#: Resonance boost (dB) and quality factor of the low resonance peak.
RESONANCE_GAIN_DB = 6.0
RESONANCE_Q = 1.4
#: Cone break-up notches: (frequency as a fraction of ``cutoff_hz``, depth in dB), and their Q.
NOTCHES = ((0.45, -8.0), (0.68, -6.0), (0.88, -5.0))
NOTCH_Q = 8.0
#: The decay reaches exp(-DECAY_TIME_CONSTANTS) (about -52 dB) at the end of the response.
DECAY_TIME_CONSTANTS = 6.0


def _peaking_biquad(freq_hz: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One second-order section (sos row) of a peaking equaliser (RBJ audio-EQ cookbook)."""
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1.0 + alpha * amp, -2.0 * np.cos(w0), 1.0 - alpha * amp])
    a = np.array([1.0 + alpha / amp, -2.0 * np.cos(w0), 1.0 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


@dataclass(frozen=True)
class Cabinet:
    """A speaker cabinet: low resonance (Hz), treble cut-off (Hz) and response length (ms).

    Used as ``{plugin: Cabinet, resonance_hz: 110.0, cutoff_hz: 4500.0, length_ms: 40.0}``
    in a pedalboard chain. Bad values raise ``ValueError`` naming the parameter.
    """

    resonance_hz: float = 110.0
    cutoff_hz: float = 4500.0
    length_ms: float = 40.0

    def impulse_response(self, sample_rate: int) -> np.ndarray:
        """The cabinet's impulse response at ``sample_rate`` Hz (float64, peak gain 0 dB)."""
        self.check(sample_rate)
        n = int(round(self.length_ms * 1e-3 * sample_rate))
        impulse = np.zeros(n)
        impulse[0] = 1.0
        sos = np.concatenate([
            butter(2, self.resonance_hz / 2.0, "highpass", fs=sample_rate, output="sos"),
            _peaking_biquad(self.resonance_hz, RESONANCE_GAIN_DB, RESONANCE_Q, sample_rate),
            butter(8, self.cutoff_hz, "lowpass", fs=sample_rate, output="sos"),
            *(
                _peaking_biquad(fraction * self.cutoff_hz, depth_db, NOTCH_Q, sample_rate)
                for fraction, depth_db in NOTCHES
            ),
        ])
        h = sosfilt(sos, impulse)
        h *= np.exp(-DECAY_TIME_CONSTANTS * np.arange(n) / n)
        n_fft = 1 << int(np.ceil(np.log2(max(16 * n, 1 << 16))))
        return h / np.abs(np.fft.rfft(h, n_fft)).max()

    def process(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        """Convolve mono ``x`` (samples,) with the cabinet; same length as ``x``, float32."""
        h = self.impulse_response(sample_rate).astype(np.float32)
        return oaconvolve(x.astype(np.float32), h)[: len(x)]

    def check(self, sample_rate: int) -> None:
        """Raise ``ValueError`` naming the first parameter that is unusable at ``sample_rate``."""
        for key in ("resonance_hz", "cutoff_hz", "length_ms"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, got {value!r}")
        nyquist = sample_rate / 2.0
        if not 0.0 < self.resonance_hz < nyquist:
            raise ValueError(
                f"resonance_hz must be between 0 and {nyquist:g} Hz, got {self.resonance_hz!r}"
            )
        if not self.resonance_hz < self.cutoff_hz < nyquist:
            raise ValueError(
                f"cutoff_hz must be above resonance_hz ({self.resonance_hz:g} Hz) and below "
                f"the Nyquist frequency ({nyquist:g} Hz), got {self.cutoff_hz!r}"
            )
        period_ms = 1e3 / self.resonance_hz
        if not self.length_ms >= period_ms:
            raise ValueError(
                f"length_ms must cover at least one period of resonance_hz "
                f"({period_ms:.1f} ms), got {self.length_ms!r}"
            )
