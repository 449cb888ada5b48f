"""Every architecture: shapes, causality, receptive field, chunked inference, config errors."""

import re

import numpy as np
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.models import ARCHS, apply_model, build_model, hyperparameters

#: Tiny configurations of every registered architecture (fast on 2 CPU cores).
TINY = {
    "cnn": {"window": 16, "channels": 4, "hidden": 8},
    "tcn": {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4], "stacks": 2, "activation": "gated"},
}


def test_every_registered_arch_has_a_tiny_config():
    assert set(TINY) == set(ARCHS)
    for arch, cfg in TINY.items():
        assert set(cfg) == set(hyperparameters(arch))


@pytest.fixture(params=sorted(TINY))
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, TINY[request.param]).double().eval()


def test_shape_is_kept(model):
    x = torch.randn(3, 1, 100, dtype=torch.double)
    assert model(x).shape == (3, 1, 100)


@pytest.mark.parametrize("t", [0, 37, 99])
def test_causal_output_ignores_future_input(model, t):
    x = torch.randn(2, 1, 100, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = model(x), model(perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=0)
    if t < 99:
        assert not torch.allclose(after[..., t + 1 :], before[..., t + 1 :])


def test_receptive_field_is_exact(model):
    """Output t changes with input t - rf + 1 and not with anything earlier."""
    rf, t = model.receptive_field, 80
    x = torch.randn(1, 1, 100, dtype=torch.double)
    with torch.no_grad():
        base = model(x)[0, 0, t]
        for lag, should_change in ((rf - 1, True), (rf, False), (rf + 5, False)):
            if lag > t:
                continue
            nudged = x.clone()
            nudged[0, 0, t - lag] += 1.0
            changed = model(nudged)[0, 0, t] != base
            assert bool(changed) == should_change, (lag, rf)


def test_receptive_field_formulas():
    assert build_model("cnn", TINY["cnn"]).receptive_field == 16
    # 1 + (kernel_size - 1) * sum(dilations) * stacks
    assert build_model("tcn", TINY["tcn"]).receptive_field == 1 + 2 * 7 * 2


def test_cnn_sequence_equals_the_per_window_network():
    """forward() over a sequence gives exactly the seed's one-window-one-sample predictions."""
    torch.manual_seed(1)
    cnn = build_model("cnn", TINY["cnn"]).double()
    x = torch.randn(2, 1, 50, dtype=torch.double)
    padded = torch.nn.functional.pad(x, (cnn.receptive_field - 1, 0))
    windows = padded.unfold(-1, cnn.receptive_field, 1)  # (2, 1, 50, window)
    per_window = cnn.predict_windows(windows.reshape(-1, 1, cnn.receptive_field)).view(2, 1, 50)
    torch.testing.assert_close(cnn(x), per_window)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_inference_equals_one_shot(model, chunk):
    model = model.float()
    x = np.random.default_rng(0).standard_normal(300).astype(np.float32)
    with torch.no_grad():
        one_shot = model(torch.from_numpy(x).view(1, 1, -1))[0, 0].numpy()
    chunked = apply_model(model, x, chunk_samples=chunk)
    assert chunked.dtype == np.float32 and chunked.shape == x.shape
    np.testing.assert_allclose(chunked, one_shot, rtol=0, atol=1e-5)


def test_tanh_activation_builds_and_runs():
    cfg = {**TINY["tcn"], "activation": "tanh"}
    assert build_model("tcn", cfg)(torch.zeros(1, 1, 10)).shape == (1, 1, 10)


@pytest.mark.parametrize(
    ("arch", "cfg", "message"),
    [
        ("rnn", {}, "archs: unknown architecture 'rnn'; choose from ['cnn', 'tcn']"),
        ("cnn", {"window": 16, "channels": 4}, "models.cnn.hidden: missing"),
        ("cnn", {**TINY["cnn"], "dropout": 0.1}, "models.cnn.dropout: unknown"),
        ("cnn", {**TINY["cnn"], "channels": 0}, "models.cnn.channels: expected a positive integer"),
        ("cnn", {**TINY["cnn"], "window": 15}, "models.cnn.window: 15 does not fit"),
        ("cnn", {**TINY["cnn"], "hidden": True}, "models.cnn.hidden: expected a positive integer"),
        ("tcn", {**TINY["tcn"], "dilations": []}, "models.tcn.dilations: expected a non-empty list"),
        ("tcn", {**TINY["tcn"], "dilations": [1, -2]}, "models.tcn.dilations[1]: expected"),
        ("tcn", {**TINY["tcn"], "activation": "relu"}, "models.tcn.activation: 'relu' is not one of"),
    ],
)
def test_bad_config_names_the_key(arch, cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model(arch, cfg)
