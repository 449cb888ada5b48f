"""deepfx apply: streaming equals whole-file processing, resampling, flat memory, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from deepfx.apply import ContextStream, StateStream, TCNStream, apply_file, open_stream
from deepfx.checkpoint import save_torch
from deepfx.cli import main
from deepfx.errors import DeepfxError
from deepfx.models import build_model

#: Streams work on small blocks: one torch thread is fastest (and immune to a busy machine).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 16_000
#: Small models of every kind a stream handles (receptive fields 16, 29 and 14 samples).
CONFIGS = {
    "cnn": ("cnn", {"window": 16, "channels": 4, "hidden": 8}),
    "tcn-gated": ("tcn", {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4], "stacks": 2,
                          "activation": "gated"}),
    "tcn-tanh": ("tcn", {"channels": 5, "kernel_size": 2, "dilations": [1, 3, 9], "stacks": 1,
                         "activation": "tanh"}),
}
#: Recurrent models (unbounded memory: only their own stream() is exact; warm-up 64 samples).
RECURRENT = {
    "lstm": ("lstm", {"layers": 2, "hidden": 6, "warmup": 64}),
    "rnn-gru": ("rnn", {"cell": "gru", "hidden": 5, "skip": True, "warmup": 64}),
}


def make_model(
    name: str, seed: int = 0, configs: dict = CONFIGS, sample_rate: int = SR
) -> torch.nn.Module:
    """An untrained model of configs[name] (built at ``sample_rate`` Hz where its architecture
    takes one) with weights spread enough to be non-trivial."""
    arch, cfg = configs[name]
    torch.manual_seed(seed)
    model = build_model(arch, cfg, sample_rate=sample_rate).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def save_model(path: Path, name: str, sample_rate: int = SR, seed: int = 0,
               configs: dict = CONFIGS) -> Path:
    """Write configs[name] as a model.pt like deepfx train does (with made-up training figures)."""
    arch, cfg = configs[name]
    model = make_model(name, seed, configs, sample_rate)
    save_torch(path, {
        "effect": "fuzz", "arch": arch, "config": cfg, "sample_rate": sample_rate,
        "receptive_field": model.receptive_field,
        "n_params": sum(p.numel() for p in model.parameters()), "epochs": 1, "best_epoch": 1,
        "best_valid_loss": 0.125, "train_seconds": 1.0, "state_dict": model.state_dict(),
    })
    return path


def whole(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """(channels, n) → (channels, n): one forward pass over the whole signal."""
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))[:, None])[:, 0].numpy()


def signal_(channels: int, n: int, seed: int = 1) -> np.ndarray:
    """(channels, n) float32 test audio: noisy sines at ±0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = [0.6 * np.sin(2 * np.pi * (110 + 97 * c) * t) + 0.2 * rng.uniform(-1, 1, n) for c in range(channels)]
    return np.asarray(x, np.float32)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("stream_class", [ContextStream, open_stream])
def test_streaming_in_uneven_blocks_equals_one_pass(name, stream_class):
    model = make_model(name)
    x = signal_(2, 3001)
    stream = stream_class(model, 2)
    cuts = [0, 0, 1, 2, 7, 7, 64, 600, 1999, 3001]  # empty, single-sample and rf-crossing blocks
    y = np.concatenate([stream.process(x[:, a:b]) for a, b in zip(cuts, cuts[1:])], axis=1)
    np.testing.assert_allclose(y, whole(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(RECURRENT))
def test_recurrent_models_stream_their_state_per_channel(name):
    model = make_model(name, configs=RECURRENT)
    x = signal_(2, 3001)
    stream = open_stream(model, 2)
    assert isinstance(stream, StateStream)
    cuts = [0, 0, 1, 2, 7, 7, 64, 600, 1999, 3001]
    y = np.concatenate([stream.process(x[:, a:b]) for a, b in zip(cuts, cuts[1:])], axis=1)
    np.testing.assert_allclose(y, whole(model, x), rtol=0, atol=1e-5)


def test_lstm_apply_file_equals_the_whole_file_at_once(tmp_path):
    model_path = save_model(tmp_path / "model.pt", "lstm", configs=RECURRENT)
    x = signal_(2, 5003)
    sf.write(tmp_path / "in.wav", x.T, SR, subtype="FLOAT")
    apply_file(model_path, tmp_path / "in.wav", tmp_path / "out.wav", block_samples=999,
               progress=False)
    y = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)[0]
    np.testing.assert_allclose(y.T, whole(make_model("lstm", configs=RECURRENT), x), rtol=0, atol=1e-5)


def test_tcn_models_get_the_cached_stream_and_the_others_the_context_one():
    assert isinstance(open_stream(make_model("tcn-gated"), 1), TCNStream)
    assert isinstance(open_stream(make_model("cnn"), 1), ContextStream)


