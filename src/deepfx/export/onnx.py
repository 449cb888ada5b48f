"""ONNX export of deepfx models, checked against onnxruntime before it is kept.

The graph maps ``input`` (batch, 1, samples) float32 to ``output`` (batch, 1, samples), both
axes dynamic, from a zero state at the first sample (as ``forward``); ``metadata_props`` hold
the effect, architecture, sample rate (Hz) and receptive field (samples). The exporter is
torch's TorchScript-based one: torch.export (the dynamo exporter) fixes the time axis of the
seed CNN's stride-1 max-pool. A model with an ``onnx_module()`` method is exported through the
equivalent module it returns (the FIR's FFT convolution becomes a direct convolution, as ONNX
has no complex tensors); the compressor's graph is written by hand
(:mod:`deepfx.export.onnx_compressor`). :func:`onnx_refusal` says which models ONNX cannot hold.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from deepfx.atomic import atomic_file
from deepfx.errors import DeepfxError
from deepfx.models.base import is_time_variant

__all__ = ["ONNX_OPSET", "ONNX_TOLERANCE", "onnx_refusal", "onnx_session", "write_onnx"]

#: ONNX operator set written.
ONNX_OPSET = 17
#: Largest accepted |onnxruntime − torch| on the check signal.
ONNX_TOLERANCE = 1e-4
#: Length of the check signal, in receptive fields (samples = this × rf + 1000).
_CHECK_FIELDS = 3
#: Architectures ONNX cannot hold (besides every time-variant one), and why.
_REFUSED = {
    "pitch_shifter": (
        "its phase vocoder (hop-spaced frames, complex spectra raised to a power, overlap-add) "
        "has no form in torch's ONNX exporter, which lacks complex tensors"
    ),
}


def onnx_session(path: str | os.PathLike, threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of the model at ``path`` using ``threads`` threads."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _max_difference(model: nn.Module, path: Path) -> float:
    """max |onnxruntime − torch| on a seeded noise signal of two channels."""
    n = _CHECK_FIELDS * model.receptive_field + 1000
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, n)).astype(np.float32)
    y = onnx_session(path).run(None, {"input": x})[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    return float(np.max(np.abs(y - expected)))


def onnx_refusal(model: nn.Module, arch: str) -> str | None:
    """Why ONNX cannot hold ``model`` (architecture ``arch``), or None when it can."""
    if is_time_variant(model):
        return (
            "it is time-variant (an LFO): its output depends on the position in the file, "
            "which the exported graph's one input, the audio, does not carry"
        )
    return _REFUSED.get(arch)


def _refused(arch: str, reason: str) -> str:
    """The one-line refusal of an ``arch`` model for ``reason``."""
    return f"{arch}: cannot be exported as ONNX: {reason}; process audio with it by `deepfx apply`"


def _export_torch(module: nn.Module, example: torch.Tensor, path: Path) -> onnx.ModelProto:
    """``module`` traced by torch's TorchScript exporter into ``path``, loaded back."""
    axes = {0: "batch", 2: "samples"}
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
        )
    return onnx.load(str(path))


def _graph(model: nn.Module, arch: str, path: Path) -> onnx.ModelProto:
    """``model`` (architecture ``arch``) as ONNX, written at ``path`` if traced."""
    if arch == "compressor":
        from deepfx.export.onnx_compressor import compressor_graph

        return compressor_graph(model, ONNX_OPSET)
    module = model.onnx_module() if hasattr(model, "onnx_module") else model
    return _export_torch(module, torch.zeros(1, 1, 2 * model.receptive_field), path)


def write_onnx(model: nn.Module, meta: Mapping, out: str | os.PathLike) -> Path:
    """Write ``model`` (with deepfx metadata ``meta``) as ONNX at ``out``, atomically.

    Exported: cnn, tcn, lstm and rnn (LSTM/GRU nodes) as traced; fir and tcn_fir with the FIR
    as a direct causal convolution (``onnx_module``; a 600 ms FIR at 44.1 kHz runs at about
    4 times real time per channel on one core); compressor as a hand-written graph whose ``Scan``
    node runs the attack/release detector sample by sample. Refused (:func:`onnx_refusal`):
    pitch_shifter (no complex tensors for its phase vocoder) and the time-variant models
    (modulated_delay, allpass_phaser: the LFO needs the position in the file, which the
    graph's one input does not carry). Any other model the exporter cannot trace is refused
    the same way. Run the refused ones with ``deepfx apply``.

    Raises:
        DeepfxError: ONNX cannot hold the model, or the exported graph differs from it by
            more than :data:`ONNX_TOLERANCE` in onnxruntime. Nothing is written then.
    """
    arch = meta["arch"]
    reason = onnx_refusal(model, arch)
    if reason is not None:
        raise DeepfxError(_refused(arch, reason))
    out = Path(out)
    model.eval()
    with atomic_file(out) as tmp:
        try:
            graph = _graph(model, arch, tmp)
        except Exception as exc:  # an operator or construct the exporter has no ONNX form for
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise DeepfxError(_refused(
                arch, f"torch's ONNX exporter cannot express it ({type(exc).__name__}: {detail})"
            )) from None
        props = {k: str(meta[k]) for k in ("effect", "arch", "sample_rate", "receptive_field")}
        onnx.helper.set_model_props(graph, props)
        graph.doc_string = f"deepfx {arch} model of the effect {meta['effect']}"
        onnx.save(graph, str(tmp))
        difference = _max_difference(model, tmp)
        if not difference < ONNX_TOLERANCE:
            raise DeepfxError(
                f"{out}: the ONNX graph differs from the model by {difference:.3g} "
                f"(more than {ONNX_TOLERANCE:g}) in onnxruntime; not written"
            )
    return out
