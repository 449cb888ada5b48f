"""The reaper backend against a stand-in executable (fake_reaper.py); real Reaper is untested."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepfx.audio import read_audio
from deepfx.effects.reaper import batch_file_list, process
from deepfx.errors import DeepfxError

from .helpers import SAMPLE_RATE

FX_CHAIN = """BYPASS 0 0 0
<JS "Utility/volume" ""
  -6.000000 0.000000 - - - - - - - - - - - - - -
>
FLOATPOS 0 0 0 0
FXID {5C2A7D3E-1B4F-4E55-9F0A-2D6B8C1E7A90}
WAK 0 0
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A folder holding an executable ``reaper`` that runs fake_reaper.py."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "reaper"
    script = Path(__file__).with_name("fake_reaper.py")
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def fx_chain(tmp_path: Path) -> Path:
    path = tmp_path / "volume -6 dB.RfxChain"  # a space, as Reaper users name them
    path.write_text(FX_CHAIN)
    return path


def test_renders_through_the_batch_converter(stand_in, fx_chain, make_wav, tmp_path,
                                             monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(stand_in))
    monkeypatch.setenv("FAKE_REAPER_LOG", str(tmp_path / "seen.txt"))
    inputs = [make_wav(f"clean/{name}.wav", seconds=0.5) for name in ("a", "b", "c")]
    outputs = [tmp_path / "out" / f"{name}.wav" for name in ("x", "y", "z")]
    outputs[0].parent.mkdir()
    spec = {"backend": "reaper", "fx_chain": str(fx_chain)}
    process([p for p, _ in inputs], outputs, spec, SAMPLE_RATE, "vol")
    for (_, x), out in zip(inputs, outputs):
        info = sf.info(out)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "FLOAT")
        np.testing.assert_allclose(read_audio(out, SAMPLE_RATE), x * 10 ** (-6 / 20), atol=1e-5)
    argv, *lines = (tmp_path / "seen.txt").read_text().splitlines()
    assert argv.split()[-2] == "-batchconvert" and "-newinst" in argv.split()
    assert [Path(line).name for line in lines[:3]] == ["0.wav", "1.wav", "2.wav"]
    assert all(Path(line).is_absolute() for line in lines[:3])
    assert lines[3] == "<CONFIG" and lines[-1] == ">"
    assert f'FXCHAIN "{fx_chain.resolve()}"' in lines
    expected = {"SRATE 44100", "NCH 1", "PAD_START 0", "PAD_END 0", "OUTPATTERN '$source'"}
    assert expected <= set(lines)


def test_executable_can_be_given_in_the_spec(stand_in, fx_chain, make_wav, tmp_path,
                                             monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    src, x = make_wav("in.wav", seconds=0.3)
    spec = {"fx_chain": str(fx_chain), "executable": str(stand_in / "reaper")}
    process([src], [tmp_path / "out.wav"], spec, SAMPLE_RATE, "vol")
    assert read_audio(tmp_path / "out.wav", SAMPLE_RATE).shape == x.shape


def test_missing_reaper_says_how_to_provide_it(fx_chain, make_wav, tmp_path,
                                               monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    src, _ = make_wav("in.wav")
    with pytest.raises(DeepfxError) as caught:
        process([src], [tmp_path / "out.wav"], {"fx_chain": str(fx_chain)}, SAMPLE_RATE, "vol")
    assert str(caught.value) == (
        "effects.vol: Reaper is not installed; put `reaper` on PATH or set effects.vol.executable"
    )
    with pytest.raises(DeepfxError, match=r"^effects\.vol\.executable: '/no/reaper' is not"):
        process([src], [tmp_path / "out.wav"],
                {"fx_chain": str(fx_chain), "executable": "/no/reaper"}, SAMPLE_RATE, "vol")


def test_missing_fx_chain_is_a_clear_error(stand_in, make_wav, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(stand_in))
    src, _ = make_wav("in.wav")
    with pytest.raises(DeepfxError, match=r"^effects\.vol\.fx_chain: no Reaper FX chain file"):
        process([src], [tmp_path / "out.wav"], {"fx_chain": str(tmp_path / "none.RfxChain")},
                SAMPLE_RATE, "vol")


def test_reaper_failure_is_reported(stand_in, make_wav, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(stand_in))
    src, _ = make_wav("in.wav")
    chain = tmp_path / "empty.RfxChain"
    chain.write_text("BYPASS 0 0 0\n")  # the stand-in only knows JS utility/volume
    with pytest.raises(DeepfxError, match=r"^effects\.vol: Reaper's batch converter failed "
                                          r"\(exit 1\): fake reaper: .*no JS utility/volume"):
        process([src], [tmp_path / "out.wav"], {"fx_chain": str(chain)}, SAMPLE_RATE, "vol")


def test_file_list_quotes_paths_reaper_can_read(tmp_path) -> None:
    out_dir, chain = tmp_path.resolve() / "it's out", tmp_path.resolve() / 'say "hi".RfxChain'
    text = batch_file_list([tmp_path / "a.wav"], out_dir, chain, SAMPLE_RATE, "effects.vol")
    assert f'OUTPATH "{out_dir}"' in text.splitlines()
    assert f"FXCHAIN '{chain}'" in text.splitlines()
    with pytest.raises(DeepfxError, match="tab or line break"):
        batch_file_list([tmp_path / "a\tb.wav"], tmp_path, tmp_path / "c", SAMPLE_RATE, "w")
