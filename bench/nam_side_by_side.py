"""deepfx against Neural Amp Modeler's own trainer, side by side on the foreign bench's drive,
fuzz and amp plugins, at equal CPU time.

    python bench/nam_side_by_side.py [--budget 240] [--jobs 2] [--effects NAME ...] [--smoke]

Runs after ``bench/foreign.py`` (its work folder holds the generated data, the plugins' output
and the takes run through each plugin; ``bench/results/foreign.csv`` holds deepfx's scores) and
``make nam-venv``. For every effect of the classes drive, fuzz, amp and amp_cab, one capture —
the generated train split joined end to end, then the valid split for validation: what deepfx
trained on — trains NAM's standard WaveNet and NAM's LSTM with NAM's trainer
(``bench/nam_train.py`` in the NAM venv) for ``--budget`` s of wall time on one torch thread
each, ``--jobs`` at once, as foreign.py trains deepfx's models. Each NAM model then plays the
takes through NAM's own loader and is scored like deepfx's (ESR pooled over the takes, and
per take against passing the clean take). Writes ``bench/results/nam_side_by_side.csv`` and
prints a markdown table. ``--smoke`` (after ``foreign.py --smoke``) is the harness check: the
short takes of the smoke run; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from deepfx.audio import read_audio, write_audio

ROOT = Path(__file__).resolve().parents[1]
NAM_PYTHON = Path(os.environ.get("DEEPFX_NAM_PYTHON", ROOT / ".venv-nam" / "bin" / "python"))
CLASSES = ("drive", "fuzz", "amp", "amp_cab")
ARCHS = ("wavenet", "lstm")
OUT = ROOT / "bench" / "results" / "nam_side_by_side.csv"
COLUMNS = ("effect", "trainer", "esr_takes", "closer_on_every_take", "budget_seconds")


def capture(work: Path, effect: str, folder: Path, sample_rate: int) -> tuple[int, float]:
    """Write ``folder``/input.wav and output.wav (train split, then valid split, float32);
    the number of training samples, and the gain the output was scaled by: NAM refuses an
    output that reaches full scale, so a hotter one is brought to a peak of 0.99 (as a NAM
    user lowers the reamp level; ESR does not change when both sides scale alike)."""
    parts: dict[str, list[np.ndarray]] = {"clean": [], "processed": []}
    train_samples = 0
    for split in ("train", "valid"):
        for path in sorted((work / "data" / "clean" / split).glob("*.wav")):
            parts["clean"].append(read_audio(path, sample_rate))
            effect_path = work / "data" / "processed" / effect / split / path.name
            parts["processed"].append(read_audio(effect_path, sample_rate))
            train_samples += len(parts["clean"][-1]) if split == "train" else 0
    folder.mkdir(parents=True, exist_ok=True)
    output = np.concatenate(parts["processed"])
    gain = min(1.0, 0.99 / float(np.max(np.abs(output))))
    write_audio(folder / "input.wav", np.concatenate(parts["clean"]), sample_rate)
    write_audio(folder / "output.wav", gain * output, sample_rate)
    return train_samples, gain


def train_nam(arch: str, folder: Path, train_samples: int, budget: float, takes: Path) -> Path:
    """NAM's ``arch`` trained on the capture in ``folder``; the folder of its take outputs."""
    out = folder / arch
    predictions = out / "takes"
    command = [str(NAM_PYTHON), str(ROOT / "bench" / "nam_train.py"), arch,
               str(folder / "input.wav"), str(folder / "output.wav"), str(train_samples),
               str(budget), str(out), str(takes), str(predictions)]
    log = folder / f"{arch}.log"
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        last = (log.read_text().strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{folder.name} {arch}: NAM's trainer failed ({last}); see {log}")
    return predictions


def score(
    predictions: Path, clean: Path, processed: Path, sample_rate: int, gain: float
) -> tuple[float, bool]:
    """ESR pooled over the takes (Σ error² / Σ target²), and whether every take is closer to
    the effect's output than the clean take is; predictions are divided by the capture's
    ``gain``."""
    error = energy = 0.0
    closer = True
    for take in sorted(clean.glob("*.wav")):
        x = read_audio(take, sample_rate).astype(np.float64)
        y = read_audio(processed / take.name, sample_rate).astype(np.float64)
        p = read_audio(predictions / take.name, sample_rate).astype(np.float64) / gain
        error += float(np.sum((p - y) ** 2))
        energy += float(np.sum(y**2))
        closer &= bool(np.sum((p - y) ** 2) < np.sum((x - y) ** 2))
    return error / energy, closer


def deepfx_scores(path: Path) -> dict[str, tuple[float, bool]]:
    """Effect → (ESR on the takes, closer on every take) of deepfx's model, from foreign.csv."""
    with open(path, newline="") as f:
        return {r["effect"]: (float(r["esr"]), r["closer_on_every_file"] == "True")
                for r in csv.DictReader(f) if r["material"] == "takes"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="s of training per model")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--effects", nargs="*", help="only these effects (default: all of "
                        + ", ".join(CLASSES) + ")")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "foreign")
    parser.add_argument("--foreign", type=Path, default=ROOT / "bench" / "results" / "foreign.csv",
                        help="foreign.py's results: deepfx's scores")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--archs", nargs="*", default=list(ARCHS), choices=ARCHS,
                        help="NAM's architectures to train")
    parser.add_argument("--smoke", action="store_true", help="harness check on the smoke run")
    args = parser.parse_args()
    if not NAM_PYTHON.is_file():
        parser.error(f"{NAM_PYTHON} is missing: run `make nam-venv`")
    params = yaml.safe_load((args.work / "params.yaml").read_text())
    rate = int(params["sample_rate"])
    effects = args.effects or [n for n in params["effects"] if n.split("__")[0] in CLASSES]
    takes = args.work / "takes" / ("smoke" if args.smoke else "full")
    jobs = []
    for effect in effects:
        folder = args.work / "nam" / effect
        n, gain = capture(args.work, effect, folder, rate)
        jobs += [(effect, arch, folder, n, gain) for arch in args.archs]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda j: train_nam(j[1], j[2], j[3], args.budget,
                                                 takes / "clean" / "test"), jobs))
    deepfx = deepfx_scores(args.foreign)
    rows = []
    for (effect, arch, _, _, gain), predictions in zip(jobs, done):
        esr, closer = score(predictions, takes / "clean" / "test",
                            takes / "processed" / effect / "test", rate, gain)
        rows.append({"effect": effect, "trainer": f"nam_{arch}", "esr_takes": esr,
                     "closer_on_every_take": closer, "budget_seconds": args.budget})
    for effect in effects:
        rows.append({"effect": effect, "trainer": "deepfx", "esr_takes": deepfx[effect][0],
                     "closer_on_every_take": deepfx[effect][1], "budget_seconds": args.budget})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(table(rows, effects))


def table(rows: list[dict], effects: list[str]) -> str:
    """The README table: per effect, deepfx's and NAM's ESR on the takes, and who is lowest."""
    by = {(r["effect"], r["trainer"]): r["esr_takes"] for r in rows}
    trainers = [t for t in ("nam_wavenet", "nam_lstm") if any(k[1] == t for k in by)]
    names = {"nam_wavenet": "NAM WaveNet", "nam_lstm": "NAM LSTM"}
    lines = ["| effect | deepfx | " + " | ".join(names[t] for t in trainers) + " | deepfx lowest |",
             "|---|---|" + "---|" * len(trainers) + "---|"]
    wins = 0
    for effect in effects:
        ours, theirs = by[effect, "deepfx"], [by[effect, t] for t in trainers]
        win = ours <= min(theirs)
        wins += win
        lines.append(f"| {effect} | {ours:.3g} | " + " | ".join(f"{v:.3g}" for v in theirs)
                     + f" | {'✓' if win else '✗'} |")
    return "\n".join(lines) + f"\n\ndeepfx lowest on {wins} of {len(effects)} effects"


if __name__ == "__main__":
    main()
