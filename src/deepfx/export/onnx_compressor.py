"""The compressor (:class:`deepfx.models.compressor.Compressor`) as a hand-written ONNX graph.

torch's exporter cannot trace the compressor: at each sample its detector picks the attack or
the release coefficient by comparing |x[n]| with the envelope the previous sample left, a
per-sample decision the model takes in compiled numpy. ONNX expresses that recursion
exactly with a ``Scan`` over the samples whose step is

    c = attack if a > e else release;  e = a + c·(e - a)      (a = |x[n]|, float64)

the model's own update. The rest is elementwise on the whole signal, with the settings as
constants: y = x · 10^(gain_dB / 20), gain_dB = make-up - (1 - 1/ratio)·max(0, 20·log10(e) -
threshold). The envelope starts at 0 at the first sample, as ``forward`` does. onnxruntime
runs the Scan at about 9 times real time for a stereo 44.1 kHz signal on one core.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from deepfx.models.compressor import ENVELOPE_FLOOR, Compressor

__all__ = ["compressor_graph"]

_DOUBLE = TensorProto.DOUBLE


def _constant(name: str, value: float | list[int]) -> TensorProto:
    """A float64 scalar, or an int64 vector for a list."""
    dtype = np.int64 if isinstance(value, list) else np.float64
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def _detector_step(attack: float, release: float) -> onnx.GraphProto:
    """The Scan body: state ``e`` (B,), scan input ``a`` (B,) → new state, the same as output."""
    return helper.make_graph(
        [
            helper.make_node("Greater", ["a", "e"], ["rising"]),
            helper.make_node("Where", ["rising", "attack", "release"], ["c"]),
            helper.make_node("Sub", ["e", "a"], ["above"]),
            helper.make_node("Mul", ["c", "above"], ["kept"]),
            helper.make_node("Add", ["a", "kept"], ["e_next"]),
            helper.make_node("Identity", ["e_next"], ["envelope"]),
        ],
        "detector_step",
        [helper.make_tensor_value_info(n, _DOUBLE, ["batch"]) for n in ("e", "a")],
        [helper.make_tensor_value_info(n, _DOUBLE, ["batch"]) for n in ("e_next", "envelope")],
        [_constant("attack", attack), _constant("release", release)],
    )


@torch.no_grad()
def compressor_graph(model: Compressor, opset: int) -> onnx.ModelProto:
    """``model`` with its current settings as an ONNX model of operator set ``opset``:
    ``input`` (batch, 1, samples) float32 → ``output`` (batch, 1, samples)."""
    settings = model.settings()
    attack, release = (
        math.exp(model.log_coefficient(settings[key]).item()) for key in ("attack_ms", "release_ms")
    )
    s = {key: value.item() for key, value in settings.items()}
    nodes = [
        helper.make_node("Abs", ["input"], ["rectified_f"]),
        helper.make_node("Cast", ["rectified_f"], ["rectified_3"], to=_DOUBLE),
        helper.make_node("Squeeze", ["rectified_3", "channel_axis"], ["rectified"]),
        helper.make_node("Transpose", ["rectified"], ["rectified_t"], perm=[1, 0]),
        helper.make_node("Shape", ["rectified"], ["batch"], end=1),
        helper.make_node("ConstantOfShape", ["batch"], ["start"],
                         value=numpy_helper.from_array(np.zeros(1))),
        helper.make_node("Scan", ["start", "rectified_t"], ["last", "envelope_t"],
                         num_scan_inputs=1, body=_detector_step(attack, release)),
        helper.make_node("Transpose", ["envelope_t"], ["envelope_2"], perm=[1, 0]),
        helper.make_node("Unsqueeze", ["envelope_2", "channel_axis"], ["envelope"]),
        helper.make_node("Add", ["envelope", "tiny"], ["envelope_tiny"]),
        helper.make_node("Log", ["envelope_tiny"], ["log_envelope"]),
        helper.make_node("Mul", ["log_envelope", "db_per_neper"], ["level_db"]),
        helper.make_node("Sub", ["level_db", "threshold_db"], ["excess_db"]),
        helper.make_node("Relu", ["excess_db"], ["over_db"]),
        helper.make_node("Mul", ["over_db", "slope"], ["reduction_db"]),
        helper.make_node("Sub", ["makeup_db", "reduction_db"], ["gain_db"]),
        helper.make_node("Mul", ["gain_db", "neper_per_db"], ["log_gain"]),
        helper.make_node("Exp", ["log_gain"], ["gain"]),
        helper.make_node("Cast", ["gain"], ["gain_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["input", "gain_f"], ["output"]),
    ]
    constants = [
        _constant("channel_axis", [1]),
        _constant("tiny", ENVELOPE_FLOOR),
        _constant("db_per_neper", 20.0 / math.log(10.0)),
        _constant("threshold_db", s["threshold_db"]),
        _constant("slope", 1.0 - 1.0 / s["ratio"]),
        _constant("makeup_db", s["makeup_db"]),
        _constant("neper_per_db", math.log(10.0) / 20.0),
    ]
    signal = ["batch", 1, "samples"]
    graph = helper.make_graph(
        nodes, "compressor",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, signal)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, signal)],
        constants,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
