"""Training on a real effect (pedalboard Distortion): loss, outputs, MLflow, resume, errors."""

from __future__ import annotations

import csv
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import mlflow
import numpy as np
import pedalboard
import pytest
import torch
import yaml

from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError
from deepfx.excerpts import ExcerptSampler, paired_files
from deepfx.losses import ESRLoss
from deepfx.tracking import tracking_uri
from deepfx.train import HISTORY_COLUMNS, configure_torch, train_model

ROOT = Path(__file__).resolve().parents[1]
SR = 44_100
#: Seconds of audio per file of each split.
SPLITS = {"train": [2.0, 1.5], "valid": [1.0], "test": [1.0, 0.5]}


def tones(seconds: float, seed: int) -> np.ndarray:
    """Decaying sine notes (80-1200 Hz), a few per second, peak below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for onset in np.arange(0.0, seconds, 0.25):
        note = rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * rng.uniform(80, 1200) * (t - onset))
        x += np.where(t >= onset, note * np.exp(-4 * (t - onset)), 0.0)
    return x.astype(np.float32)


def make_effect_data(root: Path) -> tuple[Path, Path]:
    """Clean tones and their pedalboard Distortion (params' effects.distortion) in the layout."""
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25.0), pedalboard.Gain(gain_db=-12.0)])
    for split, lengths in SPLITS.items():
        for i, seconds in enumerate(lengths):
            x = tones(seconds, seed=hash((split, i)) % 1000)
            (root / "clean" / split).mkdir(parents=True, exist_ok=True)
            (root / "processed" / split).mkdir(parents=True, exist_ok=True)
            write_audio(root / "clean" / split / f"track{i}.wav", x, SR)
            write_audio(root / "processed" / split / f"track{i}.wav", board(x[None], SR)[0], SR)
    return root / "clean", root / "processed"


