"""Free-running effects: a lead-in before each file, so an LFO does not start with the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from deepfx.audio import read_audio
from deepfx.config import validate_params
from deepfx.effects import apply_effect, lead_in_audio
from deepfx.errors import DeepfxError

from conftest import tiny_params

from .helpers import SAMPLE_RATE

CHORUS = {"backend": "pedalboard", "chain": [{"plugin": "Chorus", "rate_hz": 2.0, "depth": 0.5,
                                              "centre_delay_ms": 7.0, "mix": 0.5}]}
FREE = {"seconds": [0.1, 3.0], "seed": 3}


def run(spec: dict, paths: list[Path], tmp_path: Path, tag: str) -> list[np.ndarray]:
    outs = [tmp_path / f"{tag}_{p.name}" for p in paths]
    apply_effect("chorus", spec, paths, outs, SAMPLE_RATE)
    return [read_audio(p, SAMPLE_RATE) for p in outs]


def test_a_lead_in_moves_the_lfo_and_is_cut_off(make_wav, tmp_path: Path) -> None:
    a, x = make_wav("a.wav", seconds=1.0)
    (fixed,) = run(CHORUS, [a], tmp_path, "fixed")
    (free,) = run({**CHORUS, "lead_in": FREE}, [a], tmp_path, "free")
    (again,) = run({**CHORUS, "lead_in": FREE}, [a], tmp_path, "again")
    assert free.shape == fixed.shape == x.shape
    assert np.array_equal(free, again), "the same seed and file name give the same lead-in"
    error = np.sum((free - fixed) ** 2) / np.sum(fixed**2)
    assert error > 0.01, "the LFO must be at another phase when the file starts"


def test_each_files_lead_in_depends_on_its_name_only(make_wav, tmp_path: Path) -> None:
    a, _ = make_wav("a.wav")
    b, _ = make_wav("b.wav")
    spec = {**CHORUS, "lead_in": FREE}
    _, b_with_a = run(spec, [a, b], tmp_path, "both")
    (b_alone,) = run(spec, [b], tmp_path, "alone")
    assert np.array_equal(b_with_a, b_alone)
    x = np.ones(1000, dtype=np.float32)
    lengths = {len(lead_in_audio(x, f"f{k}.wav", FREE, SAMPLE_RATE)) for k in range(20)}
    assert len(lengths) > 10 and min(lengths) >= 0.1 * SAMPLE_RATE and max(lengths) <= 3 * SAMPLE_RATE


def test_a_time_invariant_effect_ignores_a_silent_lead_in(make_wav, tmp_path: Path) -> None:
    low_pass = {"backend": "pedalboard", "chain": [{"plugin": "LowpassFilter",
                                                    "cutoff_frequency_hz": 800.0}]}
    x = np.ones(10, dtype=np.float32)
    name = next(f"f{k}.wav" for k in range(100)
                if not lead_in_audio(x, f"f{k}.wav", FREE, SAMPLE_RATE).any())  # a silent one
    path, _ = make_wav(name)
    outs = [tmp_path / "plain.wav", tmp_path / "led.wav"]
    apply_effect("low_pass", low_pass, [path], outs[:1], SAMPLE_RATE)
    apply_effect("low_pass", {**low_pass, "lead_in": FREE}, [path], outs[1:], SAMPLE_RATE)
    plain, led = (read_audio(p, SAMPLE_RATE) for p in outs)
    np.testing.assert_allclose(led, plain, atol=1e-5)


@pytest.mark.parametrize("lead_in, message", [
    ({"seconds": [-1.0, 2.0]}, "effects.chorus.lead_in.seconds[0]: -1.0 is less than the minimum"),
    ({"seconds": [1.0]}, "effects.chorus.lead_in.seconds: [1.0] is too short"),
    ({"secs": [1.0, 2.0]}, "effects.chorus.lead_in: Additional properties are not allowed ('secs'"),
])
def test_bad_lead_ins_are_one_clear_error(lead_in: dict, message: str) -> None:
    params = tiny_params()
    params["effects"] = {"chorus": {**CHORUS, "lead_in": lead_in, "model": {"arch": "fir"}}}
    with pytest.raises(DeepfxError, match=re.escape(message)):
        validate_params(params)
