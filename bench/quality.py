"""How close each effect's model gets to the real effect, under a fixed CPU budget.

    python bench/quality.py [--params params.yaml] [--budget 240] [--baseline-budget 60]
                            [--jobs 2] [--effects fuzz delay ...]

For every effect of ``params.yaml`` (on its default data: run ``snakemake --cores 2 --until
process`` or ``make run`` first) this trains the effect's own model (``effects.<name>.model``)
for at most ``--budget`` seconds and the seed's baselines (``archs``) for ``--baseline-budget``
seconds each, every job on one thread with ``--jobs`` jobs side by side (2 cores), then scores
each model on the held-out test split with ``deepfx evaluate``. The budget is the training time
(``train.max_seconds``; early stopping may end a job sooner); closed-form ``initialise`` fits
count towards it.

Prints a markdown table (paste it into the README) and writes bench/results/quality.csv (rows of
effects not run this time are kept from the last run): ESR and
MR-STFT of the model, ESR of the clean input, the log-mel distance ratio model↔effect /
clean↔effect, closer-than-clean on every test file (by the effect's target metric), parameters,
training seconds, inference real-time factor, and the issue's target with met or missed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from deepfx.config import load_params
from deepfx.pipeline import models_of

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "quality.csv"
#: Issue 4's targets on the test split: effect → (metric, largest value met).
TARGETS = {
    "distortion": ("esr", 0.01),
    "fuzz": ("esr", 0.01),
    "amp_cab": ("esr", 0.02),
    "compressor": ("esr", 0.03),
    "high_pass": ("esr", 0.005),
    "low_pass": ("esr", 0.005),
    "delay": ("esr", 0.02),
    "reverb": ("esr", 0.02),
    "chorus": ("esr", 0.05),
    "phaser": ("esr", 0.05),
    "pitch_shift": ("log_mel_ratio", 0.3),
}
#: Early stopping: epochs without a better validation loss before a job ends inside its budget.
PATIENCE = 5
COLUMNS = (
    "effect", "arch", "role", "esr", "mrstft", "esr_clean", "log_mel_ratio", "closer_on_every_file",
    "params", "train_seconds", "budget_seconds", "inference_rtf", "target", "met",
)


def bench_params(params: dict, budget: float, baseline_budget: float) -> dict:
    """``params`` with training bounded by time: many epochs, a budget per job, one thread."""
    out = copy.deepcopy(params)
    out["train"].update(epochs=10_000, patience=PATIENCE, threads=1, device="cpu")
    out["tracking"] = {"uri": "sqlite:///mlflow.db", "experiment": "deepfx-quality"}
    for effect, spec in out["effects"].items():
        spec["model"].setdefault("train", {})["max_seconds"] = budget
    for arch in out["archs"]:
        out["models"][arch].setdefault("train", {})["max_seconds"] = baseline_budget
    return out


def run_job(workdir: Path, effect: str, arch: str) -> dict:
    """Train and evaluate one model with the deepfx CLI in ``workdir``; its metrics."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = workdir / "models" / effect / arch
    report = workdir / "reports" / effect / arch
    common = ["--effect", effect, "--arch", arch, "--clean", str(ROOT / "data/clean"),
              "--processed", str(ROOT / "data/processed" / effect)]
    for stage, extra in (("train", ["--out", str(out)]),
                         ("evaluate", ["--model", str(out / "model.pt"), "--out", str(report)])):
        proc = subprocess.run(
            ["deepfx", "--params", str(workdir / "params.yaml"), stage, *common, *extra],
            cwd=workdir, env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"{effect}/{arch} {stage} failed:\n{proc.stderr[-3000:]}")
    return json.loads((report / "metrics.json").read_text())