#: TCNs the size of Neural Amp Modeler's standard WaveNet: 20 layers, receptive field 4093.
NAM_SIZE = {
    f"nam-{activation}": ("tcn", {"channels": 12, "kernel_size": 3, "dilations": [2**i for i in range(10)],
                                  "stacks": 2, "activation": activation})
    for activation in ("tanh", "gated")
}


@pytest.mark.parametrize("blocks", [[1], [7], [512], [8192], [512, 8192, 7, 1, 3000]],
                         ids=["1", "7", "512", "8192", "mixed"])
@pytest.mark.parametrize("name", sorted(NAM_SIZE))
def test_nam_size_tcn_stream_equals_one_pass(name, blocks):
    """Blocks of 1 and 7 samples wrap the layers' rings every few blocks, 8192 runs in pieces,
    and "mixed" (block sizes cycled) grows the rings with history kept."""
    model = make_model(name, configs=NAM_SIZE)
    x = signal_(2, 2500 if max(blocks) < 100 else 30_000)
    stream = open_stream(model, 2)
    assert isinstance(stream, TCNStream)
    ends = np.minimum(np.cumsum(np.resize(blocks, x.shape[1])), x.shape[1])
    starts = np.concatenate(([0], ends[:-1]))
    y = np.concatenate([stream.process(x[:, a:b]) for a, b in zip(starts, ends) if a < b], axis=1)
    np.testing.assert_allclose(y, whole(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "tcn-gated"])
@pytest.mark.parametrize("channels", [1, 2])
def test_apply_file_equals_the_whole_file_at_once(tmp_path, name, channels):
    model_path = save_model(tmp_path / "model.pt", name)
    x = signal_(channels, 5003)
    sf.write(tmp_path / "in.wav", x.T, SR, subtype="FLOAT")
    summary = apply_file(model_path, tmp_path / "in.wav", tmp_path / "out.wav", block_samples=1000,
                         progress=False)
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == SR and y.shape == (5003, channels)
    assert sf.info(tmp_path / "out.wav").subtype == "FLOAT"
    np.testing.assert_allclose(y.T, whole(make_model(name), x), rtol=0, atol=1e-5)
    assert summary == {"sample_rate": SR, "model_sample_rate": SR, "channels": channels,
                       "samples": 5003, "seconds": 5003 / SR}
    assert leftovers(tmp_path, set()) == ["in.wav", "model.pt", "out.wav"]


@pytest.mark.parametrize("channels", [1, 2])
def test_resampled_streaming_equals_resampling_the_whole_file(tmp_path, channels):
    """22.05 kHz input, 16 kHz model: the same soxr resampler, once whole and once streaming."""
    model_path = save_model(tmp_path / "model.pt", "tcn-gated")
    x = signal_(channels, 7919)
    sf.write(tmp_path / "in.flac", x.T, 22_050, subtype="PCM_24")
    x = sf.read(tmp_path / "in.flac", dtype="float32", always_2d=True)[0]  # as quantised on disk
    apply_file(model_path, tmp_path / "in.flac", tmp_path / "out.wav", block_samples=333,
               progress=False)
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    down = soxr.resample(x, 22_050, SR)
    back = soxr.resample(np.ascontiguousarray(whole(make_model("tcn-gated"), down.T).T), SR, 22_050)
    expected = np.zeros_like(x)
    expected[: min(len(back), len(x))] = back[: len(x)]
    assert rate == 22_050 and y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)


def test_mp3_input_and_flac_output_keep_rate_channels_and_length(tmp_path):
    model_path = save_model(tmp_path / "model.pt", "cnn", sample_rate=44_100)
    sf.write(tmp_path / "in.mp3", signal_(2, 20_000).T, 44_100)
    frames = sf.info(tmp_path / "in.mp3").frames
    apply_file(model_path, tmp_path / "in.mp3", tmp_path / "out.flac", progress=False)
    info = sf.info(tmp_path / "out.flac")
    assert (info.samplerate, info.channels, info.frames, info.format) == (44_100, 2, frames, "FLAC")


