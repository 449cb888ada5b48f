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
from deepfx.signals import TrackSpec, adsr, note, pluck, track

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


def test_plucked_string_partials_are_inharmonic_and_highs_decay_first() -> None:
    sr = 44100
    x = pluck(sr, np.random.default_rng(4), sr, 110.0, decay_s=1.0, brightness=30.0)
    assert x.shape == (sr,) and np.isfinite(x).all()

    def band_energy(part: np.ndarray, lo: float, hi: float) -> float:
        spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
        freqs = np.fft.rfftfreq(len(part), 1 / sr)
        return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())

    early, late = x[2000:6410], x[30000:34410]
    low_drop = band_energy(late, 80, 400) / band_energy(early, 80, 400)
    high_drop = band_energy(late, 1500, 5000) / band_energy(early, 1500, 5000)
    assert high_drop < 0.1 * low_drop, "high partials must decay faster than low ones"
    pick, later = np.diff(x[:176]), np.diff(x[4410:4586])  # first 4 ms against 4 ms at 100 ms
    assert np.sum(pick**2) > 3 * np.sum(later**2), "the pick adds a bright transient"


@pytest.mark.parametrize("kind", ["pluck", "strum", "palm_mute"])
def test_string_notes_are_bounded_and_end_in_silence(kind: str) -> None:
    sr = 16000
    x = note(kind, sr, np.random.default_rng(2), sr, (80.0, 1200.0))
    assert x.shape == (sr,) and np.isfinite(x).all() and 0 < np.abs(x).max() <= 1.2
    assert abs(x[-1]) < 1e-3, "the string is damped at the note's end"


def test_palm_mutes_are_shorter_than_plucks() -> None:
    sr = 16000

    def tail_share(kind: str) -> float:
        shares = []
        for seed in range(8):
            x = note(kind, sr, np.random.default_rng(seed), sr, (80.0, 400.0))
            shares.append(np.sum(x[sr // 4:] ** 2) / np.sum(x**2))
        return float(np.median(shares))

    assert tail_share("palm_mute") < 0.2 * tail_share("pluck")


def test_mix_weights_pick_the_kinds_and_dynamics_spread_the_levels() -> None:
    plucks = TrackSpec(16000, 8, 2.0, (2.0, 4.0), 3, (80.0, 1200.0), -3.0, mix=(("pluck", 1.0),),
                       dynamic_range_db=30.0)
    seed_mix = TrackSpec(16000, 8, 2.0, (2.0, 4.0), 3, (80.0, 1200.0), -3.0)
    a, b = track(plucks, 5), track(seed_mix, 5)
    assert not np.array_equal(a, b)
    levels = [np.sqrt(np.mean(s**2)) for s in a.reshape(8, -1)]
    assert max(levels) > 5 * min(levels), "segments 30 dB apart at most should differ by > 14 dB"


def test_a_mix_without_weights_is_one_clear_error(tmp_path: Path) -> None:
    params = _params(tmp_path)
    params["generate"]["mix"] = {kind: 0.0 for kind in params["generate"]["mix"]}
    with pytest.raises(DeepfxError, match="generate.mix: every weight is 0"):
        generate_dataset(params, tmp_path / "clean")
    assert not (tmp_path / "clean").exists()
