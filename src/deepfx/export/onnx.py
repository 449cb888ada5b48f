"""ONNX export of any deepfx model, checked against onnxruntime before it is kept.

The graph maps ``input`` (batch, 1, samples) float32 to ``output`` (batch, 1, samples), both
axes dynamic; ``metadata_props`` hold the effect, architecture, sample rate (Hz) and receptive
field (samples). The exporter is torch's TorchScript-based one: torch.export (the dynamo
exporter) fixes the time axis of the seed CNN's stride-1 max-pool.
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

__all__ = ["ONNX_OPSET", "ONNX_TOLERANCE", "onnx_session", "write_onnx"]

#: ONNX operator set written.
ONNX_OPSET = 17
#: Largest accepted |onnxruntime − torch| on the check signal.
ONNX_TOLERANCE = 1e-4
#: Length of the check signal, in receptive fields (samples = this × rf + 1000).
_CHECK_FIELDS = 3


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


def write_onnx(model: nn.Module, meta: Mapping, out: str | os.PathLike) -> Path:
    """Write ``model`` (with deepfx metadata ``meta``) as ONNX at ``out``, atomically.

    Raises:
        DeepfxError: the exported graph differs from the model by more than
            :data:`ONNX_TOLERANCE` in onnxruntime (nothing is written then).
    """
    out = Path(out)
    model.eval()
    example = torch.zeros(1, 1, 2 * model.receptive_field)
    axes = {0: "batch", 2: "samples"}
    with atomic_file(out) as tmp:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": axes, "output": axes},
            )
        graph = onnx.load(str(tmp))
        props = {k: str(meta[k]) for k in ("effect", "arch", "sample_rate", "receptive_field")}
        onnx.helper.set_model_props(graph, props)
        graph.doc_string = f"deepfx {meta['arch']} model of the effect {meta['effect']}"
        onnx.save(graph, str(tmp))
        difference = _max_difference(model, tmp)
        if not difference < ONNX_TOLERANCE:
            raise DeepfxError(
                f"{out}: the ONNX graph differs from the model by {difference:.3g} "
                f"(more than {ONNX_TOLERANCE:g}) in onnxruntime; not written"
            )
    return out
