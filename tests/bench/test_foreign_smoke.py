"""The foreign-effects benchmark's harness, run small (``bench/foreign.py --smoke``): one real
plugin per class through the real Snakefile, then scored on the test split and on the takes."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("lv2apply") is None or shutil.which("fluidsynth") is None,
                       reason="needs lilv-utils, the LV2 plugin packages and fluidsynth (.ci/run)"),
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """``foreign.py --smoke`` run once: its work folder, its results and the run."""
    tmp = tmp_path_factory.mktemp("foreign")
    out = tmp / "foreign.csv"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "foreign.py"), "--smoke", "--budget", "5",
         "--work", str(tmp / "work"), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp / "work", out, run


def test_smoke_run_scores_every_class_on_both_materials(smoke) -> None:
    _, out, run = smoke
    rows = list(csv.DictReader(out.open()))
    spec = yaml.safe_load((ROOT / "bench" / "foreign.yaml").read_text())
    classes = {name.split("__")[0] for name in spec["effects"]}
    assert {r["class"] for r in rows} == classes
    free = {r["effect"] for r in rows if r["free_running"] == "True"}
    assert {name.split("__")[0] for name in free} == classes & {"chorus", "flanger", "phaser"}
    for effect in {r["effect"] for r in rows}:
        materials = {r["material"]: r for r in rows if r["effect"] == effect}
        assert set(materials) == {"test", "takes"}, effect
        for r in materials.values():
            assert math.isfinite(float(r["esr"])) and math.isfinite(float(r["log_mel_ratio"]))
            assert float(r["esr_clean"]) > 0, f"{effect}: the effect changes the takes"
    assert "targets met on the takes" in run.stdout


@pytest.mark.skipif(not (ROOT / ".venv-nam" / "bin" / "python").is_file(),
                    reason="needs neural-amp-modeler's venv (make nam-venv)")
def test_nam_side_by_side_trains_nams_models_and_scores_them_beside_deepfx(smoke, tmp_path):
    """NAM's own trainer (WaveNet and LSTM) on the smoke run's drive capture, a few seconds
    each; both NAM models play the takes and are scored beside deepfx's model."""
    work, foreign, _ = smoke
    drive = next(r["effect"] for r in csv.DictReader(foreign.open()) if r["class"] == "drive")
    out = tmp_path / "nam.csv"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "nam_side_by_side.py"), "--smoke", "--budget", "3",
         "--effects", drive, "--work", str(work), "--foreign", str(foreign), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {r["trainer"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"deepfx", "nam_wavenet", "nam_lstm"}
    for r in rows.values():
        assert r["effect"] == drive and math.isfinite(float(r["esr_takes"]))
    assert (work / "nam" / drive / "wavenet" / "model.nam").is_file()
    assert "deepfx lowest on" in run.stdout
