"""The .nam export, loaded by neural-amp-modeler's own loader (from PyPI, in its own venv)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfx.cli import main
from deepfx.errors import DeepfxError
from deepfx.evaluate import load_model
from deepfx.export import export_model
from deepfx.export.nam import NAM_VERSION, SILENCE_SAMPLES, nam_dict
from test_apply import CONFIGS, RECURRENT, SR, save_model, signal_
from test_onnx import DSP, REFUSED, save_dsp_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
#: The venv `make nam-venv` builds: neural-amp-modeler and the CPU torch.
NAM_PYTHON = Path(os.environ.get("DEEPFX_NAM_PYTHON", ROOT / ".venv-nam" / "bin" / "python"))
RUNNER = Path(__file__).with_name("nam_reference.py")
#: The TCNs of test_apply and one the size of NAM's "standard" WaveNet (20 layers, rf 4093).
TCNS = {
    **{name: spec for name, spec in CONFIGS.items() if spec[0] == "tcn"},
    "tcn-nam-size": ("tcn", {"channels": 12, "kernel_size": 3, "dilations": [2**i for i in range(10)],
                             "stacks": 2, "activation": "tanh"}),
}
#: The models NAM's LSTM holds: the seed's LSTM (stacked) and the rnn with an LSTM cell, no skip.
LSTMS = {
    "lstm": RECURRENT["lstm"],
    "lstm-3x5": ("lstm", {"layers": 3, "hidden": 5, "warmup": 500}),
    "rnn-lstm-no-skip": ("rnn", {"cell": "lstm", "hidden": 7, "skip": False, "warmup": 500}),
}
NAMS = {**TCNS, **LSTMS}


@pytest.fixture(scope="module")
def nam_python() -> Path:
    """The NAM venv's python; missing is a failure in CI and a skip elsewhere."""
    if NAM_PYTHON.is_file():
        return NAM_PYTHON
    reason = f"{NAM_PYTHON} is missing: run `make nam-venv` (neural-amp-modeler in its own venv)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def nam_runs(tmp_path_factory, nam_python) -> dict[str, dict]:
    """Every model of NAMS exported to .nam and run through NAM's loader (one process).

    name → results; ``after_silence`` is our output for the input preceded by the silence
    whose end state a .nam LSTM starts from.
    """
    tmp = tmp_path_factory.mktemp("nam")
    x = signal_(1, 12_000)[0]
    np.save(tmp / "input.npy", x)
    files = [
        export_model(save_model(tmp / f"{name}.pt", name, configs=NAMS), "nam", tmp / f"{name}.nam")
        for name in NAMS
    ]
    subprocess.run([str(nam_python), str(RUNNER), str(tmp / "input.npy"), *map(str, files)],
                   check=True, capture_output=True, text=True)
    runs = {}
    silent_start = np.concatenate((np.zeros(SILENCE_SAMPLES, np.float32), x))
    for name, nam_file in zip(NAMS, files):
        model, meta = load_model(tmp / f"{name}.pt")
        with torch.inference_mode():
            ours = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
            after_silence = model(torch.from_numpy(silent_start)[None, None])[0, 0].numpy()
        runs[name] = {
            "model": model, "ours": ours, "after_silence": after_silence[SILENCE_SAMPLES:],
            "content": json.loads(nam_file.read_text()),
            "nam": np.load(f"{nam_file}.out.npy"),
            "nam_info": json.loads(Path(f"{nam_file}.json").read_text()),
        }
    return runs


@pytest.mark.parametrize("name", sorted(TCNS))
def test_nam_loader_reproduces_our_output(nam_runs, name):
    """Equal (< 1e-4) once the receptive field is filled; before, the padding differs."""
    run = nam_runs[name]
    rf = run["model"].receptive_field
    assert run["nam_info"]["receptive_field"] == rf
    assert run["nam"].shape == run["ours"].shape
    assert np.max(np.abs(run["nam"][rf - 1 :] - run["ours"][rf - 1 :])) < 1e-4


@pytest.mark.parametrize("name", sorted(LSTMS))
def test_nam_lstm_reproduces_our_output(nam_runs, name):
    """Equal (< 1e-4) from sample 0 after the silence NAM's state starts from, and after the
    warm-up (receptive_field) from our zero state."""
    run = nam_runs[name]
    warmup = run["model"].receptive_field
    assert run["content"]["architecture"] == "LSTM"
    assert run["nam"].shape == run["ours"].shape
    assert np.max(np.abs(run["nam"] - run["after_silence"])) < 1e-4
    assert np.max(np.abs(run["nam"][warmup:] - run["ours"][warmup:])) < 1e-4
    assert np.max(np.abs(run["nam"][:10] - run["ours"][:10])) > 1e-3  # the start states differ