def score(metrics: dict, metric: str, target: float) -> dict:
    """The bench figures of one model's metrics.json, judged by ``metric`` (``esr`` or
    ``log_mel_ratio``) against ``target``: met when below it (≤ for the log-mel ratio) and closer
    to the effect than the clean input on every file by that metric."""
    log_mel_ratio = metrics["log_mel"] / metrics["log_mel_clean"]
    files = metrics["files"]
    if metric == "log_mel_ratio":
        closer = all(f["log_mel"] < f["log_mel_clean"] for f in files)
        met = log_mel_ratio <= target
    else:
        closer = all(f["esr"] < f["esr_clean"] for f in files)
        met = metrics["esr"] < target
    return {
        "esr": metrics["esr"], "mrstft": metrics["mrstft"], "esr_clean": metrics["esr_clean"],
        "log_mel_ratio": log_mel_ratio, "closer_on_every_file": closer,
        "params": metrics["n_params"], "train_seconds": metrics["train_seconds"],
        "inference_rtf": metrics["inference_rtf"],
        "target": f"ESR < {target:g}" if metric == "esr" else f"log-mel ratio ≤ {target:g}",
        "met": bool(met and closer),
    }


def row(effect: str, arch: str, role: str, metrics: dict, budget: float) -> dict:
    """One table row: the metrics, the log-mel ratio and the target verdict."""
    metric, target = TARGETS.get(effect, ("esr", float("nan")))
    return {"effect": effect, "arch": arch, "role": role, "budget_seconds": budget,
            **score(metrics, metric, target)}


def merged(rows: list[dict], effects: list[str]) -> list[dict]:
    """``rows`` plus the rows of other effects kept from the last quality.csv, in params order."""
    kept = []
    if OUT.is_file():
        with open(OUT, newline="") as f:
            ran = {r["effect"] for r in rows}
            for old in csv.DictReader(f):
                if old["effect"] not in ran and old["effect"] in effects:
                    kept.append(_typed(old))
    return sorted(rows + kept, key=lambda r: (effects.index(r["effect"]), r["role"] == "own"))


def _typed(r: dict) -> dict:
    """A quality.csv row read back with its numbers and booleans."""
    out = dict(r)
    for key in ("esr", "mrstft", "esr_clean", "log_mel_ratio", "train_seconds", "budget_seconds",
                "inference_rtf"):
        out[key] = float(r[key])
    out["params"] = int(r["params"])
    for key in ("closer_on_every_file", "met"):
        out[key] = r[key] == "True"
    return out


def markdown(rows: list[dict]) -> str:
    head = ("| effect | model | ESR | MR-STFT | ESR clean | log-mel ratio | closer on every file "
            "| params | train s | RTF | target | met |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        name = r["arch"] + (" (baseline)" if r["role"] == "baseline" else "")
        lines.append(
            f"| {r['effect']} | {name} | {r['esr']:.3g} | {r['mrstft']:.3g} | {r['esr_clean']:.3g} "
            f"| {r['log_mel_ratio']:.3f} | {'yes' if r['closer_on_every_file'] else 'no'} "
            f"| {r['params']} | {r['train_seconds']:.0f} | {r['inference_rtf']:.4f} "
            f"| {r['target'] if r['role'] == 'own' else ''} "
            f"| {('✓' if r['met'] else '✗ missed') if r['role'] == 'own' else ''} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--budget", type=float, default=240.0, help="s of training per effect model")
    parser.add_argument("--baseline-budget", type=float, default=60.0, help="s per baseline model")
    parser.add_argument("--jobs", type=int, default=2, help="training jobs side by side")
    parser.add_argument("--effects", nargs="*", help="only these effects (default: all)")
    args = parser.parse_args()
    params = load_params(args.params)
    effects = args.effects or list(params["effects"])
    jobs = [(e, a, "own" if a == params["effects"][e]["model"]["arch"] else "baseline")
            for e in effects for a in models_of(params, e)]
    with tempfile.TemporaryDirectory(prefix="deepfx-quality-") as tmp:
        workdir = Path(tmp)
        (workdir / "params.yaml").write_text(
            yaml.safe_dump(bench_params(params, args.budget, args.baseline_budget), sort_keys=False)
        )
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda job: run_job(workdir, job[0], job[1]), jobs))
    rows = [
        row(e, a, role, m, args.budget if role == "own" else args.baseline_budget)
        for (e, a, role), m in zip(jobs, results)
    ]
    rows = merged(rows, list(params["effects"]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(markdown(rows))
    print(f"\nwrote {OUT.relative_to(ROOT)}; budget {args.budget:g} s per effect model, "
          f"{args.baseline_budget:g} s per baseline, {args.jobs} jobs on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
