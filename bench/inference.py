"""Inference speed of every architecture as a real-time factor (RTF: seconds of compute per second
of audio; 0.05 = 20× faster than real time), on one CPU thread.

    python bench/inference.py [--params params.yaml] [--seconds 20] [--repeats 3]

Models: each arch at its ``params.yaml`` size, plus TCNs the size of Neural Amp Modeler's
"standard" WaveNet (two stacks of dilations 1…512, kernel 3, tanh: 20 layers, receptive field
4093 samples): 12 channels (15 k parameters, NAM standard's ~14 k) and 16 channels. Untrained
weights: speed does not depend on training. Modes, each the best of ``--repeats`` runs:

- ``stream_512``: :func:`deepfx.apply.open_stream` fed 512-sample blocks (a plugin's callback);
- ``stream_64``: the same in 64-sample blocks (a low-latency host);
- ``apply_blocks``: the same in ``deepfx apply``'s blocks of DEFAULT_BLOCK_SAMPLES (no file I/O);
- ``forward_whole``: the torch module once over the whole signal;
- ``onnxruntime_whole``: the ONNX export (deepfx.export.onnx) once over the whole signal.

RTF is measured in CPU time of the (single-threaded) process, so that other work on the machine
does not inflate it; the CSV also holds wall-clock RTFs (``wall_rtf_*``) and the load average.
Prints a table and writes bench/results/inference.csv. Goal (issue 14): every model streams at
RTF ≤ 0.05 (20× real time) in 512-sample blocks.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deepfx.apply import DEFAULT_BLOCK_SAMPLES, open_stream
from deepfx.atomic import atomic_file
from deepfx.config import load_params
from deepfx.errors import DeepfxError
from deepfx.export.onnx import onnx_session, write_onnx
from deepfx.models import build_model
from deepfx.models.base import run

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "inference.csv"
#: NAM "standard"-sized TCN hyper-parameters (channels added per model below).
NAM_SIZE = {"kernel_size": 3, "dilations": [2**i for i in range(10)], "stacks": 2, "activation": "tanh"}
MODES = ("stream_512", "stream_64", "apply_blocks", "forward_whole", "onnxruntime_whole")
GOAL_RTF = 0.05


def models(params: dict) -> dict[str, tuple[str, dict]]:
    """Bench name → (arch, hyper-parameters): the baselines, each effect's own model (named
    ``<arch>@<effect>``, once per distinct configuration) and the NAM-size TCNs; a model's
    own ``train`` settings are left out."""
    found = {
        arch: (arch, {k: v for k, v in params["models"][arch].items() if k != "train"})
        for arch in params["archs"]
    }
    for effect, spec in params["effects"].items():
        arch = spec["model"]["arch"]
        cfg = {k: v for k, v in spec["model"].items() if k not in ("arch", "train")}
        if (arch, cfg) not in found.values():
            found[f"{arch}@{effect}"] = (arch, cfg)
    found["tcn-nam-size"] = ("tcn", {"channels": 12, **NAM_SIZE})
    found["tcn-nam-size-16ch"] = ("tcn", {"channels": 16, **NAM_SIZE})
    return found


def best_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The shortest (CPU seconds, wall seconds) of ``repeats`` runs, after one warm-up run.

    CPU time is what one core spends; it stays meaningful when other processes share the
    machine, where wall time also counts the waits for a core.
    """
    run()
    cpu, wall = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return min(cpu), min(wall)


def streamed(model: torch.nn.Module, x: np.ndarray, block: int) -> Callable[[], None]:
    def run() -> None:
        stream = open_stream(model, 1)
        for start in range(0, x.shape[1], block):
            stream.process(x[:, start : start + block])

    return run


def measure(
    model: torch.nn.Module, arch: str, x: np.ndarray, repeats: int, work: Path
) -> dict[str, tuple[float, float]]:
    """(CPU, wall) seconds per mode for the (1, n) signal ``x`` (NaN where ONNX refuses ``arch``)."""
    whole = torch.from_numpy(x)[None]

    def forward() -> None:
        with torch.inference_mode():
            run(model, whole)

    seconds = {
        "stream_512": best_seconds(streamed(model, x, 512), repeats),
        "stream_64": best_seconds(streamed(model, x[:, : x.shape[1] // 4], 64), repeats),
        "apply_blocks": best_seconds(streamed(model, x, DEFAULT_BLOCK_SAMPLES), repeats),
        "forward_whole": best_seconds(forward, repeats),
        "onnxruntime_whole": (math.nan, math.nan),  # for the architectures ONNX cannot express
    }
    try:
        onnx_path = write_onnx(model, {"effect": "bench", "arch": arch, "sample_rate": 0,
                                       "receptive_field": model.receptive_field}, work / "model.onnx")
    except DeepfxError:
        return seconds
    session = onnx_session(onnx_path, threads=1)
    seconds["onnxruntime_whole"] = best_seconds(lambda: session.run(None, {"input": x[None]}), repeats)
    return seconds


def share(mode: str) -> float:
    """The part of the signal a mode runs over (64-sample blocks: the first quarter)."""
    return 0.25 if mode == "stream_64" else 1.0


def test_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """(1, n) float32: guitar-range sines with noise, peak about 0.8."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    x = sum(0.25 * np.sin(2 * np.pi * f * t) for f in (82.4, 196.0, 659.3)) + 0.05 * rng.standard_normal(len(t))
    return np.asarray(x, np.float32)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per run (s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (best kept)")
    args = parser.parse_args()

    params = load_params(args.params)
    sample_rate = int(params["sample_rate"])
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    x = test_signal(args.seconds, sample_rate)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
          f"{sample_rate} Hz, {args.seconds:g} s of audio, load average {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, cfg) in models(params).items():
            torch.manual_seed(0)
            model = build_model(arch, cfg, sample_rate=sample_rate).eval()
            seconds = measure(model, arch, x, args.repeats, Path(tmp))
            rows.append({
                "model": name, "arch": arch, "load_average": round(os.getloadavg()[0], 2),
                "params": sum(p.numel() for p in model.parameters()),
                "receptive_field": model.receptive_field,
                **{f"rtf_{mode}": seconds[mode][0] / args.seconds / share(mode) for mode in MODES},
                **{f"wall_rtf_{mode}": seconds[mode][1] / args.seconds / share(mode) for mode in MODES},
            })

    header = f"{'model':<24} {'params':>7} {'rf':>6}  " + "  ".join(f"{m:>17}" for m in MODES)
    print(header + "   (RTF of CPU time; × real time in brackets)")
    for row in rows:
        cells = "  ".join(
            f"{row[f'rtf_{m}']:>8.4f} ({1 / row[f'rtf_{m}']:>5.1f}×)" for m in MODES
        )
        print(f"{row['model']:<24} {row['params']:>7} {row['receptive_field']:>6}  {cells}")
    slow = [r["model"] for r in rows if r["rtf_stream_512"] > GOAL_RTF]
    print(f"goal: every model's stream_512 RTF ≤ {GOAL_RTF} — "
          + (f"missed by {', '.join(slow)}" if slow else f"met ({len(rows)} of {len(rows)})"))

    OUT.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(OUT) as tmp_out, tmp_out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
