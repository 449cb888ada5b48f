"""The learned FIR filter: convolution, receptive field, closed-form fit, training. (Shapes,
causality, chunked inference and config errors: test_archs.py.)"""

import numpy as np
import pedalboard
import pytest
import torch
from helpers import SR, effect, excerpt_training, output_changes, tonal

from deepfx.losses import esr
from deepfx.models import apply_model, build_model
from deepfx.models.fir import fft_convolve, wiener_taps

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: FFT round-off bound in float64 (an actual dependency is larger by many orders of magnitude).
ROUND_OFF = 1e-12


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


def test_starts_as_identity():
    model = build_model("fir", {"length_ms": 5.0}, sample_rate=SR)
    x = torch.randn(3, 1, 100)
    torch.testing.assert_close(model(x), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("n", [1, 30, 200])
def test_forward_is_the_linear_convolution_with_its_taps(random_fir, n):
    x = torch.randn(2, 1, n, dtype=torch.double)
    with torch.no_grad():
        y, h = random_fir(x), random_fir.taps()
    for b in range(2):
        direct = np.convolve(x[b, 0].numpy(), h.numpy())[:n]
        np.testing.assert_allclose(y[b, 0].numpy(), direct, rtol=0, atol=ROUND_OFF)


def test_receptive_field_is_exact(random_fir):
    rf = random_fir.receptive_field
    x = torch.randn(1, 1, 200, dtype=torch.double)
    changes = output_changes(random_fir, x, 150, (rf - 1, rf, rf + 5))
    assert changes[0] > 1e-6 and max(changes[1:]) <= ROUND_OFF, changes


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
    losses = excerpt_training(model, x, y, length=4096, lr=3e-2)
    assert np.mean(losses[-5:]) < 0.1 * np.mean(losses[:2])
