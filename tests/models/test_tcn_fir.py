"""TCN then learned FIR (amp + cabinet): composition, causality, receptive field, training."""

import re

import numpy as np
import pytest
import torch

from deepfx.effects.pedalboard_fx import apply_stages, build_chain
from deepfx.errors import DeepfxError
from deepfx.losses import ESRLoss
from deepfx.models import apply_model, build_model, hyperparameters
from deepfx.signals import TrackSpec, track

SR = 44100
#: FFT round-off bound in float64 (an actual dependency is larger by many orders of magnitude).
ROUND_OFF = 1e-12
#: A small model at 1 kHz: TCN receptive field 1 + 2·(1+2)·1 = 7, FIR 10 taps.
SMALL = {"channels": 4, "kernel_size": 3, "dilations": [1, 2], "stacks": 1,
         "activation": "gated", "fir_ms": 10.0}
#: The default data's amp + cabinet (params.yaml effects.amp_cab).
AMP_CAB = [
    {"plugin": "Gain", "gain_db": 18.0},
    {"plugin": "Distortion", "drive_db": 12.0},
    {"plugin": "PeakFilter", "cutoff_frequency_hz": 800.0, "gain_db": 4.0, "q": 0.7},
    {"plugin": "Cabinet", "resonance_hz": 110.0, "cutoff_hz": 4500.0, "length_ms": 40.0},
    {"plugin": "Gain", "gain_db": -10.0},
]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: FFTs on small batches slow down ten-fold when threads compete."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small():
    """The SMALL model in float64 with a random FIR (the default identity hides its taps)."""
    torch.manual_seed(0)
    model = build_model("tcn_fir", SMALL, sample_rate=1000).double().eval()
    with torch.no_grad():
        model.fir.response.normal_()
    return model


def test_defaults_are_the_tcns():
    own = hyperparameters("tcn_fir")
    assert set(own) == set(hyperparameters("tcn")) | {"fir_ms"}
    for key, (hint, default) in hyperparameters("tcn").items():
        assert own[key] == (hint, default)


def test_receptive_field_is_the_sum_minus_one(small):
    assert small.receptive_field == small.tcn.receptive_field + small.fir.receptive_field - 1 == 16
    default = build_model("tcn_fir", {}, sample_rate=SR)
    assert default.receptive_field == 4093 + round(0.05 * SR) - 1


def test_shape_and_composition(small):
    x = torch.randn(3, 1, 100, dtype=torch.double)
    with torch.no_grad():
        y = small(x)
        assert y.shape == (3, 1, 100)
        torch.testing.assert_close(y, small.fir(small.tcn(x)))


@pytest.mark.parametrize("t", [0, 37, 99])
def test_causal(small, t):
    x = torch.randn(2, 1, 100, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = small(x), small(perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=ROUND_OFF)
    if t < 99:
        assert (after[..., t + 1 :] - before[..., t + 1 :]).abs().max() > 1e-3


def test_receptive_field_is_exact(small):
    rf, t = small.receptive_field, 80
    x = torch.randn(1, 1, 100, dtype=torch.double)
    with torch.no_grad():
        base = small(x)[0, 0, t]
        for lag, should_change in ((rf - 1, True), (rf, False), (rf + 5, False)):
            nudged = x.clone()
            nudged[0, 0, t - lag] += 1.0
            change = float((small(nudged)[0, 0, t] - base).abs())
            assert (change > 1e-6) == should_change and (change > ROUND_OFF) == should_change


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_inference_equals_one_shot(small, chunk):
    model = small.float()
    x = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    with torch.no_grad():
        one_shot = model(torch.from_numpy(x).view(1, 1, -1))[0, 0].numpy()
    np.testing.assert_allclose(apply_model(model, x, chunk_samples=chunk), one_shot, atol=1e-5)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"fir_ms": 0.01}, "models.tcn_fir.fir_ms: must be at least one sample"),
        ({"fir_ms": float("inf")}, "models.tcn_fir.fir_ms: expected a number"),
        ({"channels": 0}, "models.tcn_fir.channels: expected a positive integer"),
        ({"dilations": []}, "models.tcn_fir.dilations: expected a non-empty list"),
        ({"activation": "relu"}, "models.tcn_fir.activation: 'relu' is not one of"),
        ({"length_ms": 40.0}, "models.tcn_fir.length_ms: unknown hyper-parameter"),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("tcn_fir", cfg, sample_rate=SR)


def test_adam_learns_a_real_amp_and_cabinet():
    torch.manual_seed(0)
    spec = TrackSpec(SR, 1, 4.0, (3.0, 6.0), 3, (80.0, 1200.0), -3.0)
    x = track(spec, 5)
    y = apply_stages(build_chain(AMP_CAB, SR, "amp_cab"), x)
    model = build_model(
        "tcn_fir",
        {"channels": 8, "dilations": [1, 2, 4], "stacks": 1, "activation": "tanh", "fir_ms": 45.0},
        sample_rate=SR,
    )
    context, excerpt = model.receptive_field - 1, 2048
    starts = np.random.default_rng(0).integers(context, len(x) - excerpt, size=(40, 8))
    loss_fn, optimiser = ESRLoss(0.85), torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for batch in starts:
        inputs = torch.from_numpy(np.stack([x[s - context : s + excerpt] for s in batch]))
        targets = torch.from_numpy(np.stack([y[s : s + excerpt] for s in batch]))
        loss = loss_fn(model(inputs[:, None])[..., context:], targets[:, None])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:2])
