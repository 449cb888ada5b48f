"""Every registered architecture keeps the contract of deepfx.models.base: shapes, causality,
exact streaming, chunked inference, time variance, the registry and every architecture's config
errors. (The per-architecture files test what is particular to one.)"""

import re

import numpy as np
import pytest
import torch
from helpers import output_changes, starts

from deepfx.config import SCHEMA
from deepfx.errors import DeepfxError
from deepfx.models import ARCHS, apply_model, build_model, hyperparameters
from deepfx.models.base import is_time_variant, latency_of, run

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

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
#: Other code paths of an architecture: a GRU cell without the skip connection; the pitch
#: shifter's phase vocoder (a ratio that is not a whole number).
VARIANTS = {
    "rnn-gru": ("rnn", {"cell": "gru", "hidden": 4, "skip": False, "warmup": 32}),
    "pitch_shifter-vocoder": ("pitch_shifter", {"n_fft": 64, "grain": 12, "delay": 37,
                                                "ratio": 0.75, "n_bands": 4}),
}
#: What the contract tests run on: every tiny configuration and the variants.
CASES = {**{arch: (arch, cfg) for arch, cfg in TINY.items()}, **VARIANTS}
#: The architectures that think in ms or Hz and so need the sample rate.
NEED_THE_RATE = ["allpass_phaser", "compressor", "fir", "modulated_delay", "pitch_shifter",
                 "rnn", "tcn_fir"]
#: FFT-based models are causal up to float64 round-off.
ROUND_OFF = 1e-9
#: The pitch shifter's small configuration its bad values are checked against.
PITCH = {"n_fft": 256, "grain": 32, "delay": 143, "n_bands": 8}


def test_the_registry_and_the_params_schema_name_the_same_archs():
    assert sorted(SCHEMA["properties"]["archs"]["items"]["enum"]) == sorted(ARCHS)
    assert sorted(SCHEMA["$defs"]["model"]["properties"]["arch"]["enum"]) == sorted(ARCHS)


def test_every_registered_arch_has_a_tiny_config_and_defaults_for_the_rest():
    assert set(TINY) == set(ARCHS)
    for arch, cfg in TINY.items():
        assert set(cfg) <= set(hyperparameters(arch))
        build_model(arch, {}, sample_rate=SR)  # every hyper-parameter has a default


@pytest.fixture(params=sorted(CASES))
def model(request):
    """A tiny model in float64 with its parameters moved off their start values (where a model
    starts as the identity, as the FIRs do, the identity would hide most faults) and a lag of
    3 samples where it measures the effect's and 3 echoes where it follows a feedback loop (as
    ``initialise`` would set them)."""
    arch, cfg = CASES[request.param]
    torch.manual_seed(0)
    model = build_model(arch, cfg, sample_rate=SR).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for name in ("lag", "echoes"):
            if hasattr(model, name):
                getattr(model, name).fill_(3)
    return model


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
    latency = latency_of(model)
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


def test_time_variant_models_follow_each_rows_start(model):
    """Rows of one input at different starts differ for time-variant models only; rows at one
    start agree."""
    x = 0.3 * torch.randn(1, 1, 400, dtype=torch.double).repeat(2, 1, 1)
    with torch.no_grad():
        apart, together = run(model, x, starts(0, 333)), run(model, x, starts(333, 333))
    torch.testing.assert_close(together[0], together[1], rtol=0, atol=ROUND_OFF)
    assert torch.allclose(apart[0], apart[1]) != is_time_variant(model)


def test_receptive_field_is_exact_for_the_convolutional_models():
    """Output t changes with input t - rf + 1 and not with anything earlier."""
    for arch in ("cnn", "tcn"):
        torch.manual_seed(0)
        model = build_model(arch, TINY[arch]).double().eval()
        rf = model.receptive_field
        x = torch.randn(1, 1, 100, dtype=torch.double)
        changes = output_changes(model, x, 80, (rf - 1, rf, rf + 5))
        assert changes[0] > 0 and changes[1:] == [0, 0], (arch, rf, changes)
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


