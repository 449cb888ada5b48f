"""ModulatedDelay: contract (shapes, causality, receptive field, stream, time variance) and
behaviour against pedalboard's real Chorus (JUCE's dsp::Chorus)."""

import math
import re

import numpy as np
import pedalboard
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.losses import ESRLoss, esr
from deepfx.models import apply_model, build_model
from deepfx.models.lfo import PHASE_SCALE, RATE_SCALE
from deepfx.models.modulated_delay import DELAY_SCALE
from deepfx.signals import TrackSpec, track

SR = 44100
#: Not the settings of params.yaml: the model must find them, not start from them.
CHORUS = {"rate_hz": 0.7, "depth": 0.3, "centre_delay_ms": 5.0, "feedback": 0.0, "mix": 0.4}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small tensor operations: a second thread only adds synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def audio() -> tuple[np.ndarray, np.ndarray]:
    """8 s of the project's synthetic notes and chirps, and the real chorus of them."""
    spec = TrackSpec(SR, 2, 4.0, (2.0, 6.0), 2, (80.0, 1200.0), -3.0)
    x = track(spec, 7)
    return x, pedalboard.Chorus(**CHORUS).process(x[None], SR, reset=True)[0]


def model(**lfo: float) -> torch.nn.Module:
    """A float64 model with LFO rate (Hz), phase (rad), centre and depth (ms) set."""
    m = build_model("modulated_delay", {}, sample_rate=SR).double()
    with torch.no_grad():
        m.lfo.raw_rate.fill_(lfo.get("rate", 4.0) / RATE_SCALE)
        m.lfo.raw_phase.fill_(lfo.get("phase", 0.3) / PHASE_SCALE)
        m.raw_centre.fill_(lfo.get("centre", 8.0) / DELAY_SCALE)
        m.raw_depth.fill_(lfo.get("depth", 3.0) / DELAY_SCALE)
    return m


def starts(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_shape_is_kept():
    x = torch.randn(3, 1, 500, dtype=torch.double)
    assert model()(x, starts(0, 10, -7)).shape == (3, 1, 500)


@pytest.mark.parametrize("t", [0, 400, 1999])
def test_causal_output_ignores_future_input(t):
    m = model()
    x = torch.randn(2, 1, 2000, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += 1.0
    with torch.no_grad():
        before, after = m(x, starts(0, 5000)), m(perturbed, starts(0, 5000))
    assert torch.equal(after[..., : t + 1], before[..., : t + 1])
    if t < 1999:
        assert not torch.allclose(after[..., t + 1 :], before[..., t + 1 :])


def test_receptive_field_is_the_longest_delay_plus_one():
    """At the longest delay the output depends on input receptive_field - 1 samples back, never
    on earlier input, whatever the LFO does."""
    m = model(centre=40.0, depth=0.0)  # clipped to the longest delay (30 ms + rounding)
    rf, t = m.receptive_field, 3000
    assert rf == math.ceil(30.0 * SR / 1000) + 1
    x = torch.randn(1, 1, t + 1, dtype=torch.double)
    with torch.no_grad():
        base = m(x, starts(0))[0, 0, t]
        for lag, changes in ((rf - 2, False), (rf - 1, True), (rf, False)):  # one tap only
            nudged = x.clone()
            nudged[0, 0, t - lag] += 1.0
            assert bool(m(nudged, starts(0))[0, 0, t] != base) == changes, lag
        swept = model(rate=9.0, centre=15.0, depth=20.0)  # sweeps the whole delay line
        early = x.clone()
        early[0, 0, : t - rf + 1] += torch.randn(t - rf + 1, dtype=torch.double)
        assert torch.equal(swept(early, starts(0))[..., t:], swept(x, starts(0))[..., t:])


@pytest.mark.parametrize("block", [1, 7, 331, 2000])
def test_stream_equals_forward(block):
    m = model(rate=8.0, depth=5.0)
    x = torch.randn(2, 1, 4000, dtype=torch.double)
    with torch.no_grad():
        whole = m(x, starts(0, 0))
        state, pieces = None, []
        for i in range(0, 4000, block):
            y, state = m.stream(x[..., i : i + block], state)
            pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, -1), whole, rtol=0, atol=1e-12)
    assert torch.equal(state["position"], starts(4000, 4000))


def test_chunked_inference_in_float32_equals_one_shot():
    m = model(rate=8.0, depth=5.0).float()
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    with torch.no_grad():
        whole = m(torch.from_numpy(x).view(1, 1, -1), starts(0))[0, 0].numpy()
    np.testing.assert_allclose(apply_model(m, x, chunk_samples=777), whole, rtol=0, atol=1e-5)


def test_start_places_the_excerpt_in_its_file():
    """An excerpt with its context, given its start in the file, reproduces the whole-file
    output; a negative start means zeros before the file."""
    m = model(rate=6.0, depth=4.0)
    x = torch.randn(1, 1, 6000, dtype=torch.double)
    context = m.receptive_field - 1
    with torch.no_grad():
        whole = m(x, starts(0))
        first = 4000 - context
        excerpt = m(x[..., first:], starts(first))
        padded = m(torch.nn.functional.pad(x, (500, 0)), starts(-500))
    torch.testing.assert_close(excerpt[..., context:], whole[..., 4000:], rtol=0, atol=1e-12)
    torch.testing.assert_close(padded[..., 500:], whole, rtol=0, atol=1e-12)


