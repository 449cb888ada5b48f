"""An LFO-driven chain of first-order all-pass filters with feedback: a phaser's structure.

Each sample n, the cut-off fc(n) = exp(centre + depth·sin(2π·rate·n/sample_rate + phase)) Hz
(clipped to 20 Hz … min(20 kHz, 0.49·sample_rate)) sets every stage's coefficient
G = tan(π·fc/sample_rate) / (1 + tan(π·fc/sample_rate)) of a topology-preserving (TPT)
first-order all-pass with state s:

    v = (2G − 1)·u + 2(1 − G)·s,  s ← 2G·u + (1 − 2G)·s  (u: stage input, v: its output)

The chain's input is u = x + feedback·(the chain's previous output); the output is
dry·x + wet·(chain output). Rate (Hz), phase (rad), centre and depth (natural log of Hz),
feedback (|feedback| < 1 through tanh), dry and wet gains are learned.

The recursion is linear in its state z = (stage states, previous output) with per-sample
matrices, so it is solved without a per-sample Python loop on its own: in chunks of about √T
samples, the running products of the augmented (z, 1) matrices are formed for all chunks at
once (√T steps), then chained from chunk to chunk (√T steps): about 2√T small batched matrix
products instead of T·stages scalar steps. A training step on 8 excerpts of 8192 + 2047
samples (forward and backward) takes about 0.13 s on one core.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch
from torch import nn

from deepfx.models.base import HyperparameterError
from deepfx.models.lfo import (
    MAX_RATE_HZ,
    SineLFO,
    analysis_signals,
    check_init_rate,
    energy_centroids,
    explained_energy,
    fit_sine,
    peak_track,
)

__all__ = ["AllpassPhaser"]

#: Natural-log units of the cut-off per unit of the raw centre and depth parameters: an Adam
#: step of lr 5e-3 changes them by 0.05 %.
CUTOFF_SCALE = 0.1
#: Feedback = tanh(FEEDBACK_SCALE · raw feedback parameter): an Adam step of lr 5e-3 changes
#: a small feedback by up to 0.015.
FEEDBACK_SCALE = 3.0
#: Lowest and highest cut-off (Hz; the highest also at most 0.49·sample_rate).
MIN_CUTOFF_HZ = 20.0
MAX_CUTOFF_HZ = 20000.0
#: Cut-offs tried per frame by :meth:`AllpassPhaser.initialise` (log-spaced over the range).
GRID_CUTOFFS = 48
#: Frame length and hop (samples) of the cut-off measurement in :meth:`AllpassPhaser.initialise`.
FRAME = 1024
HOP = 512
#: Cut-offs closer than this (octaves) to a frame's best one do not count as its runner-up.
EXCLUDE_OCTAVES = 0.5
#: Residual (natural log of Hz) beyond which a frame's cut-off counts as mis-measured.
TOLERANCE = 0.25
#: :meth:`AllpassPhaser.initialise` runs the chain over its audio in blocks of this many
#: samples (bounded memory).
INITIALISE_BLOCK = 65536

#: Stream state: the recursion's state z (B, stages + 1) and the index of the next sample in
#: the file (B,) int64.
PhaserState = dict[str, torch.Tensor]


def affine_scan(
    m: torch.Tensor, z0: torch.Tensor, entry: int, chunk: int, last: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry ``entry`` of the states z[n + 1] = m[n] @ z[n] of an augmented linear recursion
    (the last entry of z is 1), and the state z[last + 1].

    ``m`` (B, T, E, E) with T a multiple of ``chunk``, ``z0`` (B, E) → (z[n + 1][entry] for
    every n (B, T), z[last + 1] (B, E)).
    """
    batch, length, e, _ = m.shape
    chunks = length // chunk
    # unbind, not indexing: one backward node for all slices instead of a full-size zero
    # gradient per slice.
    steps = m.view(batch, chunks, chunk, e, e).unbind(dim=2)
    products = [steps[0]]  # products[i][:, k]: m[k·chunk + i] @ … @ m[k·chunk]
    for step in steps[1:]:
        products.append(step @ products[-1])
    starts = [z0]
    for whole_chunk in products[-1].unbind(dim=1)[:-1]:
        starts.append((whole_chunk @ starts[-1][..., None])[..., 0])
    rows = torch.stack([p[..., entry, :] for p in products], dim=2)  # (B, chunks, chunk, E)
    values = (rows * torch.stack(starts, dim=1)[:, :, None, :]).sum(-1)
    last_chunk, last_step = divmod(last, chunk)
    state = (products[last_step][:, last_chunk] @ starts[last_chunk][..., None])[..., 0]
    return values.reshape(batch, length), state


