"""The pedalboard and vst3 backends: default effects, streaming, validation, the cabinet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pedalboard
import pytest
import yaml

from deepfx.audio import read_audio
from deepfx.effects.cabinet import Cabinet
from deepfx.effects.pedalboard_fx import (
    BLOCK_SECONDS,
    accepted_parameters,
    apply_stages,
    build_chain,
    process,
    process_vst3,
    stream,
)
from deepfx.errors import DeepfxError

from .helpers import SAMPLE_RATE, guitar_notes

PARAMS = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
DEFAULT_EFFECTS = {
    name: spec for name, spec in PARAMS["effects"].items() if spec["backend"] == "pedalboard"
}


def one_shot(chain: list[dict], x: np.ndarray) -> np.ndarray:
    """Reference: pedalboard's own single call on the whole signal."""
    plugins = [
        getattr(pedalboard, e["plugin"])(**{k: v for k, v in e.items() if k != "plugin"})
        for e in chain
    ]
    return pedalboard.Pedalboard(plugins).process(x[None, :], SAMPLE_RATE)[0]


def test_params_has_default_pedalboard_effects() -> None:
    assert len(DEFAULT_EFFECTS) >= 10


@pytest.mark.parametrize("name", sorted(DEFAULT_EFFECTS))
def test_default_effect_changes_one_second_of_audio(name, make_wav, tmp_path) -> None:
    src, x = make_wav("in.wav", seconds=1.0)
    dst = tmp_path / "out.wav"
    process([src], [dst], DEFAULT_EFFECTS[name], SAMPLE_RATE, name)
    y = read_audio(dst, SAMPLE_RATE)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.isfinite(y).all()
    assert np.sqrt(np.mean(y**2)) > 1e-3, "the effect silenced the audio"
    assert np.abs(y - x).max() > 1e-2, "the effect left the audio unchanged"


@pytest.mark.parametrize("name", ["distortion", "fuzz", "compressor", "chorus", "delay", "reverb"])
def test_streamed_file_equals_one_call(name, make_wav, tmp_path) -> None:
    seconds = 3.5 * BLOCK_SECONDS  # several blocks and a partial last one
    src, x = make_wav("in.wav", seconds=seconds)
    dst = tmp_path / "out.wav"
    process([src], [dst], DEFAULT_EFFECTS[name], SAMPLE_RATE, name)
    expected = one_shot(DEFAULT_EFFECTS[name]["chain"], x)
    np.testing.assert_allclose(read_audio(dst, SAMPLE_RATE), expected, atol=1e-6)


@pytest.mark.parametrize("chain", [
    [{"plugin": "Resample", "target_sample_rate": 8000.0}, {"plugin": "Reverb"}],
    [{"plugin": "BrickwallLimiter", "ceiling_db": -12.0}, {"plugin": "Delay", "mix": 0.5}],
])
def test_stream_compensates_latency_at_any_block_size(chain) -> None:
    x = guitar_notes(1.3)
    board = pedalboard.Pedalboard(
        [getattr(pedalboard, e["plugin"])(**{k: v for k, v in e.items() if k != "plugin"})
         for e in chain]
    )
    expected = one_shot(chain, x)
    for block in (1000, 4096, 44100):
        np.testing.assert_allclose(stream(board, x, SAMPLE_RATE, block), expected, atol=1e-6)


def test_stream_aligns_reported_latency_and_gives_up_on_huge_latency() -> None:
    from pedalboard_native._internal import AddLatency  # pedalboard's test plugin

    x = guitar_notes(0.7)
    delayed = pedalboard.Pedalboard([AddLatency(samples=5000)])
    np.testing.assert_array_equal(stream(delayed, x, SAMPLE_RATE, 1000), x)
    stuck = pedalboard.Pedalboard([AddLatency(samples=11 * SAMPLE_RATE)])
    with pytest.raises(DeepfxError, match="AddLatency hold back more than 10 s"):
        stream(stuck, x, SAMPLE_RATE, SAMPLE_RATE)


def test_pitch_shift_is_not_silenced_by_streaming() -> None:
    chain = DEFAULT_EFFECTS["pitch_shift"]["chain"]
    x = guitar_notes(2.5)
    y = apply_stages(build_chain(chain, SAMPLE_RATE, "effects.pitch_shift.chain"), x)
    np.testing.assert_allclose(y, one_shot(chain, x), atol=1e-6)
    assert np.sqrt(np.mean(y[SAMPLE_RATE:] ** 2)) > 0.05


