# Shared helpers: the checked config, wildcard constraints, per-stage params, DVC hand-over.
from deepfx.config import validate_params
from deepfx.pipeline import commit_to_dvc, dvc_stage_name, param_values

config.update(validate_params(config, source="params.yaml"))

EFFECTS = list(config["effects"])
ARCHS = list(config["archs"])


wildcard_constraints:
    effect="|".join(EFFECTS),
    arch="|".join(ARCHS),


def stage_params(stage):
    """Rule params: the values of the params.yaml keys ``stage`` depends on (deepfx.pipeline)."""
    return lambda wildcards: param_values(config, stage, wildcards)


def stage_resources(stage):
    """Rule resources from params.yaml ``resources.<stage>``: memory (MB) and time limit (min)."""
    spec = config["resources"][stage]
    return {"mem_mb": spec["mem_mb"], "runtime": spec["runtime_min"]}


def finished_stages(jobs):
    """The dvc.yaml stage names of a finished run's jobs."""
    return [dvc_stage_name(job.rule.name, job.wildcards_dict) for job in jobs if job.rule.name != "all"]
