"""DVC beyond `dvc repro`: a remote round trip restores every output bit-identical, and an
experiment that changes one effect's parameter reruns only that effect and shows in
`dvc metrics diff`. (Snakemake → `dvc status` clean is tested in test_pipeline.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from dvc.repo import Repo

from conftest import Project
from test_pipeline import dvc_ran, jobs_of
from deepfx.pipeline import models_of

pytestmark = pytest.mark.slow


def cached_outs(project: Project) -> list[str]:
    """The DVC outputs kept in the cache (and so in the remote): all but the code digests."""
    with Repo(str(project.path)) as repo:
        return sorted(out.def_path for out in repo.index.outs if out.use_cache)


def file_hashes(project: Project, paths: list[str]) -> dict[str, str]:
    """sha256 of every file in ``paths`` (files or folders), by path relative to the project."""
    out = {}
    for path in paths:
        root = project.path / path
        for file in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            out[str(file.relative_to(project.path))] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def test_remote_round_trip_then_an_experiment_on_one_effect(project: Project, tmp_path: Path) -> None:
    project.run("dvc", "repro")
    project.run("git", "add", "-A")
    project.run("git", "-c", "user.name=deepfx", "-c", "user.email=deepfx@example.org", "commit", "-qm", "tiny run")

    # push, lose the workspace's outputs and the local cache, pull: every file comes back as it was
    outs = cached_outs(project)
    assert {"data/clean", "data/processed/low_pass", "models/low_pass/fir/model.pt",
            "reports/effects/low_pass/fir/metrics.json", "models/low_pass/fir/history.csv"} <= set(outs)
    before = file_hashes(project, outs)
    assert len(before) > len(outs)  # folders hold many files
    project.run("dvc", "push")
    assert any((tmp_path / "remote").rglob("*")), "the remote received nothing"
    for path in outs:
        target = project.path / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.rmtree(project.path / ".dvc" / "cache")
    assert json.loads(project.run("dvc", "status", "--json").stdout), "DVC did not miss the deleted outputs"
    project.run("dvc", "pull")
    assert file_hashes(project, outs) == before
    assert project.run("dvc", "status").stdout.strip() == "Data and pipelines are up to date."

    # an experiment on one effect's parameter reruns that effect only, and its metrics change
    run = project.run("dvc", "exp", "run", "--set-param", "effects.low_pass.chain.0.cutoff_frequency_hz=1500.0")
    assert dvc_ran(run.stdout) == jobs_of("low_pass")
    diff = json.loads(project.run("dvc", "metrics", "diff", "--json").stdout)
    assert set(diff) == {f"reports/effects/low_pass/{arch}/metrics.json" for arch in models_of(project.params, "low_pass")}
    for changes in diff.values():
        assert changes["esr_clean"]["new"] != changes["esr_clean"]["old"]  # the target changed
        assert "esr" in changes
    shown = project.run("dvc", "metrics", "diff").stdout
    assert "reports/effects/low_pass/cnn/metrics.json" in shown and "esr" in shown
    exps = json.loads(project.run("dvc", "exp", "show", "--json").stdout)
    assert "1500.0" in json.dumps(exps)  # the experiment is recorded with its parameter