def test_time_variant_same_input_elsewhere_in_the_file_differs():
    m = model(rate=2.0, depth=3.0)
    x = torch.randn(1, 1, 3000, dtype=torch.double).expand(2, 1, 3000)
    with torch.no_grad():
        y = m(x, starts(10_000, 30_000))
        again = m(x, starts(10_000, 10_000))
    assert torch.equal(again[0], again[1])
    assert (y[0] - y[1]).abs().max() > 0.1


def test_effects_parameters_reproduce_the_real_chorus(audio):
    """JUCE's chorus: delay = centre + 10·depth·(−sin(2π·rate·n/sr)) ms from sample 0, linear
    interpolation, linear dry/wet mix. (Its LFO runs 0.04 % fast at 44.1 kHz; not modelled.)"""
    x, y = audio
    m = model(rate=CHORUS["rate_hz"], centre=5.0, depth=10 * CHORUS["depth"]).float()
    with torch.no_grad():
        m.lfo.set(CHORUS["rate_hz"], math.pi, 0)
        m.dry.fill_(1 - CHORUS["mix"])
        m.wet.fill_(CHORUS["mix"])
    assert esr(apply_model(m, x), y) < 0.01 < esr(x, y)


@pytest.fixture(scope="module")
def initialised(audio) -> torch.nn.Module:
    m = build_model("modulated_delay", {}, sample_rate=SR)
    m.initialise(*audio)
    return m


def test_initialise_finds_the_lfo_and_the_mix(audio, initialised):
    m = initialised
    assert m.lfo.rate_hz == pytest.approx(CHORUS["rate_hz"], rel=2e-3)
    assert m.raw_centre.item() * DELAY_SCALE == pytest.approx(5.0, abs=0.05)
    assert m.raw_depth.item() * DELAY_SCALE == pytest.approx(3.0, abs=0.05)
    with torch.no_grad():  # JUCE's LFO is −sin: 0 at sample 0, then falling
        assert abs(m.lfo(starts(0)).item()) < 0.05 and m.lfo(starts(SR // 20)).item() < -0.1
    assert m.dry.item() == pytest.approx(0.6, abs=0.02)
    assert m.wet.item() == pytest.approx(0.4, abs=0.02)
    assert esr(apply_model(m, audio[0]), audio[1]) < 0.05


def test_initialise_leaves_the_model_alone_on_too_short_audio(audio):
    m = build_model("modulated_delay", {}, sample_rate=SR)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.initialise(audio[0][:4000], audio[1][:4000])
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="two 1-D signals alike"):
        m.initialise(audio[0], audio[1][:-1])


def test_training_lowers_the_loss(audio, initialised):
    """From a detuned start (rate, centre, wet off), a few dozen Adam steps (plain ESR) on
    excerpts with their file positions recover most of the error."""
    torch.manual_seed(0)
    m = build_model("modulated_delay", {}, sample_rate=SR)
    m.load_state_dict(initialised.state_dict())
    with torch.no_grad():
        m.lfo.raw_rate.mul_(1.001)
        m.raw_centre.add_(0.05 / DELAY_SCALE)
        m.wet.sub_(0.1)
    x, y = (torch.from_numpy(a) for a in audio)
    rng = np.random.default_rng(0)
    context, length = m.receptive_field - 1, 4096
    loss_fn, optimiser = ESRLoss(0.0), torch.optim.Adam(m.parameters(), lr=5e-3)

    def loss(first: np.ndarray) -> torch.Tensor:
        windows = first[:, None] + np.arange(context + length)
        prediction = m(x[windows][:, None], torch.from_numpy(first))[..., context:]
        return loss_fn(prediction, y[windows][:, None, context:])

    held_out = rng.integers(0, len(x) - context - length, 16)
    with torch.no_grad():
        before = loss(held_out).item()
    for _ in range(40):
        optimiser.zero_grad()
        loss(rng.integers(0, len(x) - context - length, 8)).backward()
        optimiser.step()
    with torch.no_grad():
        after = loss(held_out).item()
    assert after < before / 5, (before, after)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"max_delay_ms": 0.0}, "models.modulated_delay.max_delay_ms: must be in (0, 1000] ms"),
        ({"min_delay_ms": 40.0}, "models.modulated_delay.min_delay_ms: must be in [0, max_delay"),
        ({"init_rate_hz": 0.0}, "models.modulated_delay.init_rate_hz: must be in (0, 10] Hz"),
        ({"init_rate_hz": "1"}, "models.modulated_delay.init_rate_hz: expected a number"),
        ({"feedback": 0.5}, "models.modulated_delay.feedback: unknown hyper-parameter"),
    ],
)
def test_bad_hyperparameters_name_the_key(cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("modulated_delay", cfg, sample_rate=SR)
