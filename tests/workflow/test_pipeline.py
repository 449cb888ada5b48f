"""The whole tiny pipeline through real Snakemake and real DVC, in both orders, and what reruns
after one effect's parameter changes."""

from __future__ import annotations

import json
import re

import mlflow
import pytest
import soundfile as sf

from conftest import Project, parse_jobs, snakemake_jobs
from deepfx.pipeline import models_of, trained_models

pytestmark = pytest.mark.slow


def pending(project: Project) -> set[str]:
    """The jobs Snakemake would run now."""
    return set(snakemake_jobs(project))


def dvc_changed(project: Project) -> set[str]:
    """The stages ``dvc status`` reports as changed."""
    return set(json.loads(project.run("dvc", "status", "--json").stdout))


def dvc_ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


def jobs_of(effect: str, archs=("cnn",)) -> set[str]:
    """Everything downstream of one effect's parameters, plus the final report."""
    return (
        {f"process@{effect}", "report"}
        | {f"{stage}@{effect}-{arch}" for stage in ("train", "evaluate", "plots") for arch in archs}
        | {f"{stage}_model@{effect}" for stage in ("train", "evaluate", "plots")}
    )


def assert_outputs(project: Project) -> None:
    root = project.path
    params = project.params
    for effect in params["effects"]:
        for split in ("train", "valid", "test"):
            clean = sorted(p.name for p in (root / "data/clean" / split).glob("*.wav"))
            assert clean and clean == sorted(p.name for p in (root / "data/processed" / effect / split).glob("*.wav"))
        for arch in models_of(params, effect):
            assert (root / "models" / effect / arch / "model.pt").stat().st_size > 0
            metrics = json.loads((root / "reports/effects" / effect / arch / "metrics.json").read_text())
            assert metrics["effect"] == effect and metrics["arch"] == arch and metrics["esr_clean"] > 0
            for png in ("melspec", "amplitude", "loss"):
                assert (root / "reports/effects" / effect / arch / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            test_file = next((root / "data/clean/test").glob("*.wav"))
            pred = root / "reports/effects" / effect / arch / "predictions" / test_file.name
            assert sf.info(pred).frames == sf.info(test_file).frames
    html = (root / "reports/index.html").read_text()
    assert all(effect in html for effect in params["effects"])
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(trained_models(params))
    assert all(r.info.status == "FINISHED" for r in runs)


def test_snakemake_first_then_dvc_agrees_and_one_effect_reruns(project: Project) -> None:
    project.run("snakemake", "--cores", "2")
    assert_outputs(project)
    # Snakemake's onsuccess hook recorded its jobs in dvc.lock: neither engine has work left.
    assert dvc_changed(project) == set()
    assert pending(project) == set()
    assert "Data and pipelines are up to date" in project.run("dvc", "repro").stdout

    params = project.params
    params["effects"]["low_pass"]["chain"][0]["cutoff_frequency_hz"] = 1500.0
    project.params = params
    expected = jobs_of("low_pass")
    assert pending(project) == expected
    # DVC sees the changed params where they are declared; repro then runs exactly the same jobs.
    assert dvc_changed(project) == {"process@low_pass", "train@low_pass-cnn", "train_model@low_pass"}
    assert dvc_ran(project.run("dvc", "repro").stdout) == expected
    assert pending(project) == set()
    assert dvc_changed(project) == set()


def test_dvc_first_then_snakemake_agrees_and_one_effect_reruns(project: Project) -> None:
    out = project.run("dvc", "repro").stdout
    assert len(dvc_ran(out)) == 16
    assert_outputs(project)
    assert pending(project) == set()

    params = project.params
    params["effects"]["distortion"]["chain"][0]["drive_db"] = 10.0
    project.params = params
    assert pending(project) == jobs_of("distortion")
    run = project.run("snakemake", "--cores", "2")
    assert set(parse_jobs(run.stderr)) == jobs_of("distortion")
    assert pending(project) == set()
    assert dvc_changed(project) == set()
    assert "Data and pipelines are up to date" in project.run("dvc", "repro").stdout
