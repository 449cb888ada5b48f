"""MLflow tracking: URIs, what a run records, run status, quietness, parallel jobs."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from deepfx.errors import DeepfxError
from deepfx.tracking import start_run, tracking_uri

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def params(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "unit"}
    return params


def _only_run(uri: str, experiment: str = "unit"):
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


def test_plain_folder_becomes_absolute_and_uris_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking_uri({"tracking": {"uri": "mlruns"}}) == (tmp_path / "mlruns").as_uri()
    for uri in ("sqlite:///mlflow.db", "http://localhost:5000", "file:///tmp/x"):
        assert tracking_uri({"tracking": {"uri": uri}}) == uri


def test_run_records_params_tags_epochs_metrics_and_artifact(params, tmp_path, capsys):
    model_file = tmp_path / "model.pt"
    model_file.write_bytes(b"weights")
    with start_run(params, "distortion", "cnn") as run:
        run.log_epoch(1, 0.5, 0.6)
        run.log_epoch(2, 0.25, 0.3)
        run.log_metrics({"best_valid_loss": 0.3})
        run.log_artifact(model_file)
    assert capsys.readouterr().out == ""  # no URLs or emoji on stdout

    client, found = _only_run(tracking_uri(params))
    assert found.info.run_id == run.run_id and found.info.status == "FINISHED"
    assert found.data.tags["effect"] == "distortion" and found.data.tags["arch"] == "cnn"
    logged = found.data.params
    assert logged["effect"] == "distortion" and logged["arch"] == "cnn"
    assert logged["effect.chain.0.plugin"] == "Distortion"
    assert logged["effect.chain.0.drive_db"] == "25.0"
    assert logged["model.window"] == str(params["models"]["cnn"]["window"])
    assert logged["train.learning_rate"] == str(params["train"]["learning_rate"])
    history = client.get_metric_history(run.run_id, "valid_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.6), (2, 0.3)]
    assert found.data.metrics["best_valid_loss"] == 0.3
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["model.pt"]
    # SQLite stores keep artifacts beside the database, not in the working directory
    assert Path(found.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path / "mlartifacts")


def test_failed_block_marks_the_run_failed(params):
    with pytest.raises(RuntimeError, match="boom"):
        with start_run(params, "fuzz", "cnn"):
            raise RuntimeError("boom")
    assert _only_run(tracking_uri(params))[1].info.status == "FAILED"


def test_plain_folder_store_works_and_leaves_the_environment_alone(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    params["tracking"]["uri"] = "mlruns"
    with start_run(params, "delay", "cnn") as run:
        run.log_epoch(1, 1.0, 1.0)
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert (tmp_path / "mlruns").is_dir()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert _only_run((tmp_path / "mlruns").as_uri())[1].info.run_id == run.run_id


def test_unusable_uri_names_tracking_uri(params):
    params["tracking"]["uri"] = "nosuchscheme://host/x"
    with pytest.raises(DeepfxError, match="tracking.uri: MLflow cannot use 'nosuchscheme://host/x'"):
        with start_run(params, "delay", "cnn"):
            pass


def test_parallel_jobs_can_create_one_fresh_database(params, tmp_path):
    """Jobs started together must not race to create the tables or the experiment."""
    script = (
        "import sys, yaml\n"
        "from deepfx.tracking import start_run\n"
        "params = yaml.safe_load(open(sys.argv[1]))\n"
        "with start_run(params, 'delay', sys.argv[2]):\n"
        "    pass\n"
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "params.yaml"), arch],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for arch in ("cnn", "fir", "cnn")
    ]
    for job in jobs:
        out, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
        assert out == ""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(params))
    exp = client.get_experiment_by_name("unit")
    assert len(client.search_runs([exp.experiment_id])) == 3
