"""AllpassPhaser: the vectorised recursion against a plain per-sample loop, the start sample,
and behaviour against pedalboard's real Phaser (JUCE's dsp::Phaser). (Shapes, causality,
streaming, time variance and config errors: test_archs.py.)"""

import math

import numpy as np
import pedalboard
import pytest
import torch
from helpers import SR, effect, positioned_training, starts, tonal

from deepfx.losses import ESRLoss, esr
from deepfx.models import apply_model, build_model
from deepfx.models.allpass_phaser import CUTOFF_SCALE, FEEDBACK_SCALE
from deepfx.models.lfo import PHASE_SCALE, RATE_SCALE

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Not the settings of params.yaml: the model must find them, not start from them.
PHASER = {"rate_hz": 0.6, "depth": 0.6, "centre_frequency_hz": 900.0, "feedback": 0.4, "mix": 0.6}
#: JUCE maps depth and centre to a log cut-off: ln fc = ln 20 + ln 1000·(norm + depth/2·lfo).
JUCE_CENTRE = math.log(PHASER["centre_frequency_hz"])
JUCE_DEPTH = PHASER["depth"] / 2 * math.log(1000.0)


@pytest.fixture(scope="module")
def audio() -> tuple[np.ndarray, np.ndarray]:
    """8 s of the project's synthetic notes and chirps, and the real phaser of them."""
    x = tonal(4.0, 7, segments=2, notes_per_second=(2.0, 6.0), polyphony=2)
    return x, effect(pedalboard.Phaser(**PHASER), x)


def model(stages: int = 6, **lfo: float) -> torch.nn.Module:
    """A float64 model with LFO rate (Hz), phase (rad), centre and depth (ln Hz), feedback."""
    m = build_model("allpass_phaser", {"stages": stages}, sample_rate=SR).double()
    with torch.no_grad():
        m.lfo.raw_rate.fill_(lfo.get("rate", 4.0) / RATE_SCALE)
        m.lfo.raw_phase.fill_(lfo.get("phase", 0.3) / PHASE_SCALE)
        m.raw_centre.fill_(lfo.get("centre", math.log(1000.0)) / CUTOFF_SCALE)
        m.raw_depth.fill_(lfo.get("depth", 1.5) / CUTOFF_SCALE)
        m.raw_feedback.fill_(math.atanh(lfo.get("feedback", 0.5)) / FEEDBACK_SCALE)
    return m


def test_equals_the_per_sample_recursion():
    """The chunked matrix recursion computes exactly the TPT all-pass chain with feedback."""
    m = model(stages=4, feedback=-0.6)
    x = torch.randn(1, 1, 600, dtype=torch.double)
    with torch.no_grad():
        y = m(x, starts(12_345))[0, 0].numpy()
        g = torch.tan(math.pi / SR * m.cutoff(starts(12_345) + torch.arange(600)))
        g = (g / (1 + g)).numpy()
    state, previous, expected = np.zeros(4), 0.0, []
    for n, sample in enumerate(x[0, 0].numpy()):
        u = sample - 0.6 * previous
        for k in range(4):
            v = (2 * g[n] - 1) * u + 2 * (1 - g[n]) * state[k]
            state[k] = 2 * g[n] * u + (1 - 2 * g[n]) * state[k]
            u = v
        previous = u
        expected.append(m.dry.item() * sample + m.wet.item() * u)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)


def test_start_places_the_excerpt_in_its_file():
    """An excerpt with its warm-up, given its start in the file, settles on the whole-file
    output; a negative start means zeros before the file. (Without feedback: feedback
    lengthens the memory, to a few thousand samples at ±0.5 and cut-offs near 200 Hz.)"""
    m = model(rate=6.0, feedback=0.0)
    x = torch.randn(1, 1, 8000, dtype=torch.double)
    warmup = m.receptive_field
    with torch.no_grad():
        whole = m(x, starts(0))
        first = 6000 - warmup
        excerpt = m(x[..., first:], starts(first))
        padded = m(torch.nn.functional.pad(x, (500, 0)), starts(-500))
    torch.testing.assert_close(excerpt[..., warmup:], whole[..., 6000:], rtol=0, atol=1e-6)
    torch.testing.assert_close(padded[..., 500:], whole, rtol=0, atol=1e-12)


def test_effects_parameters_reproduce_the_real_phaser(audio):
    """JUCE's phaser: 6 TPT all-passes, log cut-off swept by −sin from sample 0, the chain's
    input minus feedback × its last output, linear dry/wet mix. (JUCE updates the cut-off
    every 4 samples; the model every sample.)"""
    x, y = audio
    m = model(centre=JUCE_CENTRE, depth=JUCE_DEPTH, feedback=-PHASER["feedback"]).float()
    with torch.no_grad():
        m.lfo.set(PHASER["rate_hz"], math.pi, 0)
        m.dry.fill_(1 - PHASER["mix"])
        m.wet.fill_(PHASER["mix"])
    assert esr(apply_model(m, x), y) < 1e-3 < 0.1 < esr(x, y)


@pytest.fixture(scope="module")
def initialised(audio) -> torch.nn.Module:
    m = build_model("allpass_phaser", {}, sample_rate=SR)
    m.initialise(*audio)
    return m


def test_initialise_finds_the_lfo(audio, initialised):
    """The frame-wise fit ignores the feedback (it starts at 0); the LFO is found all the same."""
    m = initialised
    assert m.lfo.rate_hz == pytest.approx(PHASER["rate_hz"], rel=2e-3)
    assert m.raw_centre.item() * CUTOFF_SCALE == pytest.approx(JUCE_CENTRE, abs=0.03)
    assert m.raw_depth.item() * CUTOFF_SCALE == pytest.approx(JUCE_DEPTH, abs=0.05)
    with torch.no_grad():  # JUCE's LFO is −sin: 0 at sample 0, then falling
        assert abs(m.lfo(starts(0)).item()) < 0.05 and m.lfo(starts(SR // 20)).item() < -0.1
    assert m.raw_feedback.item() == 0
    assert esr(apply_model(m, audio[0]), audio[1]) < 0.2 * esr(*audio)


def test_training_lowers_the_loss(audio, initialised):
    """From initialise (no feedback yet), a few dozen Adam steps on excerpts with their file
    positions learn the feedback and most of the error goes."""
    torch.manual_seed(0)
    m = build_model("allpass_phaser", {}, sample_rate=SR)
    m.load_state_dict(initialised.state_dict())
    before, after = positioned_training(m, *audio, length=2048, loss_fn=ESRLoss(0.85))
    assert after < before / 5, (before, after)
    assert math.tanh(FEEDBACK_SCALE * m.raw_feedback.item()) < -0.3
