"""Audio files in and out: mono float32 at a fixed rate, with clear errors for bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.io import wavfile
from scipy.signal import resample_poly

from deepfx.atomic import atomic_file
from deepfx.errors import DeepfxError

__all__ = ["AUDIO_SUFFIXES", "list_audio", "read_audio", "read_window", "resample", "write_audio"]

#: File endings accepted as user audio (``data/training_audio``, ``deepfx apply``).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Polyphase resampling along the last axis (``from_hz`` → ``to_hz``)."""
    if from_hz == to_hz:
        return x
    g = np.gcd(int(from_hz), int(to_hz))
    return resample_poly(x, to_hz // g, from_hz // g, axis=-1).astype(np.float32)


def read_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Read ``path`` as float32 at ``sample_rate`` Hz; mono (samples,) or (channels, samples).

    Raises:
        DeepfxError: the file is missing, unreadable, empty or silent-length (0 samples).
    """
    path = Path(path)
    if not path.is_file():
        raise DeepfxError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise DeepfxError(f"{path}: cannot be read as audio ({exc})") from None
    if data.shape[0] == 0:
        raise DeepfxError(f"{path}: the audio file is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DeepfxError(f"{path}: the audio holds NaN or infinite samples")
    x = data.T  # (channels, samples)
    if mono:
        x = x.mean(axis=0)
    return np.ascontiguousarray(resample(x, rate, sample_rate), dtype=np.float32)


def read_window(path: str | os.PathLike, start: int, stop: int) -> np.ndarray:
    """Samples ``start`` … ``stop``-1 of ``path`` as a float32 mono mix, read without loading the
    rest of the file; zeros stand in for negative indices."""
    data, _ = sf.read(path, start=max(start, 0), stop=stop, dtype="float32", always_2d=True)
    return np.pad(data.mean(axis=1), (max(-start, 0), 0))


def write_audio(path: str | os.PathLike, x: np.ndarray, sample_rate: int) -> None:
    """Write float32 ``x`` ((samples,) or (channels, samples)) as a 32-bit float wav, atomically.

    scipy writes no PEAK chunk (libsndfile's holds the time of writing), so the same samples
    always give the same bytes, and the same DVC hash.
    """
    x = np.asarray(x, dtype=np.float32)
    with atomic_file(path) as tmp:
        wavfile.write(tmp, sample_rate, x.T if x.ndim == 2 else x)


def list_audio(folder: str | os.PathLike, suffixes: tuple[str, ...] = (".wav",)) -> list[Path]:
    """Sorted audio files directly in ``folder`` (hidden files skipped); [] when it is absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )
