# Shared helpers: the checked config, wildcard constraints, per-stage params, DVC hand-over.
from deepfx.config import validate_params
from deepfx.pipeline import commit_to_dvc, dvc_stage_name, param_values, trained_models

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


def stage_resources(stage):
    """Rule resources from params.yaml ``resources.<stage>``: memory (MB) and time limit (min)."""
    spec = config["resources"][stage]
    return {"mem_mb": spec["mem_mb"], "runtime": spec["runtime_min"]}


def finished_stages(jobs):
    """The dvc.yaml stage names of a finished run's jobs."""
    return [dvc_stage_name(job.rule.name, job.wildcards_dict) for job in jobs if job.rule.name != "all"]
