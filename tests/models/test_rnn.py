"""The recurrent amp model: defaults, skip path, training through stream(). (Shapes, causality,
streaming of both cells and config errors: test_archs.py.)"""

import numpy as np
import pedalboard
import pytest
import torch
from helpers import effect, tbptt_training, tonal

from deepfx.models import build_model
from deepfx.models.rnn import onset_lag

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 16_000
#: Small models of each cell, with and without the skip connection.
SMALL = {
    "lstm": {"cell": "lstm", "hidden": 8, "skip": True, "warmup": 256},
    "gru": {"cell": "gru", "hidden": 8, "skip": True, "warmup": 256},
    "lstm-no-skip": {"cell": "lstm", "hidden": 8, "skip": False, "warmup": 256},
}


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("rnn", SMALL[name], sample_rate=SR)


def test_defaults_and_shapes():
    model = build_model("rnn", {}, sample_rate=SR)
    assert isinstance(model.rnn, torch.nn.LSTM) and model.rnn.hidden_size == 32 and model.skip
    assert model(torch.randn(3, 1, 100)).shape == (3, 1, 100)
    assert isinstance(small("gru").rnn, torch.nn.GRU)
    assert small("gru").receptive_field == 256 and model.max_lag == 80  # 5 ms at 16 kHz


def late_overdrive(x: np.ndarray, lag: int) -> np.ndarray:
    """``x`` through pedalboard's Distortion (12 dB) ``lag`` samples late, as from an
    oversampling plug-in that does not report its latency."""
    return effect(pedalboard.Distortion(drive_db=12.0), np.pad(x, (lag, 0))[: len(x)], SR)


@pytest.mark.parametrize("lag", [0, 1, 31, 77])
def test_initialise_measures_the_lag_of_a_late_overdrive(lag):
    x = tonal(2.0, 1, sample_rate=SR, notes_per_second=(4.0, 8.0), polyphony=2)
    y = late_overdrive(x, lag)
    assert onset_lag(x, y, 80) == lag
    model = small("lstm")
    model.initialise(x, y)
    assert int(model.lag) == lag and model.receptive_field == 256 + lag
    assert onset_lag(x, y, 0) == 0 and onset_lag(x, y, 20) == min(lag, 20)


def test_the_lag_survives_a_state_dict_and_delays_the_skip_path():
    model = small("lstm")
    model.lag.fill_(5)
    copy = build_model("rnn", SMALL["lstm"], sample_rate=SR)
    copy.load_state_dict(model.state_dict())
    assert int(copy.lag) == 5
    with torch.no_grad():
        copy.head.weight.zero_()
        copy.head.bias.zero_()
        x = torch.randn(1, 1, 40)
        torch.testing.assert_close(copy(x)[..., 5:], x[..., :-5], rtol=0, atol=0)
        assert not copy(x)[..., :5].any()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_skip_adds_the_input_to_the_head_output(name):
    """With the head zeroed, the output is the input itself (skip) or silence (no skip)."""
    model = small(name)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        x = torch.randn(2, 1, 50)
        expected = x if SMALL[name]["skip"] else torch.zeros_like(x)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_truncated_backprop_through_stream_learns_an_overdrive(name):
    """20 Adam steps of TBPTT (warm-up, then 4 segments of 500 samples) cut the ESR by > 60 %
    on 2 s of notes through pedalboard's Distortion (12 dB drive)."""
    x = tonal(2.0, 0, sample_rate=SR, notes_per_second=(4.0, 8.0), polyphony=2)
    y = effect(pedalboard.Distortion(drive_db=12.0), x, SR)
    before, after = tbptt_training(small(name), x, y, rounds=5, lr=3e-2)
    assert after < 0.4 * before, (before, after)


def test_with_its_lag_measured_it_learns_a_late_overdrive_it_cannot_learn_without():
    """The same 20 TBPTT steps on the overdrive 31 samples late: after initialise the ESR falls
    below 0.4 of its start and below half what the model without a lag reaches."""
    x = tonal(2.0, 0, sample_rate=SR, notes_per_second=(4.0, 8.0), polyphony=2)
    y = late_overdrive(x, 31)
    measured = small("lstm")
    measured.initialise(x, y)
    before, after = tbptt_training(measured, x, y, rounds=5, lr=3e-2)
    _, unaligned = tbptt_training(small("lstm"), x, y, rounds=5, lr=3e-2)
    assert after < 0.4 * before and after < 0.5 * unaligned, (before, after, unaligned)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_finalise_makes_silence_in_silence_out(name):
    model = small(name)
    with torch.no_grad():
        model.head.bias.add_(0.01)
        silence = torch.zeros(1, 1, 6000)
        assert model(silence)[..., -1].abs().item() > 1e-3
        model.finalise()
        assert model(silence)[..., 4096:].abs().max().item() < 1e-6