def _monomial_basis(stages: int) -> torch.Tensor:
    """(6·(S + 1) + 2, (S + 2)²) 0/1 matrix: which monomial makes which recursion matrix entry.

    With c = 2G − 1 the stages' direct gain, stage i's input is
    v_i = c^i·u + Σ_{j ≤ i} c^(i−j)·e·s_j (e = 2 − 2G), u = feedback·y_prev + x, and
    s_i ← q·v_(i−1) + (1 − 2G)·s_i (q = 2G). The monomials are c^k times e, q·e, feedback,
    q·feedback, x, q·x (k = 0 … S; factor-major), then 1 − 2G and 1.
    """
    size, powers = stages + 2, stages + 1
    basis = torch.zeros(6 * powers + 2, size, size)

    def monomial(factor: int, power: int) -> int:
        return factor * powers + power

    e, qe, fb, qfb, x, qx = range(6)
    for row in range(stages + 1):  # rows 0 … S-1: new stage states; row S: the chain output
        last = row == stages
        for j in range(row):  # states s_1 … s_row feed v_row
            basis[monomial(e if last else qe, row - 1 - j), row, j] = 1
        basis[monomial(fb if last else qfb, row), row, stages] = 1
        basis[monomial(x if last else qx, row), row, stages + 1] = 1
        if not last:
            basis[-2, row, row] = 1
    basis[-1, stages + 1, stages + 1] = 1
    return basis.flatten(1)


