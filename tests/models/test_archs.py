"""Every registered architecture keeps the contract of deepfx.models.base: shapes, causality,
exact streaming, chunked inference, the registry and its config errors."""

import re

import numpy as np
import pytest
import torch

from deepfx.config import SCHEMA
from deepfx.errors import DeepfxError
from deepfx.models import ARCHS, apply_model, build_model, hyperparameters
from deepfx.models.base import is_time_variant, run

#: Sample rate (Hz) the tiny models are built at: low, so that ms-sized parts stay few samples.
SR = 8000
#: Tiny configurations of every registered architecture (fast on 2 CPU cores).
TINY = {
    "cnn": {"window": 16, "channels": 4, "hidden": 8},
    "lstm": {"layers": 2, "hidden": 4, "warmup": 32},
    "rnn": {"cell": "lstm", "hidden": 4, "skip": True, "warmup": 32},
    "tcn": {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4], "stacks": 2, "activation": "gated"},
    "fir": {"length_ms": 5.0},
    "tcn_fir": {"channels": 4, "dilations": [1, 2], "stacks": 1, "fir_ms": 2.0},
    "compressor": {"threshold_db": -20.0, "ratio": 2.0, "attack_ms": 10.0, "release_ms": 50.0,
                   "makeup_db": 0.0, "warmup": 512},
    "pitch_shifter": {"n_fft": 64, "grain": 12, "delay": 37, "ratio": 2, "n_bands": 4},
    "modulated_delay": {"min_delay_ms": 0.0, "max_delay_ms": 1.0, "init_rate_hz": 5.0},
    "allpass_phaser": {"stages": 2, "warmup": 64, "init_rate_hz": 5.0},
}
#: FFT-based models are causal up to float64 round-off.
ROUND_OFF = 1e-9


def test_the_registry_and_the_params_schema_name_the_same_archs():
    assert sorted(SCHEMA["properties"]["archs"]["items"]["enum"]) == sorted(ARCHS)
    assert sorted(SCHEMA["$defs"]["model"]["properties"]["arch"]["enum"]) == sorted(ARCHS)


def test_every_registered_arch_has_a_tiny_config_and_defaults_for_the_rest():
    assert set(TINY) == set(ARCHS)
    for arch, cfg in TINY.items():
        assert set(cfg) <= set(hyperparameters(arch))
        build_model(arch, {}, sample_rate=SR)  # every hyper-parameter has a default


@pytest.fixture(params=sorted(TINY))
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, TINY[request.param], sample_rate=SR).double().eval()


def starts(batch: int, at: int = 0) -> torch.Tensor:
    return torch.full((batch,), at, dtype=torch.int64)


def test_shape_is_kept(model):
    x = 0.3 * torch.randn(3, 1, 300, dtype=torch.double)
    with torch.no_grad():
        assert run(model, x).shape == (3, 1, 300)


@pytest.mark.parametrize("t", [0, 137, 299])
def test_causal_output_ignores_future_input(model, t):
    x = 0.3 * torch.randn(2, 1, 300, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += 0.3 * torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = run(model, x), run(model, perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=ROUND_OFF)
    if t < 299:
        assert not torch.allclose(after[..., t + 1 :], before[..., t + 1 :], rtol=0, atol=1e-6)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_chunked_inference_equals_one_shot(model, block):
    model = model.float()
    x = (0.3 * np.random.default_rng(0).standard_normal(700)).astype(np.float32)
    with torch.no_grad():
        one_shot = run(model, torch.from_numpy(x).view(1, 1, -1))[0, 0].numpy()
    latency = int(getattr(model, "latency", 0))
    chunked = apply_model(model, x, chunk_samples=block)
    assert chunked.dtype == np.float32 and chunked.shape == x.shape
    np.testing.assert_allclose(chunked[: len(x) - latency], one_shot[latency:], rtol=0, atol=1e-5)


def test_stream_equals_forward_where_there_is_state(model):
    """Models with unbounded memory or time variance must stream; blocks join exactly."""
    if not hasattr(model, "stream"):
        assert not is_time_variant(model) and model.receptive_field < 10**6
        return
    x = 0.3 * torch.randn(2, 1, 500, dtype=torch.double)
    with torch.no_grad():
        whole = run(model, x)
        state, parts, at = None, [], 0
        for n in (1, 13, 0, 200, 286):
            y, state = model.stream(x[..., at : at + n], state)
            parts.append(y)
            at += n
    torch.testing.assert_close(torch.cat(parts, dim=-1), whole, rtol=0, atol=1e-9)


def test_time_variant_models_depend_on_the_start_sample(model):
    x = 0.3 * torch.randn(1, 1, 400, dtype=torch.double)
    with torch.no_grad():
        same = torch.allclose(run(model, x, starts(1, 0)), run(model, x, starts(1, 333)))
    assert same != is_time_variant(model)


def test_receptive_field_is_exact_for_the_convolutional_models():
    """Output t changes with input t - rf + 1 and not with anything earlier."""
    for arch in ("cnn", "tcn"):
        torch.manual_seed(0)
        model = build_model(arch, TINY[arch]).double().eval()
        rf, t = model.receptive_field, 80
        x = torch.randn(1, 1, 100, dtype=torch.double)
        with torch.no_grad():
            base = model(x)[0, 0, t]
            for lag, should_change in ((rf - 1, True), (rf, False), (rf + 5, False)):
                nudged = x.clone()
                nudged[0, 0, t - lag] += 1.0
                assert bool(model(nudged)[0, 0, t] != base) == should_change, (arch, lag, rf)
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


def test_tanh_activation_builds_and_runs():
    cfg = {**TINY["tcn"], "activation": "tanh"}
    assert build_model("tcn", cfg)(torch.zeros(1, 1, 10)).shape == (1, 1, 10)


@pytest.mark.parametrize(
    ("arch", "cfg", "message"),
    [
        ("gru", {}, "archs: unknown architecture 'gru'; choose from ['allpass_phaser', 'cnn',"),
        ("cnn", {**TINY["cnn"], "dropout": 0.1}, "models.cnn.dropout: unknown"),
        ("cnn", {**TINY["cnn"], "channels": 0}, "models.cnn.channels: expected a positive integer"),
        ("cnn", {**TINY["cnn"], "window": 15}, "models.cnn.window: 15 does not fit"),
        ("cnn", {**TINY["cnn"], "hidden": True}, "models.cnn.hidden: expected a positive integer"),
        ("tcn", {**TINY["tcn"], "dilations": []}, "models.tcn.dilations: expected a non-empty list"),
        ("tcn", {**TINY["tcn"], "dilations": [1, -2]}, "models.tcn.dilations[1]: expected"),
        ("tcn", {**TINY["tcn"], "activation": "relu"}, "models.tcn.activation: 'relu' is not one of"),
        ("rnn", {"skip": "yes"}, "models.rnn.skip: expected true or false, got 'yes'"),
        ("fir", {"length_ms": "long"}, "models.fir.length_ms: expected a number, got 'long'"),
    ],
)
def test_bad_config_names_the_key(arch, cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model(arch, cfg, sample_rate=SR)


def test_where_names_the_effect_and_a_missing_rate_is_an_error():
    with pytest.raises(DeepfxError, match=re.escape("effects.delay.model.length_ms: expected a number")):
        build_model("fir", {"length_ms": None}, sample_rate=SR, where="effects.delay.model")
    with pytest.raises(DeepfxError, match=re.escape("models.fir: fir needs the sample rate (Hz)")):
        build_model("fir", {})
