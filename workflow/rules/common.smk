# Shared helpers: the checked config, wildcard constraints, per-stage params and code, DVC hand-over.
import os

from deepfx.config import validate_params
from deepfx.pipeline import commit_to_dvc, dvc_stage_name, hands_over_to_dvc, param_values, trained_models
from deepfx.stage_code import code_files, write_digests

config.update(validate_params(config, source="params.yaml"))

EFFECTS = list(config["effects"])
#: Every (effect, arch) trained: the baselines (archs) and each effect's own model.
MODELS = trained_models(config)
#: Regexes of the baseline archs and of the effects' own archs (disjoint: params are checked).
BASELINE_ARCHS = "|".join(config["archs"]) or "(?!)"
OWN_ARCHS = "|".join(sorted({spec["model"]["arch"] for spec in config["effects"].values()}))


wildcard_constraints:
    effect="|".join(EFFECTS),


def per_model(pattern, **wildcards):
    """``pattern`` filled for every trained (effect, arch), times the other ``wildcards``."""
    return [f for effect, arch in MODELS for f in expand(pattern, effect=effect, arch=arch, **wildcards)]


def stage_params(stage):
    """Rule params: the values of the params.yaml keys ``stage`` depends on (deepfx.pipeline)."""
    return lambda wildcards: param_values(config, stage, wildcards)


def stage_code(stage):
    """Rule input: the source files the stage's job runs (deepfx.stage_code; dvc.yaml: .code/),
    as paths from the working directory (``snakemake -d`` may run the pipeline elsewhere)."""
    return lambda wildcards: [
        os.path.relpath(os.path.join(workflow.basedir, f))
        for f in code_files(stage, wildcards.get("arch"), workflow.basedir)
    ]


def stage_resources(stage):
    """Rule resources from params.yaml ``resources.<stage>``: memory (MB) and time limit (min)."""
    spec = config["resources"][stage]
    return {"mem_mb": spec["mem_mb"], "runtime": spec["runtime_min"]}


def hand_over_to_dvc(dag):
    """Record in dvc.lock the code digests (dvc.yaml's code stage) and the jobs this invocation
    ran to the end, nothing else (also after a later job failed)."""
    if hands_over_to_dvc() and os.path.samefile(workflow.basedir, "."):  # outputs are here
        write_digests()
        ran = [dvc_stage_name(job.rule.name, job.wildcards_dict) for job in dag.finished_jobs]
        commit_to_dvc(["code", *(name for name in ran if name != "all")])
