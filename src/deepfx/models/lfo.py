"""The low-frequency oscillator of the time-variant models, and its estimation from audio.

:class:`SineLFO` is a learnable sine whose phase is counted from sample 0 of a file;
:func:`fit_sine` finds offset, amplitude, rate and phase of a sinusoidal parameter track (a
delay or a cut-off measured frame by frame) so that training starts near the effect's LFO
(:func:`analysis_signals` prepares the audio it is measured on);
:func:`explained_energy` and :func:`peak_track` measure those tracks: per frame, the candidate
whose signal best explains the effect's output.

A pedal or plugin that has been running does not start its LFO with the file: :func:`align_lfo`
estimates, per file and from the audio itself, the ``shift`` (samples) that puts a trained
model's LFO at the effect's phase (training aligns every training and validation file after
the closed-form start; evaluation aligns every test file; ``deepfx apply`` keeps the phase of
the first training file, having no effect output to align to).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from scipy.optimize import least_squares
from torch import nn

from deepfx.models.base import HyperparameterError, run

__all__ = [
    "SineLFO",
    "align_lfo",
    "analysis_signals",
    "check_init_rate",
    "energy_centroids",
    "explained_energy",
    "fit_sine",
    "lfo_of",
    "peak_track",
]

log = logging.getLogger(__name__)

#: Hz per unit of the raw rate parameter: one Adam step of lr 5e-3 moves the rate by 5e-5 Hz.
RATE_SCALE = 0.01
#: Radians per unit of the raw phase parameter.
PHASE_SCALE = 0.1
#: Reweighted least-squares rounds per rate of :func:`fit_sine`'s grid.
IRLS_ROUNDS = 6
#: Fastest LFO (Hz): the highest ``init_rate_hz`` and the fastest rate an ``initialise`` looks for.
MAX_RATE_HZ = 10.0
#: :func:`analysis_signals` keeps the first this many seconds of the audio.
ANALYSIS_SECONDS = 30
#: :func:`align_lfo`: seconds of audio compared, shifts tried over one period, and per round
#: of refinement around the best (each round a quarter of the last one's span, down to 1 sample).
ALIGN_SECONDS = 4.0
ALIGN_CANDIDATES = 48
ALIGN_REFINE = 9


class SineLFO(nn.Module):
    """sin(2π·rate·(n − origin)/sample_rate + phase) at absolute sample indices n.

    ``rate`` (Hz) and ``phase`` (rad, at sample ``origin``) are learned. ``origin`` (samples,
    a buffer) is set by :meth:`set` to the middle of the fitted audio, so that a change of rate
    leaves the phase there unchanged: rate and phase then have nearly independent gradients.
    ``shift`` (samples, not saved with the weights) is added to every index: where the current
    file's LFO stands (see :func:`align_lfo`); 0 keeps the phase the model was fitted at.
    The angle is computed in float64 so that hours of audio keep sub-sample precision.
    """

    def __init__(self, rate_hz: float, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.raw_rate = nn.Parameter(torch.tensor(rate_hz / RATE_SCALE))
        self.raw_phase = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("origin", torch.zeros((), dtype=torch.int64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.int64), persistent=False)

    @property
    def rate_hz(self) -> float:
        return float(self.raw_rate.detach()) * RATE_SCALE

    @property
    def phase(self) -> float:
        """Phase (rad) at sample ``origin``."""
        return float(self.raw_phase.detach()) * PHASE_SCALE

    @torch.no_grad()
    def set(self, rate_hz: float, phase: float, origin: int) -> None:
        """Rate (Hz), phase (rad) at sample ``origin``."""
        self.raw_rate.fill_(rate_hz / RATE_SCALE)
        self.raw_phase.fill_(math.remainder(phase, 2 * math.pi) / PHASE_SCALE)
        self.origin.fill_(int(origin))

    def forward(
        self,
        n: torch.Tensor,
        before: torch.Tensor | None = None,
        ahead: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """LFO value in [-1, 1] at the int64 sample indices ``n`` (any shape), parameter dtype;
        ``before`` (samples, float, broadcasting with n): that much earlier than n instead;
        ``ahead`` (rad, broadcasting): the phase that much ahead (another voice's LFO)."""
        seconds = (n + self.shift - self.origin).double()
        if before is not None:
            seconds = seconds - before.double()
        seconds = seconds / self.sample_rate
        rate = self.raw_rate.double() * RATE_SCALE
        angle = 2 * math.pi * rate * seconds + self.raw_phase.double() * PHASE_SCALE
        if ahead is not None:
            angle = angle + ahead.double()
        return torch.sin(angle).to(self.raw_rate.dtype)


def explained_energy(
    sxx: np.ndarray, sww: np.ndarray, sxw: np.ndarray, syx: np.ndarray, syw: np.ndarray
) -> np.ndarray:
    """Energy of y explained by the least-squares fit y ≈ a·x + b·w, from the frame sums
    Σx², Σw², Σxw, Σyx, Σyw (arrays that broadcast together). A ridge of 1e-6 of the
    regressors' energy keeps silent or collinear regressors from dividing rounding noise."""
    ridge = 1e-6 * (sxx + sww) + 1e-30
    sxx, sww = sxx + ridge, sww + ridge
    return (sww * syx**2 - 2 * sxw * syx * syw + sxx * syw**2) / (sxx * sww - sxw**2)


def energy_centroids(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Energy-weighted mean sample index of ``x`` in each row of ``frames`` (indices): the
    time a frame's measurement stands for (a decaying note weighs the frame's start)."""
    energy = x[frames] ** 2
    total = energy.sum(axis=1)
    middle = frames.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (energy * frames).sum(axis=1) / total, middle)


def peak_track(
    score: np.ndarray, grid: np.ndarray, energy: np.ndarray, exclude: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``score`` (frames, candidates): the grid value of the best candidate, refined
    by a parabola through its neighbours, and its weight ((best − runner-up) / ``energy``)²,
    the runner-up being the best candidate more than ``exclude`` grid steps away: a frame that
    two distant candidates explain alike (a steady tone) says little about the parameter."""
    rows = np.arange(len(score))
    best = np.argmax(score, axis=1)
    inner = np.clip(best, 1, score.shape[1] - 2)
    left, mid, right = (score[rows, inner + k] for k in (-1, 0, 1))
    curvature = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    shift = np.where(best == inner, np.clip(shift, -0.5, 0.5), 0.0)
    value = np.interp(best + shift, np.arange(len(grid)), grid)
    far = np.abs(np.arange(score.shape[1])[None, :] - best[:, None]) > exclude
    runner_up = np.where(far, score, -np.inf).max(axis=1)
    margin = np.maximum(score[rows, best] - runner_up, 0.0) / np.maximum(energy, 1e-30)
    return value, np.where(np.isfinite(margin), margin, 0.0) ** 2


def fit_sine(
    times: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    max_rate_hz: float,
    tolerance: float,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> tuple[float, float, float, float]:
    """(offset, amplitude ≥ 0, rate Hz, phase rad at time 0) of the weighted robust fit
    values ≈ clip(offset + amplitude·sin(2π·rate·times + phase), *bounds); ``times`` in s.

    Mis-measured values are expected: residuals r cost log(1 + (r / ``tolerance``)²) (Cauchy).
    Each rate of a grid from half a cycle over the span of ``times`` to ``max_rate_hz`` (steps
    of a quarter cycle over the span) gets a few reweighted least-squares rounds; the best
    one is refined in all four parameters, with the clipping to ``bounds`` (the grid ignores
    it: clipped values are among the mis-measured ones there).
    """
    span = float(times.max() - times.min())
    if span <= 0 or not np.any(weights > 0):
        raise ValueError("fit_sine needs weighted values at two or more times")
    w = weights / weights.sum()
    rates = np.arange(0.5 / span, max_rate_hz, 0.25 / span)
    angle = 2 * np.pi * rates[:, None] * times[None, :]
    basis = (np.ones_like(angle), np.sin(angle), np.cos(angle))  # each (rates, frames)
    products = {(i, j): basis[i] * basis[j] for i in range(3) for j in range(i, 3)}
    robust = np.broadcast_to(w, angle.shape)
    for _ in range(IRLS_ROUNDS):
        gram = np.empty((len(rates), 3, 3))
        for (i, j), product in products.items():
            gram[:, i, j] = gram[:, j, i] = np.sum(robust * product, axis=1)
        rhs = np.stack([np.sum(robust * b * values, axis=1) for b in basis], axis=-1)
        coef = np.linalg.solve(gram + 1e-12 * np.eye(3), rhs[..., None])[..., 0]
        fitted = coef[:, :1] + coef[:, 1:2] * basis[1] + coef[:, 2:] * basis[2]
        residual = (values - fitted) / tolerance
        robust = w / (1 + residual**2)
    best = int(np.argmin(np.log1p(residual**2) @ w))
    offset, s, c = coef[best]
    start = np.array([offset, math.hypot(s, c), rates[best], math.atan2(c, s)])

    def misfit(p: np.ndarray) -> np.ndarray:
        model = np.clip(p[0] + p[1] * np.sin(2 * np.pi * p[2] * times + p[3]), *bounds)
        return np.sqrt(w) * (model - values)

    scale = tolerance * math.sqrt(w.mean())
    fit = least_squares(misfit, start, loss="cauchy", f_scale=scale, x_scale="jac")
    offset, amplitude, rate, phase = fit.x
    if amplitude < 0:
        amplitude, phase = -amplitude, phase + np.pi
    return float(offset), float(amplitude), float(rate), math.remainder(float(phase), 2 * np.pi)


def check_init_rate(rate_hz: float) -> None:
    """Raise HyperparameterError (key ``init_rate_hz``) unless 0 < ``rate_hz`` ≤ MAX_RATE_HZ."""
    if not 0 < rate_hz <= MAX_RATE_HZ:
        raise HyperparameterError(
            "init_rate_hz", f"must be in (0, {MAX_RATE_HZ:g}] Hz, got {rate_hz}"
        )


def analysis_signals(
    clean: np.ndarray, processed: np.ndarray, min_samples: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The first ANALYSIS_SECONDS of a training file's ``clean`` and ``processed`` signals as
    float64, or None (with a warning) when they are shorter than ``min_samples``: too few to
    fit the LFO.

    Raises:
        ValueError: ``clean`` and ``processed`` are not two 1-D signals of one length.
    """
    x = np.asarray(clean, dtype=np.float64)
    y = np.asarray(processed, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"initialise needs two 1-D signals alike, got {x.shape}, {y.shape}")
    if len(x) < min_samples:
        log.warning("%d samples: too few to fit the LFO; it keeps its start values", len(x))
        return None
    return x[: ANALYSIS_SECONDS * sample_rate], y[: ANALYSIS_SECONDS * sample_rate]



def lfo_of(model: nn.Module) -> SineLFO | None:
    """The :class:`SineLFO` of a time-variant ``model`` (its ``lfo`` attribute), or None."""
    lfo = getattr(model, "lfo", None)
    return lfo if isinstance(lfo, SineLFO) else None


@torch.no_grad()
def align_lfo(model: nn.Module, clean: np.ndarray, target: np.ndarray, batch: int = 8) -> int:
    """Set and return the ``shift`` (samples) of ``model``'s LFO that best maps ``clean`` to
    ``target`` (1-D signals of one file): the lowest squared error over the ALIGN_SECONDS of
    the file where the target is loudest, among ALIGN_CANDIDATES shifts spread over one LFO
    period, then in rounds of ALIGN_REFINE shifts around the best, each round narrower, down
    to one sample."""
    lfo = lfo_of(model)
    if lfo is None:
        raise ValueError(f"{type(model).__name__} has no SineLFO to align")
    sr = lfo.sample_rate
    context = model.receptive_field - 1
    window = min(len(clean), int(ALIGN_SECONDS * sr))
    if window <= 0 or len(clean) != len(target):
        lfo.shift.fill_(0)
        return 0
    hop = max(window // 4, 1)
    energy = np.cumsum(np.concatenate([[0.0], np.square(target, dtype=np.float64)]))
    starts = np.arange(0, len(clean) - window + 1, hop)
    first = int(starts[np.argmax(energy[starts + window] - energy[starts])])
    lead = min(first, context)
    device = next(model.parameters()).device
    x = torch.as_tensor(clean[first - lead : first + window], dtype=torch.float32, device=device)
    y = torch.as_tensor(target[first : first + window], dtype=torch.float32, device=device)

    def errors(shifts: np.ndarray) -> np.ndarray:
        out = []
        for chunk in np.array_split(shifts, max(1, math.ceil(len(shifts) / batch))):
            lfo.shift.fill_(0)
            start = torch.as_tensor(chunk + first - lead, dtype=torch.int64, device=device)
            prediction = run(model, x.expand(len(chunk), 1, -1), start)[:, 0, lead:]
            out.append(((prediction - y) ** 2).sum(dim=-1).cpu().double().numpy())
        return np.concatenate(out)

    period = sr / max(abs(lfo.rate_hz), 1e-3)
    step = period / ALIGN_CANDIDATES
    shifts = np.round(np.arange(ALIGN_CANDIDATES) * step).astype(np.int64)
    shift = int(shifts[np.argmin(errors(shifts))])
    while step > 1:  # narrow down around the best: ±step in ALIGN_REFINE points, step / 4 each round
        shifts = np.unique(shift + np.round(np.linspace(-step, step, ALIGN_REFINE)).astype(np.int64))
        shift = int(shifts[np.argmin(errors(shifts))])
        step /= 4
    lfo.shift.fill_(shift)
    return shift
