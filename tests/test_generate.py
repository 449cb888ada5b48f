"""The generate stage: determinism, splits, the seed's signal mix, and the user's own audio."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfx.cli import main
from deepfx.config import validate_params
from deepfx.errors import DeepfxError
from deepfx.generate import generate_dataset, split_of
from deepfx.signals import TrackSpec, adsr, note, track

from conftest import tiny_params


def _params(tmp_path: Path, **generate) -> dict:
    params = tiny_params()
    params["generate"].update(training_audio=str(tmp_path / "user"), **generate)
    return validate_params(params)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.wav"))
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    params = _params(tmp_path)
    generate_dataset(params, tmp_path / "a")
    time.sleep(1.1)  # a file format that stored the time of writing would differ now
    generate_dataset(params, tmp_path / "b")
    first = _digests(tmp_path / "a")
    assert first == _digests(tmp_path / "b")
    params["generate"]["seed"] += 1
    generate_dataset(params, tmp_path / "c")
    changed = _digests(tmp_path / "c")
    assert first.keys() == changed.keys()
    assert all(first[k] != changed[k] for k in first)


def test_splits_lengths_and_levels(tmp_path: Path) -> None:
    params = _params(tmp_path, tracks=5, segments=2, segment_seconds=1.5, valid_tracks=1, test_tracks=2)
    generate_dataset(params, tmp_path / "clean")
    names = {split: sorted(p.name for p in (tmp_path / "clean" / split).iterdir()) for split in ("train", "valid", "test")}
    assert names == {
        "train": ["track_000.wav", "track_001.wav"],
        "valid": ["track_002.wav"],
        "test": ["track_003.wav", "track_004.wav"],
    }
    x, sr = sf.read(tmp_path / "clean" / "test" / "track_004.wav", dtype="float32")
    assert sr == params["sample_rate"] and x.ndim == 1 and len(x) == 3 * sr
    assert np.isclose(np.abs(x).max(), 10 ** (params["generate"]["peak_dbfs"] / 20), rtol=1e-4)


def test_split_of_assigns_from_the_end() -> None:
    assert [split_of(k, 6, 1, 2) for k in range(6)] == ["train"] * 3 + ["valid"] + ["test"] * 2


def test_segments_vary_in_density_and_leave_gaps() -> None:
    spec = TrackSpec(16000, 8, 2.0, (0.5, 8.0), 3, (80.0, 1200.0), -3.0)
    x = track(spec, 3)
    frames = x[: len(x) // 800 * 800].reshape(-1, 800)  # 50 ms frames
    rms = np.sqrt((frames**2).mean(axis=1))
    assert (rms < 1e-4).mean() > 0.01, "some frames should be silent gaps between notes"
    per_segment = rms.reshape(8, -1).mean(axis=1)
    assert per_segment.max() > 2 * per_segment.min(), "segments should differ in density"


@pytest.mark.parametrize("kind", ["chirp", "sine", "square", "sawtooth"])
def test_each_note_kind_is_enveloped_and_in_range(kind: str) -> None:
    rng = np.random.default_rng(0)
    sr = 16000
    x = note(kind, sr, rng, sr, (80.0, 1200.0))
    assert x.shape == (sr,) and np.abs(x).max() <= 1.0
    assert abs(x[0]) < 1e-3 and abs(x[-1]) < 1e-3, "notes start and end at silence"
    spectrum = np.abs(np.fft.rfft(x))
    assert 60 <= np.argmax(spectrum) <= 1300  # 1 Hz bins: the fundamental lies in 80-1200 Hz


def test_adsr_fits_short_notes() -> None:
    env = adsr(100, np.random.default_rng(1), 44100)
    assert env.shape == (100,) and env.max() <= 1.0 and env[-1] == 0.0


def test_training_audio_is_resampled_downmixed_and_joins_train(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 220 * t)], axis=1)
    sf.write(user / "riff.flac", stereo, 22050)
    params = _params(tmp_path)
    generate_dataset(params, tmp_path / "clean")
    y, sr = sf.read(tmp_path / "clean" / "train" / "user_riff.wav", dtype="float32")
    assert sr == params["sample_rate"] and y.ndim == 1
    assert abs(len(y) - sr) <= 1  # one second, now at the working rate
    assert np.isclose(np.abs(y[1000:-1000]).max(), 0.75, atol=0.02)  # mean of the two channels


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100)])
def test_corrupt_or_empty_training_audio_fails_cleanly(tmp_path: Path, content: bytes, capsys) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "broken.wav").write_bytes(content)
    params = _params(tmp_path)
    with pytest.raises(DeepfxError, match="broken.wav"):
        generate_dataset(params, tmp_path / "clean")
    assert not (tmp_path / "clean").exists()
    assert list(tmp_path.glob(".clean*")) == [], "no temporary folder is left behind"


def test_wav_with_no_samples_is_an_error(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    sf.write(user / "silent.wav", np.zeros(0), 16000)
    with pytest.raises(DeepfxError, match="silent.wav: the audio file is empty"):
        generate_dataset(_params(tmp_path), tmp_path / "clean")


def test_cli_generate_overrides_tracks_and_segments(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny_params()
    params["generate"]["training_audio"] = "nowhere"
    import yaml

    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert main(["generate", "--tracks", "4", "--segments", "2"]) == 0
    files = sorted(Path("data/clean").rglob("*.wav"))
    assert len(files) == 4
    assert sf.info(files[0]).frames == 2 * 2 * params["sample_rate"]


def test_cli_reports_one_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    import yaml

    params = tiny_params()
    params["generate"]["tracks"] = 2
    Path("params.yaml").write_text(yaml.safe_dump(params))
    assert main(["generate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["deepfx: error: generate.tracks: 2 tracks leave none for training after 1 valid + 1 test tracks"]
    assert not Path("data/clean").exists()
