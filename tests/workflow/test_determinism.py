"""Same params, same results: two fresh `dvc repro` runs record the same data hashes in dvc.lock
and train the same models.

What is compared, and how closely:
- data/clean and data/processed: the md5 hashes DVC records in dvc.lock (the files' bytes);
- models: every weight of model.pt, and train/valid loss per epoch, to ``REL_TOL``;
- metrics.json: every number to ``REL_TOL``, except the wall-clock figures in ``TIMING``.
Training runs on ``train.threads`` = 1 torch thread with fixed seeds; the differences observed on
the 2-core test machine are zero (bit-identical weights and losses). model.pt, metrics.json and
history.csv also hold wall-clock seconds, so their own dvc.lock hashes differ from run to run.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import Project
from deepfx.pipeline import trained_models

pytestmark = pytest.mark.slow

#: Largest relative difference accepted between two runs' losses, metrics and weights.
REL_TOL = 1e-6
#: Wall-clock figures in metrics.json (s, and a ratio of seconds): they differ between runs.
TIMING = {"train_seconds", "inference_rtf"}


def data_hashes(project: Project) -> dict[str, str]:
    """``{path: md5}`` of every data/ output recorded in dvc.lock."""
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"].startswith("data/")
    }


def _assert_close(a: object, b: object, where: str) -> None:
    """Nested JSON values equal, numbers within REL_TOL, keys in TIMING skipped."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a.keys() - TIMING:
            _assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=REL_TOL), f"{where}: {a} != {b}"
    else:
        assert a == b, where


def _losses(history: Path) -> list[dict[str, float]]:
    """history.csv without its wall-clock ``seconds`` column."""
    rows = csv.DictReader(history.read_text().splitlines())
    return [{k: float(row[k]) for k in ("epoch", "train_loss", "valid_loss")} for row in rows]


def _wavs(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*.wav"))


def assert_same_results(a: Path, b: Path, params: dict) -> None:
    """Two finished runs of ``params`` in folders ``a`` and ``b`` hold the same results.

    Audio in data/ must decode to identical samples (their bytes are compared through dvc.lock
    where that is the point); weights, losses and metrics must agree to ``REL_TOL``.
    """
    for folder in ("data/clean", "data/processed"):
        names = _wavs(a / folder)
        assert names and names == _wavs(b / folder), folder
        for name in names:
            x, y = sf.read(a / folder / name, dtype="float32")[0], sf.read(b / folder / name, dtype="float32")[0]
            assert np.array_equal(x, y), f"{folder}/{name}: samples differ"
    for effect, arch in trained_models(params):
        model = f"models/{effect}/{arch}"
        wa = torch.load(a / model / "model.pt", weights_only=False)["state_dict"]
        wb = torch.load(b / model / "model.pt", weights_only=False)["state_dict"]
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.allclose(wa[key], wb[key], rtol=REL_TOL, atol=0), f"{model}: {key}"
        losses = [_losses(x / model / "history.csv") for x in (a, b)]
        _assert_close(losses[0], losses[1], f"{model}/history.csv")
        metrics = f"reports/effects/{effect}/{arch}/metrics.json"
        _assert_close(json.loads((a / metrics).read_text()), json.loads((b / metrics).read_text()), metrics)


def test_two_fresh_dvc_repro_runs_agree(project: Project, tmp_path: Path) -> None:
    again = Project(shutil.copytree(project.path, tmp_path / "again", symlinks=True))
    for run in (project, again):
        run.run("dvc", "repro")
    hashes = data_hashes(project)
    assert set(hashes) == {"data/clean"} | {f"data/processed/{e}" for e in project.params["effects"]}
    assert_same_results(project.path, again.path, project.params)
    assert hashes == data_hashes(again)