#: Per architecture: bad hyper-parameters and the error each raises after "models.<arch>.".
BAD_CONFIGS = {
    "cnn": [
        ({**TINY["cnn"], "dropout": 0.1}, "dropout: unknown"),
        ({**TINY["cnn"], "channels": 0}, "channels: expected a positive integer"),
        ({**TINY["cnn"], "window": 15}, "window: 15 does not fit"),
        ({**TINY["cnn"], "hidden": True}, "hidden: expected a positive integer"),
    ],
    "tcn": [
        ({**TINY["tcn"], "dilations": []}, "dilations: expected a non-empty list"),
        ({**TINY["tcn"], "dilations": [1, -2]}, "dilations[1]: expected"),
        ({**TINY["tcn"], "activation": "relu"}, "activation: 'relu' is not one of"),
    ],
    "rnn": [
        ({"cell": "rnn"}, "cell: 'rnn' is not one of ['lstm', 'gru']"),
        ({"hidden": 0}, "hidden: expected a positive integer"),
        ({"skip": "yes"}, "skip: expected true or false, got 'yes'"),
        ({"warmup": -1}, "warmup: expected a positive integer"),
        ({"layers": 2}, "layers: unknown hyper-parameter"),
    ],
    "lstm": [
        ({"layers": 0}, "layers: expected a positive integer"),
        ({"hidden": -4}, "hidden: expected a positive integer"),
        ({"warmup": 0}, "warmup: expected a positive integer"),
        ({"hidden": 8.5}, "hidden: expected a positive integer"),
        ({"dropout": 0.1}, "dropout: unknown hyper-parameter"),
    ],
    "fir": [
        ({"length_ms": "long"}, "length_ms: expected a number, got 'long'"),
        ({"length_ms": float("nan")}, "length_ms: expected a number"),
        ({"length_ms": 0.01}, "length_ms: must be at least one sample"),
        ({"length_ms": -5.0}, "length_ms: must be at least one sample"),
        ({"taps": 100}, "taps: unknown hyper-parameter"),
    ],
    "tcn_fir": [
        ({"fir_ms": 0.01}, "fir_ms: must be at least one sample"),
        ({"fir_ms": float("inf")}, "fir_ms: expected a number"),
        ({"channels": 0}, "channels: expected a positive integer"),
        ({"dilations": []}, "dilations: expected a non-empty list"),
        ({"activation": "relu"}, "activation: 'relu' is not one of"),
        ({"length_ms": 40.0}, "length_ms: unknown hyper-parameter"),
    ],
    "compressor": [
        ({"ratio": 1.0}, "ratio: must be above 1, got 1.0"),
        ({"ratio": 0.5}, "ratio: must be above 1, got 0.5"),
        ({"attack_ms": 0.0}, "attack_ms: must be above 0.05 ms"),
        ({"release_ms": -5.0}, "release_ms: must be above 0.05 ms"),
        ({"warmup": 0}, "warmup: expected a positive integer"),
    ],
    "pitch_shifter": [
        ({**PITCH, "n_fft": 255}, "n_fft: must be even"),
        ({**PITCH, "grain": 30}, "grain: must be a multiple of 4 up to n_fft, got 30"),
        ({**PITCH, "grain": 512}, "grain: must be a multiple of 4 up to n_fft, got 512"),
        ({**PITCH, "delay": 10}, "delay: must lie in [grain - 1, n_fft - 1] = [31, 255], got 10"),
        ({**PITCH, "delay": 256}, "delay: must lie in [grain - 1, n_fft - 1] = [31, 255], got 256"),
        ({**PITCH, "delay": 40}, "delay: 40 keeps a piece where the squeezed window falls below"),
        ({**PITCH, "n_bands": 1}, "n_bands: must be at least 2"),
        ({**PITCH, "ratio": 0}, "ratio: must be in [0.25, 4] and not 1, got 0"),
        ({**PITCH, "ratio": 1.0}, "ratio: must be in [0.25, 4] and not 1, got 1.0"),
        ({**PITCH, "max_lag_ms": -1.0}, "max_lag_ms: must be in [0, 2000] ms, got -1.0"),
    ],
    "modulated_delay": [
        ({"max_delay_ms": 0.0}, "max_delay_ms: must be in (0, 1000] ms"),
        ({"min_delay_ms": 40.0}, "min_delay_ms: must be in [0, max_delay"),
        ({"init_rate_hz": 0.0}, "init_rate_hz: must be in (0, 10] Hz"),
        ({"init_rate_hz": "1"}, "init_rate_hz: expected a number"),
        ({"feedback": 0.5}, "feedback: unknown hyper-parameter"),
    ],
    "allpass_phaser": [
        ({"stages": 0}, "stages: expected a positive integer"),
        ({"stages": 33}, "stages: at most 32 all-pass stages"),
        ({"warmup": -1}, "warmup: expected a positive integer"),
        ({"init_rate_hz": 20.0}, "init_rate_hz: must be in (0, 10] Hz"),
        ({"mix": 0.5}, "mix: unknown hyper-parameter"),
    ],
}


@pytest.mark.parametrize(
    ("arch", "cfg", "message"),
    [(arch, cfg, message) for arch, rows in BAD_CONFIGS.items() for cfg, message in rows],
)
def test_bad_config_names_the_key(arch, cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(f"models.{arch}.{message}")):
        build_model(arch, cfg, sample_rate=SR)


def test_an_unknown_arch_names_the_choices():
    message = "archs: unknown architecture 'gru'; choose from ['allpass_phaser', 'cnn',"
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("gru", {})


def test_where_names_the_effect_and_a_missing_rate_is_an_error():
    with pytest.raises(DeepfxError, match=re.escape("effects.delay.model.length_ms: expected a number")):
        build_model("fir", {"length_ms": None}, sample_rate=SR, where="effects.delay.model")
    for arch in NEED_THE_RATE:
        message = f"models.{arch}: {arch} needs the sample rate (Hz)"
        with pytest.raises(DeepfxError, match=re.escape(message)):
            build_model(arch, {})


def test_effects_are_judged_by_their_models_metric() -> None:
    from deepfx.models import ARCHS, judging_metric

    assert judging_metric("pitch_shifter") == "log_mel"
    assert {arch for arch in ARCHS if judging_metric(arch) == "esr"} == set(ARCHS) - {"pitch_shifter"}