def test_amp_cab_applies_the_cabinet_between_pedalboard_plugins() -> None:
    chain = DEFAULT_EFFECTS["amp_cab"]["chain"]
    cab_at = [e["plugin"] for e in chain].index("Cabinet")
    x = guitar_notes(1.5)
    cab = Cabinet(**{k: v for k, v in chain[cab_at].items() if k != "plugin"})
    expected = one_shot(chain[cab_at + 1:], cab.process(one_shot(chain[:cab_at], x), SAMPLE_RATE))
    y = apply_stages(build_chain(chain, SAMPLE_RATE, "effects.amp_cab.chain"), x)
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_accepted_parameters_reads_pybind_and_python_signatures() -> None:
    assert accepted_parameters(pedalboard.Convolution) == [
        "impulse_response_filename", "mix", "sample_rate"
    ]
    assert accepted_parameters(pedalboard.Invert) == []
    assert accepted_parameters(Cabinet) == ["resonance_hz", "cutoff_hz", "length_ms"]


@pytest.mark.parametrize("chain, message", [
    ([{"plugin": "Gain"}, {"plugin": "Foo"}],
     "effects.fx.chain[1].plugin: unknown pedalboard plugin 'Foo'; choose one of Bitcrush"),
    ([{"plugin": "Gain", "gain": 3.0}],
     "effects.fx.chain[0].gain: Gain has no parameter 'gain'; it accepts gain_db"),
    ([{"plugin": "Chorus", "rate": 1.0}],
     "effects.fx.chain[0].rate: Chorus has no parameter 'rate'; it accepts rate_hz, depth, "
     "centre_delay_ms, feedback, mix"),
    ([{"plugin": "Delay", "feedback": 2.0}], "effects.fx.chain[0]: invalid Delay parameters"),
    ([{"plugin": "Gain", "gain_db": "loud"}], "effects.fx.chain[0]: invalid Gain parameters"),
    ([{"plugin": "Cabinet", "cutoff_hz": 30000.0}], "effects.fx.chain[0]: invalid Cabinet "
     "parameters {'cutoff_hz': 30000.0}: cutoff_hz must be above resonance_hz"),
    ([{"gain_db": 3.0}], "effects.fx.chain[0]: must be a mapping like {plugin: Gain"),
    ([], "effects.fx.chain: must be a non-empty list"),
])
def test_bad_chain_names_the_parameter(chain, message) -> None:
    with pytest.raises(DeepfxError) as caught:
        build_chain(chain, SAMPLE_RATE, "effects.fx.chain")
    assert str(caught.value).startswith(message)


def test_missing_vst3_path_is_a_clear_error(make_wav, tmp_path) -> None:
    src, _ = make_wav("in.wav")
    spec = {"backend": "vst3", "path": str(tmp_path / "Nothing.vst3"), "parameters": {}}
    with pytest.raises(DeepfxError, match=r"^effects\.synth\.path: no VST3 plugin at .*Nothing"):
        process_vst3([src], [tmp_path / "out.wav"], spec, SAMPLE_RATE, "synth")
    assert not (tmp_path / "out.wav").exists()


def test_cabinet_response_is_deterministic_normalised_and_cab_shaped() -> None:
    cab = Cabinet(resonance_hz=110.0, cutoff_hz=4500.0, length_ms=40.0)
    h = cab.impulse_response(SAMPLE_RATE)
    assert len(h) == round(0.040 * SAMPLE_RATE)
    np.testing.assert_array_equal(h, cab.impulse_response(SAMPLE_RATE))
    spectrum = np.abs(np.fft.rfft(h, 1 << 16))
    freqs = np.fft.rfftfreq(1 << 16, 1 / SAMPLE_RATE)
    gain_db = lambda f: 20 * np.log10(spectrum[np.argmin(np.abs(freqs - f))])  # noqa: E731
    assert spectrum.max() == pytest.approx(1.0, rel=1e-4)
    assert gain_db(110.0) > -1.0 > gain_db(500.0)  # the low resonance is the peak
    assert gain_db(40.0) < -6.0  # below the resonance the box rolls off
    assert gain_db(9000.0) < -40.0  # steep treble loss above cutoff_hz
    assert np.abs(h[-len(h) // 10:]).max() < 1e-3 * np.abs(h).max()  # decayed by the end


def test_cabinet_convolution_is_exact() -> None:
    cab = Cabinet(resonance_hz=90.0, cutoff_hz=3000.0, length_ms=30.0)
    x = guitar_notes(0.3)
    expected = np.convolve(x.astype(np.float64), cab.impulse_response(SAMPLE_RATE))[: len(x)]
    np.testing.assert_allclose(cab.process(x, SAMPLE_RATE), expected, atol=1e-5)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"resonance_hz": 0.0}, "resonance_hz"),
    ({"cutoff_hz": 50.0}, "cutoff_hz"),
    ({"length_ms": 2.0}, "length_ms"),
    ({"length_ms": "long"}, "length_ms"),
])
def test_cabinet_rejects_unusable_values(kwargs, parameter) -> None:
    with pytest.raises(ValueError, match=f"^{parameter} must"):
        Cabinet(**kwargs).check(SAMPLE_RATE)
