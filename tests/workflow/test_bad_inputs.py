"""Bad input given to the real Snakemake and DVC: one clear error each, no partial output."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import Project


def assert_failed_with(proc, message: str) -> None:
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert text.count(message) >= 1, text[-3000:]


def test_corrupt_training_audio_stops_generate(project: Project) -> None:
    (project.path / "data/training_audio/riff.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    proc = project.run("snakemake", "--cores", "1", "data/clean", check=False)
    assert_failed_with(proc, "deepfx: error: data/training_audio/riff.wav: cannot be read as audio")
    assert not (project.path / "data/clean").exists()
    assert not any(p.name.startswith(".clean") for p in (project.path / "data").iterdir())


def test_empty_training_audio_stops_dvc_repro(project: Project) -> None:
    sf.write(project.path / "data/training_audio/nothing.wav", np.zeros(0), 16000)
    proc = project.run("dvc", "repro", "generate", check=False)
    assert_failed_with(proc, "deepfx: error: data/training_audio/nothing.wav: the audio file is empty")
    assert not (project.path / "data/clean").exists()


@pytest.mark.parametrize("engine", [("snakemake", "--cores", "1", "--dry-run"), ("dvc", "repro")])
def test_unknown_backend_is_refused_before_anything_runs(project: Project, engine) -> None:
    params = project.params
    params["effects"]["low_pass"]["backend"] = "vst4"
    project.params = params
    proc = project.run(*engine, check=False)
    assert_failed_with(proc, "params.yaml: effects.low_pass.backend: 'vst4' is not one of")
    assert not (project.path / "data").joinpath("clean").exists()


def test_unknown_effect_has_no_job(project: Project) -> None:
    proc = project.run("snakemake", "--cores", "1", "data/processed/flanger", check=False)
    assert_failed_with(proc, "data/processed/flanger")
    assert not (project.path / "data/processed").exists()


@pytest.mark.skipif(shutil.which("lv2apply") is None, reason="needs Debian's lilv-utils")
def test_missing_lv2_plugin_stops_process(project: Project) -> None:
    params = project.params
    params["effects"]["wah"] = {
        "backend": "lv2", "uri": "http://example.org/plugins/not-installed", "model": {"arch": "fir"}
    }
    project.params = params
    proc = project.run("snakemake", "--cores", "1", "data/processed/wah", check=False)
    assert_failed_with(
        proc, "deepfx: error: effects.wah.uri: LV2 plugin 'http://example.org/plugins/not-installed' is not installed"
    )
    assert (project.path / "data/clean").is_dir()
    assert not (project.path / "data/processed/wah").exists()


@pytest.mark.slow
@pytest.mark.lv2
@pytest.mark.skipif(shutil.which("lv2apply") is None, reason="needs Debian's lilv-utils and guitarix-lv2")
def test_real_lv2_tube_screamer_end_to_end(project: Project) -> None:
    """guitarix's Tube Screamer through lv2apply, then trained, scored and plotted by the DAG."""
    params = project.params
    params["effects"] = {
        "tube_screamer": {
            "backend": "lv2",
            "uri": "http://guitarix.sourceforge.net/plugins/gxts9#ts9sim",
            "controls": {"fslider0_": -6.0, "fslider1_": 600.0, "fslider2_": 0.8},
            "model": params["effects"]["distortion"]["model"],
        }
    }
    params["archs"] = []
    project.params = params
    project.run("snakemake", "--cores", "2")
    clean, _ = sf.read(next((project.path / "data/clean/test").glob("*.wav")))
    name = next((project.path / "data/clean/test").glob("*.wav")).name
    wet, _ = sf.read(project.path / "data/processed/tube_screamer/test" / name)
    assert wet.shape == clean.shape and not np.allclose(wet, clean, atol=1e-3)
    assert (project.path / "reports/effects/tube_screamer/tcn/metrics.json").is_file()
    assert "tube_screamer" in (project.path / "reports/index.html").read_text()
