"""Loss functions against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from deepfx.losses import ESRLoss, esr, log_mel_distance, mrstft


def test_pre_emphasis_esr_matches_hand_computation():
    # auraloss' first-order high-pass is y[n] = x[n-1] - c·x[n] (x[-1] = 0); c = 0.5:
    # item 1: input [1, 2, 3] → [-0.5, 0, 0.5]; target [2, 0, 1] → [-1, 2, -0.5]
    #         error energy 0.25 + 4 + 1 = 5.25, target energy 1 + 4 + 0.25 = 5.25
    # item 2: input [0, 1, 0] → [0, -0.5, 1];   target [1, 1, 1] → [-0.5, 0.5, 0.5]
    #         error energy 0.25 + 1 + 0.25 = 1.5, target energy 0.75
    # one ratio over the batch: (5.25 + 1.5) / (5.25 + 0.75) = 1.125 (the mean of the two
    # per-item ratios would be (1 + 2) / 2 = 1.5)
    prediction = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 1.0, 0.0]]])
    target = torch.tensor([[[2.0, 0.0, 1.0]], [[1.0, 1.0, 1.0]]])
    assert ESRLoss(0.5)(prediction, target).item() == pytest.approx(1.125, rel=1e-6)


def test_pre_emphasis_weights_high_frequencies_more():
    t = torch.arange(4096) / 44100
    target = torch.sin(2 * math.pi * 440 * t).view(1, 1, -1)
    low_error = target + 0.1 * torch.sin(2 * math.pi * 100 * t)
    high_error = target + 0.1 * torch.sin(2 * math.pi * 8000 * t)
    loss = ESRLoss(0.85)
    assert loss(high_error, target) > 10 * loss(low_error, target)


def test_loss_is_zero_for_a_perfect_prediction_and_has_gradients():
    target = torch.randn(2, 1, 64)
    prediction = target.clone().requires_grad_(True)
    loss = ESRLoss()(prediction, target)
    assert loss.item() == pytest.approx(0.0, abs=1e-9)
    (ESRLoss()(prediction * 0.5, target)).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


@pytest.mark.parametrize("coef", [-0.1, 1.5, math.nan, "0.85", True])
def test_bad_coefficient_is_a_value_error(coef):
    with pytest.raises(ValueError, match="pre_emphasis must be a number in"):
        ESRLoss(coef)


def test_plain_esr_by_hand():
    # error (2-1, 0-2) → 1 + 4 = 5; target energy 4 + 0 = 4
    assert esr(np.array([1.0, 2.0]), np.array([2.0, 0.0])) == pytest.approx(1.25, rel=1e-6)
    assert esr(np.zeros(8), np.ones(8)) == pytest.approx(1.0, rel=1e-6)


def test_mrstft_is_zero_for_equal_signals_and_grows_with_the_difference():
    rng = np.random.default_rng(0)
    t = np.arange(8192) / 44100
    x = (np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    assert mrstft(x, x) == pytest.approx(0.0, abs=1e-4)
    assert 0 < mrstft(0.9 * x, x) < mrstft(0.3 * x, x)


def _noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(44100 * seconds)).astype(np.float32)


def test_log_mel_distance_of_a_gain_is_its_level_in_db():
    # white noise fills every mel band far above the 80 dB floor, so halving the amplitude
    # lowers every band by 20·log10(2) = 6.0206 dB and the mean absolute difference is that
    x = 0.1 * _noise()
    assert log_mel_distance(x, x, 44100) == 0.0
    assert log_mel_distance(0.5 * x, x, 44100) == pytest.approx(6.0206, abs=2e-3)
    assert log_mel_distance(0.25 * x, x, 44100) == pytest.approx(12.0412, abs=4e-3)


def test_log_mel_distance_ignores_what_lies_80_db_below_the_targets_peak():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    faint = tone + 1e-6 * _noise(seed=1)  # -120 dB: clipped away
    audible = tone + 1e-2 * _noise(seed=1)  # -40 dB: counts
    assert log_mel_distance(faint, tone, 44100) < 0.01
    assert log_mel_distance(audible, tone, 44100) > 1.0
    # the floor comes from the target: silence predicted for a loud target is far off
    assert log_mel_distance(np.zeros_like(tone), tone, 44100) > 5.0


def test_log_mel_distance_needs_two_equally_long_1d_signals():
    with pytest.raises(ValueError, match="one length"):
        log_mel_distance(np.zeros(100), np.zeros(101), 44100)
    with pytest.raises(ValueError, match="one length"):
        log_mel_distance(np.zeros((2, 100)), np.zeros((2, 100)), 44100)
