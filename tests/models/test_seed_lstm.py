"""The seed's LSTM: defaults, warm-up, a short training run through stream(). (Shapes,
causality, streaming and config errors: test_archs.py.)"""

import pedalboard
import pytest
import torch

from helpers import effect, tbptt_training, tonal

from deepfx.models import build_model

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 16_000
SMALL = {"layers": 2, "hidden": 8, "warmup": 256}


def test_shape_is_kept_and_the_defaults_build():
    x = torch.randn(3, 1, 100)
    assert build_model("lstm", {})(x).shape == (3, 1, 100)
    lstm = build_model("lstm", {"layers": 3, "hidden": 5}).lstm
    assert (lstm.num_layers, lstm.hidden_size) == (3, 5)


def test_receptive_field_is_the_warmup():
    assert build_model("lstm", SMALL).receptive_field == 256


def test_truncated_backprop_through_stream_learns_a_distortion():
    """120 Adam steps of TBPTT (warm-up, then 4 segments of 500 samples) cut the ESR by > 80 %
    on 2 s of notes through pedalboard's Distortion (25 dB drive, -12 dB)."""
    x = tonal(2.0, 1, sample_rate=SR, notes_per_second=(4.0, 8.0), polyphony=2)
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25.0), pedalboard.Gain(-12.0)])
    torch.manual_seed(0)
    before, after = tbptt_training(build_model("lstm", SMALL), x, effect(board, x, SR), 30, 2e-2)
    assert after < 0.2 * before, (before, after)
