"""The learned FIR filter: convolution, causality, receptive field, closed-form fit, training."""

import re

import numpy as np
import pedalboard
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.losses import ESRLoss, esr
from deepfx.models import apply_model, build_model
from deepfx.models.fir import fft_convolve, wiener_taps
from deepfx.signals import TrackSpec, track

SR = 44100
#: FFT round-off bound in float64 (an actual dependency is larger by many orders of magnitude).
ROUND_OFF = 1e-12


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: FFTs on small batches slow down ten-fold when threads compete."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tonal(seconds: float, seed: int) -> np.ndarray:
    """A clean signal like the default data's: notes and chirps of 80-1200 Hz."""
    spec = TrackSpec(SR, 1, seconds, (3.0, 6.0), 3, (80.0, 1200.0), -3.0)
    return track(spec, seed)


def effect(plugin: pedalboard.Plugin, x: np.ndarray) -> np.ndarray:
    return plugin.process(x[None], SR, reset=True)[0]


@pytest.fixture
def random_fir():
    """A small FIR (64 taps at 1 kHz) with a random impulse response, in float64."""
    torch.manual_seed(0)
    model = build_model("fir", {"length_ms": 64.0}, sample_rate=1000).double()
    with torch.no_grad():
        model.response.normal_()
    return model


def test_taps_follow_length_and_rate():
    assert build_model("fir", {"length_ms": 20.0}, sample_rate=SR).receptive_field == 882
    assert build_model("fir", {"length_ms": 600.0}, sample_rate=48000).receptive_field == 28800
    assert build_model("fir", {}, sample_rate=SR).receptive_field == round(0.6 * SR)


def test_starts_as_identity_and_keeps_shape():
    model = build_model("fir", {"length_ms": 5.0}, sample_rate=SR)
    x = torch.randn(3, 1, 100)
    y = model(x)
    assert y.shape == (3, 1, 100)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 30, 200])
def test_forward_is_the_linear_convolution_with_its_taps(random_fir, n):
    x = torch.randn(2, 1, n, dtype=torch.double)
    with torch.no_grad():
        y, h = random_fir(x), random_fir.taps()
    for b in range(2):
        direct = np.convolve(x[b, 0].numpy(), h.numpy())[:n]
        np.testing.assert_allclose(y[b, 0].numpy(), direct, rtol=0, atol=ROUND_OFF)


@pytest.mark.parametrize("t", [0, 37, 150])
def test_causal(random_fir, t):
    x = torch.randn(2, 1, 200, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = random_fir(x), random_fir(perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=ROUND_OFF)
    assert (after[..., t + 1 :] - before[..., t + 1 :]).abs().max() > 1e-3


def test_receptive_field_is_exact(random_fir):
    rf, t = random_fir.receptive_field, 150
    x = torch.randn(1, 1, 200, dtype=torch.double)
    with torch.no_grad():
        base = random_fir(x)[0, 0, t]
        for lag, should_change in ((rf - 1, True), (rf, False), (rf + 5, False)):
            nudged = x.clone()
            nudged[0, 0, t - lag] += 1.0
            change = float((random_fir(nudged)[0, 0, t] - base).abs())
            assert (change > 1e-6) == should_change and (change > ROUND_OFF) == should_change


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_inference_equals_one_shot(random_fir, chunk):
    model = random_fir.float()
    x = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    with torch.no_grad():
        one_shot = model(torch.from_numpy(x).view(1, 1, -1))[0, 0].numpy()
    np.testing.assert_allclose(apply_model(model, x, chunk_samples=chunk), one_shot, atol=1e-5)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"length_ms": 0.01}, "models.fir.length_ms: must be at least one sample"),
        ({"length_ms": -5.0}, "models.fir.length_ms: must be at least one sample"),
        ({"length_ms": float("nan")}, "models.fir.length_ms: expected a number"),
        ({"length_ms": "long"}, "models.fir.length_ms: expected a number"),
        ({"taps": 100}, "models.fir.taps: unknown hyper-parameter"),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("fir", cfg, sample_rate=SR)


def test_needs_the_sample_rate():
    with pytest.raises(DeepfxError, match="models.fir: fir needs the sample rate"):
        build_model("fir", {})


@pytest.mark.parametrize(
    ("plugin", "length_ms", "max_esr"),
    [
        (pedalboard.LowpassFilter(cutoff_frequency_hz=800.0), 20.0, 1e-6),
        (pedalboard.HighpassFilter(cutoff_frequency_hz=500.0), 20.0, 1e-4),
        # An echo every 30 ms fed back at 0.3: 120 ms hold all but 0.3⁴ of it.
        (pedalboard.Delay(delay_seconds=0.03, feedback=0.3, mix=0.4), 120.0, 1e-3),
    ],
)
def test_initialise_fits_a_real_effect_without_training(plugin, length_ms, max_esr):
    train, test = tonal(4.0, seed=1), tonal(2.0, seed=2)
    model = build_model("fir", {"length_ms": length_ms}, sample_rate=SR)
    before = esr(apply_model(model, test), effect(plugin, test))
    model.initialise(train, effect(plugin, train))
    after = esr(apply_model(model, test), effect(plugin, test))
    assert after < max_esr < before


def test_initialise_is_bounded_where_the_input_has_no_energy():
    """One pure tone excites one frequency: the ridge keeps every other band's gain small."""
    x = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SR) / SR)).astype(np.float32)
    h = wiener_taps(x, effect(pedalboard.LowpassFilter(cutoff_frequency_hz=800.0), x), 441)
    assert np.isfinite(h).all() and np.abs(np.fft.rfft(h)).max() < 2.0


@pytest.mark.parametrize(
    ("clean", "processed", "message"),
    [
        (np.zeros(100), np.zeros(100), "clean is silent"),
        (np.ones(100), np.ones(99), "1-D signals of one length"),
        (np.ones((2, 50)), np.ones((2, 50)), "1-D signals of one length"),
    ],
)
def test_initialise_rejects_unusable_signals(clean, processed, message):
    model = build_model("fir", {"length_ms": 1.0}, sample_rate=SR)
    with pytest.raises(ValueError, match=message):
        model.initialise(clean.astype(np.float32), processed.astype(np.float32))


def test_fft_convolve_keeps_batch_dimensions():
    x = torch.randn(2, 3, 1, 50, dtype=torch.double)
    taps = torch.tensor([1.0, 0.5], dtype=torch.double)
    y = fft_convolve(x, taps)
    expected = x.clone()
    expected[..., 1:] += 0.5 * x[..., :-1]
    torch.testing.assert_close(y, expected, rtol=0, atol=ROUND_OFF)


def test_adam_from_the_identity_learns_a_real_high_pass():
    torch.manual_seed(0)
    x = tonal(4.0, seed=3)
    y = effect(pedalboard.HighpassFilter(cutoff_frequency_hz=500.0), x)
    model = build_model("fir", {"length_ms": 10.0}, sample_rate=SR)
    context, excerpt = model.receptive_field - 1, 4096
    rng = np.random.default_rng(0)
    starts = rng.integers(context, len(x) - excerpt, size=(40, 8))
    loss_fn, optimiser = ESRLoss(0.85), torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for batch in starts:
        inputs = torch.from_numpy(np.stack([x[s - context : s + excerpt] for s in batch]))
        targets = torch.from_numpy(np.stack([y[s : s + excerpt] for s in batch]))
        loss = loss_fn(model(inputs[:, None])[..., context:], targets[:, None])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:2])
