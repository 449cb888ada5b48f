"""Evaluation of a trained model on the test split: predictions, metrics, errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepfx.audio import read_audio
from deepfx.errors import DeepfxError
from deepfx.evaluate import evaluate_model, load_model
from deepfx.losses import esr
from deepfx.models import apply_model
from deepfx.train import train_model
from test_train import SPLITS, SR, make_effect_data, tiny_params


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A briefly trained tcn evaluated once: (params, data dirs, model path, out dir, metrics)."""
    tmp = tmp_path_factory.mktemp("evaluate")
    clean, processed = make_effect_data(tmp / "data")
    params = tiny_params(tmp, epochs=2, steps_per_epoch=10)
    train_model("distortion", "tcn", params, clean, processed, tmp / "models")
    metrics = evaluate_model(tmp / "models" / "model.pt", clean, processed, tmp / "reports", params)
    return params, (clean, processed), tmp / "models" / "model.pt", tmp / "reports", metrics


def test_metrics_file_is_written_with_sensible_values(evaluated):
    params, data, model_path, out, metrics = evaluated
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["effect"] == "distortion" and metrics["arch"] == "tcn"
    assert metrics["esr_clean"] > 0 and metrics["mrstft_clean"] > 0
    assert 0 < metrics["esr"] and 0 < metrics["mrstft"]
    assert metrics["closer_than_clean"] == (metrics["esr"] < metrics["esr_clean"])
    assert metrics["closer_on_every_file"] == all(f["esr"] < f["esr_clean"] for f in metrics["files"])
    assert metrics["n_params"] > 0 and metrics["train_seconds"] > 0
    assert 0 < metrics["inference_rtf"] < 1
    assert [f["name"] for f in metrics["files"]] == ["track0.wav", "track1.wav"]
    assert [f["seconds"] for f in metrics["files"]] == pytest.approx(SPLITS["test"])


def test_aggregate_esr_is_total_error_over_total_target_energy(evaluated):
    params, (clean_dir, processed_dir), model_path, out, metrics = evaluated
    error = energy = 0.0
    for name in ("track0.wav", "track1.wav"):
        target = read_audio(processed_dir / "test" / name, SR).astype(np.float64)
        prediction = read_audio(out / "predictions" / name, SR).astype(np.float64)
        error += np.sum((target - prediction) ** 2)
        energy += np.sum(target**2)
    assert metrics["esr"] == pytest.approx(error / energy, rel=1e-4)
    per_file = [f["esr"] for f in metrics["files"]]
    assert metrics["esr"] != pytest.approx(np.mean(per_file), rel=1e-3)  # not a plain mean


def test_predictions_are_the_model_output_at_full_length(evaluated):
    params, (clean_dir, processed_dir), model_path, out, metrics = evaluated
    model, meta = load_model(model_path)
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["track0.wav", "track1.wav"]
    for name in ("track0.wav", "track1.wav"):
        clean = read_audio(clean_dir / "test" / name, SR)
        prediction, rate = sf.read(out / "predictions" / name, dtype="float32")
        assert rate == SR and prediction.shape == clean.shape
        with torch.no_grad():
            one_shot = model(torch.from_numpy(clean).view(1, 1, -1))[0, 0].numpy()
        np.testing.assert_allclose(prediction, one_shot, rtol=0, atol=1e-5)
        # small chunks (shorter than the receptive field) change nothing either
        np.testing.assert_allclose(apply_model(model, clean, chunk_samples=20), one_shot, rtol=0, atol=1e-5)
        assert metrics["files"][0 if name == "track0.wav" else 1]["esr"] == pytest.approx(
            esr(prediction, read_audio(processed_dir / "test" / name, SR)), rel=1e-5
        )


def test_load_model_returns_an_eval_model_and_metadata(evaluated):
    params, data, model_path, out, metrics = evaluated
    model, meta = load_model(model_path)
    assert not model.training
    assert meta["arch"] == "tcn" and meta["effect"] == "distortion" and "state_dict" not in meta
    assert model.receptive_field == meta["receptive_field"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such model file"),
        (b"garbage", "not a deepfx model file (not a PyTorch archive"),
        (pickle.dumps({"arch": "tcn"}, protocol=4), "not a deepfx model file (not a PyTorch archive"),
        ({"arch": "tcn"}, "not a deepfx model file (it lacks config, state_dict"),
        (Path("some/object"), "cannot be loaded as a deepfx model (it holds Python objects that no"),
    ],
)
def test_bad_model_file_names_the_file(evaluated, tmp_path, content, message):
    params, (clean_dir, processed_dir), _, _, _ = evaluated
    bad = tmp_path / "model.pt"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        torch.save(content, bad)
    with pytest.raises(DeepfxError, match=f"^{bad}: .*" + message.replace("(", r"\(")) as error:
        evaluate_model(bad, clean_dir, processed_dir, tmp_path / "reports", params)
    assert "\n" not in str(error.value), "one line, not torch's advice"
    assert not (tmp_path / "reports" / "metrics.json").exists()


def test_missing_test_file_leaves_earlier_results_alone(evaluated, tmp_path):
    params, (clean_dir, processed_dir), model_path, _, _ = evaluated
    broken = tmp_path / "processed"
    (broken / "test").mkdir(parents=True)
    (broken / "test" / "track0.wav").write_bytes((processed_dir / "test" / "track0.wav").read_bytes())
    out = tmp_path / "reports"
    (out / "predictions").mkdir(parents=True)
    (out / "predictions" / "old.wav").write_bytes(b"old")
    with pytest.raises(DeepfxError, match="track1.wav: missing"):
        evaluate_model(model_path, clean_dir, broken, out, params)
    assert [p.name for p in (out / "predictions").iterdir()] == ["old.wav"]
    assert not (out / "metrics.json").exists()
