"""The recurrent amp model: shapes, causality, skip path, streaming, bad settings, training."""

import re

import numpy as np
import pedalboard
import pytest
import torch

from deepfx.errors import DeepfxError
from deepfx.losses import ESRLoss
from deepfx.models import build_model
from deepfx.models.base import detach_state
from deepfx.signals import TrackSpec, track

SR = 16_000
#: Small models of each cell, with and without the skip connection.
SMALL = {
    "lstm": {"cell": "lstm", "hidden": 8, "skip": True, "warmup": 256},
    "gru": {"cell": "gru", "hidden": 8, "skip": True, "warmup": 256},
    "lstm-no-skip": {"cell": "lstm", "hidden": 8, "skip": False, "warmup": 256},
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
@pytest.mark.parametrize("t", [0, 37, 98])
def test_causal_output_ignores_future_input(name, t):
    model = small(name).double().eval()
    x = torch.randn(2, 1, 100, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = model(x), model(perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=0)
    assert not torch.allclose(after[..., t + 1 :], before[..., t + 1 :])


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("block", [1, 7, 64, 333])
def test_stream_in_blocks_equals_forward(name, block):
    model = small(name).eval()
    x = torch.randn(2, 1, 1000)
    cuts = [0, 0, *range(block, 1000, block), 1000]  # an empty block first, a short one last
    state, out = None, []
    with torch.no_grad():
        for a, b in zip(cuts, cuts[1:]):
            y, state = model.stream(x[..., a:b], state)
            out.append(y)
        whole = model(x)
    assert (torch.cat(out, dim=-1) - whole).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"cell": "rnn"}, "models.rnn.cell: 'rnn' is not one of ['lstm', 'gru']"),
        ({"hidden": 0}, "models.rnn.hidden: expected a positive integer"),
        ({"skip": "yes"}, "models.rnn.skip: expected true or false"),
        ({"warmup": -1}, "models.rnn.warmup: expected a positive integer"),
        ({"layers": 2}, "models.rnn.layers: unknown hyper-parameter"),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("rnn", cfg)


def overdrive_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """2 s of generated notes and pedalboard's Distortion (12 dB drive) of them, (1, 1, T) each."""
    x = track(TrackSpec(SR, 1, 2.0, (4.0, 8.0), 2, (80.0, 1200.0), -3.0), 0)
    y = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=12.0)])(x[None], SR)[0]
    return torch.from_numpy(x).view(1, 1, -1), torch.from_numpy(y.astype(np.float32)).view(1, 1, -1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_truncated_backprop_through_stream_learns_an_overdrive(name):
    """20 Adam steps of TBPTT (warm-up, then 4 segments of 500 samples) cut the ESR by > 60 %."""
    model = small(name)
    x, y = overdrive_pair()
    loss_fn, warmup, segment = ESRLoss(0.85), model.receptive_field, 500
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    rng = np.random.default_rng(0)

    def loss_now() -> float:
        with torch.no_grad():
            return float(loss_fn(model(x)[..., warmup:], y[..., warmup:]))

    before = loss_now()
    for _ in range(5):
        starts = rng.integers(0, x.shape[-1] - warmup - 4 * segment, size=4)
        xb = torch.cat([x[..., s : s + warmup + 4 * segment] for s in starts])
        yb = torch.cat([y[..., s : s + warmup + 4 * segment] for s in starts])
        with torch.no_grad():
            state = model.stream(xb[..., :warmup], None)[1]
        for a in range(warmup, xb.shape[-1], segment):
            out, state = model.stream(xb[..., a : a + segment], state)
            loss = loss_fn(out, yb[..., a : a + segment])
            opt.zero_grad()
            loss.backward()
            opt.step()
            state = detach_state(state)
    after = loss_now()
    assert after < 0.4 * before, (before, after)
