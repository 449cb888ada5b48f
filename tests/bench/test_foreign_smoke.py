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


def test_smoke_run_scores_every_class_on_both_materials(tmp_path: Path) -> None:
    out = tmp_path / "foreign.csv"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "foreign.py"), "--smoke", "--budget", "5",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
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
