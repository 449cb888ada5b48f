"""Neural Amp Modeler ``.nam`` files: a deepfx TCN written as NAM's WaveNet, an LSTM as NAM's LSTM.

A ``.nam`` file is JSON: ``version``, ``architecture``, ``config``, a flat ``weights`` list,
``sample_rate`` (Hz) and ``metadata``. Our TCN maps exactly onto one NAM WaveNet layer array:

- input 1×1 conv → NAM's bias-free rechannel; its bias is folded into every layer's dilated
  conv bias (each layer's input holds it, so that conv adds ``Σ_taps W·b``);
- each layer: dilated conv → NAM's layer conv (same weight layout), NAM's condition mixer set
  to zero, gated (tanh·sigmoid) or tanh activation, residual 1×1 → NAM's ``layer1x1``, skip
  1×1 → NAM's ``head1x1`` (with ``channels`` outputs);
- head 1×1 conv → the layer array's ``head`` rechannel (1 output, bias), ``head_scale`` 1.

The outputs agree once the receptive field is filled: in the first ``receptive_field - 1``
samples a TCN pads each layer with zeros, NAM pads the input signal with zeros.

NAM's LSTM is a stack of LSTM layers and a Linear head on the top layer's output, which is
exactly the seed's LSTM (``lstm``) and the recurrent model without its skip connection
(``rnn`` with ``cell: lstm``, ``skip: false``). Per layer NAM stores ``[W_ih | W_hh]`` (4·hidden
rows, gates in torch's i, f, g, o order), one bias ``b_ih + b_hh`` and the initial hidden and
cell states; then the head's weight and bias. As NAM's own exporter does, the initial state
written is the one reached after :data:`SILENCE_SAMPLES` of silence, so a plugin starts
without a transient: NAM's output equals ours on the same input preceded by that silence,
and ours from a zero state once the model's warm-up (``receptive_field``) has passed.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfx.atomic import atomic_file
from deepfx.errors import DeepfxError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["GEAR_TYPES", "NAM_ARCHS", "NAM_VERSION", "SILENCE_SAMPLES", "nam_dict", "write_nam"]

#: NAM's gear types (metadata ``gear_type``).
GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
#: The .nam file-format version written: neural-amp-modeler 0.13's, whose loader the tests use.
NAM_VERSION = "0.7.0"
#: Samples of silence whose end state a .nam LSTM starts from (NAM's own exporter's choice).
SILENCE_SAMPLES = 48_000
#: Fields of the export date in NAM's metadata.
_DATE_FIELDS = ("year", "month", "day", "hour", "minute", "second")
#: NAM's FiLM insertion points, all written inactive.
_FILM_KEYS = (
    "conv_pre_film", "conv_post_film", "input_mixin_pre_film", "input_mixin_post_film",
    "activation_pre_film", "activation_post_film", "layer1x1_post_film", "head1x1_post_film",
)


def _array(tensor: object) -> np.ndarray:
    """A parameter as float64 numpy (the bias folding is done in double precision)."""
    return tensor.detach().cpu().double().numpy()  # type: ignore[attr-defined]


def _tcn_as_wavenet(model: nn.Module) -> tuple[str, dict, list[np.ndarray]]:
    """A deepfx TCN as NAM's ("WaveNet", config, weight arrays in NAM's import order)."""
    channels = model.input.out_channels
    in_bias = _array(model.input.bias)
    weights = [_array(model.input.weight).ravel()]  # rechannel (C, 1, 1), no bias
    kernel_sizes, dilations = [], []
    for layer in model.layers:
        conv_w, conv_b = _array(layer.conv.weight), _array(layer.conv.bias)
        out_w, out_b = _array(layer.out.weight), _array(layer.out.bias)
        kernel_sizes.append(layer.conv.kernel_size[0])
        dilations.append(layer.conv.dilation[0])
        weights += [
            conv_w.ravel(),
            conv_b + conv_w.sum(axis=2) @ in_bias,  # the input conv's bias, folded in
            np.zeros(conv_w.shape[0]),  # condition mixer (mid, 1, 1), no bias: unused
            out_w[:channels].ravel(), out_b[:channels],  # layer1x1: residual
            out_w[channels:].ravel(), out_b[channels:],  # head1x1: skip
        ]
    weights += [_array(model.head.weight).ravel(), _array(model.head.bias), np.ones(1)]
    n = len(dilations)
    gated = model.layers[0].gated
    layer_array = {
        "input_size": 1,
        "condition_size": 1,
        "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
        "channels": channels,
        "bottleneck": channels,
        "kernel_sizes": kernel_sizes,
        "dilations": dilations,
        "activation": [{"type": "Tanh"}] * n,
        "gating_mode": ["gated" if gated else "none"] * n,
        "secondary_activation": [{"type": "Sigmoid"} if gated else None] * n,
        "head1x1": {"active": True, "out_channels": channels, "groups": 1},
        "layer1x1": {"active": True, "groups": 1},
        "groups_input": 1,
        "groups_input_mixin": 1,
        **{key: {"active": False, "shift": True, "groups": 1} for key in _FILM_KEYS},
    }
    return "WaveNet", {"layers": [layer_array], "head": None, "head_scale": 1.0}, weights


def _settled_state(model: nn.Module) -> object:
    """``model``'s stream state after :data:`SILENCE_SAMPLES` of silence from a zero state."""
    import torch  # here, so that the CLI can read GEAR_TYPES without loading torch

    with torch.no_grad():
        return model.stream(torch.zeros(1, 1, SILENCE_SAMPLES), None)[1]