def bad_cases(tmp_path: Path) -> dict[str, tuple[dict, str]]:
    """Bad input name → (apply_file keyword arguments, text the error names)."""
    good_model = save_model(tmp_path / "model.pt", "tcn-gated")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "notes.wav").write_text("not audio")
    sf.write(tmp_path / "in.wav", signal_(1, 4000).T, SR)
    sf.write(tmp_path / "in48k.wav", signal_(1, 4000).T, 48_000)
    x = signal_(1, 40_000)
    x[0, 30_000] = np.nan  # found only after the first blocks were written
    sf.write(tmp_path / "nan.wav", x.T, SR, subtype="FLOAT")
    good = {"model_path": good_model, "input_path": tmp_path / "in.wav",
            "output_path": tmp_path / "out.wav", "block_samples": 4096, "progress": False}
    return {
        "missing model": ({**good, "model_path": tmp_path / "nope.pt"}, "nope.pt: no such model file"),
        "corrupt model": ({**good, "model_path": tmp_path / "corrupt.pt"}, "corrupt.pt: not a deepfx model file"),
        "other rate": ({**good, "input_path": tmp_path / "in48k.wav", "resample": False},
                       "in48k.wav: 48000 Hz audio, but the model"),
        "unreadable audio": ({**good, "input_path": tmp_path / "notes.wav"},
                             "notes.wav: cannot be read as audio"),
        "missing audio": ({**good, "input_path": tmp_path / "gone.wav"}, "gone.wav: no such audio file"),
        "missing folder": ({**good, "output_path": tmp_path / "no" / "out.wav"},
                           "the folder " + str(tmp_path / "no") + " does not exist"),
        "overwrite input": ({**good, "output_path": tmp_path / "." / "in.wav"},
                            "in.wav: refusing to overwrite the input"),
        "unknown type": ({**good, "output_path": tmp_path / "out.txt"}, "out.txt: unsupported output type"),
        "nan mid-file": ({**good, "input_path": tmp_path / "nan.wav"}, "nan.wav: the audio holds NaN"),
    }


@pytest.mark.parametrize("case", [
    "missing model", "corrupt model", "other rate", "unreadable audio", "missing audio",
    "missing folder", "overwrite input", "unknown type", "nan mid-file",
])
def test_bad_input_is_one_clear_error_and_leaves_nothing(tmp_path, case):
    kwargs, message = bad_cases(tmp_path)[case]
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(DeepfxError) as err:
        apply_file(**kwargs)
    assert message in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_cli_apply_needs_no_params_file_and_reports_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    save_model(tmp_path / "model.pt", "tcn-tanh")
    sf.write(tmp_path / "in.wav", signal_(2, 3000).T, 22_050)
    assert main(["apply", "model.pt", "in.wav", "out.wav", "--block-samples", "512"]) == 0
    assert sf.info(tmp_path / "out.wav").frames == 3000
    assert main(["apply", "model.pt", "in.wav", "out2.wav", "--no-resample"]) == 2
    assert "in.wav: 22050 Hz audio, but the model model.pt was trained at 16000 Hz" in capsys.readouterr().err
    assert main(["apply", "model.pt", "in.wav", "out2.wav", "--threads", "0"]) == 2
    assert "--threads: expected a positive number of threads, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out2.wav").exists()


def write_long_file(path: Path, seconds: float, rate: int) -> None:
    """A mono 16-bit sine of ``seconds`` s, written in blocks (never whole in memory)."""
    block = np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32) * 0.5
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(int(seconds)):
            f.write(block)


#: Child process: apply a model to files in turn; print the peak RSS (MB) after each.
_APPLY_AND_MEASURE = """
import json, resource, sys
import torch
from deepfx.apply import apply_file
torch.set_num_threads(1)
peaks = []
for src in sys.argv[2:]:
    apply_file(sys.argv[1], src, src + ".out.wav", progress=False)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # kB on Linux
print(json.dumps(peaks))
"""


def test_memory_stays_flat_for_long_files(tmp_path):
    """10 min of 8 kHz audio (19 MB as float32) raises the peak memory of 5 s by < 10 MB."""
    model = save_model(tmp_path / "model.pt", "tcn-tanh", sample_rate=8000)
    write_long_file(tmp_path / "short.wav", 5, 8000)
    write_long_file(tmp_path / "long.wav", 10 * 60, 8000)
    out = subprocess.run(
        [sys.executable, "-c", _APPLY_AND_MEASURE, str(model), str(tmp_path / "short.wav"),
         str(tmp_path / "long.wav")], capture_output=True, text=True, check=True,
    )
    short, long = json.loads(out.stdout)
    assert sf.info(tmp_path / "long.wav.out.wav").frames == 10 * 60 * 8000
    assert long - short < 10, (short, long)


def _written(folder: Path) -> int:
    """Bytes in ``folder``'s files (one may be renamed away while we look)."""
    total = 0
    for f in folder.iterdir():
        try:
            total += f.stat().st_size
        except FileNotFoundError:
            pass
    return total


def test_ctrl_c_leaves_no_output_behind(tmp_path):
    model = save_model(tmp_path / "model.pt", "tcn-gated", sample_rate=8000)
    write_long_file(tmp_path / "long.wav", 30 * 60, 8000)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "deepfx"), "apply", str(model), str(tmp_path / "long.wav"),
         str(out / "long.wav")], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        # Ctrl-C at a terminal: a test run started in the background (`make test &`, some CI
        # runners) has SIGINT ignored, and a child would inherit that and never see it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # No clock: wait (however loaded the machine) until the temporary output holds audio, i.e.
    # processing is under way; the file is long enough to be far from done then.
    while proc.poll() is None and _written(out) < 64 * 1024:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(out.iterdir()) == []
