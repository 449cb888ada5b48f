"""Random clean audio in the seed's style: chirps, sines, squares and sawtooths as played notes.

A track is ``segments`` segments of ``segment_seconds`` each; every segment draws its own note
density, so some passages are sparse (long gaps) and others dense (several overlapping notes).
Everything is drawn from one ``numpy.random.Generator``, so a seed fixes every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = ["WAVEFORMS", "TrackSpec", "adsr", "note", "segment", "track"]

#: The seed's four kinds of note.
WAVEFORMS = ("chirp", "sine", "square", "sawtooth")

#: Relative level of each waveform, so that bright waveforms are not louder than sines.
_LEVEL = {"chirp": 1.0, "sine": 1.0, "square": 0.4, "sawtooth": 0.5}


@dataclass(frozen=True)
class TrackSpec:
    """What one generated track looks like (the ``generate`` section of params.yaml)."""

    sample_rate: int
    segments: int
    segment_seconds: float
    notes_per_second: tuple[float, float]
    max_polyphony: int
    frequency_hz: tuple[float, float]
    peak_dbfs: float


def adsr(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A random attack-decay-sustain-release envelope of ``n`` samples (peak 1)."""
    attack = int(rng.uniform(0.002, 0.05) * sample_rate)
    decay = int(rng.uniform(0.02, 0.3) * sample_rate)
    release = int(rng.uniform(0.01, 0.4) * sample_rate)
    sustain = rng.uniform(0.3, 0.9)
    # Shrink the stages proportionally when the note is too short to hold them all.
    total = attack + decay + release
    if total > n:
        scale = n / total
        attack, decay, release = (int(s * scale) for s in (attack, decay, release))
    hold = n - attack - decay - release
    return np.concatenate(
        [
            np.linspace(0.0, 1.0, attack, endpoint=False),
            np.linspace(1.0, sustain, decay, endpoint=False),
            np.full(hold, sustain),
            np.linspace(sustain, 0.0, release),
        ]
    )


def note(
    kind: str, n: int, rng: np.random.Generator, sample_rate: int, frequency_hz: tuple[float, float]
) -> np.ndarray:
    """One enveloped note of ``n`` samples; frequencies drawn log-uniformly from ``frequency_hz``."""
    lo, hi = np.log(frequency_hz[0]), np.log(frequency_hz[1])
    t = np.arange(n) / sample_rate
    f0 = float(np.exp(rng.uniform(lo, hi)))
    if kind == "chirp":
        # Random start and end frequency over the note's random length: a random sweep speed
        # (Hz/s), like a string bent or slid from one note to another.
        f1 = float(np.exp(rng.uniform(lo, hi)))
        method = ("linear", "logarithmic")[rng.integers(2)]
        wave = signal.chirp(t, f0, max(t[-1], 1.0 / sample_rate), f1, method=method)
    elif kind == "sine":
        wave = np.sin(2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi))
    elif kind == "square":
        wave = signal.square(2 * np.pi * f0 * t, duty=rng.uniform(0.2, 0.8))
    elif kind == "sawtooth":
        wave = signal.sawtooth(2 * np.pi * f0 * t, width=rng.choice([0.0, 1.0]))
    else:
        raise ValueError(f"unknown waveform {kind!r}; choose from {WAVEFORMS}")
    return _LEVEL[kind] * rng.uniform(0.3, 1.0) * adsr(n, rng, sample_rate) * wave


def segment(spec: TrackSpec, rng: np.random.Generator) -> np.ndarray:
    """One segment: notes at a random density, with overlaps up to ``max_polyphony`` and gaps."""
    sr = spec.sample_rate
    n = int(round(spec.segment_seconds * sr))
    out = np.zeros(n)
    density = rng.uniform(*spec.notes_per_second)  # notes per second for this segment
    count = rng.poisson(density * spec.segment_seconds)
    starts = np.sort(rng.integers(0, n, size=count))
    sounding = np.zeros(n, dtype=np.int16)  # how many notes sound at each sample
    for start in starts:
        length = int(rng.uniform(0.08, 2.0) / max(density, 1.0) ** 0.5 * sr)
        stop = min(n, start + max(length, 64))
        if sounding[start:stop].max(initial=0) >= spec.max_polyphony:
            continue  # a gap instead of one note too many
        kind = WAVEFORMS[rng.integers(len(WAVEFORMS))]
        out[start:stop] += note(kind, stop - start, rng, sr, spec.frequency_hz)
        sounding[start:stop] += 1
    return out


def track(spec: TrackSpec, seed: int | np.random.SeedSequence) -> np.ndarray:
    """A whole track (float32, peak at ``peak_dbfs``), fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([segment(spec, rng) for _ in range(spec.segments)])
    peak = np.abs(x).max()
    if peak > 0:
        x *= 10 ** (spec.peak_dbfs / 20) / peak
    return x.astype(np.float32)
