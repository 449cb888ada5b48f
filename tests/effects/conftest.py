"""Shared test audio for the effects tests: deterministic guitar-like notes in wav files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from deepfx.audio import write_audio

from .helpers import SAMPLE_RATE, guitar_notes


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., tuple[Path, np.ndarray]]:
    """``make_wav(relative_path, seconds=1.0)`` writes guitar notes; returns (path, samples)."""

    def make(relative: str, seconds: float = 1.0) -> tuple[Path, np.ndarray]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        x = guitar_notes(seconds)
        write_audio(path, x, SAMPLE_RATE)
        return path, x

    return make


@pytest.fixture
def clean_dir(make_wav: Callable[..., tuple[Path, np.ndarray]], tmp_path: Path) -> Path:
    """A small clean dataset: train/{a,b}.wav, valid/c.wav, test/d.wav (0.5 s each)."""
    for relative in ("train/a.wav", "train/b.wav", "valid/c.wav", "test/d.wav"):
        make_wav(f"clean/{relative}", seconds=0.5)
    return tmp_path / "clean"
