"""The phase-vocoder pitch shifter: octave up, causality, streaming, receptive field,
hyper-parameter errors, its closed-form fit and a short training run against pedalboard's
PitchShift (Rubber Band)."""

import auraloss
import numpy as np
import pedalboard
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.losses import log_mel_distance
from deepfx.models import apply_model, build_model

SR = 44100
SMALL = {"n_fft": 256, "grain": 32, "delay": 143, "n_bands": 8}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (the machine is shared; small tensors gain nothing from more)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    return pedalboard.Pedalboard([pedalboard.PitchShift(semitones=12)])(x[None], SR)[0]


def small_model():
    torch.manual_seed(0)
    model = build_model("pitch_shifter", SMALL, sample_rate=SR).double()
    with torch.no_grad():
        model.gains_db.normal_(0.0, 3.0)
    return model


def test_shapes_latency_and_receptive_field():
    model = build_model("pitch_shifter", SMALL, sample_rate=SR)
    assert model(torch.randn(3, 1, 300)).shape == (3, 1, 300)
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


@pytest.mark.parametrize("t", [0, 100, 401, 590])
def test_causal(t):
    model = small_model()
    x = torch.randn(2, 1, 600, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = model(x), model(perturbed)
    assert torch.equal(before[..., : t + 1], after[..., : t + 1])
    # later outputs do change (from the next frame end, a multiple of the 8-sample hop, on)
    assert not torch.allclose(before[..., t + 1 :], after[..., t + 1 :])


def test_receptive_field_is_the_longest_dependency():
    """Output s whose oldest contributing frame ends at s - grain + 1 (a hop multiple)
    changes with input s - receptive_field + 1 and with nothing before it."""
    model = small_model()
    rf, s = model.receptive_field, 640 + 32 - 1  # frames end at multiples of 8
    x = torch.randn(1, 1, 700, dtype=torch.double)
    with torch.no_grad():
        base = model(x)[0, 0, s]
        for lag, should_change in ((rf - 1, True), (rf, False), (rf + 9, False)):
            nudged = x.clone()
            nudged[0, 0, s - lag] += 1.0
            assert bool(model(nudged)[0, 0, s] != base) == should_change, lag


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_stream_equals_forward(block):
    model = small_model()
    x = torch.randn(2, 1, 2500, dtype=torch.double)
    with torch.no_grad():
        whole = model(x)
        state, parts = None, []
        for start in range(0, x.shape[-1], block):
            y, state = model.stream(x[..., start : start + block], state)
            parts.append(y)
    torch.testing.assert_close(torch.cat(parts, -1), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "key, value",
    [("n_fft", 255), ("grain", 30), ("grain", 512), ("delay", 10), ("delay", 256), ("delay", 40),
     ("n_bands", 1), ("ratio", 0)],
)
def test_bad_hyperparameters_name_the_key(key, value):
    with pytest.raises(DeepfxError, match=rf"models\.pitch_shifter\.{key}"):
        build_model("pitch_shifter", {**SMALL, key: value}, sample_rate=SR)


def compensated(model, x: np.ndarray) -> np.ndarray:
    """The model's output moved ``latency`` samples earlier (as a host compensates latency)."""
    return apply_model(model, np.pad(x, (0, model.latency)))[model.latency :]


def test_initialise_matches_the_effects_level_and_beats_the_clean_signal():
    x, check = notes(6.0, seed=1), notes(3.0, seed=2)
    model = build_model("pitch_shifter", {}, sample_rate=SR)
    with torch.no_grad():
        model.gains_db.fill_(-12.0)
    target = octave_up(check)
    before = log_mel_distance(compensated(model, check), target, SR)
    model.initialise(x, octave_up(x))
    after = log_mel_distance(compensated(model, check), target, SR)
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
    starts = np.arange(rf, len(x) - length - lat, 9000)
    clean = torch.from_numpy(np.stack([x[s - rf + 1 : s + length + lat] for s in starts]))[:, None]
    target = torch.from_numpy(np.stack([y[s : s + length] for s in starts]))[:, None]
    loss_fn = auraloss.freq.MultiResolutionSTFTLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        loss = loss_fn(model(clean)[..., rf - 1 + lat :], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert float(model.gains_db.detach().mean()) > -6.0
