"""The architectures: a registry (one architecture per module), a checked builder and inference.

The contract every architecture keeps is in :mod:`deepfx.models.base`.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from deepfx.errors import DeepfxError
from deepfx.models.base import HyperparameterError, latency_of, run

__all__ = [
    "ARCHS",
    "apply_model",
    "arch_class",
    "build_model",
    "hyperparameters",
    "judging_metric",
    "resolve_hyperparameters",
]

#: Architecture name (as in params ``archs`` and ``effects.<name>.model.arch``) → "module:Class".
ARCHS: dict[str, str] = {
    "cnn": "deepfx.models.cnn:SeedCNN",
    "lstm": "deepfx.models.seed_lstm:SeedLSTM",
    "rnn": "deepfx.models.rnn:SkipRNN",
    "tcn": "deepfx.models.tcn:TCN",
    "fir": "deepfx.models.fir:FIR",
    "tcn_fir": "deepfx.models.tcn_fir:TCNWithFIR",
    "modulated_delay": "deepfx.models.modulated_delay:ModulatedDelay",
    "allpass_phaser": "deepfx.models.allpass_phaser:AllpassPhaser",
    "compressor": "deepfx.models.compressor:Compressor",
    "pitch_shifter": "deepfx.models.pitch_shifter:PitchShifter",
}

_NOT_HYPERPARAMETERS = ("self", "sample_rate")


def arch_class(arch: str) -> type[nn.Module]:
    """The model class registered as ``arch``."""
    if arch not in ARCHS:
        raise DeepfxError(f"archs: unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    module, name = ARCHS[arch].split(":")
    return getattr(importlib.import_module(module), name)


def judging_metric(arch: str) -> str:
    """What an effect modelled by ``arch`` is judged by: its class's ``METRIC`` (default ``esr``)."""
    return getattr(arch_class(arch), "METRIC", "esr")


def hyperparameters(arch: str) -> dict[str, tuple[object, object]]:
    """``{name: (type hint, default)}`` of ``arch``'s hyper-parameters (default: ``inspect.Parameter.empty``)."""
    init = arch_class(arch).__init__
    hints = typing.get_type_hints(init)
    return {
        name: (hints[name], p.default)
        for name, p in inspect.signature(init).parameters.items()
        if name not in _NOT_HYPERPARAMETERS
    }


def _check_value(where: str, value: object, hint: object) -> None:
    """Raise DeepfxError unless ``value`` fits ``hint`` (see :mod:`deepfx.models.base`)."""
    if typing.get_origin(hint) is typing.Literal:
        if value not in typing.get_args(hint):
            raise DeepfxError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return
    if typing.get_origin(hint) in (Sequence, list, tuple):
        if not isinstance(value, (list, tuple)) or not value:
            raise DeepfxError(
                f"{where}: expected a non-empty list of positive integers, got {value!r}"
            )
        for i, item in enumerate(value):
            _check_value(f"{where}[{i}]", item, int)
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise DeepfxError(f"{where}: expected true or false, got {value!r}")
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise DeepfxError(f"{where}: expected a number, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepfxError(f"{where}: expected a positive integer, got {value!r}")


def resolve_hyperparameters(arch: str, cfg: Mapping, where: str | None = None) -> dict:
    """All of ``arch``'s hyper-parameters: ``cfg`` over the class's defaults, each checked.

    Raises:
        DeepfxError: unknown ``arch`` (naming ``archs``), or an unknown, missing or invalid
            hyper-parameter (naming ``<where>.<key>``; ``where`` defaults to ``models.<arch>``).
    """
    where = where or f"models.{arch}"
    expected = hyperparameters(arch)
    for key in cfg:
        if key not in expected:
            raise DeepfxError(
                f"{where}.{key}: unknown hyper-parameter; {arch} takes {sorted(expected)}"
            )
    resolved = {}
    for key, (hint, default) in expected.items():
        if key not in cfg and default is inspect.Parameter.empty:
            raise DeepfxError(f"{where}.{key}: missing hyper-parameter")
        value = cfg.get(key, default)
        _check_value(f"{where}.{key}", value, hint)
        resolved[key] = list(value) if isinstance(value, tuple) else value
    return resolved


def build_model(
    arch: str, cfg: Mapping, *, sample_rate: int | None = None, where: str | None = None
) -> nn.Module:
    """A freshly initialised ``arch`` model with the hyper-parameters ``cfg`` (see
    :func:`resolve_hyperparameters`); ``sample_rate`` (Hz) is passed to architectures that
    take it. ``where`` names the params key ``cfg`` came from in error messages.

    Raises:
        DeepfxError: as :func:`resolve_hyperparameters`, or a value out of range.
    """
    where = where or f"models.{arch}"
    kwargs = resolve_hyperparameters(arch, cfg, where)
    cls = arch_class(arch)
    if "sample_rate" in inspect.signature(cls.__init__).parameters:
        if sample_rate is None:
            raise DeepfxError(f"{where}: {arch} needs the sample rate (Hz)")
        kwargs["sample_rate"] = int(sample_rate)
    try:
        return cls(**kwargs)
    except HyperparameterError as exc:
        raise DeepfxError(f"{where}.{exc.key}: {exc.message}") from None


@torch.no_grad()
def apply_model(model: nn.Module, x: np.ndarray, chunk_samples: int = 65_536) -> np.ndarray:
    """Run a causal ``model`` over the whole signal ``x`` (samples,) from sample 0; float32 out.

    Models with ``stream`` carry their state from chunk to chunk; the others get each chunk
    with the ``receptive_field - 1`` input samples before it. Either way the result equals
    processing ``x`` in one pass while memory stays bounded by ``chunk_samples``. A model's
    ``latency`` is compensated: its output is moved that many samples earlier (the input is
    extended by as many zeros so the output keeps the input's length).
    """
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    latency = latency_of(model)
    if latency:
        x = np.concatenate((x, np.zeros(latency, dtype=np.float32)))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    streaming = hasattr(model, "stream")
    context = 0 if streaming else model.receptive_field - 1
    out = np.empty(len(x), dtype=np.float32)
    state = None
    try:
        for start in range(0, len(x), chunk_samples):
            stop = min(start + chunk_samples, len(x))
            lead = min(start, context)
            chunk = torch.from_numpy(np.ascontiguousarray(x[start - lead : stop], dtype=np.float32))
            chunk = chunk.to(device).view(1, 1, -1)
            if streaming:
                y, state = model.stream(chunk, state)
            else:
                y = run(model, chunk, torch.tensor([start - lead], device=device))
            out[start:stop] = y[0, 0, lead:].cpu().numpy()
    finally:
        model.train(was_training)
    return out[latency:]
