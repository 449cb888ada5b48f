"""What the two engines share about the DAG: the params each stage depends on, stage names,
and handing Snakemake's finished jobs to DVC (the code each stage runs: :mod:`deepfx.stage_code`)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "OWN_MODEL_RULES",
    "STAGE_PARAMS",
    "commit_to_dvc",
    "dvc_stage_name",
    "hands_over_to_dvc",
    "model_settings",
    "models_of",
    "param_values",
    "trained_models",
]

log = logging.getLogger("deepfx")

#: The params.yaml keys each stage depends on; ``{effect}``/``{arch}`` are filled per job.
#: The Snakefile passes their values as rule params (a change reruns the job) and dvc.yaml
#: lists the same keys per stage (tests/workflow/test_dags.py keeps them equal). ``train``,
#: ``evaluate`` and ``plots`` are the baselines' stages (one per effect × arch in ``archs``);
#: their ``_model`` twins handle each effect's own model (``effects.<name>.model``).
STAGE_PARAMS: dict[str, list[str]] = {
    "generate": ["sample_rate", "generate"],
    "process": ["sample_rate", "effects.{effect}"],
    "train": ["sample_rate", "effects.{effect}", "models.{arch}", "train"],
    "train_model": ["sample_rate", "effects.{effect}", "train"],
    "evaluate": ["sample_rate"],
    "evaluate_model": ["sample_rate"],
    "plots": ["evaluate"],
    "plots_model": ["evaluate"],
    "report": [],
}
#: Rules (and dvc.yaml stages) of the effects' own models: one job per effect.
OWN_MODEL_RULES = frozenset(stage for stage in STAGE_PARAMS if stage.endswith("_model"))


def models_of(config: Mapping[str, Any], effect: str) -> list[str]:
    """The archs trained for ``effect``: the baselines ``archs``, then the effect's own."""
    return [*config["archs"], config["effects"][effect]["model"]["arch"]]


def trained_models(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (effect, arch) the pipeline trains, effect by effect (see :func:`models_of`)."""
    return [(effect, arch) for effect in config["effects"] for arch in models_of(config, effect)]


def model_settings(config: Mapping[str, Any], effect: str, arch: str) -> tuple[str, dict[str, Any]]:
    """(params key, settings) of ``effect``'s ``arch`` model: hyper-parameters + ``train`` overrides.

    The effect's own model reads ``effects.<effect>.model`` (without ``arch``); a baseline
    reads ``models.<arch>``.
    """
    own = config["effects"][effect]["model"]
    if arch == own["arch"]:
        return f"effects.{effect}.model", {k: v for k, v in own.items() if k != "arch"}
    return f"models.{arch}", dict(config["models"][arch])


def param_values(config: Mapping[str, Any], stage: str, wildcards: Mapping[str, str]) -> dict[str, Any]:
    """``{"effects.fuzz": {...}, ...}``: the values of ``stage``'s keys for one job."""
    out = {}
    for pattern in STAGE_PARAMS[stage]:
        key = pattern.format(**wildcards)
        node: Any = config
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out


def dvc_stage_name(rule: str, wildcards: Mapping[str, str]) -> str:
    """The dvc.yaml stage of a Snakemake job: ``process@fuzz``, ``train@fuzz-cnn``,
    ``train_model@fuzz`` (the effect's own model), ``report``."""
    names = ("effect",) if rule in OWN_MODEL_RULES else ("effect", "arch")
    keys = [wildcards[k] for k in names if k in wildcards]
    return rule + ("@" + "-".join(keys) if keys else "")


def hands_over_to_dvc(root: str | os.PathLike = ".") -> bool:
    """Whether a Snakemake run records its jobs in dvc.lock: in a DVC repository, unless DVC
    itself runs the job (``DEEPFX_UNDER_DVC`` is set; DVC records it)."""
    return not os.environ.get("DEEPFX_UNDER_DVC") and (Path(root) / ".dvc").is_dir()


def commit_to_dvc(stages: Iterable[str], root: str | os.PathLike = ".") -> None:
    """Record ``stages`` (dvc.yaml names of jobs a Snakemake run produced) in dvc.lock with
    ``dvc commit``, so that DVC finds nothing to do for them."""
    stages = sorted(set(stages))
    log.info("recording %d stage(s) this run produced in dvc.lock (dvc commit)", len(stages))
    subprocess.run(["dvc", "commit", "--force", "--quiet", *stages], cwd=root, check=True)
