"""A recurrent amp model after Wright, Damskägg & Välimäki (2019): one LSTM or GRU layer, a
Linear head and a skip connection from the input to the output, behind the effect's own lag."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from deepfx.models.base import HyperparameterError, Recurrent
from deepfx.models.fir import wiener_taps

__all__ = ["ONSET_LEVEL", "REST_SAMPLES", "RNNState", "SkipRNN", "onset_lag"]

#: The recurrent layer's state, an LSTM's (h, c) or a GRU's h, each (1, B, hidden); and the
#: last ``lag`` input samples (B, 1, lag).
RNNState = tuple[tuple[torch.Tensor, torch.Tensor] | torch.Tensor, torch.Tensor]

#: Samples of silence after which the recurrent layer counts as at rest (:meth:`SkipRNN.finalise`).
REST_SAMPLES = 4096

#: :func:`onset_lag`: the first tap of the effect's linear part at least this fraction of its
#: largest one marks where the effect's response begins.
ONSET_LEVEL = 0.1


def onset_lag(clean: np.ndarray, processed: np.ndarray, max_lag: int) -> int:
    """Samples (0 … ``max_lag``) before ``processed`` starts to respond to ``clean`` (1-D).

    The onset of the main peak of the least-squares FIR from clean to processed: from its
    largest tap back to the first of the taps of at least :data:`ONSET_LEVEL` of it that lead
    up to it. A plug-in's unreported latency (oversampling filters, look-ahead) shows as
    leading near-zero taps even when the effect is far from linear, since its linear part
    still carries most of the signal; walking back from the peak ignores stray early taps
    that narrow-band audio leaves in the fit.
    """
    if max_lag < 1:
        return 0
    taps = np.abs(wiener_taps(clean, processed, max_lag + 64))
    onset = int(np.argmax(taps))
    while onset > 0 and taps[onset - 1] >= ONSET_LEVEL * taps.max():
        onset -= 1
    return min(onset, max_lag)


class SkipRNN(Recurrent):
    """(B, 1, T) → (B, 1, T): y = x' + Linear(h) with ``skip``, else Linear(h); h: one RNN layer
    on x', the input ``lag`` samples late.

    ``cell`` is ``"lstm"`` or ``"gru"`` with ``hidden`` units (16–64 is typical for amps and
    pedals). The skip connection lets the recurrent layer learn only the difference between
    the effect and its input. ``lag`` (samples, up to ``max_lag_ms``; 0 until
    :meth:`initialise` measures it, see :func:`onset_lag`) is the effect's delay before it
    responds: a recurrent layer cannot learn a pure delay, so it is taken out in closed form.
    The state starts at zero at sample 0 of a file; ``warmup`` (samples) plus the lag is the
    model's ``receptive_field``: the input that training runs in front of each excerpt,
    outside the loss, so the state has left its zero start when the loss begins.
    """

    def __init__(
        self,
        *,
        cell: Literal["lstm", "gru"] = "lstm",
        hidden: int = 32,
        skip: bool = True,
        warmup: int = 2048,
        max_lag_ms: float = 5.0,
        sample_rate: int,
    ) -> None:
        super().__init__()
        if not 0.0 <= max_lag_ms <= 100.0:
            raise HyperparameterError("max_lag_ms", f"must be in [0, 100] ms, got {max_lag_ms}")
        self.warmup = warmup
        self.max_lag = int(round(max_lag_ms * sample_rate / 1000))  # samples
        self.skip = skip
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("lag", torch.zeros((), dtype=torch.int64))  # set by initialise

    @property
    def receptive_field(self) -> int:
        """Samples of input before the first output that the loss sees: warm-up and lag."""
        return self.warmup + int(self.lag)

    def initialise(self, clean: np.ndarray, processed: np.ndarray) -> None:
        """Measure the effect's ``lag`` (:func:`onset_lag`) on the 1-D training signals."""
        self.lag.fill_(onset_lag(clean, processed, self.max_lag))

    @torch.no_grad()
    def finalise(self) -> None:
        """Make silence in silence out: subtract the output at rest (after REST_SAMPLES of
        silence) from the head's bias. Training leaves a small offset there that loud
        training audio hardly punishes but that dominates the error on quiet playing."""
        silence = self.head.bias.new_zeros(1, 1, REST_SAMPLES)
        self.head.bias -= self(silence)[0, 0, -1]

    def _run(self, x: torch.Tensor, state: RNNState | None) -> tuple[torch.Tensor, RNNState]:
        lag = int(self.lag)
        rnn_state, history = (None, x.new_zeros(x.shape[0], 1, lag)) if state is None else state
        joined = torch.cat((history, x), dim=-1)
        late = joined[..., : x.shape[-1]]  # the input lag samples late
        h, rnn_state = self.rnn(late.transpose(1, 2), rnn_state)
        y = self.head(h).transpose(1, 2)
        return (late + y if self.skip else y), (rnn_state, joined[..., joined.shape[-1] - lag :])
