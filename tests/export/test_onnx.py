"""ONNX export: every architecture, checked against onnxruntime on a test file; bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from deepfx.audio import read_audio
from deepfx.cli import main
from deepfx.errors import DeepfxError
from deepfx.export import export_model
from deepfx.export.onnx import onnx_session
from deepfx.generate import generate_dataset
from conftest import tiny_params
from test_apply import CONFIGS, RECURRENT, SR, make_model, one_thread, save_model, signal_  # noqa: F401


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    """A clean test-split file of the tiny configuration (2 s at 16 kHz), as float32 samples."""
    out = tmp_path_factory.mktemp("clean")
    params = tiny_params()
    params["generate"]["training_audio"] = str(out / "no-user-audio")
    files = generate_dataset(params, out)
    return read_audio(next(f for f in files if f.parent.name == "test"), SR)


#: Every model kind of test_apply: convolutional and recurrent (ONNX LSTM and GRU nodes).
MODELS = {**CONFIGS, **RECURRENT}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_matches_the_model_in_onnxruntime(tmp_path, name, test_file):
    path = export_model(save_model(tmp_path / "model.pt", name, configs=MODELS), "onnx")
    assert path == tmp_path / "model.onnx"
    stereo = np.stack([test_file, test_file[::-1]])[:, None, :]  # batch and length are free
    y = onnx_session(path).run(None, {"input": stereo})[0]
    model = make_model(name, configs=MODELS)
    with torch.inference_mode():
        expected = model(torch.from_numpy(np.ascontiguousarray(stereo))).numpy()
    assert y.shape == stereo.shape
    assert np.max(np.abs(y - expected)) < 1e-4
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props == {"effect": "fuzz", "arch": MODELS[name][0], "sample_rate": str(SR),
                     "receptive_field": str(model.receptive_field)}


@pytest.mark.parametrize(("name", "op"), [("lstm", "LSTM"), ("rnn-gru", "GRU")])
def test_recurrent_models_become_onnx_recurrent_nodes(tmp_path, name, op):
    path = export_model(save_model(tmp_path / "model.pt", name, configs=MODELS), "onnx")
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count(op) == MODELS[name][1].get("layers", 1)


def test_cli_export_writes_onnx_where_asked_without_params_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(tmp_path / "model.pt", "cnn")
    assert main(["export", "model.pt", "--format", "onnx", "--out", "fx.onnx"]) == 0
    x = signal_(1, 100)[None]
    assert onnx_session(tmp_path / "fx.onnx").run(None, {"input": x})[0].shape == (1, 1, 100)


@pytest.mark.parametrize("fmt", ["onnx", "nam"])
def test_export_errors_name_the_problem_and_leave_nothing(tmp_path, fmt, capsys):
    save_model(tmp_path / "model.pt", "tcn-gated")
    (tmp_path / "corrupt.pt").write_text("garbage")
    cases = [
        (tmp_path / "nope.pt", None, "nope.pt: no such model file"),
        (tmp_path / "corrupt.pt", None, "corrupt.pt: cannot be loaded as a deepfx model"),
        (tmp_path / "model.pt", tmp_path / "no" / "x", f"the folder {tmp_path / 'no'} does not exist"),
    ]
    for model, out, message in cases:
        with pytest.raises(DeepfxError, match=message):
            export_model(model, fmt, out)
    with pytest.raises(DeepfxError, match="format: 'tflite' is not one of onnx, nam"):
        export_model(tmp_path / "model.pt", "tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt", "model.pt"]
    assert main(["export", str(tmp_path / "nope.pt"), "--format", fmt]) == 2
    assert "nope.pt: no such model file" in capsys.readouterr().err