def _lstm_as_nam(
    lstm: nn.LSTM, head: nn.Linear, h: "torch.Tensor", c: "torch.Tensor"
) -> tuple[str, dict, list[np.ndarray]]:
    """Linear ``head`` on the stacked ``lstm`` whose state is ``h``, ``c`` (layers, 1, hidden),
    as NAM's ("LSTM", config, weights)."""
    weights = []
    for i in range(lstm.num_layers):
        w_ih, w_hh = (_array(getattr(lstm, f"weight_{k}_l{i}")) for k in ("ih", "hh"))
        b_ih, b_hh = (_array(getattr(lstm, f"bias_{k}_l{i}")) for k in ("ih", "hh"))
        weights += [np.concatenate((w_ih, w_hh), axis=1).ravel(), b_ih + b_hh,
                    _array(h[i, 0]), _array(c[i, 0])]
    weights += [_array(head.weight).ravel(), _array(head.bias)]
    config = {"input_size": 1, "hidden_size": lstm.hidden_size, "num_layers": lstm.num_layers}
    return "LSTM", config, weights


def _seed_lstm_as_nam(model: nn.Module) -> tuple[str, dict, list[np.ndarray]]:
    """The seed's LSTM as NAM's LSTM (the same network)."""
    return _lstm_as_nam(model.lstm, model.head, *_settled_state(model))


def _rnn_as_nam(model: nn.Module) -> tuple[str, dict, list[np.ndarray]]:
    """A SkipRNN with an LSTM cell, no skip connection and no lag as NAM's LSTM; others are
    refused."""
    if model.rnn.mode != "LSTM" or model.skip or int(model.lag):
        raise DeepfxError(
            "rnn: NAM's LSTM has no GRU cell, no skip connection and no input delay; only an "
            "rnn with cell: lstm, skip: false and no measured lag (max_lag_ms: 0 or an effect "
            "without one) can be written as .nam; export this one as onnx instead"
        )
    rnn_state, _history = _settled_state(model)
    return _lstm_as_nam(model.rnn, model.head, *rnn_state)


#: deepfx architecture → its NAM form; the others have no NAM equivalent.
NAM_ARCHS: dict[str, Callable[[nn.Module], tuple[str, dict, list[np.ndarray]]]] = {
    "tcn": _tcn_as_wavenet,
    "lstm": _seed_lstm_as_nam,
    "rnn": _rnn_as_nam,
}


def _instead(model: nn.Module, arch: str) -> str:
    """What to do with an ``arch`` model that .nam cannot hold: ONNX, or ``deepfx apply``."""
    from deepfx.export.onnx import onnx_refusal  # here: it loads onnxruntime

    if onnx_refusal(model, arch) is None:
        return f"export {arch} as onnx instead"
    return "ONNX cannot hold it either; process audio with it by `deepfx apply`"


def nam_dict(model: nn.Module, meta: Mapping, *, name: str | None = None,
             gear_type: str = "pedal") -> dict:
    """The .nam content of ``model`` with its deepfx metadata ``meta`` (see load_model).

    Metadata: ``name`` (default "EFFECT (ARCH)"), ``gear_type`` (one of :data:`GEAR_TYPES`),
    the export date, and the training's best validation ESR (``training.validation_esr``: the
    pre-emphasised ESR that training minimised).

    Raises:
        DeepfxError: an architecture NAM cannot hold, or an unknown ``gear_type``.
    """
    arch = meta["arch"]
    if arch not in NAM_ARCHS:
        raise DeepfxError(
            f"{arch}: the .nam format holds NAM's WaveNet and LSTM models, and deepfx can write "
            f"only {', '.join(sorted(NAM_ARCHS))} as .nam; {_instead(model, arch)}"
        )
    if gear_type not in GEAR_TYPES:
        raise DeepfxError(f"gear_type: {gear_type!r} is not one of {', '.join(GEAR_TYPES)}")
    architecture, config, weights = NAM_ARCHS[arch](model)
    now = datetime.datetime.now()
    return {
        "version": NAM_VERSION,
        "architecture": architecture,
        "config": config,
        "weights": np.concatenate(weights).tolist(),
        "sample_rate": float(meta["sample_rate"]),
        "metadata": {
            "date": {k: getattr(now, k) for k in _DATE_FIELDS},
            "name": name or f"{meta['effect']} ({arch})",
            "modeled_by": "deepfx",
            "gear_type": gear_type,
            "training": {"validation_esr": meta.get("best_valid_loss")},
            "deepfx": {k: meta[k] for k in ("effect", "arch", "config", "receptive_field")},
        },
    }


def write_nam(
    model: nn.Module, meta: Mapping, out: str | os.PathLike, **metadata: str | None
) -> Path:
    """Write ``model`` as a .nam file at ``out`` atomically (``metadata``: see :func:`nam_dict`)."""
    content = nam_dict(model, meta, **metadata)
    out = Path(out)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(content))
    return out
