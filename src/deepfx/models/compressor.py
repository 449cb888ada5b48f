"""A differentiable feed-forward compressor: peak envelope follower, hard-knee gain computer and
make-up gain, every one of its five settings learned.

The detector follows the rectified input with a one-pole filter whose coefficient switches
per sample between attack and release, e[n] = c[n]·e[n-1] + (1 - c[n])·|x[n]| with c[n] the
attack coefficient when |x[n]| > e[n-1] and the release one otherwise. A time of τ ms gives
c = exp(-2π / (τ · 10⁻³ · sample_rate)), the convention of JUCE's ``dsp::Compressor``
(pedalboard's ``Compressor``). The gain in dB is
make-up - (1 - 1/ratio)·max(0, 20·log10(e) - threshold).

Training: which coefficient applies at each sample is decided without gradient (a compiled
per-sample loop compiled with numba); given that choice the recursion is linear, and it is
evaluated differentiably in closed form, log e[n] = L[n] + logcumsumexp_k(log u[k] - L[k])
with L the running sum of log c and u = (1 - c)·|x| (float64, no loop). The choice itself is
piecewise constant in the settings, so leaving it out of the gradient loses nothing almost
everywhere (where it flips, |x[n]| = e[n-1] and both branches agree).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import nn

from deepfx.models.base import HyperparameterError

__all__ = ["ENVELOPE_FLOOR", "Compressor"]

#: Shortest attack/release time (ms) the model can reach (times are learned as log(τ - this)).
_MIN_TIME_MS = 0.05
#: Added to the envelope before taking logs (linear amplitude, far below any audible level).
ENVELOPE_FLOOR = 1e-30
#: How far one Adam step of about lr moves each setting: a raw parameter of 1 is this many
#: dB (threshold, make-up) or e-folds (ratio - 1, attack, release), so the default learning
#: rate walks a setting across its useful range within a few hundred steps.
_DB_SCALE = 12.0
_LOG_SCALE = 2.0


@numba.njit(cache=False, nogil=True)
def _attack_mask(
    rectified: np.ndarray, start: np.ndarray, attack: float, release: float
) -> np.ndarray:
    """Where the detector uses its attack coefficient: (B, T) bool, from |x| (B, T), the
    envelope before the first sample (B,) and the two coefficients."""
    batch, length = rectified.shape
    mask = np.empty((batch, length), dtype=np.bool_)
    for b in range(batch):
        e = start[b]
        for n in range(length):
            a = rectified[b, n]
            up = a > e
            c = attack if up else release
            e = a + c * (e - a)
            mask[b, n] = up
    return mask


class Compressor(nn.Module):
    """(B, 1, T) → (B, 1, T): x · 10^(gain_dB / 20), the gain from a peak envelope follower.

    The keyword arguments are the initial settings (all five are learned): ``threshold_db``
    (dBFS), ``ratio`` (> 1), ``attack_ms`` and ``release_ms`` (ms, JUCE's time convention, see
    the module doc) and ``makeup_db`` (dB). ``warmup`` (samples) is the ``receptive_field``: the
    envelope starts at 0 at sample 0 of a file, and training runs that much input in front of
    each excerpt so the envelope has settled (a few release times).
    """

    def __init__(
        self,
        *,
        threshold_db: float = -20.0,
        ratio: float = 2.0,
        attack_ms: float = 10.0,
        release_ms: float = 50.0,
        makeup_db: float = 0.0,
        warmup: int = 4096,
        sample_rate: int,
    ) -> None:
        super().__init__()
        if ratio <= 1.0:
            raise HyperparameterError("ratio", f"must be above 1, got {ratio}")
        for key, value in (("attack_ms", attack_ms), ("release_ms", release_ms)):
            if value <= _MIN_TIME_MS:
                raise HyperparameterError(key, f"must be above {_MIN_TIME_MS} ms, got {value}")
        self.sample_rate = int(sample_rate)
        self.receptive_field = warmup
        self._initial = {
            "threshold_db": float(threshold_db),
            "log_ratio_excess": math.log(ratio - 1.0),
            "log_attack_ms": math.log(attack_ms - _MIN_TIME_MS),
            "log_release_ms": math.log(release_ms - _MIN_TIME_MS),
            "makeup_db": float(makeup_db),
        }
        # raw parameters, 0 = the initial settings; see _DB_SCALE and _LOG_SCALE
        self.threshold = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.ratio_excess = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.attack = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.release = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.makeup = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def settings(self) -> dict[str, torch.Tensor]:
        """The current settings as 0-d tensors: threshold_db, ratio, attack_ms, release_ms and
        makeup_db."""
        init = self._initial
        return {
            "threshold_db": init["threshold_db"] + _DB_SCALE * self.threshold,
            "ratio": 1.0 + torch.exp(init["log_ratio_excess"] + _LOG_SCALE * self.ratio_excess),
            "attack_ms": _MIN_TIME_MS + torch.exp(init["log_attack_ms"] + _LOG_SCALE * self.attack),
            "release_ms": _MIN_TIME_MS
            + torch.exp(init["log_release_ms"] + _LOG_SCALE * self.release),
            "makeup_db": init["makeup_db"] + _DB_SCALE * self.makeup,
        }

    def log_coefficient(self, time_ms: torch.Tensor) -> torch.Tensor:
        """log of the one-pole coefficient for a time of ``time_ms`` (ms)."""
        return -2.0 * math.pi * 1000.0 / (time_ms * self.sample_rate)

    def stream(
        self, x: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The next block (B, 1, n) after ``state`` (the envelope, (B,) float64; None: file
        start) → (B, 1, n), new state."""
        if x.shape[-1] == 0:
            return torch.zeros_like(x), state
        s = self.settings()
        rectified = x[:, 0].detach().abs().to(torch.float64)  # (B, n)
        if state is None:
            state = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        log_attack = self.log_coefficient(s["attack_ms"])
        log_release = self.log_coefficient(s["release_ms"])
        mask = _attack_mask(
            rectified.cpu().numpy(),
            state.detach().cpu().numpy(),
            math.exp(log_attack.item()),
            math.exp(log_release.item()),
        )
        log_c = torch.where(torch.from_numpy(mask).to(x.device), log_attack, log_release).double()
        u = -torch.expm1(log_c) * rectified  # (1 - c)·|x|
        running = torch.cumsum(log_c, dim=-1)  # L[n] = Σ_{k ≤ n} log c[k]
        # the state enters as a term at k = -1 with L[-1] = 0
        terms = torch.cat([torch.log(state + ENVELOPE_FLOOR)[:, None], torch.log(u + ENVELOPE_FLOOR) - running], -1)
        log_env = running + torch.logcumsumexp(terms, dim=-1)[:, 1:]
        over = torch.relu(log_env * (20.0 / math.log(10.0)) - s["threshold_db"])
        gain_db = s["makeup_db"] - (1.0 - 1.0 / s["ratio"]) * over
        y = x * torch.pow(10.0, gain_db / 20.0).to(x.dtype)[:, None]
        return y, torch.exp(log_env[:, -1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T) from a zero envelope."""
        return self.stream(x, None)[0]
