"""The Snakefile and dvc.yaml describe one DAG: the same jobs, outputs, edges, params and code.

dvc.yaml has one stage more, ``code``: the digests of each stage's source files that its stages
depend on where Snakemake's jobs list the files themselves (deepfx.stage_code)."""

from __future__ import annotations

import pytest
import yaml
from dvc.repo import Repo

from deepfx.pipeline import OWN_MODEL_RULES, STAGE_PARAMS, param_values, trained_models
from deepfx.stage_code import CODE_DIR, code_files, code_key

from conftest import ROOT, Project, snakemake_jobs


def snakemake_edges(jobs: dict[str, dict]) -> set[tuple[str, str]]:
    """(job, upstream job) wherever an input of one is, or lies inside, an output of the other."""
    edges = set()
    for name, job in jobs.items():
        for other, up in jobs.items():
            if any(i == o or i.startswith(o + "/") for i in job["inputs"] for o in up["outputs"]):
                edges.add((name, other))
    return edges


@pytest.fixture
def dags(project: Project):
    repo = Repo(str(project.path))
    stages = {s.name: s for s in repo.index.stages if s.name != "code"}
    dvc_edges = {(a.name, b.name) for a, b in repo.index.graph.edges if b.name != "code"}
    return snakemake_jobs(project, "--forceall"), stages, dvc_edges


def test_same_jobs_and_outputs(dags) -> None:
    jobs, stages, _ = dags
    assert set(jobs) == set(stages)
    # generate, process ×2 effects, (train, evaluate, plots) × 2 effects × (cnn + own model), report
    assert len(jobs) == 1 + 2 + 3 * 4 + 1
    assert {name for name in jobs if name.startswith("train")} == {
        "train@distortion-cnn", "train@low_pass-cnn", "train_model@distortion", "train_model@low_pass"
    }
    for name, stage in stages.items():
        assert jobs[name]["outputs"] == {o.def_path for o in stage.outs}, name


def test_same_edges(dags) -> None:
    jobs, _, dvc_edges = dags
    assert snakemake_edges(jobs) == dvc_edges


def test_same_params_per_stage(dags, project: Project) -> None:
    jobs, stages, _ = dags
    config = project.params
    for name, stage in stages.items():
        dvc_keys = {k for d in stage.deps if hasattr(d, "params") for k in d.params}
        job = jobs[name]
        assert dvc_keys == set(param_values(config, job["rule"], job["wildcards"])), name


def split_code(paths: set[str], prefix: str) -> tuple[set[str], set[str]]:
    """(data paths, code paths): the paths under ``prefix`` are code."""
    code = {p for p in paths if p.startswith(prefix)}
    return paths - code, code


def test_same_data_inputs(dags) -> None:
    """DVC deps equal Snakemake inputs, except where DVC needs a folder (and the code, below)."""
    jobs, stages, _ = dags
    for name, stage in stages.items():
        deps, _ = split_code({d.def_path for d in stage.deps if not hasattr(d, "params")}, CODE_DIR + "/")
        inputs, _ = split_code(jobs[name]["inputs"], "src/deepfx/")
        if name == "report":  # DVC cannot list the per-effect files: it depends on their folder
            assert deps == {"reports/effects"}
            assert all(i.startswith("reports/effects/") for i in inputs)
        else:
            assert deps == inputs, name


def test_same_code_per_stage(dags, project: Project) -> None:
    """Each job lists its stage's source files; its DVC stage depends on their digest instead."""
    jobs, stages, _ = dags
    for name, stage in stages.items():
        job = jobs[name]
        arch = job["wildcards"].get("arch")
        _, code = split_code(job["inputs"], "src/deepfx/")
        assert code == set(code_files(job["rule"], arch, project.path)) and code, name
        _, digest = split_code({d.def_path for d in stage.deps}, CODE_DIR + "/")
        assert digest == {f"{CODE_DIR}/{code_key(job['rule'], arch)}"}, name


def test_every_dvc_param_key_exists_in_every_committed_params_file() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for params_file in (ROOT / "params.yaml", ROOT / ".test" / "params.yaml"):
        config = yaml.safe_load(params_file.read_text())
        for stage, keys in STAGE_PARAMS.items():
            declared = stages[stage].get("do", stages[stage]).get("params", [])
            normalised = [k.replace("${key}", "{effect}").replace("${item.effect}", "{effect}").replace("${item.arch}", "{arch}") for k in declared]
            assert normalised == keys, stage
        for effect, arch in trained_models(config):
            own = arch == config["effects"][effect]["model"]["arch"]
            for stage in STAGE_PARAMS:
                if own == (stage in OWN_MODEL_RULES) or stage in ("generate", "process", "report"):
                    param_values(config, stage, {"effect": effect, "arch": arch})  # KeyError if absent
