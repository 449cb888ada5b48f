"""Which models and excerpts an ABX session plays, and what X is in each trial."""

from __future__ import annotations

import io
import random
import shutil

import numpy as np
import pytest
import soundfile as sf

from deepfx.abx.trials import Deck, Window, audible_windows, find_sources, plan_trials, render_trial
from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError
from deepfx.pipeline import trained_models


@pytest.fixture
def sources(fake_run):
    root, params = fake_run
    return find_sources(params, list(params["effects"]), None, root / "data/clean",
                        root / "data/processed", root / "reports")


def test_every_effect_and_arch_is_a_source(sources, fake_run):
    root, params = fake_run
    assert [(s.effect, s.arch) for s in sources] == trained_models(params)
    assert sources[0].predictions == root / "reports/effects/distortion/cnn/predictions"
    assert sources[0].processed == root / "data/processed/distortion/test"


def test_trials_hold_the_asked_share_of_controls(sources):
    windows = [Window("a.wav", 0, 100)]
    trials = plan_trials(sources, windows, trials_per_model=10, control_share=0.2, rng=random.Random(3))
    assert [t.number for t in trials] == list(range(1, 41))
    assert len({t.token for t in trials}) == 40
    for source in sources:
        kinds = sorted(t.x_is for t in trials if t.source == source)
        assert kinds == ["clean", "effect"] + ["model"] * 8
    order = [(t.source.effect, t.source.arch) for t in trials]
    assert order != sorted(order)  # shuffled across models


def test_no_controls_when_the_share_is_zero(sources):
    trials = plan_trials(sources[:1], [Window("a.wav", 0, 100)], 5, 0.0, random.Random(0))
    assert [t.x_is for t in trials] == ["model"] * 5


def test_windows_skip_the_pauses(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    loud = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    write_audio(tmp_path / "a.wav", np.concatenate([loud, np.zeros(2 * rate, np.float32), loud]), rate)
    windows = audible_windows(tmp_path, rate, 0.5)
    assert windows and all(w.samples == rate // 2 for w in windows)
    sounding = [min(w.start + w.samples, rate) - w.start if w.start < rate
                else w.start + w.samples - max(w.start, 3 * rate) for w in windows]
    assert min(sounding) >= 0.1 * rate // 2  # at least a tenth of each window sounds
    assert {w.start for w in windows} >= {0, 3 * rate}
    write_audio(tmp_path / "b.wav", loud[:1000], rate)  # shorter than an excerpt: played whole
    assert Window("b.wav", 0, 1000) in audible_windows(tmp_path, rate, 0.5)


def test_silent_test_files_are_refused(tmp_path):
    write_audio(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(DeepfxError, match="silent or absent"):
        audible_windows(tmp_path, 16000, 0.5)


@pytest.mark.parametrize("x_is", ["clean", "effect", "model"])
def test_x_is_what_the_trial_says_at_the_matched_level(sources, fake_run, x_is):
    _, params = fake_run
    rate = params["sample_rate"]
    source = sources[0]
    name = sorted(p.name for p in source.clean.glob("*.wav"))[0]
    window = Window(name, 4000, 8000)
    trial = plan_trials([source], [window], 1, 0.0, random.Random(0))[0]
    trial = type(trial)(trial.token, 1, source, x_is, window)
    wavs = render_trial(trial, rate, -23.0, np.random.default_rng(0))
    decoded = {k: sf.read(io.BytesIO(v), dtype="float32")[0] for k, v in wavs.items()}
    folder = {"clean": source.clean, "effect": source.processed, "model": source.predictions}[x_is]
    original = read_audio(folder / name, rate)[4000:12000]
    middle = slice(400, -400)  # past the fades
    assert np.corrcoef(decoded["x"][middle], original[middle])[0, 1] > 0.999
    clean = read_audio(source.clean / name, rate)[4000:12000]
    assert np.corrcoef(decoded["a"][middle], clean[middle])[0, 1] > 0.999
    assert not np.array_equal(decoded["x"], decoded["a" if x_is == "clean" else "b"])  # dithered apart


def test_a_prediction_of_another_length_is_named(fake_run, tmp_path):
    root, params = fake_run
    reports = tmp_path / "reports"
    shutil.copytree(root / "reports/effects", reports / "effects")
    bad = next((reports / "effects/low_pass/fir/predictions").glob("*.wav"))
    write_audio(bad, np.zeros(10, np.float32), params["sample_rate"])
    with pytest.raises(DeepfxError, match=f"{bad}: 10 samples at 16000 Hz, but its test file has"):
        find_sources(params, ["low_pass"], ["fir"], root / "data/clean", root / "data/processed", reports)


def test_unknown_effect_and_arch_are_named(fake_run):
    root, params = fake_run
    paths = (root / "data/clean", root / "data/processed", root / "reports")
    with pytest.raises(DeepfxError, match=r"no effect named 'fuzz' .*known: distortion, low_pass"):
        find_sources(params, ["fuzz"], ["cnn"], *paths)
    with pytest.raises(DeepfxError, match=r"archs: distortion trains cnn, tcn in the params, not 'lstm'"):
        find_sources(params, ["distortion"], ["lstm"], *paths)


def test_the_deck_takes_each_answer_once_and_only_when_recorded(sources):
    trials = plan_trials(sources[:1], [Window("a.wav", 0, 10)], 2, 0.0, random.Random(0))
    deck = Deck(trials)
    recorded = []
    assert deck.current() is trials[0]

    def fail(trial):
        raise OSError("disk full")

    with pytest.raises(OSError):
        deck.answer(trials[0].token, fail)
    assert deck.current() is trials[0] and deck.answered == 0  # not lost: still to answer
    deck.answer(trials[0].token, recorded.append)
    assert recorded == [trials[0]] and deck.current() is trials[1]
    with pytest.raises(DeepfxError, match="trial 1 .* was already answered; a replayed answer"):
        deck.answer(trials[0].token, recorded.append)
    with pytest.raises(DeepfxError, match="trial token 'forged' is unknown"):
        deck.answer("forged", recorded.append)
    deck.answer(trials[1].token, recorded.append)
    assert deck.current() is None and recorded == trials
