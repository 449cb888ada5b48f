"""Train one model (arch) to imitate one effect, resumably, tracked in MLflow."""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfx.atomic import atomic_file
from deepfx.audio import read_audio
from deepfx.checkpoint import fingerprint, load_checkpoint, save_torch
from deepfx.errors import DeepfxError
from deepfx.excerpts import ExcerptSampler, Pair, paired_files
from deepfx.losses import ESRLoss
from deepfx.models import apply_model, build_model
from deepfx.tracking import start_run

__all__ = ["HISTORY_COLUMNS", "configure_torch", "train_model"]

log = logging.getLogger(__name__)

#: Columns of history.csv: 1-based epoch, mean training loss, validation loss, seconds.
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "seconds")
#: train keys that change neither the result nor the data seen, so a checkpoint stays usable.
_RESUMABLE_KEYS = ("epochs", "device", "threads")
_COUNTS = ("seed", "epochs", "steps_per_epoch", "batch_size", "excerpt_samples", "threads")


def configure_torch(train: Mapping) -> torch.device:
    """Apply ``train.threads`` and return the device chosen by ``train.device``.

    Also flushes denormal floats to zero (they slow CPU training several-fold and are inaudible).

    Raises:
        DeepfxError: ``train.device`` is unknown, or ``cuda`` while no GPU is present.
    """
    torch.set_num_threads(int(train["threads"]))
    torch.set_flush_denormal(True)
    device = train["device"]
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeepfxError("train.device: 'cuda' was asked for, but torch sees no CUDA GPU")
    if device not in ("cpu", "cuda"):
        raise DeepfxError(f"train.device: {device!r} is not one of auto, cpu, cuda")
    return torch.device(device)


