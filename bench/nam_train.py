"""Train one Neural Amp Modeler model with NAM's own trainer; run by the NAM venv's python.

    python nam_train.py ARCH INPUT.wav OUTPUT.wav TRAIN_SAMPLES SECONDS OUTDIR [TAKES PREDICTIONS]

ARCH is ``wavenet`` (NAM's standard WaveNet: two layer arrays of dilations 1 … 512, 16 and
8 channels, tanh) or ``lstm`` (one LSTM layer of 24 units with a linear head, as NAM's
LSTM). INPUT/OUTPUT are the clean and processed signals of one capture; the first
TRAIN_SAMPLES train, the rest validate. Training runs on the CPU with one torch thread for
SECONDS of wall time (Lightning's ``max_time``); NAM keeps the best validation checkpoint and
exports it as OUTDIR/model.nam. Given a folder of TAKES (wav), the exported model, loaded by
NAM's own loader, writes its output for each of them into PREDICTIONS (same names).
bench/nam_side_by_side.py calls this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

#: NAM's standard WaveNet (its "standard" architecture before packing) and its LSTM.
NETS = {
    "wavenet": {
        "name": "WaveNet",
        "config": {
            "layers_configs": [
                {"input_size": 1, "condition_size": 1, "channels": 16, "kernel_size": 3,
                 "dilations": [2**i for i in range(10)], "activation": "Tanh",
                 "head": {"out_channels": 8, "kernel_size": 1, "bias": False}},
                {"input_size": 16, "condition_size": 1, "channels": 8, "kernel_size": 3,
                 "dilations": [2**i for i in range(10)], "activation": "Tanh",
                 "head": {"out_channels": 1, "kernel_size": 1, "bias": True}},
            ],
            "head_scale": 0.02,
        },
    },
    "lstm": {
        "name": "LSTM",
        "config": {"num_layers": 1, "hidden_size": 24, "train_burn_in": 4096,
                   "train_truncate": 512},
    },
}


def main() -> None:
    arch, x_path, y_path, train_samples, seconds, outdir, *takes = sys.argv[1:]
    torch.set_num_threads(1)
    from nam.train.full import main as train

    data = {
        "train": {"stop_samples": int(train_samples), "ny": 8192},
        "validation": {"start_samples": int(train_samples), "ny": None},
        "common": {"x_path": x_path, "y_path": y_path, "delay": 0,
                   "require_input_pre_silence": None},
    }
    model = {
        "net": NETS[arch],
        "optimizer": {"lr": 0.004},
        "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.993}},
    }
    minutes, rest = divmod(int(float(seconds)), 60)
    learning = {
        "train_dataloader": {"batch_size": 16, "shuffle": True, "pin_memory": False,
                             "drop_last": True, "num_workers": 0},
        "val_dataloader": {},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 100_000,
                    "max_time": f"00:00:{minutes:02d}:{rest:02d}",
                    "enable_progress_bar": False, "logger": False},
    }
    Path(outdir).mkdir(parents=True, exist_ok=True)
    train(data, model, learning, Path(outdir), no_show=True, make_plots=False)
    if takes:
        apply_to(Path(outdir) / "model.nam", Path(takes[0]), Path(takes[1]))


def apply_to(model_path: Path, takes: Path, predictions: Path) -> None:
    """The .nam model (NAM's loader) over every wav of ``takes`` into ``predictions``."""
    import json

    import numpy as np
    import soundfile as sf
    from nam.models import init_from_nam

    model = init_from_nam(json.loads(model_path.read_text())).eval()
    predictions.mkdir(parents=True, exist_ok=True)
    for take in sorted(takes.glob("*.wav")):
        x, rate = sf.read(take, dtype="float32")
        with torch.no_grad():
            y = model(torch.from_numpy(x), pad_start=True).numpy()
        sf.write(predictions / take.name, y.astype(np.float32), rate, subtype="FLOAT")


if __name__ == "__main__":
    main()
