"""Random clean audio: the seed's chirps, sines, squares and sawtooths, and played strings.

A track is ``segments`` segments of ``segment_seconds`` each; every segment draws its own note
density, so some passages are sparse (long gaps) and others dense (several overlapping notes),
and its own level within ``dynamic_range_db``. Each note's kind is drawn with the weights of
``mix``: besides the seed's four waveforms, plucked strings (additive partials with
inharmonicity and frequency-dependent decay, a pick transient, sometimes a bend or a slide),
strummed chords and palm-muted notes prepare the models for real playing.
Everything is drawn from one ``numpy.random.Generator``, so a seed fixes every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

__all__ = ["KINDS", "WAVEFORMS", "TrackSpec", "adsr", "note", "pluck", "segment", "track"]

#: The seed's four kinds of note.
WAVEFORMS = ("chirp", "sine", "square", "sawtooth")
#: Every kind of note: the seed's waveforms and the played-string ones.
KINDS = (*WAVEFORMS, "pluck", "strum", "palm_mute")

#: Relative level of each kind, so that bright waveforms are not louder than sines.
_LEVEL = {"chirp": 1.0, "sine": 1.0, "square": 0.4, "sawtooth": 0.5, "pluck": 1.0, "strum": 0.6,
          "palm_mute": 1.2}
#: Intervals (semitones above the root) of strummed chord shapes: major, minor, power, seventh.
_CHORDS = ((0, 7, 12, 16, 19, 24), (0, 7, 12, 15, 19, 24), (0, 7, 12, 19), (0, 7, 10, 16, 19))


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
    #: Weight of each kind of note (:data:`KINDS`); kinds left out are never drawn.
    mix: tuple[tuple[str, float], ...] = tuple((kind, 1.0) for kind in WAVEFORMS)
    #: Segment levels are drawn uniformly in [-dynamic_range_db, 0] dB.
    dynamic_range_db: float = 0.0


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


def _glide(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A pitch offset (semitones) per sample: none, a bend up and back, or a slide into the note."""
    offset = np.zeros(n)
    move = rng.random()
    if move < 0.15:  # bend: up by a semitone or a tone, held, released
        depth = rng.choice([1.0, 2.0])
        a, b = (int(f * n) for f in np.sort(rng.uniform(0.1, 0.8, size=2)))
        rise = max(1, min(int(0.08 * sample_rate), b - a))
        offset[a:a + rise] = np.linspace(0, depth, rise)
        offset[a + rise:b] = depth
        offset[b:b + rise] = np.linspace(depth, 0, len(offset[b:b + rise]))
    elif move < 0.25:  # slide: from up to five semitones away into the note
        length = min(n, int(rng.uniform(0.03, 0.15) * sample_rate))
        offset[:length] = np.linspace(rng.uniform(-5, 5), 0, length)
    return offset


def pluck(n: int, rng: np.random.Generator, sample_rate: int, f0: float,
          decay_s: float, brightness: float, glide: np.ndarray | None = None) -> np.ndarray:
    """A plucked string of ``n`` samples at ``f0`` Hz (peak about 1).

    Additive partials k = 1, 2, … below 0.45 × ``sample_rate``, stretched by inharmonicity
    (f_k = k f0 √(1 + B k²)), weighted by the pluck position and decaying faster the higher they
    are (time constant ``decay_s`` / (1 + k² / ``brightness``)); a 1–4 ms noise burst is the pick.
    ``glide`` (semitones per sample) bends the whole string.
    """
    inharmonicity = rng.uniform(0.0, 3e-4)
    position = rng.uniform(0.08, 0.3)  # where the string is plucked (fraction of its length)
    k = np.arange(1, 41)
    stretch = k * np.sqrt(1 + inharmonicity * k**2)
    k, stretch = k[stretch * f0 < 0.45 * sample_rate], stretch[stretch * f0 < 0.45 * sample_rate]
    weights = np.abs(np.sin(np.pi * k * position)) / k
    taus = decay_s / (1 + k**2 / brightness)
    t = np.arange(n) / sample_rate
    inst = f0 * (2.0 ** (glide / 12.0) if glide is not None else np.ones(n))
    phase = 2 * np.pi * np.cumsum(inst) / sample_rate
    x = np.zeros(n)
    for weight, tau, ratio, start in zip(weights, taus, stretch, rng.uniform(0, 2 * np.pi, len(k))):
        m = min(n, int(8 * tau * sample_rate) + 1)  # each partial until it is 70 dB down
        x[:m] += weight * np.exp(-t[:m] / tau) * np.sin(ratio * phase[:m] + start)
    x /= max(float(np.abs(x).max()), 1e-9)
    pick = min(n, int(rng.uniform(0.001, 0.004) * sample_rate))
    burst = rng.standard_normal(pick) * np.exp(-np.arange(pick) / max(pick / 4, 1))
    x[:pick] += rng.uniform(0.1, 0.5) * np.diff(burst, prepend=0.0)
    return x


