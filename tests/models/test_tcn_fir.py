"""TCN then learned FIR (amp + cabinet): composition, receptive field, training. (Shapes,
causality, chunked inference and config errors: test_archs.py.)"""

import numpy as np
import pytest
import torch
from helpers import SR, excerpt_training, output_changes, tonal

from deepfx.effects.pedalboard_fx import apply_stages, build_chain
from deepfx.models import build_model, hyperparameters

#: One torch thread per module (small tensors; the machine is shared).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

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


def test_is_the_fir_after_the_tcn(small):
    x = torch.randn(3, 1, 100, dtype=torch.double)
    with torch.no_grad():
        torch.testing.assert_close(small(x), small.fir(small.tcn(x)))


def test_receptive_field_is_exact(small):
    rf = small.receptive_field
    x = torch.randn(1, 1, 100, dtype=torch.double)
    changes = output_changes(small, x, 80, (rf - 1, rf, rf + 5))
    assert changes[0] > 1e-6 and max(changes[1:]) <= ROUND_OFF, changes


def test_adam_learns_a_real_amp_and_cabinet():
    torch.manual_seed(0)
    x = tonal(4.0, seed=5)
    y = apply_stages(build_chain(AMP_CAB, SR, "amp_cab"), x)
    model = build_model(
        "tcn_fir",
        {"channels": 8, "dilations": [1, 2, 4], "stacks": 1, "activation": "tanh", "fir_ms": 45.0},
        sample_rate=SR,
    )
    losses = excerpt_training(model, x, y, length=2048, lr=1e-2)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:2])
