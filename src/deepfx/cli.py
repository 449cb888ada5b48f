"""``deepfx`` — one command per pipeline stage; Snakemake and DVC run exactly these commands.

Every stage reads the checked ``params.yaml`` and writes to the standard layout unless told
otherwise (see ``deepfx <stage> --help``). Bad input ends in one ``deepfx: error: …`` line and
exit status 2, with nothing half-written left behind.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepfx import __version__
from deepfx.config import load_params
from deepfx.errors import DeepfxError
from deepfx.export import FORMATS
from deepfx.export.nam import GEAR_TYPES
from deepfx.pipeline import models_of, trained_models

__all__ = ["main"]

log = logging.getLogger("deepfx")


def _effect(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``effects.<name>`` entry, or a clear error listing the known effects."""
    try:
        return params["effects"][name]
    except KeyError:
        known = ", ".join(params["effects"])
        raise DeepfxError(f"effects: no effect named {name!r} in params.yaml (known: {known})") from None


def _arch(params: dict[str, Any], effect: str, name: str) -> str:
    """``name`` if ``effect`` trains that arch (a baseline or its own model), else a clear error."""
    listed = models_of(params, effect)
    if name not in listed:
        raise DeepfxError(
            f"archs: {effect} trains {', '.join(listed)} (archs and effects.{effect}.model), "
            f"not {name!r}"
        )
    return name


def cmd_generate(params: dict[str, Any], args: argparse.Namespace) -> None:
    from deepfx.generate import generate_dataset

    for key in ("tracks", "segments"):
        if getattr(args, key) is not None:
            params["generate"][key] = getattr(args, key)
    files = generate_dataset(params, args.out)
    log.info("wrote %d clean files to %s", len(files), args.out)


def cmd_process(params: dict[str, Any], args: argparse.Namespace) -> None:
    spec = _effect(params, args.effect)
    from deepfx.effects import process_dataset

    out = args.out or Path("data/processed") / args.effect
    files = process_dataset(args.effect, spec, args.clean, out, int(params["sample_rate"]))
    log.info("wrote %d %s files to %s", len(files), args.effect, out)


def cmd_train(params: dict[str, Any], args: argparse.Namespace) -> None:
    _effect(params, args.effect)
    out = args.out or Path("models") / args.effect / _arch(params, args.effect, args.arch)
    from deepfx.train import train_model

    processed = args.processed or Path("data/processed") / args.effect
    train_model(args.effect, args.arch, params, args.clean, processed, out)


def cmd_evaluate(params: dict[str, Any], args: argparse.Namespace) -> None:
    _effect(params, args.effect)
    _arch(params, args.effect, args.arch)
    from deepfx.evaluate import evaluate_model

    model = args.model or Path("models") / args.effect / args.arch / "model.pt"
    processed = args.processed or Path("data/processed") / args.effect
    out = args.out or Path("reports") / "effects" / args.effect / args.arch
    evaluate_model(model, args.clean, processed, out, params)


def cmd_plots(params: dict[str, Any], args: argparse.Namespace) -> None:
    _effect(params, args.effect)
    _arch(params, args.effect, args.arch)
    from deepfx.plots import make_plots

    out = args.out or Path("reports") / "effects" / args.effect / args.arch
    make_plots(
        args.effect,
        args.arch,
        params,
        clean_dir=args.clean,
        processed_dir=args.processed or Path("data/processed") / args.effect,
        predictions_dir=out / "predictions",
        history_csv=args.history or Path("models") / args.effect / args.arch / "history.csv",
        out_dir=out,
    )


def cmd_report(params: dict[str, Any], args: argparse.Namespace) -> None:
    from deepfx.models import judging_metric
    from deepfx.report import build_report

    metrics = [args.reports / "effects" / e / a / "metrics.json" for e, a in trained_models(params)]
    judged_by = {e: judging_metric(spec["model"]["arch"]) for e, spec in params["effects"].items()}
    build_report(metrics, args.reports, judged_by)
    log.info("wrote %s", args.reports / "index.html")


def cmd_code(params: dict[str, Any], args: argparse.Namespace) -> None:
    from deepfx.stage_code import write_digests

    files = write_digests(Path.cwd(), args.out)
    log.info("wrote %d stage code digests to %s", len(files), args.out)


def cmd_abx(params: dict[str, Any], args: argparse.Namespace) -> None:
    if args.action == "summary":
        from deepfx.abx.results import read_results
        from deepfx.abx.stats import format_summary, summarise

        rows, unreadable = read_results(args.results)
        print(format_summary(summarise(rows)))
        if unreadable:
            log.warning("%s: %d unreadable line(s) left out", args.results, unreadable)
        return
    from deepfx.abx.server import create_app, serve

    app = create_app(params, args.results, args.effect, args.arch, args.clean,
                     args.processed, args.reports, args.listener)
    serve(app, args.port)


def cmd_apply(params: dict[str, Any], args: argparse.Namespace) -> None:
    import torch

    from deepfx.apply import apply_file

    if args.threads < 1:
        raise DeepfxError(f"--threads: expected a positive number of threads, got {args.threads}")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # decaying tails in denormal floats slow inference several-fold
    options = {} if args.block_samples is None else {"block_samples": args.block_samples}
    done = apply_file(args.model, args.input, args.output, resample=not args.no_resample, **options)
    log.info("wrote %s (%.1f s, %d channel(s))", args.output, done["seconds"], done["channels"])


