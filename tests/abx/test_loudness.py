"""Level measurement and matching of the listening excerpts."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from deepfx.abx.loudness import fade, level_db, match_loudness, wav_bytes

SR = 16000


def sine(seconds: float, hz: float = 440.0, peak: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (peak * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_a_full_scale_sine_is_minus_3_dbfs():
    assert level_db(sine(1.0), SR) == pytest.approx(-3.01, abs=0.01)
    assert level_db(sine(1.0, peak=0.1), SR) == pytest.approx(-23.01, abs=0.01)


def test_pauses_do_not_lower_the_level():
    with_pause = np.concatenate([sine(1.0, peak=0.1), np.zeros(2 * SR, np.float32), sine(1.0, peak=0.1)])
    plain_rms_db = 10 * np.log10(np.mean(np.square(with_pause, dtype=np.float64)))  # -26 dB
    assert plain_rms_db == pytest.approx(-26.0, abs=0.1)
    # only the 400 ms blocks straddling the edges of the pause count a little of it
    assert level_db(with_pause, SR) == pytest.approx(level_db(sine(1.0, peak=0.1), SR), abs=1.0)


def test_silence_has_no_level():
    assert level_db(np.zeros(SR, np.float32), SR) == -np.inf


def test_excerpts_are_matched_to_the_target_level():
    signals = {"quiet": sine(1.0, peak=0.01), "loud": sine(1.0, 220.0, peak=0.5),
               "silent": np.zeros(SR, np.float32)}
    matched = match_loudness(signals, SR, -23.0)
    assert level_db(matched["quiet"], SR) == pytest.approx(-23.0, abs=0.01)
    assert level_db(matched["loud"], SR) == pytest.approx(-23.0, abs=0.01)
    assert not matched["silent"].any()
    assert signals["quiet"].max() == pytest.approx(0.01, abs=1e-4)  # inputs untouched


def test_one_excerpt_that_would_clip_lowers_them_all_alike():
    spiky = np.zeros(SR, np.float32)
    spiky[::400] = 1.0  # high crest factor: at -10 dBFS its peaks would pass full scale
    matched = match_loudness({"spiky": spiky, "sine": sine(1.0)}, SR, -10.0)
    assert max(np.abs(x).max() for x in matched.values()) == pytest.approx(0.98, abs=1e-6)
    assert level_db(matched["spiky"], SR) == pytest.approx(level_db(matched["sine"], SR), abs=0.01)
    assert level_db(matched["sine"], SR) < -10.0


def test_fades_start_and_end_at_zero_and_keep_the_middle():
    x = np.ones(SR, np.float32)
    y = fade(x, SR, seconds=0.01)
    assert y[0] == 0 and y[-1] == pytest.approx(0, abs=1e-3)
    np.testing.assert_array_equal(y[200:-200], 1.0)
    assert np.all(np.diff(y[:160]) >= 0)


def test_wav_bytes_are_dithered_16_bit_pcm():
    rng = np.random.default_rng(0)
    x = sine(0.5, peak=0.5)
    first, second = wav_bytes(x, SR, rng), wav_bytes(x, SR, rng)
    assert first != second  # independent dither: equal signals do not give equal files
    decoded, rate = sf.read(io.BytesIO(first), dtype="float32")
    assert rate == SR and sf.info(io.BytesIO(first)).subtype == "PCM_16"
    assert np.abs(decoded - x).max() <= 2.5 / 32767  # rounding plus at most 2 LSB of dither
