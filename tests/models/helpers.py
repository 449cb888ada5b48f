"""What the model tests share: a tonal test signal, real effects, excerpts and short Adam runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pedalboard
import torch

from deepfx.losses import ESRLoss
from deepfx.models.base import detach_state, run
from deepfx.signals import TrackSpec, track

#: The default data's sample rate (Hz).
SR = 44100


def tonal(
    seconds: float,
    seed: int,
    *,
    sample_rate: int = SR,
    segments: int = 1,
    notes_per_second: tuple[float, float] = (3.0, 6.0),
    polyphony: int = 3,
) -> np.ndarray:
    """``segments`` × ``seconds`` of generated notes and chirps of 80–1200 Hz peaking at
    −3 dBFS, like the default data's (float32)."""
    spec = TrackSpec(
        sample_rate, segments, seconds, notes_per_second, polyphony, (80.0, 1200.0), -3.0
    )
    return track(spec, seed)


def effect(plugin: pedalboard.Plugin, x: np.ndarray, sample_rate: int = SR) -> np.ndarray:
    """Mono ``x`` through a real pedalboard plugin (or a Pedalboard of them), reset first."""
    return plugin.process(x[None], sample_rate, reset=True)[0]


def starts(*values: int) -> torch.Tensor:
    """``start`` of a time-variant model: file indices of the rows' first samples, (B,) int64."""
    return torch.tensor(values, dtype=torch.int64)


def excerpts(
    x: np.ndarray, y: np.ndarray, first: Sequence[int], context: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, 1, context + length) of ``x`` from ``context`` samples before each index of
    ``first``, and targets (B, 1, length) of ``y`` from each index on."""
    inputs = np.stack([x[s - context : s + length] for s in first])
    targets = np.stack([y[s : s + length] for s in first])
    return torch.from_numpy(inputs)[:, None], torch.from_numpy(targets)[:, None]


def adam_steps(model: torch.nn.Module, losses: Iterable[torch.Tensor], lr: float) -> list[float]:
    """One Adam step (learning rate ``lr``) on each loss that ``losses`` yields (a generator
    computes each one after the previous step); their values."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    values = []
    for loss in losses:
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        values.append(loss.item())
    return values


def output_changes(
    model: torch.nn.Module, x: torch.Tensor, t: int, lags: Sequence[int]
) -> list[float]:
    """How far output sample ``t`` (from start 0) moves when input sample t − lag of ``x``
    (1, 1, T) is raised by 1, for each of ``lags``."""
    with torch.no_grad():
        base = run(model, x)[0, 0, t]
        changes = []
        for lag in lags:
            nudged = x.clone()
            nudged[0, 0, t - lag] += 1.0
            changes.append(float((run(model, nudged)[0, 0, t] - base).abs()))
    return changes


def excerpt_training(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, length: int, lr: float
) -> list[float]:
    """The loss (ESR, pre-emphasis 0.85) of each of 40 Adam steps on 8 random excerpts of
    ``length`` samples, each behind its ``receptive_field - 1`` samples of context."""
    context, loss_fn = model.receptive_field - 1, ESRLoss(0.85)
    batches = np.random.default_rng(0).integers(context, len(x) - length, size=(40, 8))

    def losses() -> Iterable[torch.Tensor]:
        for first in batches:
            inputs, targets = excerpts(x, y, first, context, length)
            yield loss_fn(model(inputs)[..., context:], targets)

    return adam_steps(model, losses(), lr)


def tbptt_training(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, rounds: int, lr: float
) -> tuple[float, float]:
    """The loss (ESR, pre-emphasis 0.85) over the whole of ``x`` → ``y`` after the warm-up,
    before and after ``rounds`` of truncated back-propagation through ``stream`` (4 random
    excerpts warmed up without gradients, then one Adam step per 500-sample segment, 4 each)."""
    x, y = (torch.from_numpy(a).view(1, 1, -1) for a in (x, y))
    loss_fn, warmup, segment = ESRLoss(0.85), model.receptive_field, 500
    span = warmup + 4 * segment
    rng = np.random.default_rng(0)

    def whole_loss() -> float:
        with torch.no_grad():
            return float(loss_fn(model(x)[..., warmup:], y[..., warmup:]))

    def losses() -> Iterable[torch.Tensor]:
        for _ in range(rounds):
            first = rng.integers(0, x.shape[-1] - span, size=4)
            xb = torch.cat([x[..., s : s + span] for s in first])
            yb = torch.cat([y[..., s : s + span] for s in first])
            with torch.no_grad():
                state = model.stream(xb[..., :warmup], None)[1]
            for a in range(warmup, span, segment):
                out, state = model.stream(xb[..., a : a + segment], state)
                yield loss_fn(out, yb[..., a : a + segment])
                state = detach_state(state)

    before = whole_loss()
    adam_steps(model, losses(), lr)
    return before, whole_loss()


def positioned_training(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    length: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[float, float]:
    """A time-variant model's loss on 16 held-out excerpts of ``length`` samples (each behind its
    ``receptive_field - 1`` samples of context, given its start in the file) before and after
    40 Adam steps (learning rate 5e-3) on 8 random excerpts each."""
    context = model.receptive_field - 1
    rng = np.random.default_rng(0)

    def loss(first: np.ndarray) -> torch.Tensor:
        inputs, targets = excerpts(x, y, first + context, context, length)
        return loss_fn(model(inputs, torch.from_numpy(first))[..., context:], targets)

    held_out = rng.integers(0, len(x) - context - length, 16)
    with torch.no_grad():
        before = loss(held_out).item()
    batches = (loss(rng.integers(0, len(x) - context - length, 8)) for _ in range(40))
    adam_steps(model, batches, lr=5e-3)
    with torch.no_grad():
        return before, loss(held_out).item()