@pytest.mark.parametrize("name", sorted(NAMS))
def test_nam_loader_reads_every_weight_and_the_rate(nam_runs, name):
    run = nam_runs[name]
    assert run["nam_info"]["weights_read"] == len(run["content"]["weights"])
    assert run["nam_info"]["sample_rate"] == SR


def test_nam_file_carries_the_metadata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_model(tmp_path / "model.pt", "tcn-gated")
    assert main(["export", "model.pt", "--format", "nam", "--name", "Fuzz face",
                 "--gear-type", "pedal"]) == 0
    content = json.loads((tmp_path / "model.nam").read_text())
    assert (content["version"], content["architecture"], content["sample_rate"]) == (NAM_VERSION, "WaveNet", SR)
    meta = content["metadata"]
    assert (meta["name"], meta["gear_type"], meta["modeled_by"]) == ("Fuzz face", "pedal", "deepfx")
    assert meta["training"] == {"validation_esr": 0.125}
    assert meta["deepfx"]["effect"] == "fuzz" and meta["deepfx"]["receptive_field"] == 29
    assert set(meta["date"]) == {"year", "month", "day", "hour", "minute", "second"}


def test_default_name_is_effect_and_arch(tmp_path):
    model, meta = load_model(save_model(tmp_path / "model.pt", "tcn-tanh"))
    assert nam_dict(model, meta)["metadata"]["name"] == "fuzz (tcn)"


@pytest.mark.parametrize("cfg", [{"cell": "lstm", "skip": True}, {"cell": "gru", "skip": False}])
def test_rnns_with_a_skip_or_a_gru_cell_are_refused(tmp_path, cfg):
    configs = {"rnn": ("rnn", {"hidden": 4, "warmup": 64, **cfg})}
    with pytest.raises(DeepfxError, match="rnn: NAM.s LSTM has no GRU cell, no skip connection and no input delay"):
        export_model(save_model(tmp_path / "rnn.pt", "rnn", configs=configs), "nam")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rnn.pt"]


def test_an_rnn_with_a_measured_lag_is_refused(tmp_path):
    """NAM's LSTM reads the input as it comes: an rnn that delays it (a lag its initialise
    measured on the effect) has no .nam form."""
    path = save_model(tmp_path / "rnn.pt", "rnn-lstm-no-skip", configs=LSTMS)
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["state_dict"]["lag"].fill_(31)
    torch.save(checkpoint, path)
    with pytest.raises(DeepfxError, match="no input delay; only an rnn with cell: lstm, skip: false and no measured lag"):
        export_model(path, "nam")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rnn.pt"]


def test_architectures_without_a_nam_form_and_bad_gear_types_are_refused(tmp_path, capsys):
    save_model(tmp_path / "cnn.pt", "cnn")
    with pytest.raises(DeepfxError, match="cnn: the .nam format holds NAM's WaveNet and LSTM"):
        export_model(tmp_path / "cnn.pt", "nam")
    save_model(tmp_path / "tcn.pt", "tcn-gated")
    with pytest.raises(DeepfxError, match="gear_type: 'synth' is not one of amp, pedal"):
        export_model(tmp_path / "tcn.pt", "nam", gear_type="synth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.pt", "tcn.pt"]
    assert main(["export", str(tmp_path / "cnn.pt"), "--format", "nam"]) == 2
    assert "export cnn as onnx instead" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted({**DSP, **REFUSED}))
def test_dsp_models_are_refused_pointing_to_onnx_or_apply(tmp_path, name, capsys):
    """No DSP model has a NAM form; the refusal suggests ONNX only where ONNX holds the model."""
    save_dsp_model(tmp_path / "model.pt", name, {**DSP, **REFUSED})
    instead = (f"export {name} as onnx instead" if name in DSP
               else "ONNX cannot hold it either; process audio with it by `deepfx apply`")
    with pytest.raises(DeepfxError, match=f"^{name}: the .nam format holds NAM's WaveNet and LSTM"):
        export_model(tmp_path / "model.pt", "nam")
    assert main(["export", str(tmp_path / "model.pt"), "--format", "nam"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(instead) and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