def tiny_params(tmp_path: Path, **train) -> dict:
    """params.yaml with tiny models, a short training and a throw-away SQLite MLflow store."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["archs"] = ["cnn"]
    params["models"] = {"cnn": {"window": 16, "channels": 4, "hidden": 16}}
    params["effects"]["distortion"]["model"] = {
        "arch": "tcn", "channels": 8, "kernel_size": 3, "dilations": [1, 2, 4, 8], "stacks": 1,
        "activation": "gated",
    }
    params["train"].update(
        {
            "epochs": 3, "steps_per_epoch": 15, "batch_size": 4, "excerpt_samples": 1024,
            "learning_rate": 0.01, "device": "cpu", "threads": 1, **train,
        }
    )
    params["tracking"] = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "test"}
    return params


def read_history(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_effect_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """One short tcn training run: (params, out_dir, summary)."""
    tmp = tmp_path_factory.mktemp("trained")
    params = tiny_params(tmp)
    summary = train_model("distortion", "tcn", params, *data, tmp / "models")
    return params, tmp / "models", summary


def test_training_lowers_the_loss_below_the_clean_signal(trained, data):
    params, out, summary = trained
    history = read_history(out / "history.csv")
    assert list(history[0]) == list(HISTORY_COLUMNS)
    assert [int(row["epoch"]) for row in history] == [1, 2, 3]
    assert float(history[-1]["train_loss"]) < 0.5 * float(history[0]["train_loss"])
    valid = [float(row["valid_loss"]) for row in history]
    assert summary["best_valid_loss"] == pytest.approx(min(valid))
    # the model imitates the distortion better than passing the clean signal through
    (pair,) = paired_files(*data, "valid", SR)
    clean = torch.from_numpy(read_audio(pair.clean, SR)).view(1, 1, -1)
    target = torch.from_numpy(read_audio(pair.processed, SR)).view(1, 1, -1)
    assert min(valid) < 0.8 * ESRLoss(params["train"]["pre_emphasis"])(clean, target).item()


def test_model_file_holds_weights_and_metadata(trained):
    params, out, summary = trained
    blob = torch.load(out / "model.pt", weights_only=True)
    assert blob["arch"] == "tcn" and blob["effect"] == "distortion"
    assert blob["config"] == {k: v for k, v in params["effects"]["distortion"]["model"].items() if k != "arch"}
    assert blob["sample_rate"] == SR and blob["receptive_field"] == 1 + 2 * 15
    assert blob["n_params"] == sum(v.numel() for v in blob["state_dict"].values()) > 0
    assert blob["epochs"] == 3 and blob["train_seconds"] > 0
    assert blob["best_valid_loss"] == summary["best_valid_loss"]
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_mlflow_run_has_params_epoch_losses_metrics_and_model(trained):
    params, out, summary = trained
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(params))
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["effect"] == "distortion" and run.data.tags["arch"] == "tcn"
    assert run.data.params["model.channels"] == "8"
    assert run.data.params["train.epochs"] == "3"
    history = read_history(out / "history.csv")
    for metric in ("train_loss", "valid_loss"):
        logged = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in logged] == [1, 2, 3]
        assert [m.value for m in logged] == pytest.approx([float(r[metric]) for r in history])
    assert run.data.metrics["best_valid_loss"] == pytest.approx(summary["best_valid_loss"])
    assert run.data.metrics["n_params"] == summary["n_params"]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["model.pt"]


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path, data):
    """epochs=1 then epochs=2 in the same folder = epochs=2 at once, and epoch 1 is not redone."""
    params = tiny_params(tmp_path, epochs=1, steps_per_epoch=5)
    train_model("distortion", "cnn", params, *data, tmp_path / "resumed")
    first = read_history(tmp_path / "resumed" / "history.csv")
    params["train"]["epochs"] = 2
    summary = train_model("distortion", "cnn", params, *data, tmp_path / "resumed")
    resumed = read_history(tmp_path / "resumed" / "history.csv")
    assert len(resumed) == 2 and resumed[0] == first[0]

    train_model("distortion", "cnn", params, *data, tmp_path / "straight")
    straight = read_history(tmp_path / "straight" / "history.csv")
    for a, b in zip(resumed, straight):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
        assert float(a["valid_loss"]) == pytest.approx(float(b["valid_loss"]), rel=1e-5)

    run = mlflow.MlflowClient(tracking_uri=tracking_uri(params)).get_run(summary["run_id"])
    assert run.data.tags["resumed_from_epoch"] == "1"


def test_mismatching_or_corrupt_checkpoint_is_ignored(tmp_path, data):
    params = tiny_params(tmp_path, epochs=1, steps_per_epoch=3)
    out = tmp_path / "models"
    train_model("distortion", "cnn", params, *data, out)
    first = read_history(out / "history.csv")
    params["train"]["learning_rate"] = 0.001  # another configuration: start afresh
    train_model("distortion", "cnn", params, *data, out)
    second = read_history(out / "history.csv")
    assert len(second) == 1 and second[0]["train_loss"] != first[0]["train_loss"]

    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    train_model("distortion", "cnn", params, *data, out)
    third = read_history(out / "history.csv")
    assert len(third) == 1 and float(third[0]["train_loss"]) == pytest.approx(float(second[0]["train_loss"]))


def test_killed_job_resumes_from_the_last_finished_epoch(tmp_path, data):
    params = tiny_params(tmp_path, epochs=3, steps_per_epoch=40)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "models"
    script = (
        "import sys, yaml\n"
        "from pathlib import Path\n"
        "from deepfx.train import train_model\n"
        "params = yaml.safe_load(open(sys.argv[1]))\n"
        "train_model('distortion', 'cnn', params, Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))\n"
    )
    job = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "params.yaml"), *map(str, data), str(out)])
    while not (out / "checkpoint.pt").exists() and job.poll() is None:  # no clock: load may slow it
        time.sleep(0.05)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert not (out / "model.pt").exists(), "the job finished before it could be killed"
    done = torch.load(out / "checkpoint.pt", weights_only=True)["history"]

    train_model("distortion", "cnn", params, *data, out)
    history = read_history(out / "history.csv")
    assert len(history) == 3
    assert [float(r["train_loss"]) for r in history[: len(done)]] == [r["train_loss"] for r in done]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, c, d: (d / "train" / "track1.wav").unlink(), "track1.wav: missing; the clean file"),
        (
            lambda p, c, d: write_audio(d / "valid" / "track0.wav", np.zeros(100, np.float32), SR),
            "track0.wav: 100 samples, but the clean file",
        ),
        (lambda p, c, d: p["train"].update(device="cuda"), "train.device: 'cuda' was asked for"),
        (lambda p, c, d: p["train"].update(pre_emphasis=2.0), "train.pre_emphasis: pre_emphasis must be"),
        (lambda p, c, d: p["train"].update(batch_size=0), "train.batch_size: expected an integer >= 1"),
        (lambda p, c, d: p["train"].update(excerpt_samples=10**6), "train.excerpt_samples: 1000000 samples"),
        (lambda p, c, d: p["models"]["cnn"].update(hidden=0), "models.cnn.hidden: expected a positive integer"),
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, change, message):
    if "cuda" in message and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    clean, processed = make_effect_data(tmp_path / "data")
    params = tiny_params(tmp_path)
    change(params, clean, processed)
    with pytest.raises(DeepfxError, match=message):
        train_model("distortion", "cnn", params, clean, processed, tmp_path / "models")
    assert not (tmp_path / "models" / "model.pt").exists()
    assert not (tmp_path / "models" / "history.csv").exists()


def test_auto_device_and_threads(tmp_path):
    params = tiny_params(tmp_path, device="auto", threads=2)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert configure_torch(params["train"]).type == expected
    assert torch.get_num_threads() == 2
    torch.set_num_threads(1)


def test_excerpts_are_aligned_seeded_and_zero_padded_at_the_start(tmp_path):
    for split in ("clean", "processed"):
        (tmp_path / split / "train").mkdir(parents=True)
    ramp = np.arange(1, 3001, dtype=np.float32) / 3000
    write_audio(tmp_path / "clean" / "train" / "a.wav", ramp, SR)
    write_audio(tmp_path / "processed" / "train" / "a.wav", -ramp, SR)
    pairs = paired_files(tmp_path / "clean", tmp_path / "processed", "train", SR)
    sampler = ExcerptSampler(pairs, context=500, excerpt_samples=1000, seed=3)
    batches = list(sampler.batches(epoch=1, steps=20, batch_size=4))
    again = list(sampler.batches(epoch=1, steps=20, batch_size=4))
    other = next(sampler.batches(epoch=2, steps=1, batch_size=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    assert not torch.equal(batches[0][0], other[0])
    for clean, processed, first in batches:
        assert clean.shape == processed.shape == (4, 1, 1500)
        assert torch.equal(processed, -clean)
        # ``first`` is the file index of each input's first sample (ramp value (i + 1) / 3000)
        expected = torch.where(first >= 0, (first + 1).float() / 3000, torch.zeros(4))
        torch.testing.assert_close(clean[:, 0, 0], expected, atol=1e-6, rtol=0)
        # the target part is real audio; the context before it is audio or zeros (file start)
        assert (clean[..., 500:] > 0).all()
        steps = torch.diff(clean[..., 500:])
        assert torch.allclose(steps, torch.full_like(steps, 1 / 3000), atol=1e-6)
    starts = [int(round(c[0, 0, 500].item() * 3000)) - 1 for c, _, _ in batches]
    assert min(starts) < 500  # excerpts near the file start occur (their context is zero-padded)


def test_a_fit_that_lengthens_the_receptive_field_still_trains(tmp_path):
    """The pitch shifter's initialise finds a late effect's lag (here 3000 samples, a fifth
    down), which lengthens its receptive field: the excerpts' context follows, so every step
    sees a loss over real samples."""
    board = pedalboard.PitchShift(semitones=-7)
    for split, lengths in SPLITS.items():
        for i, seconds in enumerate(lengths):
            x = tones(seconds + 1.0, seed=hash((split, i)) % 1000)
            y = np.concatenate([np.zeros(3000, np.float32), board(x[None], SR)[0]])[: len(x)]
            for kind, signal in (("clean", x), ("processed", y)):
                (tmp_path / kind / split).mkdir(parents=True, exist_ok=True)
                write_audio(tmp_path / kind / split / f"track{i}.wav", signal, SR)
    params = tiny_params(tmp_path, epochs=1, steps_per_epoch=2, batch_size=2, excerpt_samples=2048,
                         loss="mrstft", learning_rate=0.001)
    params["effects"]["distortion"]["model"] = {
        "arch": "pitch_shifter", "ratio": 2 ** (-7 / 12), "n_fft": 512, "grain": 64, "delay": 287,
        "n_bands": 8, "max_lag_ms": 150.0,
    }
    summary = train_model("distortion", "pitch_shifter", params, tmp_path / "clean",
                          tmp_path / "processed", tmp_path / "models")
    assert summary["receptive_field"] > 2 * 512 - 1 + 2000
    history = read_history(tmp_path / "models" / "history.csv")
    assert np.isfinite(float(history[0]["train_loss"]))


def test_the_saved_rnn_is_silent_at_rest_and_knows_the_effects_lag(tmp_path):
    """An overdrive that answers 20 samples late: the trained rnn's initialise measured the lag
    and its finalise left no offset at rest (silence in, silence out) in the saved weights."""
    from deepfx.evaluate import load_model

    from deepfx.signals import TrackSpec, track

    board = pedalboard.Distortion(drive_db=20.0)
    for split, lengths in SPLITS.items():
        for i, seconds in enumerate(lengths):
            spec = TrackSpec(SR, 1, seconds, (3.0, 6.0), 3, (80.0, 1200.0), -3.0)
            x = track(spec, hash((split, i)) % 1000)  # the generator's notes and chirps
            y = board(np.pad(x, (20, 0))[None, : len(x)], SR)[0]
            for kind, signal in (("clean", x), ("processed", y)):
                (tmp_path / kind / split).mkdir(parents=True, exist_ok=True)
                write_audio(tmp_path / kind / split / f"track{i}.wav", signal, SR)
    params = tiny_params(tmp_path, epochs=1, steps_per_epoch=3, tbptt_samples=512)
    params["effects"]["distortion"]["model"] = {"arch": "rnn", "hidden": 8, "warmup": 256}
    train_model("distortion", "rnn", params, tmp_path / "clean", tmp_path / "processed",
                tmp_path / "models")
    model, meta = load_model(tmp_path / "models" / "model.pt")
    assert int(model.lag) == 20 and meta["receptive_field"] == 256 + 20
    with torch.no_grad():
        at_rest = model(torch.zeros(1, 1, 8192))[0, 0, 4096:]
    assert at_rest.abs().max().item() < 1e-6


def test_a_time_variant_start_is_the_best_of_several_training_files(tmp_path):
    """A free-running chorus (each file catches the LFO elsewhere): the closed-form start is
    fitted on each of the first training files and the one that best predicts the valid
    split is kept."""
    from deepfx.models import build_model
    from deepfx.signals import TrackSpec, track
    from deepfx.train import _align, _best_start, _initialise, _validation_loss

    lengths = {"train": [3.0, 3.0, 3.0], "valid": [3.0]}
    for split, seconds_list in lengths.items():
        for i, seconds in enumerate(seconds_list):
            spec = TrackSpec(SR, 1, seconds, (3.0, 6.0), 2, (80.0, 1200.0), -3.0)
            x = track(spec, 40 + i + 10 * (split == "valid"))
            lead = int(SR * (0.3 + 0.55 * i + 0.2 * (split == "valid")))
            chorus = pedalboard.Chorus(rate_hz=0.9, depth=0.3, centre_delay_ms=6.0, mix=0.5)
            y = chorus(np.concatenate([np.zeros(lead, np.float32), x])[None], SR)[0, lead:]
            for kind, signal in (("clean", x), ("processed", y)):
                (tmp_path / kind / split).mkdir(parents=True, exist_ok=True)
                write_audio(tmp_path / kind / split / f"track{i}.wav", signal, SR)
    pairs = {split: paired_files(tmp_path / "clean", tmp_path / "processed", split, SR)
             for split in lengths}
    loss_fn = ESRLoss(0.0)

    def valid_loss(model) -> float:
        shifts = _align(model, {"valid": pairs["valid"]}, SR)
        return _validation_loss(model, pairs["valid"], loss_fn, SR, shifts)

    singles = []
    for pair in pairs["train"]:
        model = build_model("modulated_delay", {}, sample_rate=SR)
        _initialise(model, [pair], SR)
        singles.append(valid_loss(model))
    model = build_model("modulated_delay", {}, sample_rate=SR)
    _best_start(model, pairs["train"], pairs["valid"], loss_fn, SR)
    assert max(singles) > 3 * min(singles), singles  # the files' fits differ (here 5e-3, 1e-3, 3e-2)
    assert valid_loss(model) == pytest.approx(min(singles), rel=1e-6)


def _read_terminal(cmd: list[str]) -> tuple[int, str]:
    """Run ``cmd`` with its stderr on a pseudo-terminal; (exit status, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def test_a_terminal_shows_a_progress_bar_and_a_log_does_not(tmp_path, data, capsys):
    params = tiny_params(tmp_path, epochs=2, steps_per_epoch=20)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    clean, processed = data
    status, shown = _read_terminal([
        str(Path(sys.executable).parent / "deepfx"), "--params", str(tmp_path / "params.yaml"),
        "train", "--effect", "distortion", "--arch", "tcn", "--clean", str(clean),
        "--processed", str(processed), "--out", str(tmp_path / "tty"),
    ])
    assert status == 0, shown
    assert "distortion/tcn" in shown and "batch" in shown and "40/40" in shown
    assert re.search(r"batch=[0-9.]+, train=[0-9.]+, valid=[0-9.]+, left=\d+s", shown), shown
    assert "epoch 2/2: train" in shown  # the log lines still come, above the bar
    train_model("distortion", "tcn", params, clean, processed, tmp_path / "piped")
    err = capsys.readouterr().err
    assert "batch" not in err and "\r" not in err
