"""The realistic takes: seeded MIDI parts, rendered by fluidsynth, cached, evaluation only."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import deepfx.takes as takes
from deepfx.errors import DeepfxError
from deepfx.takes import TAKES, compose, midi_bytes, render_takes

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not takes.SOUNDFONT.is_file(),
    reason="fluidsynth and fluid-soundfont-gm are not installed",
)


def note_ons(data: bytes) -> int:
    """Note-on events with a velocity in a one-track SMF (running status is not used)."""
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    track, i, count = data[22:22 + length], 0, 0
    assert len(track) == length
    while i < len(track):
        while track[i] & 0x80:  # delta time
            i += 1
        i += 1
        status = track[i]
        if status == 0xFF:
            return count
        size = 2 if status & 0xF0 == 0xC0 else 3
        count += status & 0xF0 == 0x90 and track[i + 2] > 0
        i += size
    raise AssertionError("no end-of-track event")


def test_composition_is_seeded_and_covers_the_playing_styles() -> None:
    first, again, other = compose(1), compose(1), compose(2)
    assert first == again and first != other
    assert [t.name for t in first] == [name for name, *_ in TAKES]
    for take in first:
        notes = [e for e in take.events if e.bend is None]
        assert all(0 <= e.pitch <= 127 and 1 <= e.velocity <= 127 for e in notes)
        assert max(e.start for e in notes) > 15.0, f"{take.name} plays for most of its length"
        assert note_ons(midi_bytes(take)) == len(notes)
    bends = sum(e.bend is not None for t in first for e in t.events)
    velocities = [e.velocity for t in first for e in t.events if e.bend is None]
    assert bends > 10, "leads bend and slide"
    assert min(velocities) < 40 and max(velocities) > 110, "pianissimo to fortissimo"


@needs_fluidsynth
def test_render_is_long_enough_mono_at_its_levels_and_cached(tmp_path: Path) -> None:
    folder = render_takes(tmp_path)
    files = sorted(folder.glob("*.wav"))
    assert [p.stem for p in files] == sorted(name for name, *_ in TAKES)
    seconds = 0.0
    for path, (name, _, _, _, peak_dbfs) in zip(files, sorted(TAKES)):
        x, sr = sf.read(path, dtype="float32")
        assert sr == 44100 and x.ndim == 1
        assert np.isclose(20 * np.log10(np.abs(x).max()), peak_dbfs, atol=0.01)
        seconds += len(x) / sr
    assert seconds >= 180.0, "at least three minutes of playing"
    stamp = files[0].stat().st_mtime_ns
    assert render_takes(tmp_path) == folder and files[0].stat().st_mtime_ns == stamp
    again = render_takes(tmp_path / "other")
    assert all(np.array_equal(sf.read(p)[0], sf.read(again / p.name)[0]) for p in files)


def test_a_missing_renderer_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(takes.shutil, "which", lambda name: None)
    with pytest.raises(DeepfxError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        render_takes(tmp_path)
    assert list(tmp_path.iterdir()) == []
