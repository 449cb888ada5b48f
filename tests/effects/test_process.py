"""process_dataset: the registry, the split layout, and nothing left behind on errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfx.audio import read_audio
from deepfx.effects import BACKENDS, process_dataset
from deepfx.errors import DeepfxError

from .helpers import SAMPLE_RATE

LOW_PASS = {"backend": "pedalboard", "chain": [{"plugin": "LowpassFilter",
                                                "cutoff_frequency_hz": 800.0}]}
needs_lv2 = pytest.mark.skipif(shutil.which("lv2info") is None, reason="lv2info is not installed")


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary folders that atomic_dir would leave behind on a bug."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_registry_lists_every_backend() -> None:
    assert list(BACKENDS) == ["pedalboard", "vst3", "lv2", "reaper"]


def test_keeps_file_names_across_splits(clean_dir, tmp_path) -> None:
    out_dir = tmp_path / "processed" / "low_pass"
    written = process_dataset("low_pass", LOW_PASS, clean_dir, out_dir, SAMPLE_RATE)
    expected = ["train/a.wav", "train/b.wav", "valid/c.wav", "test/d.wav"]
    assert written == [out_dir / name for name in expected]
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.wav")) == sorted(expected)
    for name in expected:
        x, y = read_audio(clean_dir / name, SAMPLE_RATE), read_audio(out_dir / name, SAMPLE_RATE)
        assert y.shape == x.shape and not np.allclose(x, y)
    assert leftovers(out_dir.parent) == []


def test_replaces_a_previous_result_completely(clean_dir, tmp_path) -> None:
    out_dir = tmp_path / "processed"
    (out_dir / "train").mkdir(parents=True)
    (out_dir / "train" / "stale.wav").write_bytes(b"old")
    process_dataset("low_pass", LOW_PASS, clean_dir, out_dir, SAMPLE_RATE)
    assert not (out_dir / "train" / "stale.wav").exists()


@pytest.mark.parametrize("spec, message", [
    pytest.param({"backend": "nope"}, "effects.e.backend: 'nope' is not a backend; choose one "
                  "of pedalboard, vst3, lv2, reaper", id="unknown backend"),
    pytest.param({"chain": []}, "effects.e.backend: None is not a backend", id="no backend"),
    pytest.param({"backend": "pedalboard", "chain": [{"plugin": "Gain"}, {"plugin": "Foo"}]},
                 "effects.e.chain[1].plugin: unknown pedalboard plugin 'Foo'",
                 id="unknown plugin"),
    pytest.param({"backend": "pedalboard", "chain": [{"plugin": "Gain", "gain": 1.0}]},
                 "effects.e.chain[0].gain: Gain has no parameter 'gain'; it accepts gain_db",
                 id="bad kwarg"),
    pytest.param({"backend": "lv2", "uri": "http://example.org/nothing"},
                 "effects.e.uri: LV2 plugin 'http://example.org/nothing' is not installed",
                 id="missing lv2 plugin", marks=[pytest.mark.lv2, needs_lv2]),
    pytest.param({"backend": "vst3", "path": "no/such/Plugin.vst3"},
                 "effects.e.path: no VST3 plugin at 'no/such/Plugin.vst3'", id="missing vst3"),
    pytest.param({"backend": "reaper", "fx_chain": "no/such.RfxChain"},
                 "effects.e.fx_chain: no Reaper FX chain file at 'no/such.RfxChain'",
                 id="missing fx_chain"),
])
def test_bad_spec_names_the_parameter_and_leaves_nothing(spec, message, clean_dir,
                                                         tmp_path) -> None:
    out_dir = tmp_path / "processed" / "e"
    with pytest.raises(DeepfxError) as caught:
        process_dataset("e", spec, clean_dir, out_dir, SAMPLE_RATE)
    assert str(caught.value).startswith(message)
    assert not out_dir.exists()
    assert not out_dir.parent.exists() or leftovers(out_dir.parent) == []


def test_failure_after_some_files_leaves_no_out_dir(clean_dir, tmp_path) -> None:
    (clean_dir / "test" / "e.wav").write_bytes(b"not audio")  # processed last
    out_dir = tmp_path / "processed" / "low_pass"
    with pytest.raises(DeepfxError, match=r"e\.wav: cannot be read as audio"):
        process_dataset("low_pass", LOW_PASS, clean_dir, out_dir, SAMPLE_RATE)
    assert not out_dir.exists() and leftovers(out_dir.parent) == []


def test_missing_or_empty_clean_dir_is_a_clear_error(tmp_path) -> None:
    out_dir = tmp_path / "processed"
    with pytest.raises(DeepfxError, match=r"clean: the clean audio folder does not exist"):
        process_dataset("low_pass", LOW_PASS, tmp_path / "clean", out_dir, SAMPLE_RATE)
    (tmp_path / "clean" / "train").mkdir(parents=True)
    with pytest.raises(DeepfxError, match=r"clean: no wav files in train/, valid/, test/"):
        process_dataset("low_pass", LOW_PASS, tmp_path / "clean", out_dir, SAMPLE_RATE)
    assert not out_dir.exists()
