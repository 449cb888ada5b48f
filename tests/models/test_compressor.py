"""The compressor model against pedalboard's (JUCE's) Compressor: exactness, causality,
streaming, hyper-parameter errors and a short training run."""

import numpy as np
import pedalboard
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.losses import ESRLoss
from deepfx.models import apply_model, build_model

SR = 44100
EFFECT = {"threshold_db": -24.0, "ratio": 4.0, "attack_ms": 5.0, "release_ms": 100.0}


def bursts(seconds: float, seed: int = 0) -> np.ndarray:
    """Tone bursts (220 Hz) whose level jumps every 1000 samples, plus a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    level = np.repeat(rng.uniform(0.0, 0.9, n // 1000 + 1), 1000)[:n]
    x = level * np.sin(2 * np.pi * 220 * np.arange(n) / SR) + 0.02 * rng.standard_normal(n)
    return x.astype(np.float32)


def effect(x: np.ndarray, makeup_db: float = 8.0) -> np.ndarray:
    board = pedalboard.Pedalboard(
        [pedalboard.Compressor(**EFFECT), pedalboard.Gain(gain_db=makeup_db)]
    )
    return board(x[None], SR)[0]


def as_batch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).view(1, 1, -1)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (the machine is shared; small tensors gain nothing from more)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model():
    return build_model("compressor", {"warmup": 512}, sample_rate=SR)


def test_shapes_and_receptive_field(model):
    assert model(torch.randn(3, 1, 200)).shape == (3, 1, 200)
    assert model.receptive_field == 512


def test_the_effects_settings_reproduce_pedalboard_exactly():
    cfg = {**EFFECT, "makeup_db": 8.0}
    model = build_model("compressor", cfg, sample_rate=SR)
    x = bursts(1.0)
    target = effect(x)
    prediction = apply_model(model, x, chunk_samples=10_000)
    assert np.sum((prediction - target) ** 2) / np.sum(target**2) < 1e-8
    # and it does compress: loud parts get far less than the +8 dB make-up
    assert np.sum(target**2) < 2 * np.sum(x**2)


@pytest.mark.parametrize("t", [0, 250, 998])
def test_causal(model, t):
    x = as_batch(bursts(0.03, seed=1)[:1000])
    perturbed = x.clone()
    perturbed[..., t + 1 :] *= 3.0
    with torch.no_grad():
        before, after = model(x), model(perturbed)
    assert torch.equal(before[..., : t + 1], after[..., : t + 1])
    if t < 998:
        assert not torch.allclose(before[..., t + 1 :], after[..., t + 1 :])


@pytest.mark.parametrize("block", [1, 7, 64, 1000, 4000])
def test_stream_equals_forward(block):
    torch.manual_seed(0)
    model = build_model("compressor", {"attack_ms": 2.0, "threshold_db": -30.0}, sample_rate=SR)
    with torch.no_grad():  # a non-default make-up and ratio as well
        model.makeup.fill_(0.3)
        model.ratio_excess.fill_(0.5)
    x = as_batch(bursts(0.1, seed=2))[..., :4000].repeat(2, 1, 1)
    x[1] *= 0.5
    with torch.no_grad():
        whole = model(x)
        state, parts = None, []
        for start in range(0, x.shape[-1], block):
            y, state = model.stream(x[..., start : start + block], state)
            parts.append(y)
    torch.testing.assert_close(torch.cat(parts, -1), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "key, value",
    [("ratio", 1.0), ("ratio", 0.5), ("attack_ms", 0.0), ("release_ms", -5.0), ("warmup", 0)],
)
def test_bad_hyperparameters_name_the_key(key, value):
    with pytest.raises(DeepfxError, match=rf"models\.compressor\.{key}"):
        build_model("compressor", {key: value}, sample_rate=SR)


def test_needs_the_sample_rate():
    with pytest.raises(DeepfxError, match="sample rate"):
        build_model("compressor", {})


def test_short_training_on_the_real_effect_lowers_the_loss():
    torch.manual_seed(0)
    model = build_model("compressor", {"warmup": 2048}, sample_rate=SR)
    x = bursts(3.0, seed=3)
    y = effect(x)
    rf, length = model.receptive_field, 4096
    starts = np.arange(0, len(x) - rf - length, 8000)
    clean = torch.from_numpy(np.stack([x[s : s + rf + length] for s in starts]))[:, None]
    target = torch.from_numpy(np.stack([y[s + rf : s + rf + length] for s in starts]))[:, None]
    loss_fn = ESRLoss(0.85)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    with torch.no_grad():
        first = loss_fn(model(clean)[..., rf:], target).item()
    for _ in range(60):
        loss = loss_fn(model(clean)[..., rf:], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first
    settings = {k: v.item() for k, v in model.settings().items()}
    assert settings["makeup_db"] > 3.0  # moving from 0 dB towards the effect's +8 dB
