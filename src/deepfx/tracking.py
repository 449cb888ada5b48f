"""MLflow experiment tracking: one run per training job (effect × arch), quietly.

``tracking.uri`` may be a plain folder (MLflow's file store), ``sqlite:///path.db`` or an
``http(s)://`` server. MLflow 3.17 refuses the file store unless ``MLFLOW_ALLOW_FILE_STORE`` is
set (the store is in maintenance mode), so deepfx sets it for its own folder runs; a database is
the recommended default. With SQLite, artifacts go to ``mlartifacts/`` beside the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlparse

import mlflow
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

from deepfx.errors import DeepfxError
from deepfx.pipeline import model_settings

__all__ = ["Run", "start_run", "tracking_uri"]


def tracking_uri(params: Mapping) -> str:
    """params ``tracking.uri`` as an MLflow URI: a plain folder becomes an absolute file: URI."""
    uri = str(params["tracking"]["uri"])
    if len(urlparse(uri).scheme) > 1:  # sqlite:, http:, file:, databricks … (not C:\ paths)
        return uri
    return Path(uri).expanduser().resolve().as_uri()


def _is_file_store(uri: str) -> bool:
    return urlparse(uri).scheme == "file"


def _artifact_location(uri: str) -> str | None:
    """``mlartifacts/`` beside a SQLite database file; None (MLflow's choice) otherwise."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix:
        return None
    return (Path(uri.removeprefix(prefix)).resolve().parent / "mlartifacts").as_uri()


def _flatten(value: object, prefix: str) -> dict[str, str]:
    """Nested mappings/lists as ``{"prefix.key.0.sub": "value"}``; scalar lists stay one value."""
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (list, tuple)) and any(
        isinstance(v, (Mapping, list, tuple)) for v in value
    ):
        items = enumerate(value)
    else:
        return {prefix: str(value)}
    out: dict[str, str] = {}
    for key, item in items:
        out.update(_flatten(item, f"{prefix}.{key}"))
    return out


@contextlib.contextmanager
def _quiet_mlflow(file_store: bool) -> Iterator[None]:
    """Silence MLflow's INFO logging and stdout URLs; allow the file store when asked for."""
    env = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    if file_store:
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    saved_env = {key: os.environ.get(key) for key in env}
    logger = logging.getLogger("mlflow")
    saved_level = logger.level
    os.environ.update(env)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(saved_level)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation between processes (parallel jobs racing to create tables)."""
    digest = hashlib.sha1(uri.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"deepfx-mlflow-{digest}.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Run:
    """An open MLflow run: log per-epoch losses, final metrics and files."""

    def __init__(self, client: mlflow.MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def log_epoch(self, epoch: int, train_loss: float, valid_loss: float) -> None:
        """``train_loss`` and ``valid_loss`` of 1-based ``epoch`` (logged with step=epoch)."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[
                Metric("train_loss", float(train_loss), now, epoch),
                Metric("valid_loss", float(valid_loss), now, epoch),
            ],
        )

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Final (step 0) metrics."""
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()]
        )

    def set_tag(self, key: str, value: str) -> None:
        """Tag the run (e.g. ``resumed_from_epoch``)."""
        self.client.set_tag(self.run_id, key, value)

    def log_artifact(self, path: Path) -> None:
        """Copy the file ``path`` into the run's artifacts."""
        self.client.log_artifact(self.run_id, str(path))


@contextlib.contextmanager
def start_run(params: Mapping, effect: str, arch: str) -> Iterator[Run]:
    """Open an MLflow run in ``tracking.experiment`` at ``tracking.uri`` for ``effect`` × ``arch``.

    Logs as params ``effect``, ``arch``, ``sample_rate`` and the flattened ``effect.*`` (its
    ``effects.<effect>`` spec), ``model.*`` (its settings: ``effects.<effect>.model`` or ``models.<arch>``) and ``train.*``; tags the run with
    effect and arch. The run ends FINISHED, or FAILED/KILLED when the block raises.

    Raises:
        DeepfxError: MLflow cannot open the store (naming ``tracking.uri``).
    """
    uri = tracking_uri(params)
    experiment = str(params["tracking"]["experiment"])
    logged = {
        "effect": effect,
        "arch": arch,
        "sample_rate": str(params["sample_rate"]),
        **_flatten(params["effects"][effect], "effect"),
        **_flatten(model_settings(params, effect, arch)[1], "model"),
        **_flatten(params["train"], "train"),
    }
    with _quiet_mlflow(_is_file_store(uri)):
        try:
            with _store_lock(uri):
                client = mlflow.MlflowClient(tracking_uri=uri)
                found = client.get_experiment_by_name(experiment)
                experiment_id = (
                    found.experiment_id
                    if found is not None
                    else client.create_experiment(experiment, _artifact_location(uri))
                )
            run = client.create_run(
                experiment_id, tags={"effect": effect, "arch": arch}, run_name=f"{effect}-{arch}"
            )
        except MlflowException as exc:
            raise DeepfxError(f"tracking.uri: MLflow cannot use {uri!r} ({exc.message})") from None
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in logged.items()])
        status = RunStatus.FAILED
        try:
            yield Run(client, run_id)
            status = RunStatus.FINISHED
        except KeyboardInterrupt:
            status = RunStatus.KILLED
            raise
        finally:
            client.set_terminated(run_id, RunStatus.to_string(status))
