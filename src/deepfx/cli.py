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

__all__ = ["main"]

log = logging.getLogger("deepfx")


def _effect(params: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``effects.<name>`` entry, or a clear error listing the known effects."""
    try:
        return params["effects"][name]
    except KeyError:
        known = ", ".join(params["effects"])
        raise DeepfxError(f"effects: no effect named {name!r} in params.yaml (known: {known})") from None


def _arch(params: dict[str, Any], name: str) -> str:
    if name not in params["archs"]:
        raise DeepfxError(f"archs: {name!r} is not listed in params.yaml (listed: {', '.join(params['archs'])})")
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
    out = args.out or Path("models") / args.effect / _arch(params, args.arch)
    from deepfx.train import train_model

    processed = args.processed or Path("data/processed") / args.effect
    train_model(args.effect, args.arch, params, args.clean, processed, out)


def cmd_evaluate(params: dict[str, Any], args: argparse.Namespace) -> None:
    _effect(params, args.effect)
    _arch(params, args.arch)
    from deepfx.evaluate import evaluate_model

    model = args.model or Path("models") / args.effect / args.arch / "model.pt"
    processed = args.processed or Path("data/processed") / args.effect
    out = args.out or Path("reports") / "effects" / args.effect / args.arch
    evaluate_model(model, args.clean, processed, out, params)


def cmd_plots(params: dict[str, Any], args: argparse.Namespace) -> None:
    _effect(params, args.effect)
    _arch(params, args.arch)
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
    from deepfx.report import build_report

    metrics = [args.reports / "effects" / e / a / "metrics.json" for e in params["effects"] for a in params["archs"]]
    build_report(metrics, args.reports)
    log.info("wrote %s", args.reports / "index.html")


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
            p.add_argument("--arch", required=True, help="architecture (one of params.yaml archs)")
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
        params = load_params(args.params)
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
