"""The foreign-effects benchmark: effects deepfx was not written for, judged on real playing.

    python bench/foreign.py [--budget 240] [--cores 2] [--effects NAME ...] [--smoke]

Every effect of ``bench/foreign.yaml`` (a deepfx params file: real LV2 plugins of several
families and pedalboard chains at non-default settings, each with the README's model for its
class) is trained by the project's own pipeline (the real Snakefile, ``snakemake --cores``) on
its own generated data in ``bench/work/foreign/`` (kept, so a rerun only does what is stale), for
at most ``--budget`` seconds per model on one thread. Every chorus, flanger and phaser runs a
second time as ``<name>__free``: rendered after a random lead-in per file (0.1–3 s of audio or
silence, seeded), as a pedal whose LFO was already running.

Each model is then scored twice: on the generator's test split (the pipeline's own evaluate
stage) and on the realistic takes of :mod:`deepfx.takes` (fluidsynth-rendered guitars, bass and
keys, never trained on), run through the same effect. Writes ``bench/results/foreign.csv`` and
prints a markdown table: ESR, MR-STFT, log-mel ratio (model↔effect / clean↔effect),
closer-than-clean on every file, parameters, training seconds, the class's target and the gap
between takes and test split (takes ESR / test ESR, target ≤ 2).

``--smoke`` is the harness check CI runs: the first effect of each class, seconds of audio, a
few seconds of training, three takes cut to 3 s; its figures mean nothing.

An effect is named ``<class>__<plugin>``; the class picks the target. Plugins that do not run
under ``lv2apply`` are listed at the end of ``bench/foreign.yaml`` with the reason.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml
from quality import score

from deepfx.atomic import atomic_dir
from deepfx.audio import read_audio, write_audio
from deepfx.config import validate_params
from deepfx.effects import apply_effect
from deepfx.evaluate import evaluate_model
from deepfx.takes import render_takes

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "bench" / "foreign.yaml"
OUT = ROOT / "bench" / "results" / "foreign.csv"
CACHE = ROOT / "bench" / "cache"
#: Issue 11's targets on the realistic takes: class → (metric, bound).
TARGETS = {
    "drive": ("esr", 0.01), "fuzz": ("esr", 0.01), "amp": ("esr", 0.01), "amp_cab": ("esr", 0.01),
    "compressor": ("esr", 0.02),
    "high_pass": ("esr", 0.005), "low_pass": ("esr", 0.005), "eq": ("esr", 0.005),
    "delay": ("esr", 0.02), "reverb": ("esr", 0.02),
    "chorus": ("esr", 0.05), "flanger": ("esr", 0.05), "phaser": ("esr", 0.05),
    "pitch_up": ("log_mel_ratio", 0.3), "pitch_down": ("log_mel_ratio", 0.3),
}
#: Classes whose effects also run free (after a random lead-in per file).
MODULATION = ("chorus", "flanger", "phaser")
FREE = "__free"
LEAD_IN = {"seconds": [0.1, 3.0], "seed": 11}
#: The gap target: ESR on the takes at most this many times the test split's.
GAP = 2.0
COLUMNS = (
    "effect", "class", "backend", "plugin", "free_running", "arch", "material", "esr", "mrstft",
    "esr_clean", "log_mel_ratio", "closer_on_every_file", "params", "train_seconds",
    "budget_seconds", "inference_rtf", "target", "met", "gap", "gap_met",
)


def effect_class(name: str) -> str:
    """The class of effect ``name`` (``<class>__<plugin>[__free]``)."""
    return name.split("__")[0]


def bench_params(spec: dict, budget: float, effects: list[str] | None, smoke: bool) -> dict:
    """The params the pipeline runs: ``spec``'s effects (or ``effects``), each modulation effect
    also free-running, no baselines, ``budget`` seconds per model; ``smoke`` shrinks everything."""
    params = copy.deepcopy(spec)
    chosen = {}
    for name, effect in params["effects"].items():
        if smoke and any(effect_class(n) == effect_class(name) for n in chosen):
            continue
        chosen[name] = effect
        if effect_class(name) in MODULATION:
            chosen[name + FREE] = {**copy.deepcopy(effect), "lead_in": LEAD_IN}
    if effects:
        unknown = sorted(set(effects) - set(chosen))
        if unknown:
            sys.exit(f"bench/foreign.py: unknown effects {unknown}; known: {sorted(chosen)}")
        chosen = {name: chosen[name] for name in effects}
    params["effects"] = chosen
    params["archs"] = []
    params["train"].update(max_seconds=budget, threads=1, device="cpu")
    if smoke:
        params["generate"].update(tracks=3, segments=1, segment_seconds=3.0)
        params["train"].update(epochs=1, steps_per_epoch=2, batch_size=2, excerpt_samples=2048)
        for effect in chosen.values():
            effect["model"].pop("train", None)
    return validate_params(params, source=str(SPEC))


def run_pipeline(work: Path, params: dict, cores: int) -> None:
    """Write ``work/params.yaml`` and run the project's Snakefile there up to every own model's
    test-split metrics (no plots, no report: the bench writes its own table), going on past
    an effect that fails (its row says so)."""
    (work / "data" / "training_audio").mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    targets = [f"reports/effects/{e}/{spec['model']['arch']}/metrics.json"
               for e, spec in params["effects"].items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        ["snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", str(cores),
         "--keep-going", "--quiet", "rules", "--", *targets],
        env=env,
    )


def lay_out_takes(work: Path, smoke: bool) -> Path:
    """``work/takes/clean/test/*.wav``: the rendered takes (three cut to 3 s for ``smoke``)."""
    takes = render_takes(CACHE)
    clean = work / "takes" / ("smoke" if smoke else "full") / "clean"
    if not clean.is_dir():
        clean.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(clean) as tmp:
            (tmp / "test").mkdir()
            for path in sorted(takes.glob("*.wav"))[: 3 if smoke else None]:
                x = read_audio(path, 44100)
                write_audio(tmp / "test" / path.name, x[: 3 * 44100] if smoke else x, 44100)
    return clean


def score_on_takes(work: Path, clean: Path, params: dict, name: str) -> dict:
    """The model of effect ``name`` evaluated on the takes run through the same effect."""
    spec = params["effects"][name]
    sr = int(params["sample_rate"])
    processed = clean.parent / "processed" / name
    if not processed.is_dir():
        inputs = sorted((clean / "test").glob("*.wav"))
        processed.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(processed) as tmp:
            (tmp / "test").mkdir()
            apply_effect(name, spec, inputs, [tmp / "test" / p.name for p in inputs], sr)
    arch = spec["model"]["arch"]
    model = work / "models" / name / arch / "model.pt"
    report = clean.parent / "reports" / name
    done = report / "metrics.json"
    if done.is_file() and done.stat().st_mtime > max(model.stat().st_mtime,
                                                     processed.stat().st_mtime):
        return json.loads(done.read_text())  # scored since the model was last trained
    return evaluate_model(model, clean, processed, report, params)


def rows_of(name: str, params: dict, test: dict, takes: dict, budget: float) -> list[dict]:
    """The two table rows of one effect: test split and takes, with the gap on the takes row."""
    spec = params["effects"][name]
    cls = effect_class(name)
    metric, target = TARGETS[cls]
    common = {
        "effect": name, "class": cls, "backend": spec["backend"],
        "plugin": spec.get("uri") or " + ".join(p["plugin"] for p in spec.get("chain", [])),
        "free_running": name.endswith(FREE), "arch": spec["model"]["arch"],
        "budget_seconds": budget,
    }
    out = []
    for material, metrics in (("test", test), ("takes", takes)):
        out.append({**common, "material": material, **score(metrics, metric, target),
                    "gap": "", "gap_met": ""})
    if metric == "esr":
        gap = takes["esr"] / max(test["esr"], 1e-12)
        out[1].update(gap=gap, gap_met=gap <= GAP)
    return out


def failed_row(name: str, params: dict, work: Path) -> dict:
    """The row of an effect whose pipeline failed: which stage, and the last line of its log."""
    spec = params["effects"][name]
    logs = sorted((work / "logs").glob(f"*/{name}.log")) + sorted((work / "logs").glob(f"*/{name}/*.log"))
    last = next((line for log in logs for line in reversed(log.read_text().splitlines())
                 if "error" in line.lower()), "no log")
    return {"effect": name, "class": effect_class(name), "backend": spec["backend"],
            "plugin": spec.get("uri", ""), "free_running": name.endswith(FREE),
            "arch": spec["model"]["arch"], "material": "failed", "target": last[:200]}


def markdown(rows: list[dict]) -> str:
    """The README table: one line per effect, takes first, the test split beside it."""
    head = ("| class | effect | model | ESR takes | ESR test | gap | log-mel ratio takes | MR-STFT takes "
            "| closer on every take | params | train s | target | met |")
    lines = [head, "|" + "---|" * 13]
    by_effect: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_effect.setdefault(r["effect"], {})[r["material"]] = r
    for name, pair in by_effect.items():
        if "failed" in pair:
            f = pair["failed"]
            lines.append(f"| {f['class']} | {name} | `{f['arch']}` | failed: {f['target']} |"
                         + " |" * 8 + " ✗ |")
            continue
        t, s = pair["takes"], pair["test"]
        gap = f"{float(t['gap']):.1f}" if t["gap"] != "" else "–"
        lines.append(
            f"| {t['class']}{' (free)' if t['free_running'] in (True, 'True') else ''} | {name} "
            f"| `{t['arch']}` | {float(t['esr']):.3g} | {float(s['esr']):.3g} | {gap} "
            f"| {float(t['log_mel_ratio']):.3f} | {float(t['mrstft']):.3g} "
            f"| {'yes' if t['closer_on_every_file'] in (True, 'True') else 'no'} | {t['params']} "
            f"| {float(t['train_seconds']):.0f} | {t['target']} "
            f"| {'✓' if t['met'] in (True, 'True') else '✗'} |"
        )
    return "\n".join(lines)


def merged(rows: list[dict], out: Path) -> list[dict]:
    """``rows`` plus the rows of effects not run this time, kept from the last ``out``."""
    ran = {r["effect"] for r in rows}
    kept = []
    if out.is_file():
        with open(out, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["effect"] not in ran]
    return sorted(kept + rows, key=lambda r: (list(TARGETS).index(r["class"]), r["effect"],
                                             r["material"] != "test"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="s of training per model")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (jobs at once)")
    parser.add_argument("--effects", nargs="*", help="only these effects (default: all)")
    parser.add_argument("--smoke", action="store_true", help="harness check: tiny and fast")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work" / "foreign")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    spec = yaml.safe_load(SPEC.read_text())
    params = bench_params(spec, args.budget, args.effects, args.smoke)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run_pipeline(args.work, params, args.cores)
    clean = lay_out_takes(args.work, args.smoke)
    metrics_of = {name: args.work / "reports" / "effects" / name / spec["model"]["arch"]
                  / "metrics.json" for name, spec in params["effects"].items()}
    names = [name for name, path in metrics_of.items() if path.is_file()]
    with ProcessPoolExecutor(args.cores) as pool:
        takes = list(pool.map(score_on_takes, [args.work] * len(names), [clean] * len(names),
                              [params] * len(names), names))
    rows = [failed_row(name, params, args.work) for name in metrics_of if name not in names]
    for name, on_takes in zip(names, takes):
        test = yaml.safe_load(metrics_of[name].read_text())
        rows += rows_of(name, params, test, on_takes, args.budget)
    rows = rows if args.smoke else merged(rows, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(markdown(rows))
    met = sum(r["met"] in (True, "True") for r in rows if r["material"] == "takes")
    total = len({r["effect"] for r in rows})
    print(f"\n{met} of {total} targets met on the takes; wrote {args.out} in "
          f"{time.perf_counter() - started:.0f} s ({args.budget:g} s budget per model, "
          f"{args.cores} jobs on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