def cmd_export(params: dict[str, Any], args: argparse.Namespace) -> None:
    import torch

    from deepfx.export import export_model

    torch.set_num_threads(1)  # small recurrent graphs run hundreds of times slower on contended threads
    out = export_model(args.model, args.format, args.out, name=args.name, gear_type=args.gear_type)
    log.info("wrote %s", out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepfx", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"deepfx {__version__}")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    parser.add_argument("--log", type=Path, help="also write the log to this file (errors still go to stderr)")
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name: str, func: Callable, help: str, effect: bool = False, arch: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if effect:
            p.add_argument("--effect", required=True, help="effect name (a key of params.yaml effects)")
        if arch:
            p.add_argument("--arch", required=True, help="architecture (a baseline in archs or the effect's own model)")
        if name != "report":
            p.add_argument("--clean", type=Path, default=Path("data/clean"), help="clean data folder")
        return p

    p = stage("generate", cmd_generate, "generate random clean audio into train/valid/test")
    p.add_argument("--tracks", type=int, help="number of tracks N (overrides generate.tracks)")
    p.add_argument("--segments", type=int, help="segments M per track (overrides generate.segments)")
    p.set_defaults(out=None)
    p = stage("process", cmd_process, "apply one effect to every clean file", effect=True)
    p.add_argument("--out", type=Path, help="output folder (default: data/processed/EFFECT)")
    for name, func, help in (
        ("train", cmd_train, "train one model of one effect (one MLflow run)"),
        ("evaluate", cmd_evaluate, "score one model on the test split"),
        ("plots", cmd_plots, "draw the mel triptych, amplitude overlay and loss curves"),
    ):
        p = stage(name, func, help, effect=True, arch=True)
        p.add_argument("--processed", type=Path, help="effect data folder (default: data/processed/EFFECT)")
        p.add_argument("--out", type=Path, help="output folder (default: the standard layout)")
        if name == "evaluate":
            p.add_argument("--model", type=Path, help="model file (default: models/EFFECT/ARCH/model.pt)")
        if name == "plots":
            p.add_argument("--history", type=Path, help="loss history (default: models/EFFECT/ARCH/history.csv)")
    p = stage("report", cmd_report, "write reports/index.html and reports/metrics.csv")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="reports folder")
    p = sub.add_parser("code", help="write each stage's code digest (dvc.yaml's code stage)",
                       description="Write OUT/<stage>[-<arch>]: a SHA-256 of the source files each "
                       "stage runs (deepfx.stage_code); unchanged digests are left untouched.")
    p.set_defaults(func=cmd_code)
    p.add_argument("--out", type=Path, default=Path(".code"), help="digest folder (default: .code)")
    p = stage("abx", cmd_abx, "blind ABX listening test of the models in the browser")
    p.add_argument("action", choices=["serve", "summary"],
                   help="serve: start the test page on 127.0.0.1; summary: print the results")
    p.add_argument("--results", type=Path, default=Path("reports/abx/results.csv"),
                   help="answers file, only ever appended to (default: reports/abx/results.csv)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--effect", action="append", help="test this effect only (repeatable; default: all)")
    p.add_argument("--arch", action="append", help="test this arch only (repeatable; default: all)")
    p.add_argument("--listener", default="", help="your name, stored with each answer")
    p.add_argument("--processed", type=Path, default=Path("data/processed"), help="effects' data folder")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="reports folder (model predictions)")
    p = sub.add_parser("apply", help="run a trained model over an audio file (no params.yaml needed)",
                       description="Run a trained model over a wav/flac/mp3/ogg file of any length, "
                       "block by block; resamples to the model's rate and back, channels independently.")
    p.set_defaults(func=cmd_apply)
    p.add_argument("model", type=Path, help="trained model file (models/EFFECT/ARCH/model.pt)")
    p.add_argument("input", type=Path, help="audio file to process")
    p.add_argument("output", type=Path, help="output audio file (written atomically; never the input)")
    p.add_argument("--block-samples", type=int, help="samples read per step (default 8192; memory only)")
    p.add_argument("--no-resample", action="store_true", help="refuse input at another rate than the model's")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest for block-wise work)")
    p = sub.add_parser("export", help="export a trained model as ONNX or .nam (no params.yaml needed)",
                       description="Export a trained model: onnx (any architecture, checked in onnxruntime) "
                       "or nam (Neural Amp Modeler; tcn only).")
    p.set_defaults(func=cmd_export)
    p.add_argument("model", type=Path, help="trained model file (models/EFFECT/ARCH/model.pt)")
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", type=Path, help="output file (default: MODEL with the format's ending)")
    p.add_argument("--name", help=".nam metadata: model name (default: EFFECT (ARCH))")
    p.add_argument("--gear-type", default="pedal", choices=GEAR_TYPES, help=".nam metadata: NAM gear type")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log:
        args.log.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", handlers=handlers, force=True)
    if args.command == "generate" and args.out is None:
        args.out = args.clean
    try:
        params = {} if args.command in ("apply", "export", "code") else load_params(args.params)
        args.func(params, args)
    except DeepfxError as exc:
        log.error("error: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; nothing half-written was kept")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