class AllpassPhaser(nn.Module):
    """(B, 1, T) → (B, 1, T): input plus an LFO-swept chain of ``stages`` all-pass filters.

    ``init_rate_hz`` is the LFO rate before :meth:`initialise` or training. The recursion has
    unbounded memory; ``warmup`` (samples) is the ``receptive_field``, the input run in front
    of a training excerpt so that the filter states have settled. Without feedback a stage
    forgets within a few sample_rate / (π·cut-off) samples; feedback g makes the chain
    recirculate, each round taking about stages·sample_rate / (π·cut-off) samples and
    keeping a fraction |g|: raise ``warmup`` for strong feedback at low cut-offs.
    """

    time_variant = True

    def __init__(
        self, *, stages: int = 6, warmup: int = 2048, init_rate_hz: float = 0.5, sample_rate: int
    ) -> None:
        super().__init__()
        if stages > 32:
            raise HyperparameterError("stages", f"at most 32 all-pass stages, got {stages}")
        check_init_rate(init_rate_hz)
        self.stages = stages
        self.sample_rate = sample_rate
        self.receptive_field = warmup
        self.cutoff_range = (
            math.log(MIN_CUTOFF_HZ), math.log(min(MAX_CUTOFF_HZ, 0.49 * sample_rate))
        )
        self.lfo = SineLFO(init_rate_hz, sample_rate)
        self.raw_centre = nn.Parameter(torch.tensor(math.log(1000.0) / CUTOFF_SCALE))
        self.raw_depth = nn.Parameter(torch.tensor(math.log(2.0) / CUTOFF_SCALE))
        self.raw_feedback = nn.Parameter(torch.tensor(0.0))
        self.dry = nn.Parameter(torch.tensor(1.0))
        self.wet = nn.Parameter(torch.tensor(0.5))
        self.register_buffer("_basis", _monomial_basis(stages), persistent=False)

    def cutoff(self, n: torch.Tensor) -> torch.Tensor:
        """Cut-off (Hz) at the int64 sample indices ``n``."""
        log_hz = (self.raw_centre + self.raw_depth * self.lfo(n)) * CUTOFF_SCALE
        return torch.exp(log_hz.clamp(*self.cutoff_range))

    def _matrices(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Per-sample augmented matrices (B, T, S + 2, S + 2) mapping (s, y_prev, 1) before
        sample n to (s, y, 1) after it, for inputs x (B, T) at sample indices n (B, T).

        Every entry is a sum of the monomials of :func:`_monomial_basis`, so the matrices are
        one product of the per-sample monomials with that constant basis.
        """
        tangent = torch.tan(math.pi / self.sample_rate * self.cutoff(n))
        g = tangent / (1 + tangent)
        c = 2 * g - 1  # a stage's direct gain
        powers = [torch.ones_like(c)]
        for _ in range(self.stages):
            powers.append(powers[-1] * c)
        feedback = torch.tanh(FEEDBACK_SCALE * self.raw_feedback).expand_as(c)
        e, q = 2 - 2 * g, 2 * g
        factors = torch.stack([e, q * e, feedback, q * feedback, x, q * x], dim=-1)
        monomials = (factors[..., :, None] * torch.stack(powers, dim=-1)[..., None, :]).flatten(-2)
        constant = torch.ones_like(g)[..., None]
        monomials = torch.cat([monomials, (1 - 2 * g)[..., None], constant], dim=-1)
        size = self.stages + 2
        return (monomials @ self._basis).view(*x.shape, size, size)

    def _run(
        self, x: torch.Tensor, start: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, T) from sample ``start`` (B,) and state (B, S + 1) → (B, 1, T), new state."""
        length = x.shape[-1]
        if length == 0:
            return torch.zeros_like(x), state
        chunk = math.isqrt(length - 1) + 1  # ≈ √T: as many steps within as across chunks
        padded = -(-length // chunk) * chunk  # the samples after x only make discarded output
        n = start[:, None] + torch.arange(padded, device=x.device)
        z0 = torch.cat([state, torch.ones_like(state[:, :1])], dim=-1)
        matrices = self._matrices(nn.functional.pad(x[:, 0], (0, padded - length)), n)
        chain, last = affine_scan(matrices, z0, self.stages, chunk, length - 1)
        return self.dry * x + self.wet * chain[:, None, :length], last[:, :-1]

    def forward(self, x: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """(B, 1, T), ``start`` (B,) int64 = file index of x[..., 0] → (B, 1, T), zero state."""
        return self._run(x, start, x.new_zeros(x.shape[0], self.stages + 1))[0]

    def stream(
        self, x: torch.Tensor, state: PhaserState | None
    ) -> tuple[torch.Tensor, PhaserState]:
        """The next block (B, 1, n) after ``state`` (None: file start) → (B, 1, n), new state."""
        if state is None:
            state = {
                "z": x.new_zeros(x.shape[0], self.stages + 1),
                "position": torch.zeros(x.shape[0], dtype=torch.int64, device=x.device),
            }
        y, z = self._run(x, state["position"], state["z"])
        return y, {"z": z, "position": state["position"] + x.shape[-1]}

    def _cutoff_track(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per frame of FRAME samples: its time (energy centroid of x, samples), cut-off
        (natural log of Hz) and weight (see :func:`peak_track`) of the best fit
        y ≈ a·x + b·(x through the chain held at one of GRID_CUTOFFS cut-offs)."""
        grid = np.linspace(*self.cutoff_range, GRID_CUTOFFS)
        starts = np.arange(0, len(x) - FRAME + 1, HOP)
        frame = starts[:, None] + np.arange(FRAME)
        xf, yf = x[frame], y[frame]
        sums = []
        for log_hz in grid:
            tangent = math.tan(math.pi * math.exp(log_hz) / self.sample_rate)
            a = 1 - 2 * tangent / (1 + tangent)
            w = x
            for _ in range(self.stages):
                w = scipy.signal.lfilter([-a, 1.0], [1.0, -a], w)
            wf = w[frame]
            sums.append([np.sum(wf * wf, 1), np.sum(xf * wf, 1), np.sum(yf * wf, 1)])
        sww, sxw, syw = np.moveaxis(np.array(sums), 0, -1)  # each (frames, cut-offs)
        sxx = np.sum(xf**2, axis=1, keepdims=True)
        syx = np.sum(yf * xf, axis=1, keepdims=True)
        score = explained_energy(sxx, sww, sxw, syx, syw)
        exclude = round(EXCLUDE_OCTAVES * math.log(2) / (grid[1] - grid[0]))
        log_hz, weight = peak_track(score, grid, np.sum(yf**2, axis=1), exclude)
        return energy_centroids(x, frame), log_hz, weight

    @torch.no_grad()
    def initialise(self, clean: np.ndarray, processed: np.ndarray) -> None:
        """Fit the LFO and gains to one training file from its sample 0 (1-D float32 each; the
        first seconds of it, see :func:`~deepfx.models.lfo.analysis_signals`; too short a file
        leaves the model as it is).

        The cut-off is measured in frames (the fixed cut-off whose all-pass chain, beside the
        input, best explains the output), a sine is fitted to that track of log cut-offs
        (rate, phase, centre, depth), and dry and wet gains are solved by least squares with
        the feedback at 0.
        """
        signals = analysis_signals(clean, processed, 8 * FRAME, self.sample_rate)
        if signals is None:
            return
        x, y = signals
        origin = len(x) // 2
        centres, log_hz, weight = self._cutoff_track(x, y)
        centre, depth, rate, phase = fit_sine(
            (centres - origin) / self.sample_rate, log_hz, weight, MAX_RATE_HZ, TOLERANCE,
            self.cutoff_range,
        )
        self.lfo.set(rate, phase, origin)
        self.raw_centre.fill_(centre / CUTOFF_SCALE)
        self.raw_depth.fill_(depth / CUTOFF_SCALE)
        self.raw_feedback.zero_()
        self.dry.fill_(0.0)
        self.wet.fill_(1.0)
        signal = torch.as_tensor(x, dtype=self.dry.dtype, device=self.dry.device).view(1, 1, -1)
        state, chain = None, []
        for block in signal.split(INITIALISE_BLOCK, dim=-1):
            out, state = self.stream(block, state)
            chain.append(out[0, 0].cpu().double().numpy())
        gains, *_ = np.linalg.lstsq(np.stack([x, np.concatenate(chain)], axis=1), y, rcond=None)
        self.dry.fill_(float(gains[0]))
        self.wet.fill_(float(gains[1]))
