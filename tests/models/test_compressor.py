"""The compressor model against pedalboard's (JUCE's) Compressor: exactness, warm-up and a short
training run. (Shapes, causality, streaming and config errors: test_archs.py.)"""

import numpy as np
import pedalboard
import pytest
import torch

from helpers import SR, adam_steps, effect, excerpts

from deepfx.losses import ESRLoss
from deepfx.models import apply_model, build_model

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EFFECT = {"threshold_db": -24.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0}


def bursts(seconds: float, seed: int = 0) -> np.ndarray:
    """Tone bursts (220 Hz) whose level jumps every 1000 samples, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    level = np.repeat(rng.uniform(0.0, 0.9, n // 1000 + 1), 1000)[:n]
    x = level * np.sin(2 * np.pi * 220 * np.arange(n) / SR) + 0.02 * rng.standard_normal(n)
    return x.astype(np.float32)


def compressed(x: np.ndarray, makeup_db: float = 8.0) -> np.ndarray:
    """The EFFECT compressor then ``makeup_db`` (dB) of gain, pedalboard's."""
    board = pedalboard.Pedalboard(
        [pedalboard.Compressor(**EFFECT), pedalboard.Gain(gain_db=makeup_db)]
    )
    return effect(board, x)


def test_receptive_field_is_the_warmup():
    assert build_model("compressor", {"warmup": 512}, sample_rate=SR).receptive_field == 512


def test_the_effects_settings_reproduce_pedalboard_exactly():
    cfg = {**EFFECT, "makeup_db": 8.0}
    model = build_model("compressor", cfg, sample_rate=SR)
    x = bursts(1.0)
    target = compressed(x)
    prediction = apply_model(model, x, chunk_samples=10_000)
    assert np.sum((prediction - target) ** 2) / np.sum(target**2) < 1e-8
    # and it does compress: loud parts get far less than the +8 dB make-up
    assert np.sum(target**2) < 2 * np.sum(x**2)


def test_short_training_on_the_real_effect_lowers_the_loss():
    torch.manual_seed(0)
    model = build_model("compressor", {"warmup": 2048}, sample_rate=SR)
    x = bursts(3.0, seed=3)
    rf, length = model.receptive_field, 4096
    clean, target = excerpts(x, compressed(x), np.arange(rf, len(x) - length, 8000), rf, length)
    loss_fn = ESRLoss(0.85)
    with torch.no_grad():
        first = loss_fn(model(clean)[..., rf:], target).item()
    steps = (loss_fn(model(clean)[..., rf:], target) for _ in range(60))
    losses = adam_steps(model, steps, lr=0.02)
    assert losses[-1] < 0.1 * first
    settings = {k: v.item() for k, v in model.settings().items()}
    assert settings["makeup_db"] > 3.0  # moving from 0 dB towards the effect's +8 dB