def _check_train(train: Mapping) -> ESRLoss:
    """Check ``train``'s numbers; return its loss function."""
    for key in _COUNTS:
        value, least = train[key], 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DeepfxError(f"train.{key}: expected an integer >= {least}, got {value!r}")
    rate = train["learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise DeepfxError(f"train.learning_rate: expected a positive number, got {rate!r}")
    try:
        return ESRLoss(train["pre_emphasis"])
    except ValueError as exc:
        raise DeepfxError(f"train.pre_emphasis: {exc}") from None


def _validation_loss(
    model: nn.Module, pairs: list[Pair], loss_fn: ESRLoss, sample_rate: int
) -> float:
    """``loss_fn`` on each whole file of ``pairs`` (run in chunks), averaged weighted by length."""
    total = 0.0
    for pair in pairs:
        prediction = apply_model(model, read_audio(pair.clean, sample_rate))
        target = read_audio(pair.processed, sample_rate)
        with torch.no_grad():
            loss = loss_fn(
                torch.from_numpy(prediction)[None, None], torch.from_numpy(target)[None, None]
            )
        total += float(loss) * pair.samples
    return total / sum(pair.samples for pair in pairs)


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: ESRLoss,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
) -> float:
    """One pass of optimiser steps; the mean training loss. The loss skips the context samples."""
    model.train()
    losses = []
    for clean, processed in batches:
        context = model.receptive_field - 1
        prediction = model(clean.to(device))[..., context:]
        loss = loss_fn(prediction, processed.to(device)[..., context:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def _resume(
    path: Path,
    job_fingerprint: str,
    epochs: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[list[dict], dict]:
    """Load a matching checkpoint into ``model``/``optimizer``; return (history, best-so-far)."""
    fresh: tuple[list[dict], dict] = ([], {"valid_loss": math.inf, "epoch": 0, "state_dict": None})
    state = load_checkpoint(path, job_fingerprint)
    if state is None:
        return fresh
    if state["epoch"] > epochs:
        log.warning("%s: ignored, it has more epochs (%d) than train.epochs", path, state["epoch"])
        return fresh
    initial = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        log.warning("%s: ignored, it does not fit the model (%s)", path, exc)
        model.load_state_dict(initial[0])
        optimizer.load_state_dict(initial[1])
        return fresh
    torch.set_rng_state(state["torch_rng"])
    log.info("%s: resuming after epoch %d", path, state["epoch"])
    return state["history"], state["best"]


def _write_history(path: Path, history: list[dict]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def train_model(
    effect: str,
    arch: str,
    params: Mapping,
    clean_dir: Path,
    processed_dir: Path,
    out_dir: Path,
) -> dict:
    """Train ``arch`` on ``clean_dir`` → ``processed_dir`` (train/valid splits) for ``effect``.

    Writes ``out_dir/model.pt`` (the best-validation weights with their metadata) and
    ``out_dir/history.csv``; keeps ``out_dir/checkpoint.pt`` after every epoch and continues
    from it when it matches this configuration and data (more ``train.epochs`` extend a finished
    run). One MLflow run is logged per call. Returns the summary stored in model.pt, without
    the weights, plus the MLflow ``run_id``.

    Raises:
        DeepfxError: bad parameters (naming the key) or bad data files (naming the file).
    """
    clean_dir, processed_dir, out_dir = Path(clean_dir), Path(processed_dir), Path(out_dir)
    if effect not in params["effects"]:
        known = sorted(params["effects"])
        raise DeepfxError(f"effects.{effect}: no such effect; choose from {known}")
    if arch not in params["models"]:
        raise DeepfxError(f"models.{arch}: no hyper-parameters for architecture {arch!r}")
    train, sample_rate = params["train"], int(params["sample_rate"])
    loss_fn = _check_train(train)
    device = configure_torch(train)
    torch.manual_seed(train["seed"])
    model = build_model(arch, params["models"][arch]).to(device)
    context = model.receptive_field - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=train["learning_rate"])
    train_pairs = paired_files(clean_dir, processed_dir, "train", sample_rate)
    valid_pairs = paired_files(clean_dir, processed_dir, "valid", sample_rate)
    sampler = ExcerptSampler(train_pairs, context, train["excerpt_samples"], train["seed"])

    config = {
        "effect": effect,
        "effect_spec": params["effects"][effect],
        "arch": arch,
        "model": params["models"][arch],
        "train": {k: v for k, v in train.items() if k not in _RESUMABLE_KEYS},
        "sample_rate": sample_rate,
    }
    files = {
        f"{kind}/{split}/{pair.name}": getattr(pair, kind)
        for split, pairs in (("train", train_pairs), ("valid", valid_pairs))
        for pair in pairs
        for kind in ("clean", "processed")
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    job_fingerprint = fingerprint(config, files)
    history, best = _resume(checkpoint_path, job_fingerprint, train["epochs"], model, optimizer)

    with start_run(params, effect, arch) as run:
        for row in history:
            run.log_epoch(row["epoch"], row["train_loss"], row["valid_loss"])
        if history:
            run.set_tag("resumed_from_epoch", str(len(history)))
        for epoch in range(len(history) + 1, train["epochs"] + 1):
            started = time.perf_counter()
            batches = sampler.batches(epoch, train["steps_per_epoch"], train["batch_size"])
            train_loss = _train_epoch(model, optimizer, loss_fn, batches, device)
            valid = _validation_loss(model, valid_pairs, loss_fn, sample_rate)
            if not (math.isfinite(train_loss) and math.isfinite(valid)):
                raise DeepfxError(
                    f"train.learning_rate: training diverged in epoch {epoch} (train loss "
                    f"{train_loss}, valid loss {valid}); try a smaller learning rate"
                )
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "valid_loss": valid,
                "seconds": time.perf_counter() - started,
            }
            history.append(row)
            if valid < best["valid_loss"]:
                weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best = {"valid_loss": valid, "epoch": epoch, "state_dict": weights}
            save_torch(
                checkpoint_path,
                {
                    "fingerprint": job_fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best": best,
                },
            )
            run.log_epoch(epoch, row["train_loss"], valid)
            log.info(
                "%s/%s epoch %d/%d: train %.4g, valid %.4g (%.1f s)",
                effect, arch, epoch, train["epochs"], row["train_loss"], valid, row["seconds"],
            )

        summary = {
            "effect": effect,
            "arch": arch,
            "config": dict(params["models"][arch]),
            "sample_rate": sample_rate,
            "receptive_field": model.receptive_field,
            "n_params": sum(p.numel() for p in model.parameters()),
            "epochs": len(history),
            "best_epoch": best["epoch"],
            "best_valid_loss": best["valid_loss"],
            "train_seconds": sum(row["seconds"] for row in history),
        }
        _write_history(out_dir / "history.csv", history)
        save_torch(out_dir / "model.pt", {**summary, "state_dict": best["state_dict"]})
        run.log_metrics(
            {k: v for k, v in summary.items() if isinstance(v, (int, float)) and k != "sample_rate"}
        )
        run.log_artifact(out_dir / "model.pt")
    return {**summary, "run_id": run.run_id}
