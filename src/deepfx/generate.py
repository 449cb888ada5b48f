"""The generate stage: random clean tracks split into train/valid/test, plus the user's own audio."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deepfx.atomic import atomic_dir
from deepfx.audio import AUDIO_SUFFIXES, list_audio, read_audio, write_audio
from deepfx.errors import DeepfxError
from deepfx.signals import TrackSpec, track

__all__ = ["SPLITS", "generate_dataset", "split_of"]

#: The three splits, in the order tracks are assigned to them from the end.
SPLITS = ("train", "valid", "test")


def split_of(index: int, tracks: int, valid: int, test: int) -> str:
    """The split of track ``index`` of ``tracks``: the last ``test`` are test, before them valid."""
    if index >= tracks - test:
        return "test"
    if index >= tracks - test - valid:
        return "valid"
    return "train"


def generate_dataset(params: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/{train,valid,test}/*.wav`` from the ``generate`` section of ``params``.

    Generated tracks are ``track_NNN.wav``; every file in ``generate.training_audio`` is
    resampled to ``sample_rate``, downmixed to mono and written as ``user_<stem>.wav`` in the
    train split. Nothing is left in ``out_dir`` if anything fails.
    """
    gen = params["generate"]
    sr = int(params["sample_rate"])
    tracks, valid, test = int(gen["tracks"]), int(gen["valid_tracks"]), int(gen["test_tracks"])
    if valid + test >= tracks:
        raise DeepfxError(
            f"generate.tracks: {tracks} tracks leave none for training after "
            f"{valid} valid + {test} test tracks"
        )
    spec = TrackSpec(
        sample_rate=sr,
        segments=int(gen["segments"]),
        segment_seconds=float(gen["segment_seconds"]),
        notes_per_second=tuple(gen["notes_per_second"]),
        max_polyphony=int(gen["max_polyphony"]),
        frequency_hz=tuple(gen["frequency_hz"]),
        peak_dbfs=float(gen["peak_dbfs"]),
        mix=tuple((kind, float(weight)) for kind, weight in gen["mix"].items() if weight > 0),
        dynamic_range_db=float(gen["dynamic_range_db"]),
    )
    if not spec.mix:
        raise DeepfxError("generate.mix: every weight is 0; give at least one kind of note a weight")
    user_files = list_audio(gen["training_audio"], AUDIO_SUFFIXES)
    stems = [p.stem for p in user_files]
    for path in user_files:
        if stems.count(path.stem) > 1:
            raise DeepfxError(f"{path}: another file in {path.parent} has the same name stem")
    # Independent child seeds: track k does not change when the number of tracks does.
    seeds = np.random.SeedSequence(int(gen["seed"])).spawn(tracks)
    written: list[Path] = []
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir()
        for k in tqdm(range(tracks), desc="generate", unit="track", leave=False):
            split = split_of(k, tracks, valid, test)
            name = f"{split}/track_{k:03d}.wav"
            write_audio(tmp / name, track(spec, seeds[k]), sr)
            written.append(Path(out_dir) / name)
        for path in user_files:
            name = f"train/user_{path.stem}.wav"
            write_audio(tmp / name, read_audio(path, sr), sr)
            written.append(Path(out_dir) / name)
    return written
