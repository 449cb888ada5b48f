"""The phase-vocoder pitch shifter: octave up, latency and receptive field, its closed-form fit
and a short training run against pedalboard's PitchShift (Rubber Band). (Shapes, causality,
streaming and config errors: test_archs.py.)"""

import auraloss
import numpy as np
import pedalboard
import pytest
import torch
from helpers import SR, adam_steps, effect, excerpts, output_changes

from deepfx.losses import log_mel_distance
from deepfx.models import apply_model, build_model

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"n_fft": 256, "grain": 32, "delay": 143, "n_bands": 8}


def notes(seconds: float, seed: int = 0) -> np.ndarray:
    """Decaying sawtooth and sine notes (110–880 Hz), one every 0.5 s."""
    rng = np.random.default_rng(seed)
    n, step = int(seconds * SR), SR // 2
    t = np.arange(step) / SR
    out = np.zeros(n)
    for start in range(0, n - step + 1, step):
        f = 110 * 2 ** rng.uniform(0, 3)
        wave = 2 * (t * f % 1.0) - 1 if rng.random() < 0.5 else np.sin(2 * np.pi * f * t)
        out[start : start + step] = rng.uniform(0.2, 0.6) * np.exp(-t / 0.5) * wave
    return out.astype(np.float32)


def octave_up(x: np.ndarray) -> np.ndarray:
    return effect(pedalboard.PitchShift(semitones=12), x)


def small_model():
    torch.manual_seed(0)
    model = build_model("pitch_shifter", SMALL, sample_rate=SR).double()
    with torch.no_grad():
        model.gains_db.normal_(0.0, 3.0)
    return model


def test_latency_and_receptive_field():
    model = build_model("pitch_shifter", SMALL, sample_rate=SR)
    assert model.latency == 143
    assert model.receptive_field == 256 + 32 - 1


def test_a_tone_comes_out_an_octave_higher_at_its_level():
    model = build_model("pitch_shifter", {}, sample_rate=SR)
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    y = apply_model(model, x)[SR // 4 :]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spectrum)] == pytest.approx(880, abs=2)
    assert np.std(y) == pytest.approx(np.std(x), rel=0.05)
    # nothing left at the input's frequency
    bin_440 = round(440 * len(y) / SR)
    assert spectrum[bin_440 - 3 : bin_440 + 4].max() < 1e-3 * spectrum.max()


def test_receptive_field_is_the_longest_dependency():
    """Output s whose oldest contributing frame ends at s - grain + 1 (a hop multiple)
    changes with input s - receptive_field + 1 and with nothing before it."""
    model = small_model()
    rf, s = model.receptive_field, 640 + 32 - 1  # frames end at multiples of 8
    x = torch.randn(1, 1, 700, dtype=torch.double)
    changes = output_changes(model, x, s, (rf - 1, rf, rf + 9))
    assert changes[0] > 0 and changes[1:] == [0, 0], changes


def test_initialise_matches_the_effects_level_and_beats_the_clean_signal():
    x, check = notes(6.0, seed=1), notes(3.0, seed=2)
    model = build_model("pitch_shifter", {}, sample_rate=SR)
    with torch.no_grad():
        model.gains_db.fill_(-12.0)
    target = octave_up(check)
    # apply_model compensates the latency, as a host does
    before = log_mel_distance(apply_model(model, check), target, SR)
    model.initialise(x, octave_up(x))
    after = log_mel_distance(apply_model(model, check), target, SR)
    clean = log_mel_distance(check, target, SR)
    assert after < 0.7 * before and after < 0.5 * clean
    assert -5.0 < float(model.gains_db[1:-1].detach().mean()) < 2.0  # Rubber Band keeps the level


def test_short_training_on_the_real_effect_lowers_the_mrstft_loss():
    cfg = {"n_fft": 1024, "delay": 575, "n_bands": 16}
    model = build_model("pitch_shifter", cfg, sample_rate=SR)
    with torch.no_grad():
        model.gains_db.fill_(-10.0)
    x = notes(2.0, seed=3)
    y = octave_up(x)
    rf, lat, length = model.receptive_field, model.latency, 8192
    # the output lags by ``lat``: each excerpt reaches ``lat`` samples past its target
    first = np.arange(rf, len(x) - length - lat, 9000)
    clean, target = excerpts(x, y, first, rf - 1, length + lat)
    target = target[..., :length]
    loss_fn = auraloss.freq.MultiResolutionSTFTLoss()
    steps = (loss_fn(model(clean)[..., rf - 1 + lat :], target) for _ in range(30))
    losses = adam_steps(model, steps, lr=0.5)
    assert losses[-1] < 0.7 * losses[0]
    assert float(model.gains_db.detach().mean()) > -6.0


@pytest.mark.parametrize("semitones", [7, -12, -5])
def test_any_interval_comes_out_at_its_frequency(semitones):
    ratio = 2 ** (semitones / 12)
    model = build_model("pitch_shifter", {"ratio": ratio}, sample_rate=SR)
    assert model.latency == 2047 and model.receptive_field == 2 * 2048 - 1
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    y = apply_model(model, x)[SR // 4 :]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak = np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spectrum)]
    assert peak == pytest.approx(440 * ratio, abs=2)
    assert 0.3 < np.std(y) / np.std(x) < 1.5


def test_initialise_finds_the_lag_of_a_late_effect_and_streams_with_it():
    """A fifth down (pedalboard's Rubber Band) and the same 2000 samples late: initialise finds
    lags 2000 samples apart (within its 64-sample steps); the late model then streams in
    blocks as it runs whole and is closer to that effect than its input."""
    x = notes(6.0)
    prompt = effect(pedalboard.PitchShift(semitones=-7), x)
    late = np.concatenate([np.zeros(2000, np.float32), prompt])[: len(x)]
    lags, models = [], []
    for target in (prompt, late):
        model = build_model("pitch_shifter", {"ratio": 2 ** (-7 / 12), "max_lag_ms": 100.0},
                            sample_rate=SR)
        model.initialise(x, target)
        lags.append(int(model.lag))
        models.append(model)
    assert abs(lags[1] - lags[0] - 2000) <= 64
    model = models[1]
    assert model.receptive_field == 2 * 2048 - 1 + lags[1]
    whole = apply_model(model, x)
    blocks = apply_model(model, x, chunk_samples=1000)
    np.testing.assert_allclose(blocks, whole, atol=1e-5)
    assert log_mel_distance(whole, late, SR) < 0.5 * log_mel_distance(x, late, SR)
