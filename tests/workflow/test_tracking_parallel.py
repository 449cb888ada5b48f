"""Training jobs running at once log to one MLflow store without losing or corrupting a run:
eight real `deepfx train` processes started together, on the default SQLite store and on an
MLflow tracking server (``tracking.uri: http://…``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from conftest import BIN, Project
from deepfx.pipeline import trained_models

pytestmark = pytest.mark.slow

EPOCHS = 3
COPIES = 2  # each (effect, arch) is trained this many times, into separate folders


def assert_runs_complete(uri: str, params: dict, models: list[Path]) -> None:
    """One FINISHED run per model file in ``models``, each with every epoch's losses, its final
    metrics, and that very file as its ``model.pt`` artifact (byte for byte)."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    expected = Counter((m.parent.parent.name, m.parent.name) for m in models)  # .../{effect}/{arch}/model.pt
    assert Counter((r.data.tags["effect"], r.data.tags["arch"]) for r in runs) == expected
    epochs = list(range(1, params["train"]["epochs"] + 1))
    artifacts = []
    for run in runs:
        run_id = run.info.run_id
        assert run.info.status == "FINISHED", run.info
        for name in ("train_loss", "valid_loss"):
            assert [m.step for m in client.get_metric_history(run_id, name)] == epochs, (run_id, name)
        assert {"best_valid_loss", "n_params", "epochs"} <= run.data.metrics.keys()
        assert [a.path for a in client.list_artifacts(run_id)] == ["model.pt"]
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model.pt", tracking_uri=uri, dst_path=tmp)
            artifacts.append(Path(local).read_bytes())
    # model.pt holds its training time, so every job's file is unique: a one-to-one match
    assert sorted(artifacts) == sorted(m.read_bytes() for m in models)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, served artifacts); stopped by its PID."""
    port = _free_port()
    log = open(tmp_path / "mlflow-server.log", "w")
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "server-artifacts"),
        ],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()
                assert time.monotonic() < deadline, "mlflow server did not answer within 120 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers: the group it leads
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _train_all_at_once(project: Project) -> list[Path]:
    """Start every (effect, arch) training COPIES times at once; wait; return the model files."""
    params = project.params
    jobs, models = [], []
    for copy in range(COPIES):
        for effect, arch in trained_models(params):
            out = Path("parallel", str(copy), effect, arch)
            models.append(project.path / out / "model.pt")
            cmd = ["deepfx", "train", "--effect", effect, "--arch", arch, "--out", str(out)]
            jobs.append(subprocess.Popen(cmd, cwd=project.path, env=project.env, stderr=subprocess.PIPE, text=True))
    for job in jobs:
        _, err = job.communicate(timeout=600)
        assert job.returncode == 0, err
    return models


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_parallel_training_jobs_share_one_store(project: Project, store: str, request) -> None:
    params = project.params
    params["train"]["epochs"] = EPOCHS
    if store == "server":
        params["tracking"]["uri"] = request.getfixturevalue("mlflow_server")
    project.params = params
    project.run("snakemake", "--cores", "2", *(f"data/processed/{e}" for e in params["effects"]))
    models = _train_all_at_once(project)
    assert len(models) == COPIES * len(trained_models(params))
    uri = params["tracking"]["uri"] if store == "server" else f"sqlite:///{project.path / 'mlflow.db'}"
    assert_runs_complete(uri, params, models)
