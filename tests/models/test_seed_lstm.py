"""The seed's LSTM: shapes, causality, streaming, warm-up, bad settings, a short training run."""

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
SMALL = {"layers": 2, "hidden": 8, "warmup": 256}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("lstm", SMALL).double().eval()


def test_shape_is_kept_and_the_defaults_build():
    x = torch.randn(3, 1, 100)
    assert build_model("lstm", {})(x).shape == (3, 1, 100)
    lstm = build_model("lstm", {"layers": 3, "hidden": 5}).lstm
    assert (lstm.num_layers, lstm.hidden_size) == (3, 5)


def test_receptive_field_is_the_warmup():
    assert build_model("lstm", SMALL).receptive_field == 256


@pytest.mark.parametrize("t", [0, 37, 98])
def test_causal_output_ignores_future_input(model, t):
    x = torch.randn(2, 1, 100, dtype=torch.double)
    perturbed = x.clone()
    perturbed[..., t + 1 :] += torch.randn_like(perturbed[..., t + 1 :])
    with torch.no_grad():
        before, after = model(x), model(perturbed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=0)
    assert not torch.allclose(after[..., t + 1 :], before[..., t + 1 :])


@pytest.mark.parametrize("block", [1, 7, 64, 333])
def test_stream_in_blocks_equals_forward(block):
    torch.manual_seed(0)
    model = build_model("lstm", SMALL).eval()
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
        ({"layers": 0}, "models.lstm.layers: expected a positive integer"),
        ({"hidden": -4}, "models.lstm.hidden: expected a positive integer"),
        ({"warmup": 0}, "models.lstm.warmup: expected a positive integer"),
        ({"hidden": 8.5}, "models.lstm.hidden: expected a positive integer"),
        ({"dropout": 0.1}, "models.lstm.dropout: unknown hyper-parameter"),
    ],
)
def test_bad_config_names_the_key(cfg, message):
    with pytest.raises(DeepfxError, match=re.escape(message)):
        build_model("lstm", cfg)


def distortion_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """2 s of generated notes and pedalboard's Distortion (25 dB drive, -12 dB) of them."""
    spec = TrackSpec(SR, 1, 2.0, (4.0, 8.0), 2, (80.0, 1200.0), -3.0)
    x = track(spec, 0)
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25.0), pedalboard.Gain(-12.0)])
    y = board(x[None], SR)[0]
    return torch.from_numpy(x).view(1, 1, -1), torch.from_numpy(y.astype(np.float32)).view(1, 1, -1)


def test_truncated_backprop_through_stream_learns_a_distortion():
    """120 Adam steps of TBPTT (warm-up, then 4 segments of 500 samples) cut the ESR by > 80 %."""
    torch.manual_seed(0)
    model = build_model("lstm", SMALL)
    x, y = distortion_pair()
    loss_fn, warmup, segment = ESRLoss(0.85), model.receptive_field, 500
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    rng = np.random.default_rng(0)

    def loss_now() -> float:
        with torch.no_grad():
            return float(loss_fn(model(x)[..., warmup:], y[..., warmup:]))

    before = loss_now()
    for _ in range(30):
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
    assert loss_now() < 0.2 * before, (before, loss_now())
