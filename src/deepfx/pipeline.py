"""What the two engines share about the DAG: the params each stage depends on, stage names,
and handing Snakemake's finished jobs to DVC."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["STAGE_PARAMS", "commit_to_dvc", "dvc_stage_name", "param_values"]

log = logging.getLogger("deepfx")

#: The params.yaml keys each stage depends on; ``{effect}``/``{arch}`` are filled per job.
#: The Snakefile passes their values as rule params (a change reruns the job) and dvc.yaml
#: lists the same keys per stage (tests/workflow/test_dags.py keeps them equal).
STAGE_PARAMS: dict[str, list[str]] = {
    "generate": ["sample_rate", "generate"],
    "process": ["sample_rate", "effects.{effect}"],
    "train": ["sample_rate", "effects.{effect}", "models.{arch}", "train"],
    "evaluate": ["sample_rate"],
    "plots": ["evaluate"],
    "report": [],
}


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
    """The dvc.yaml stage of a Snakemake job: ``process@fuzz``, ``train@fuzz-tcn``, ``report``."""
    keys = [wildcards[k] for k in ("effect", "arch") if k in wildcards]
    return rule + ("@" + "-".join(keys) if keys else "")


def commit_to_dvc(stages: Iterable[str], root: str | os.PathLike = ".") -> None:
    """Record Snakemake's finished jobs in dvc.lock (``dvc commit``), so DVC finds nothing to do.

    Skipped when DVC itself runs the job (``DEEPFX_UNDER_DVC`` is set; DVC records it) and
    outside a DVC repository.
    """
    stages = sorted(set(stages))
    if os.environ.get("DEEPFX_UNDER_DVC") or not (Path(root) / ".dvc").is_dir() or not stages:
        return
    log.info("recording %d finished jobs in dvc.lock (dvc commit)", len(stages))
    subprocess.run(["dvc", "commit", "--force", "--quiet", *stages], cwd=root, check=True)