def _string_note(kind: str, n: int, rng: np.random.Generator, sample_rate: int, f0: float) -> np.ndarray:
    """A plucked note, a strummed chord on root ``f0`` or a palm-muted note (peak about 1)."""
    if kind == "palm_mute":
        return pluck(n, rng, sample_rate, f0, rng.uniform(0.03, 0.15), rng.uniform(4, 20))
    if kind == "pluck":
        glide = _glide(n, rng, sample_rate)
        return pluck(n, rng, sample_rate, f0, rng.uniform(0.4, 3.0), rng.uniform(20, 400), glide)
    shape = _CHORDS[rng.integers(len(_CHORDS))]
    gap = int(rng.uniform(0.008, 0.03) * sample_rate)  # between strings (s)
    order = shape if rng.random() < 0.6 else shape[::-1]  # down or up stroke
    decay, brightness = rng.uniform(0.3, 2.5), rng.uniform(20, 300)
    x = np.zeros(n)
    for i, interval in enumerate(order):
        start = min(i * gap, n - 1)
        x[start:] += pluck(n - start, rng, sample_rate, f0 * 2 ** (interval / 12), decay, brightness)
    return x / max(float(np.abs(x).max()), 1e-9)


def note(
    kind: str, n: int, rng: np.random.Generator, sample_rate: int, frequency_hz: tuple[float, float]
) -> np.ndarray:
    """One enveloped note of ``n`` samples; frequencies drawn log-uniformly from ``frequency_hz``
    (a strum's root from its lower half, so the chord stays in range)."""
    lo, hi = np.log(frequency_hz[0]), np.log(frequency_hz[1])
    if kind in ("pluck", "strum", "palm_mute"):
        top = hi if kind != "strum" else (lo + hi) / 2
        f0 = float(np.exp(rng.uniform(lo, top)))
        level = _LEVEL[kind] * rng.uniform(0.3, 1.0)
        release = np.minimum(1.0, np.linspace(n / (0.01 * sample_rate + 1), 0, n))  # string damped
        return level * release * _string_note(kind, n, rng, sample_rate, f0)
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
        raise ValueError(f"unknown kind of note {kind!r}; choose from {KINDS}")
    return _LEVEL[kind] * rng.uniform(0.3, 1.0) * adsr(n, rng, sample_rate) * wave


def segment(spec: TrackSpec, rng: np.random.Generator) -> np.ndarray:
    """One segment: notes at a random density, with overlaps up to ``max_polyphony`` and gaps."""
    sr = spec.sample_rate
    n = int(round(spec.segment_seconds * sr))
    out = np.zeros(n)
    density = rng.uniform(*spec.notes_per_second)  # notes per second for this segment
    kinds = [kind for kind, _ in spec.mix]
    weights = np.array([weight for _, weight in spec.mix], dtype=float)
    count = rng.poisson(density * spec.segment_seconds)
    starts = np.sort(rng.integers(0, n, size=count))
    sounding = np.zeros(n, dtype=np.int16)  # how many notes sound at each sample
    for start in starts:
        length = int(rng.uniform(0.08, 2.0) / max(density, 1.0) ** 0.5 * sr)
        stop = min(n, start + max(length, 64))
        if sounding[start:stop].max(initial=0) >= spec.max_polyphony:
            continue  # a gap instead of one note too many
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        out[start:stop] += note(kind, stop - start, rng, sr, spec.frequency_hz)
        sounding[start:stop] += 1
    return out * 10 ** (-rng.uniform(0, spec.dynamic_range_db) / 20)


def track(spec: TrackSpec, seed: int | np.random.SeedSequence) -> np.ndarray:
    """A whole track (float32, peak at ``peak_dbfs``), fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([segment(spec, rng) for _ in range(spec.segments)])
    peak = np.abs(x).max()
    if peak > 0:
        x *= 10 ** (spec.peak_dbfs / 20) / peak
    return x.astype(np.float32)
