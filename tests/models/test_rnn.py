"""The recurrent amp model: defaults, skip path, training through stream(). (Shapes, causality,
streaming of both cells and config errors: test_archs.py.)"""

import pedalboard
import pytest
import torch
from helpers import effect, tbptt_training, tonal

from deepfx.models import build_model

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
    return build_model("rnn", SMALL[name])


def test_defaults_and_shapes():
    model = build_model("rnn", {})
    assert isinstance(model.rnn, torch.nn.LSTM) and model.rnn.hidden_size == 32 and model.skip
    assert model(torch.randn(3, 1, 100)).shape == (3, 1, 100)
    assert isinstance(small("gru").rnn, torch.nn.GRU)
    assert small("gru").receptive_field == 256


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
