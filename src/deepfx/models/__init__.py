"""The model architectures: an explicit registry, a checked builder and chunked inference.

Every model maps (B, 1, T) → (B, 1, T), is causal (output t depends on inputs ≤ t only; it pads
on the left itself) and exposes ``receptive_field`` (samples): output t depends on inputs
t - receptive_field + 1 … t.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from deepfx.errors import DeepfxError
from deepfx.models.cnn import SeedCNN
from deepfx.models.tcn import TCN

__all__ = ["ARCHS", "apply_model", "build_model", "hyperparameters"]

#: Architecture name (as in params ``archs``) → model class.
ARCHS: dict[str, type[nn.Module]] = {"cnn": SeedCNN, "tcn": TCN}


def hyperparameters(arch: str) -> dict[str, object]:
    """The hyper-parameter names of ``arch`` with their annotated types (its ``models.<arch>``)."""
    if arch not in ARCHS:
        raise DeepfxError(f"archs: unknown architecture {arch!r}; choose from {sorted(ARCHS)}")
    init = ARCHS[arch].__init__
    hints = typing.get_type_hints(init)
    return {name: hints[name] for name in inspect.signature(init).parameters if name != "self"}


def _check_value(where: str, value: object, hint: object) -> None:
    """Raise DeepfxError unless ``value`` fits ``hint``: positive int, list of them, or choice."""
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
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepfxError(f"{where}: expected a positive integer, got {value!r}")


def build_model(arch: str, cfg: Mapping) -> nn.Module:
    """A freshly initialised ``arch`` model from its hyper-parameters ``cfg`` (``models.<arch>``).

    Raises:
        DeepfxError: unknown ``arch`` (naming ``archs``), or a missing, unknown or invalid key
            (naming ``models.<arch>.<key>``).
    """
    expected = hyperparameters(arch)
    for key in cfg:
        if key not in expected:
            raise DeepfxError(
                f"models.{arch}.{key}: unknown hyper-parameter; {arch} takes {sorted(expected)}"
            )
    for key, hint in expected.items():
        if key not in cfg:
            raise DeepfxError(f"models.{arch}.{key}: missing hyper-parameter")
        _check_value(f"models.{arch}.{key}", cfg[key], hint)
    return ARCHS[arch](**cfg)


@torch.no_grad()
def apply_model(model: nn.Module, x: np.ndarray, chunk_samples: int = 65_536) -> np.ndarray:
    """Run a causal ``model`` over the whole signal ``x`` (samples,) in chunks; float32 out.

    Each chunk is fed with the ``receptive_field - 1`` input samples before it, so the result
    equals processing ``x`` in one pass while memory stays bounded by ``chunk_samples``.
    """
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    context = model.receptive_field - 1
    out = np.empty(len(x), dtype=np.float32)
    try:
        for start in range(0, len(x), chunk_samples):
            stop = min(start + chunk_samples, len(x))
            lead = min(start, context)
            chunk = torch.from_numpy(np.ascontiguousarray(x[start - lead : stop], dtype=np.float32))
            y = model(chunk.to(device).view(1, 1, -1))
            out[start:stop] = y[0, 0, lead:].cpu().numpy()
    finally:
        model.train(was_training)
    return out
