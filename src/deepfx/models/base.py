"""The contract every architecture keeps, and the helpers that rely on it.

An architecture is an ``nn.Module`` class whose ``__init__`` takes keyword-only hyper-parameters
with type hints and defaults (``int`` = positive integer, ``float`` = finite number, ``bool``,
``Literal[...]`` = one of, ``Sequence[int]`` = non-empty list of positive integers), plus
``sample_rate: int`` (Hz) when it thinks in seconds or Hz (passed by the builder, never a
hyper-parameter). Range checks raise :class:`HyperparameterError` naming the key.

Every model maps (B, 1, T) → (B, 1, T) causally: output t depends on inputs ≤ t only.

- ``receptive_field`` (samples, ≥ 1): output t depends on inputs t - receptive_field + 1 … t.
  Models with unbounded memory (recurrent, IIR, feedback) set it to the warm-up length after
  which their state has settled; training prepends that many samples and leaves them out of
  the loss.
- ``time_variant = True`` (class attribute, default False): the output also depends on the
  absolute time (an LFO). ``forward(x, start)`` then takes ``start`` (B,) int64, the index of
  ``x[..., 0]`` in its file (negative inside the zero padding before the file).
- ``stream(x, state) -> (y, state)`` (optional): process the next block ``x`` (B, 1, n) of a
  signal whose earlier blocks left ``state`` (None at sample 0 of the file). Joined outputs
  equal ``forward`` of the whole signal (from start 0). Models with unbounded memory or time
  variance must have it; it is also how recurrent models train with truncated
  back-propagation through time (the state's tensors are detached between segments).
- ``tbptt = True`` (class attribute, default False): train with truncated back-propagation
  through time: the trainer warms the state up on the context without gradients, then takes
  one optimiser step per ``train.tbptt_samples`` segment of ``stream``. :class:`Recurrent`
  gives a recurrent layer's model ``stream``, ``forward`` and ``tbptt``.
- ``latency`` (samples, default 0): the output lags the effect by this much (a frame-based
  model); hosts shift it back as a DAW compensates a plugin's reported latency
  (``apply_model``, ``deepfx apply``, training and evaluation).
- ``initialise(clean, processed)`` (optional): a closed-form fit on 1-D float32 training
  signals (Hz-free, at the model's rate), called once before gradient training.
- ``finalise()`` (optional): a closed-form touch-up of the best weights after gradient
  training, before they are saved.
- ``METRIC`` (optional class attribute): what an effect this architecture models is judged by
  in the report, ``"esr"`` (default) or ``"log_mel"`` (``deepfx.models.judging_metric``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "HyperparameterError",
    "Recurrent",
    "detach_state",
    "is_time_variant",
    "latency_of",
    "run",
]


class HyperparameterError(ValueError):
    """A hyper-parameter value out of range; the builder prefixes where it came from."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class Recurrent(nn.Module):
    """A model around a torch recurrent layer, trained with truncated back-propagation through
    time: a subclass defines ``_run(x, state) -> (y, state)`` for a non-empty block x
    (B, 1, n) (state None: zero, the file start) and gets ``stream`` and ``forward`` from it."""

    tbptt = True

    def _run(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """A non-empty block (B, 1, n) after ``state`` → (B, 1, n), new state."""
        raise NotImplementedError

    def stream(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """The next block (B, 1, n) after ``state`` (None: file start) → (B, 1, n), new state."""
        if x.shape[-1] == 0:  # torch's recurrent layers refuse empty sequences
            return torch.zeros_like(x), state
        return self._run(x, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) → (B, 1, T) from a zero state."""
        return self._run(x, None)[0]


def latency_of(model: nn.Module) -> int:
    """``model``'s declared output latency (samples; 0 when it declares none)."""
    return int(getattr(model, "latency", 0))


def is_time_variant(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes the absolute ``start`` sample of its input."""
    return bool(getattr(model, "time_variant", False))


def run(model: nn.Module, x: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """``model(x)``, passing ``start`` (B,) sample indices (zeros when None) to time-variant models."""
    if not is_time_variant(model):
        return model(x)
    if start is None:
        start = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    return model(x, start)


def detach_state(state: Any) -> Any:
    """``state`` with every tensor detached from the autograd graph (tuples/lists/dicts kept)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state
