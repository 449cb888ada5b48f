"""Shared fixtures: a throw-away copy of the project (Snakefile, dvc.yaml, workflow, src) that the
real Snakemake and DVC run in, on the tiny configuration in .test/params.yaml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfx.pipeline import dvc_stage_name

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: deepfx, snakemake, dvc
TINY_PARAMS = ROOT / ".test" / "params.yaml"

#: Fixtures of a trained-looking run and of the shared headless Chromium (report and ABX tests).
pytest_plugins = ["report_fixtures"]


def tiny_params() -> dict:
    """The tiny test configuration as a dict (a fresh copy each call)."""
    return yaml.safe_load(TINY_PARAMS.read_text())


def snakemake_jobs(project: "Project", *args: str) -> dict[str, dict]:
    """The jobs a dry run would run now (``--forceall``: all of them)."""
    return parse_jobs(project.run("snakemake", "--dry-run", "--cores", "1", *args).stdout)


def parse_jobs(text: str) -> dict[str, dict]:
    """Jobs in Snakemake's log: dvc-style name → {rule, wildcards, inputs, outputs}."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head or head.group(1) == "all":
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        wildcards = dict(kv.split("=", 1) for kv in fields.get("wildcards", "").split(", ") if kv)
        name = dvc_stage_name(head.group(1), wildcards)
        jobs[name] = {
            "rule": head.group(1),
            "wildcards": wildcards,
            "inputs": set(fields.get("input", "").split(", ")) - {""},
            "outputs": set(fields["output"].split(", ")),
        }
    return jobs


class Project:
    """A copy of the repository's pipeline in a fresh git + DVC repository."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("DEEPFX_UNDER_DVC", None)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in the project; on an unexpected failure show its output."""
        proc = subprocess.run(cmd, cwd=self.path, env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-5000:]}"
                f"\n--- stderr\n{proc.stderr[-5000:]}"
            )
        return proc

    @property
    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    @params.setter
    def params(self, value: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(value, sort_keys=False))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The pipeline (Snakefile, dvc.yaml, workflow/, src/) with the tiny params, git and DVC."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("Snakefile", "dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("workflow", "src"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "data" / "training_audio").mkdir(parents=True)
    shutil.copy2(ROOT / "data" / "training_audio" / "README.md", dest / "data" / "training_audio")
    shutil.copy2(TINY_PARAMS, dest / "params.yaml")
    proj = Project(dest)
    proj.run("git", "init", "-q")
    proj.run("dvc", "init", "-q")
    proj.run("dvc", "config", "core.analytics", "false")
    proj.run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    return proj


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run the module's tests on one torch thread, then restore the count: small tensors gain
    nothing from more, and the machine is shared (every module under tests/models uses it)."""
    import torch  # here: most tests never load torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
