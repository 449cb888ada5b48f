"""The tiny pipeline through a real single-node SLURM cluster (Debian's slurm-wlm and munge,
started by workflow/scripts/slurm.sh) with the repository's workflow profile: every job is a
SLURM job with the resources params.yaml asks for, and the results equal a local run's.

Without accounting `sacct` cannot answer, so the plugin learns job states from `squeue`
(`slurm-status-command: squeue` in the profile); the cluster keeps finished jobs visible for an
hour (MinJobAge), which is also where this test reads what SLURM ran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pytest

from conftest import ROOT, Project, snakemake_jobs
from test_determinism import assert_same_results
from test_tracking_parallel import assert_runs_complete
from deepfx.pipeline import trained_models

SCRIPT = ROOT / "workflow" / "scripts" / "slurm.sh"
TIMEOUT_S = 1500  # the whole SLURM run; a hang fails the test instead of blocking CI


def _script(action: str, state: Path) -> None:
    proc = subprocess.run([str(SCRIPT), action, str(state)], capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f"slurm.sh {action} exited {proc.returncode}\n{proc.stderr}")


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A running single-node cluster: the environment its commands need. Always stopped."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.skip("SLURM is not installed (Debian: apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("starting a test SLURM cluster needs root")
    state = tmp_path / "slurm"
    try:
        _script("start", state)
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        _script("stop", state)


def slurm_jobs(project: Project) -> dict[str, dict[str, str]]:
    """Every job the cluster knows, by the executor's job comment (``rule_train_wildcards_…``)."""
    out = project.run("squeue", "--noheader", "--states=all", "--format=%i|%k|%T|%C|%m|%l|%S|%e").stdout
    jobs = {}
    for line in out.splitlines():
        job_id, comment, state, cpus, memory, limit, start, end = line.split("|")
        jobs[comment] = {
            "id": job_id, "state": state, "cpus": cpus, "memory": memory, "time_limit": limit,
            "start": datetime.fromisoformat(start), "end": datetime.fromisoformat(end),
        }
    return jobs


def job_comment(job: dict) -> str:
    """The comment snakemake-executor-plugin-slurm gives a job's sbatch submission."""
    values = "_".join(job["wildcards"].values())
    return f"rule_{job['rule']}" + (f"_wildcards_{values}" if values else "")


def planned_resources(project: Project) -> list[tuple[str, int, dict[str, str]]]:
    """(rule, threads, resources) of every job of a forced dry run (the target ``all`` aside)."""
    out = project.run("snakemake", "--dry-run", "--forceall", "--cores", "8").stdout
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", out):
        head = re.match(r"rule (\w+):", block)
        if head and head.group(1) != "all":
            threads = re.search(r"^    threads: (\d+)$", block, re.M)
            line = re.search(r"^    resources: (.*)$", block, re.M).group(1)
            jobs.append((head.group(1), int(threads.group(1)) if threads else 1, dict(kv.split("=", 1) for kv in line.split(", "))))
    return jobs


def test_jobs_ask_for_what_params_yaml_says(project: Project) -> None:
    """CPUs, memory, time and a GPU per rule come from params.yaml; the SLURM plugin turns them
    into sbatch --cpus-per-task, --mem, -t and --gpus."""
    params = project.params
    params["train"].update(device="cuda", threads=3)
    params["resources"]["train"] = {"mem_mb": 4321, "runtime_min": 77}
    params["resources"]["plots"] = {"mem_mb": 1234, "runtime_min": 3}
    project.params = params
    jobs = planned_resources(project)
    assert len(jobs) == 16
    for rule, threads, resources in jobs:
        rule = rule.removesuffix("_model")  # an effect's own model: the same stage's resources
        wanted = params["resources"][rule]
        assert (resources["mem_mb"], resources["runtime"]) == (str(wanted["mem_mb"]), str(wanted["runtime_min"])), rule
        assert threads == (3 if rule == "train" else 1), rule
        assert resources.get("gpu", "0") == ("1" if rule == "train" else "0"), rule
    params["train"]["device"] = "auto"  # auto takes a GPU only when the node has one: none is asked for
    project.params = params
    assert {resources["gpu"] for rule, _, resources in planned_resources(project) if rule == "train"} == {"0"}


@pytest.mark.slow
def test_tiny_pipeline_runs_as_slurm_jobs_like_a_local_run(project: Project, slurm: dict, tmp_path: Path) -> None:
    local = Project(shutil.copytree(project.path, tmp_path / "local", symlinks=True))
    planned = snakemake_jobs(project)
    project.env.update(slurm)
    cmd = ["snakemake", "--workflow-profile", "workflow/profiles/slurm", "--slurm-init-seconds-before-status-checks", "2"]
    run = subprocess.run(cmd, cwd=project.path, env=project.env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-5000:]

    # Every job of the DAG was one SLURM job, finished with exit code 0 ...
    jobs = slurm_jobs(project)
    assert set(jobs) == {job_comment(job) for job in planned.values()}
    assert {job["state"] for job in jobs.values()} == {"COMPLETED"}
    controller_log = (tmp_path / "slurm" / "log" / "slurmctld.log").read_text()
    for job in jobs.values():
        assert re.search(rf"_job_complete: JobId={job['id']} WEXITSTATUS 0\b", controller_log)
    assert len(re.findall(r"has been submitted with SLURM jobid", run.stderr)) == len(planned)
    # ... with the CPUs, memory and time limit params.yaml asks for.
    params = project.params
    for comment, job in jobs.items():
        stage = comment.split("_")[1]
        wanted = params["resources"][stage]
        assert job["memory"] == f"{wanted['mem_mb']}M", comment
        assert job["time_limit"] == f"{wanted['runtime_min']}:00", comment  # tiny limits are < 1 h
        assert job["cpus"] == str(params["train"]["threads"] if stage == "train" else 1), comment

    # The submitting process recorded the jobs in dvc.lock; the training jobs, some running at
    # the same time on the node, each logged a complete MLflow run to the one SQLite store.
    trains = [job for comment, job in jobs.items() if comment.startswith("rule_train_")]
    assert any(a["start"] < b["end"] and b["start"] < a["end"] for a, b in combinations(trains, 2))
    assert project.run("dvc", "status").stdout.strip() == "Data and pipelines are up to date."
    models = [project.path / "models" / e / a / "model.pt" for e, a in trained_models(params)]
    assert_runs_complete(f"sqlite:///{project.path / 'mlflow.db'}", params, models)

    # Same results as `snakemake --cores 2` on this machine (see test_determinism for what is compared).
    local.run("snakemake", "--cores", "2")
    assert_same_results(project.path, local.path, params)
