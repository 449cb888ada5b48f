"""The whole tiny pipeline through real Snakemake and real DVC, in both orders, and what reruns
after one effect's parameter changes and after a change in the code of one stage or one model."""

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


def edit(project: Project, source: str) -> None:
    """Change a source file of the project's package (a comment: what runs is the same)."""
    with open(project.path / "src/deepfx" / source, "a") as f:
        f.write("\n# edited by the test\n")


PLOTS_JOBS = {"plots@distortion-cnn", "plots@low_pass-cnn", "plots_model@distortion", "plots_model@low_pass", "report"}
#: What models/fir.py's change invalidates: the fir model of low_pass; its plots and the report
#: follow when the retrained model's predictions differ (DVC compares contents, Snakemake times).
FIR_JOBS = {"train_model@low_pass", "evaluate_model@low_pass"}
FIR_FOLLOWERS = {"plots_model@low_pass", "report"}


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


def git_status(project: Project) -> list[str]:
    return project.run("git", "status", "--porcelain", "--untracked-files=all").stdout.splitlines()


def test_snakemake_first_then_dvc_agrees_and_one_effect_reruns(project: Project) -> None:
    project.run("git", "add", "-A")
    project.run("git", "-c", "user.name=deepfx", "-c", "user.email=deepfx@example.org", "commit", "-qm", "pipeline")
    project.run("snakemake", "--cores", "2")
    assert_outputs(project)
    # git sees just what to commit: the record of what DVC versions (data, models, reports)
    assert git_status(project) == ["?? dvc.lock"]
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

    # A change in the plots' code: only the plots jobs and the report, in both engines.
    edit(project, "plots.py")
    assert pending(project) == PLOTS_JOBS
    assert dvc_changed(project) == {"code"}  # the digests are its outputs: DVC knows more once it ran
    run = project.run("snakemake", "--cores", "2")
    assert set(parse_jobs(run.stderr)) == PLOTS_JOBS
    assert dvc_changed(project) == set()
    # A change in the FIR model's code, under DVC: the jobs of the model built on it, nothing else.
    edit(project, "models/fir.py")
    ran = dvc_ran(project.run("dvc", "repro").stdout)
    assert {"code"} | FIR_JOBS <= ran <= {"code"} | FIR_JOBS | FIR_FOLLOWERS
    # DVC compares contents, Snakemake times: where the retrained model's predictions came out
    # byte-identical, DVC stopped and Snakemake still redraws their plots (nothing else).
    left = pending(project)
    assert left <= FIR_FOLLOWERS and ("plots_model@low_pass" in ran) == (not left)
    project.run("snakemake", "--cores", "2")
    assert pending(project) == set() and dvc_changed(project) == set()


def test_dvc_first_then_snakemake_agrees_and_one_effect_reruns(project: Project) -> None:
    out = project.run("dvc", "repro").stdout
    assert len(dvc_ran(out)) == 17  # the 16 jobs and the code digests
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

    # The hand-over records only what Snakemake ran: a job it left alone stays as DVC had it.
    edit(project, "models/cnn.py")
    run = project.run("snakemake", "--cores", "2", "models/distortion/cnn/model.pt")
    assert set(parse_jobs(run.stderr)) == {"train@distortion-cnn"}
    assert dvc_changed(project) == {"train@low_pass-cnn", "evaluate@distortion-cnn", "evaluate@low_pass-cnn"}
