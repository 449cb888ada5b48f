# Shared helpers: checked config, wildcard constraints, the params each stage depends on,
# and the hand-over of finished jobs to DVC.
import os
import shlex
import subprocess

from deepfx.config import validate_params

config.update(validate_params(config, source="params.yaml"))

EFFECTS = list(config["effects"])
ARCHS = list(config["archs"])


wildcard_constraints:
    effect="|".join(EFFECTS),
    arch="|".join(ARCHS),


# The params.yaml keys each stage depends on ("{effect}"/"{arch}" filled per job). dvc.yaml
# lists the same keys per stage; tests/workflow/test_dags.py keeps the two equal.
STAGE_PARAMS = {
    "generate": ["sample_rate", "generate"],
    "process": ["sample_rate", "effects.{effect}"],
    "train": ["sample_rate", "effects.{effect}", "models.{arch}", "train"],
    "evaluate": ["sample_rate"],
    "plots": ["evaluate"],
    "report": [],
}


def stage_params(stage):
    """A params function for a rule: the values of the stage's keys, so a change reruns it."""

    def values(wildcards):
        out = {}
        for key in STAGE_PARAMS[stage]:
            node = config
            for part in key.format(**wildcards).split("."):
                node = node[part]
            out[key.format(**wildcards)] = node
        return out

    return values


def dvc_stage(job):
    """The dvc.yaml stage name of a Snakemake job (``train@fuzz-tcn``)."""
    wc = job.wildcards_dict
    keys = [wc[k] for k in ("effect", "arch") if k in wc]
    return job.rule.name + ("@" + "-".join(keys) if keys else "")


def commit_to_dvc(jobs):
    """Record finished jobs in dvc.lock so ``dvc status`` agrees with Snakemake.

    Skipped inside a DVC stage (DVC records it itself) and outside a DVC repository.
    """
    if os.environ.get("DEEPFX_UNDER_DVC") or not os.path.isdir(".dvc"):
        return
    stages = sorted({dvc_stage(job) for job in jobs if job.rule.name != "all"})
    if stages:
        cmd = ["dvc", "commit", "--force", "--quiet", *stages]
        logger.info("recording in dvc.lock: " + shlex.join(cmd))
        subprocess.run(cmd, check=True)
