"""Loudness matching of listening excerpts: gated RMS level, common gain, fades, 16-bit wavs."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import soundfile as sf

__all__ = ["level_db", "match_loudness", "fade", "wav_bytes"]

_BLOCK_SECONDS = 0.4  # level measurement blocks (s), as in ITU-R BS.1770
_HOP_SECONDS = 0.1  # hop between blocks (s)
_ABSOLUTE_GATE_DB = -70.0  # blocks quieter than this (dBFS) are silence and not measured
_RELATIVE_GATE_DB = -10.0  # blocks this far below the mean of the rest are not measured
_CEILING = 0.98  # highest sample peak after matching (full scale = 1)


def level_db(x: np.ndarray, sample_rate: int) -> float:
    """Gated RMS level of ``x`` in dBFS (a sine of peak 1 is −3 dBFS); −inf when silent.

    Mean square over 400 ms blocks every 100 ms; blocks below −70 dBFS, then blocks more than
    10 dB below the mean of the remaining ones, are left out, so pauses do not pull the level
    down (the gating of ITU-R BS.1770, without its frequency weighting).
    """
    x = np.asarray(x, dtype=np.float64)
    block = max(1, min(len(x), int(round(_BLOCK_SECONDS * sample_rate))))
    hop = max(1, int(round(_HOP_SECONDS * sample_rate)))
    energy = np.concatenate(([0.0], np.cumsum(np.square(x))))
    starts = np.arange(0, len(x) - block + 1, hop)
    powers = (energy[starts + block] - energy[starts]) / block
    powers = powers[powers > 10 ** (_ABSOLUTE_GATE_DB / 10)]
    if not len(powers):
        return -np.inf
    powers = powers[powers >= powers.mean() * 10 ** (_RELATIVE_GATE_DB / 10)]
    return float(10 * np.log10(powers.mean()))


def match_loudness(
    signals: Mapping[str, np.ndarray], sample_rate: int, target_db: float
) -> dict[str, np.ndarray]:
    """Copies of ``signals`` scaled to the gated level ``target_db`` (dBFS) each.

    Silent signals are left as they are. If a scaled signal would peak above 0.98 of full
    scale, all of them are lowered by the same gain, so they stay matched and none clips.
    """
    out = {}
    for name, x in signals.items():
        level = level_db(x, sample_rate)
        gain = 10 ** ((target_db - level) / 20) if np.isfinite(level) else 1.0
        out[name] = (np.asarray(x, dtype=np.float64) * gain).astype(np.float32)
    peak = max(float(np.max(np.abs(x), initial=0.0)) for x in out.values())
    if peak > _CEILING:
        out = {name: (x * (_CEILING / peak)).astype(np.float32) for name, x in out.items()}
    return out


def fade(x: np.ndarray, sample_rate: int, seconds: float = 0.01) -> np.ndarray:
    """``x`` with raised-cosine fades of ``seconds`` s at both ends (no clicks at the cuts)."""
    n = min(int(round(seconds * sample_rate)), len(x) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / max(n, 1))
    y = np.array(x, dtype=np.float32)
    y[:n] *= ramp
    y[len(y) - n:] *= ramp[::-1]
    return y


def wav_bytes(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> bytes:
    """``x`` (full scale = 1) as a 16-bit PCM wav file in memory, with TPDF dither from ``rng``.

    The dither is independent per call, so two renderings of one signal differ in their least
    significant bits (inaudibly, about −96 dBFS) and cannot be told apart by comparing bytes.
    """
    scaled = np.asarray(x, dtype=np.float64) * 32767.0
    dither = rng.random(len(scaled)) - rng.random(len(scaled))  # triangular, ±1 LSB
    samples = np.clip(np.round(scaled + dither), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
