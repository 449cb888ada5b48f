"""Throughput of the data stages and the cost of a no-op rerun in each engine.

    python bench/throughput.py [--params params.yaml] [--noop-params params.yaml]
                               [--project DIR] [--skip-data]

Prints (and writes bench/results/throughput.json):
- generate and process speed as a multiple of real time (seconds of audio written per wall
  second) on ``--params``, per effect and for the whole data preparation;
- wall time of one full ``snakemake --cores 2`` run on ``--noop-params`` (the default DAG) in a
  fresh clone of this repository, then of ``snakemake --cores 2`` and ``dvc repro`` when nothing
  is stale (``--project DIR``: only the no-op reruns, in DIR after its own run, e.g. a fresh
  clone after ``make run``).
Goals (issues 3 and 14): data preparation ≥ 100× real time; the default run ≤ 15 min; no-op
reruns ≤ 2 s (snakemake) and ≤ 3 s (dvc repro).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from deepfx.config import load_params
from deepfx.effects import process_dataset
from deepfx.generate import generate_dataset

ROOT = Path(__file__).resolve().parents[1]


def audio_seconds(files: list[Path]) -> float:
    return sum(sf.info(f).duration for f in files)


def data_speed(params: dict, work: Path) -> dict:
    """Real-time multiples of generate and of each effect's process stage."""
    params["generate"]["training_audio"] = str(work / "no-user-audio")
    start = time.perf_counter()
    clean = generate_dataset(params, work / "clean")
    gen_s = time.perf_counter() - start
    seconds = audio_seconds(clean)
    out = {"audio_seconds": seconds, "generate_x_realtime": seconds / gen_s, "effects": {}}
    total_s = gen_s
    for name, spec in params["effects"].items():
        start = time.perf_counter()
        process_dataset(name, spec, work / "clean", work / "processed" / name, int(params["sample_rate"]))
        took = time.perf_counter() - start
        total_s += took
        out["effects"][name] = seconds / took
    written = seconds * (1 + len(params["effects"]))
    out["data_preparation_x_realtime"] = written / total_s
    return out


def _timed(project: Path, *cmd: str) -> float:
    """Wall seconds of ``cmd`` run in ``project`` with this venv's tools first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def full_run(noop_params: Path, work: Path) -> tuple[Path, dict]:
    """A fresh clone of this repository with ``noop_params``, and the seconds of its full run."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shutil.copy2(noop_params, clone / "params.yaml")
    return clone, {"full_run_s": _timed(clone, "snakemake", "--cores", "2")}


def noop_reruns(project: Path) -> dict:
    """Seconds of a no-op ``snakemake`` and ``dvc repro`` in a finished ``project``."""
    return {
        "snakemake_noop_s": _timed(project, "snakemake", "--cores", "2"),
        "dvc_repro_noop_s": _timed(project, "dvc", "repro"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--noop-params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--project", type=Path, help="time the no-op reruns in this finished run only")
    parser.add_argument("--skip-data", action="store_true", help="leave out the data stages' speed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_data:
            result.update(data_speed(load_params(args.params), Path(tmp)))
        project = args.project
        if project is None:
            project, timing = full_run(args.noop_params, Path(tmp))
            result.update(timing)
        result.update(noop_reruns(project))
    if not args.skip_data:
        print(f"audio generated: {result['audio_seconds']:.0f} s ({args.params.name})")
        print(f"generate: {result['generate_x_realtime']:.0f}x real time")
        for name, speed in result["effects"].items():
            print(f"process {name:<12} {speed:8.0f}x real time")
        print(f"data preparation (generate + every effect): {result['data_preparation_x_realtime']:.0f}x real time (goal >= 100x)")
    if "full_run_s" in result:
        print(f"full run: {result['full_run_s'] / 60:.1f} min (goal <= 15 min with the install)")
    print(f"no-op rerun: snakemake {result['snakemake_noop_s']:.2f} s (goal <= 2 s), "
          f"dvc repro {result['dvc_repro_noop_s']:.2f} s (goal <= 3 s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
