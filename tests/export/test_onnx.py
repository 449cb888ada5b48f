"""ONNX export: every architecture ONNX can hold, checked against onnxruntime on a test file;
clear refusals of the others; bad input."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
import torch

from deepfx.audio import read_audio
from deepfx.cli import main
from deepfx.config import validate_params
from deepfx.errors import DeepfxError
from deepfx.evaluate import load_model
from deepfx.export import export_model
from deepfx.export.onnx import onnx_session
from deepfx.generate import generate_dataset
from deepfx.models.fir import FIR
from conftest import tiny_params
from test_apply import CONFIGS, RECURRENT, SR, make_model, save_model, signal_, whole

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: DSP models ONNX holds: FIRs as direct convolutions (64 taps; a 4-layer TCN, then 48 taps, at
#: 16 kHz) and a compressor that acts on the test file (its detector as a Scan node).
DSP = {
    "fir": ("fir", {"length_ms": 4.0}),
    "tcn_fir": ("tcn_fir", {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4],
                            "stacks": 1, "fir_ms": 3.0}),
    "compressor": ("compressor", {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 2.0,
                                  "release_ms": 20.0, "warmup": 1024}),
}
#: DSP models ONNX cannot hold, and the reason their refusal names.
REFUSED = {
    "pitch_shifter": ("pitch_shifter", {"n_fft": 256, "grain": 32, "delay": 143, "n_bands": 8}),
    "modulated_delay": ("modulated_delay", {"max_delay_ms": 10.0}),
    "allpass_phaser": ("allpass_phaser", {"stages": 4, "warmup": 256}),
}
WHY = {"pitch_shifter": "its phase vocoder", "modulated_delay": "it is time-variant (an LFO)",
       "allpass_phaser": "it is time-variant (an LFO)"}


def save_dsp_model(path, name: str, configs: dict) -> torch.nn.Module:
    """Write configs[name] (an architecture that takes the sample rate) as deepfx train does,
    its parameters moved off their initial values (the FIRs then differ from the identity);
    the model as read back from ``path``."""
    return load_model(save_model(path, name, configs=configs))[0]


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    """A clean test-split file of the tiny configuration (2 s at 16 kHz), as float32 samples."""
    out = tmp_path_factory.mktemp("clean")
    params = tiny_params()
    params["generate"]["training_audio"] = str(out / "no-user-audio")
    files = generate_dataset(validate_params(params), out)
    return read_audio(next(f for f in files if f.parent.name == "test"), SR)


#: Every model kind ONNX holds: convolutional and recurrent ones of test_apply (ONNX LSTM and
#: GRU nodes) and the DSP ones.
MODELS = {**CONFIGS, **RECURRENT, **DSP}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_matches_the_model_in_onnxruntime(tmp_path, name, test_file):
    path = export_model(save_model(tmp_path / "model.pt", name, configs=MODELS), "onnx")
    assert path == tmp_path / "model.onnx"
    # batch and length are free; the quieter second channel moves the compressor differently
    stereo = np.stack([test_file, 0.5 * test_file[::-1]])[:, None, :]
    y = onnx_session(path).run(None, {"input": stereo})[0]
    model = make_model(name, configs=MODELS)
    expected = whole(model, stereo[:, 0])[:, None]
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
        (tmp_path / "corrupt.pt", None, "corrupt.pt: not a deepfx model file"),
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


@pytest.mark.parametrize(
    ("name", "op"), [("fir", "Conv"), ("tcn_fir", "Conv"), ("compressor", "Scan")]
)
def test_firs_become_direct_convolutions_and_the_detector_a_scan(tmp_path, name, op):
    model = save_dsp_model(tmp_path / "model.pt", name, DSP)
    graph = onnx.load(str(export_model(tmp_path / "model.pt", "onnx"))).graph
    assert op in [node.op_type for node in graph.node]
    if name == "fir":  # one kernel holding every tap, in reverse order (Conv correlates)
        (kernel,) = [onnx.numpy_helper.to_array(t) for t in graph.initializer
                     if t.dims == [1, 1, 64]]
        assert np.allclose(kernel[0, 0, ::-1], model.taps().detach().numpy(), atol=1e-7)


def test_onnx_compressor_gain_follows_the_envelope(tmp_path, test_file):
    """The exported compressor is no fixed gain: it turns loud passages down by several dB."""
    save_dsp_model(tmp_path / "model.pt", "compressor", DSP)
    path = export_model(tmp_path / "model.pt", "onnx")
    y = onnx_session(path).run(None, {"input": test_file[None, None]})[0][0, 0]
    loud = np.abs(test_file) > 1e-3
    gain_db = 20 * np.log10(np.abs(y[loud]) / np.abs(test_file[loud]))
    assert gain_db.max() - gain_db.min() > 6


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_models_onnx_cannot_hold_are_refused_in_one_line(tmp_path, name, capsys):
    save_dsp_model(tmp_path / "model.pt", name, REFUSED)
    message = (rf"^{name}: cannot be exported as ONNX: {re.escape(WHY[name])}.*; "
               r"process audio with it by `deepfx apply`$")
    with pytest.raises(DeepfxError, match=message):
        export_model(tmp_path / "model.pt", "onnx", tmp_path / "fx.onnx")
    assert main(["export", str(tmp_path / "model.pt"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert f"error: {name}: cannot be exported as ONNX: {WHY[name]}" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_what_the_exporter_cannot_trace_is_refused_not_raised(tmp_path, monkeypatch):
    """A model without an ONNX form (here the FIR's FFT convolution, complex numbers and all)
    gets the refusal naming the exporter's complaint, and leaves no file behind."""
    save_dsp_model(tmp_path / "model.pt", "fir", DSP)
    monkeypatch.delattr(FIR, "onnx_module")
    refusal = (r"^fir: cannot be exported as ONNX: torch's ONNX exporter cannot express it "
               r"\(.*complex.*\); process audio")
    with pytest.raises(DeepfxError, match=refusal):
        export_model(tmp_path / "model.pt", "onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
