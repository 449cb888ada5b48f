"""Deterministic test audio for the effects tests."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 44_100


def guitar_notes(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Plucked notes (decaying harmonics, 82-330 Hz), one every 0.25 s, peak about 0.5."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    x = np.zeros(n)
    for k, start in enumerate(np.arange(0.0, seconds, 0.25)):
        f0 = (82.4, 110.0, 196.0, 329.6)[k % 4]
        tau = t[t >= start] - start
        note = sum(np.sin(2 * np.pi * h * f0 * tau) / h for h in (1, 2, 3, 5))
        x[t >= start] += note * np.exp(-tau / 0.3)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)
