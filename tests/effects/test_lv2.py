"""The lv2 backend, with guitarix's Tube Screamer through Debian's lv2apply."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfx.audio import read_audio, write_audio
from deepfx.effects.lv2 import plugin_ports, process
from deepfx.errors import DeepfxError

from .helpers import SAMPLE_RATE

TS9 = "http://guitarix.sourceforge.net/plugins/gxts9#ts9sim"
needs_lv2 = pytest.mark.skipif(shutil.which("lv2apply") is None, reason="lv2apply is not installed")


def sine(tmp_path: Path, freq_hz: float = 220.0) -> tuple[Path, np.ndarray]:
    """1 s of a 0.5-amplitude sine at ``freq_hz`` (Hz) in ``tmp_path/sine.wav``."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    x = (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    path = tmp_path / "sine.wav"
    write_audio(path, x, SAMPLE_RATE)
    return path, x


def harmonics(y: np.ndarray, freq_hz: float, count: int = 5) -> np.ndarray:
    """Amplitudes of the first ``count`` harmonics of ``freq_hz``, relative to the fundamental."""
    y = y[len(y) // 4:]  # steady state only
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    amps = np.array([spectrum[np.argmin(np.abs(freqs - k * freq_hz))] for k in range(1, count + 1)])
    return amps / amps[0]


@pytest.mark.parametrize("drive", [0.3, 1.0])
@pytest.mark.lv2
@needs_lv2
def test_tube_screamer_adds_harmonics(drive, tmp_path) -> None:
    src, x = sine(tmp_path)
    dst = tmp_path / "out.wav"
    spec = {"backend": "lv2", "uri": TS9,
            "controls": {"fslider0_": -6.0, "fslider1_": 600.0, "fslider2_": drive, "BYPASS": 1}}
    process([src], [dst], spec, SAMPLE_RATE, "ts9")
    info = sf.info(dst)
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "FLOAT")
    y = read_audio(dst, SAMPLE_RATE)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert harmonics(x, 220.0)[1:].max() < 1e-3  # the input is a clean sine
    # the plugin's control smoothing settled during the lead-in: level is steady from the start
    rms = [np.sqrt(np.mean(y[i : i + 4410] ** 2)) for i in (0, len(y) - 4410)]
    assert rms[0] == pytest.approx(rms[1], rel=0.05)
    assert harmonics(y, 220.0)[2] > 0.02  # clipping adds a 3rd harmonic (660 Hz)
    # not a scaled copy: the best gain a·x leaves a large residual
    gain = np.dot(x, y) / np.dot(x, x)
    assert np.sum((y - gain * x) ** 2) > 0.05 * np.sum(y**2)


@pytest.mark.lv2
@needs_lv2
def test_enabled_port_zero_is_dry_so_it_is_refused(tmp_path) -> None:
    bypass = next(p for p in plugin_ports(TS9, "ts9") if p.symbol == "BYPASS")
    assert (bypass.designation, bypass.default) == ("enabled", 1.0)
    src, x = sine(tmp_path)
    dry = tmp_path / "dry.wav"
    subprocess.run(["lv2apply", "-i", str(src), "-o", str(dry), "-c", "BYPASS", "0", TS9],
                   check=True, capture_output=True)
    assert harmonics(read_audio(dry, SAMPLE_RATE), 220.0)[1:].max() < 1e-3
    with pytest.raises(DeepfxError, match=r"^effects\.ts9\.controls\.BYPASS: 0 switches"):
        process([src], [tmp_path / "out.wav"], {"uri": TS9, "controls": {"BYPASS": 0}},
                SAMPLE_RATE, "ts9")


@pytest.mark.lv2
@needs_lv2
def test_runs_the_plugin_at_the_project_rate(make_wav, tmp_path) -> None:
    src, _ = make_wav("in.wav")  # 44.1 kHz file
    dst = tmp_path / "out.wav"
    process([src], [dst], {"uri": TS9}, 48_000, "ts9")
    assert sf.info(dst).samplerate == 48_000
    assert sf.info(dst).frames == len(read_audio(src, 48_000))


@pytest.mark.lv2
@needs_lv2
@pytest.mark.parametrize("controls, message", [
    ({"fslider9_": 1.0}, "effects.ts9.controls.fslider9_: no such control port; the plugin has "
     "fslider0_ (Level, -20..4), fslider1_ (Tone, 100..1000), fslider2_ (Drive, 0..1), "
     "BYPASS (BYPASS, 0..1)"),
    ({"fslider2_": 5.0}, "effects.ts9.controls.fslider2_: 5.0 is outside the port's range 0..1"),
    ({"fslider2_": "max"}, "effects.ts9.controls.fslider2_: must be a number, got 'max'"),
])
def test_bad_controls_name_the_port(controls, message, make_wav, tmp_path) -> None:
    src, _ = make_wav("in.wav")
    with pytest.raises(DeepfxError) as caught:
        process([src], [tmp_path / "out.wav"], {"uri": TS9, "controls": controls},
                SAMPLE_RATE, "ts9")
    assert str(caught.value).startswith(message)


@pytest.mark.lv2
@needs_lv2
def test_missing_plugin_is_a_clear_error(make_wav, tmp_path) -> None:
    src, _ = make_wav("in.wav")
    with pytest.raises(DeepfxError) as caught:
        process([src], [tmp_path / "out.wav"], {"uri": "http://example.org/no-such-plugin"},
                SAMPLE_RATE, "od")
    assert str(caught.value) == (
        "effects.od.uri: LV2 plugin 'http://example.org/no-such-plugin' is not installed "
        "(lv2ls lists the installed ones)"
    )


def test_missing_lv2apply_says_what_to_install(make_wav, tmp_path, monkeypatch) -> None:
    src, _ = make_wav("in.wav")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeepfxError, match=r"^effects\.ts9\.backend: .*lv2apply.*lilv-utils"):
        process([src], [tmp_path / "out.wav"], {"uri": TS9}, SAMPLE_RATE, "ts9")


BUTTERWORTH_HP = "http://plugin.org.uk/swh-plugins/butthigh_iir"
needs_swh = pytest.mark.skipif(
    shutil.which("lv2info") is None
    or subprocess.run(["lv2info", BUTTERWORTH_HP], capture_output=True).returncode != 0,
    reason="swh-lv2 is not installed",
)


@needs_swh
def test_sample_rate_relative_ranges_are_checked_in_hz(tmp_path: Path) -> None:
    """SWH's Butterworth high-pass states its cut-off range as 0.0001..0.45 of the sample rate:
    300 Hz is inside it (and filters a 100 Hz sine away), 30 kHz is not."""
    src, x = sine(tmp_path, 100.0)
    out = tmp_path / "out.wav"
    spec = {"backend": "lv2", "uri": BUTTERWORTH_HP, "controls": {"cutoff": 300.0}}
    process([src], [out], spec, SAMPLE_RATE, "hp")
    y = read_audio(out, SAMPLE_RATE)[SAMPLE_RATE // 2:]
    assert np.sqrt(np.mean(y**2)) < 0.2 * np.sqrt(np.mean(x**2))
    spec["controls"]["cutoff"] = 30000.0
    with pytest.raises(DeepfxError, match=r"cutoff: 30000.0 is outside the port's range 4\.41\.\.19845"):
        process([src], [tmp_path / "other.wav"], spec, SAMPLE_RATE, "hp")
    assert not (tmp_path / "other.wav").exists()
