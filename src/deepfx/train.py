"""Train one model (arch) to imitate one effect, resumably, tracked in MLflow."""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfx.atomic import atomic_file
from deepfx.audio import read_audio
from deepfx.checkpoint import fingerprint, load_checkpoint, save_torch
from deepfx.errors import DeepfxError
from deepfx.excerpts import ExcerptSampler, Pair, paired_files
from deepfx.losses import TrainingLoss
from deepfx.models import apply_model, build_model, resolve_hyperparameters
from deepfx.models.base import detach_state, is_time_variant, latency_of, run
from deepfx.models.lfo import align_lfo, lfo_of
from deepfx.pipeline import model_settings
from deepfx.progress import TrainingProgress
from deepfx.tracking import start_run

__all__ = ["HISTORY_COLUMNS", "configure_torch", "train_model"]

log = logging.getLogger(__name__)

#: Columns of history.csv: 1-based epoch, mean training loss, validation loss, the epoch's
#: learning rate, seconds.
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "learning_rate", "seconds")
#: Training files a time-variant model's closed-form start is tried on (see :func:`_best_start`).
INITIALISE_CANDIDATES = 3
#: Most seconds of training audio handed to a model's closed-form ``initialise``.
INITIALISE_SECONDS = 60.0
#: train keys that change neither the result nor the data seen, so a checkpoint stays usable.
_RESUMABLE_KEYS = ("epochs", "device", "threads", "max_seconds", "patience")
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


def _check_train(train: Mapping) -> TrainingLoss:
    """Check ``train``'s numbers; return its loss function."""
    for key in _COUNTS:
        value, least = train[key], 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise DeepfxError(f"train.{key}: expected an integer >= {least}, got {value!r}")
    rate = train["learning_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise DeepfxError(f"train.learning_rate: expected a positive number, got {rate!r}")
    try:
        return TrainingLoss(train["loss"], train["pre_emphasis"])
    except ValueError as exc:
        key = "pre_emphasis" if "pre_emphasis" in str(exc) else "loss"
        raise DeepfxError(f"train.{key}: {exc}") from None


def training_settings(params: Mapping, effect: str, arch: str) -> tuple[str, dict, dict]:
    """(params key, hyper-parameters, train settings) of ``effect``'s ``arch`` model.

    The train settings are ``train`` with the model's own ``train`` overrides applied.
    """
    if effect not in params["effects"]:
        known = sorted(params["effects"])
        raise DeepfxError(f"effects.{effect}: no such effect; choose from {known}")
    own = params["effects"][effect]["model"]["arch"]
    if arch != own and arch not in params["archs"]:
        raise DeepfxError(
            f"archs: {effect} trains {own!r} (effects.{effect}.model) and the baselines "
            f"{list(params['archs'])}, not {arch!r}"
        )
    where, settings = model_settings(params, effect, arch)
    hyper = {k: v for k, v in settings.items() if k != "train"}
    return where, hyper, {**params["train"], **settings.get("train", {})}


def _validation_loss(
    model: nn.Module, pairs: list[Pair], loss_fn: nn.Module, sample_rate: int,
    shifts: Mapping[str, int],
) -> float:
    """``loss_fn`` on each whole file of ``pairs`` (run in chunks), averaged weighted by length;
    a model with an LFO runs each file at its ``shifts`` entry (``valid/<name>``)."""
    total = 0.0
    lfo = lfo_of(model)
    for pair in pairs:
        if lfo is not None:
            lfo.shift.fill_(shifts.get(f"valid/{pair.name}", 0))
        prediction = apply_model(model, read_audio(pair.clean, sample_rate))
        target = read_audio(pair.processed, sample_rate)
        with torch.no_grad():
            loss = loss_fn(
                torch.from_numpy(prediction)[None, None], torch.from_numpy(target)[None, None]
            )
        total += float(loss) * pair.samples
    if lfo is not None:
        lfo.shift.fill_(0)  # training excerpts carry their files' shifts in their start indices
    return total / sum(pair.samples for pair in pairs)


def _initialise(model: nn.Module, pairs: list[Pair], sample_rate: int) -> None:
    """Call ``model.initialise(clean, processed)`` (a closed-form fit) on the train split.

    Time-invariant models get up to INITIALISE_SECONDS of the files joined end to end;
    time-variant ones the first file alone, so its samples keep their times.
    """
    seconds, clean, processed = 0.0, [], []
    for pair in pairs[:1] if is_time_variant(model) else pairs:
        clean.append(read_audio(pair.clean, sample_rate))
        processed.append(read_audio(pair.processed, sample_rate))
        seconds += pair.samples / sample_rate
        if seconds >= INITIALISE_SECONDS:
            break
    model.initialise(np.concatenate(clean), np.concatenate(processed))


def _best_start(
    model: nn.Module, train_pairs: list[Pair], valid_pairs: list[Pair], loss_fn: nn.Module,
    sample_rate: int,
) -> None:
    """The closed-form start (:func:`_initialise`); a time-variant model's is fitted on each
    of the first INITIALISE_CANDIDATES training files in turn (a fit of an LFO can hinge on
    where its file catches it) and the one that best predicts the valid split is kept."""
    candidates = train_pairs[:INITIALISE_CANDIDATES] if is_time_variant(model) else []
    if len(candidates) < 2 or not valid_pairs:
        _initialise(model, train_pairs, sample_rate)
        return
    best: tuple[float, dict | None] = (math.inf, None)
    for pair in candidates:
        _initialise(model, [pair], sample_rate)
        shifts = _align(model, {"valid": valid_pairs}, sample_rate)
        loss = _validation_loss(model, valid_pairs, loss_fn, sample_rate, shifts)
        log.info("closed-form start on %s: valid loss %.4g", pair.name, loss)
        if loss < best[0] or best[1] is None:
            best = (loss, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[1])


def _align(model: nn.Module, splits: Mapping[str, list[Pair]], sample_rate: int) -> dict[str, int]:
    """``{"<split>/<name>": shift}``: where each file's LFO stands for a model with one (see
    :func:`deepfx.models.lfo.align_lfo`; a free-running effect's LFO does not start with the
    file); empty for other models."""
    lfo = lfo_of(model)
    if lfo is None:
        return {}
    shifts = {}
    for split, pairs in splits.items():
        for pair in pairs:
            clean, target = (read_audio(p, sample_rate) for p in (pair.clean, pair.processed))
            shifts[f"{split}/{pair.name}"] = align_lfo(model, clean, target)
    lfo.shift.fill_(0)
    log.info("LFO shifts per file (samples): %s", shifts)
    return shifts


class _Optimiser:
    """Adam with gradient-norm clipping, one optimiser step per call of :meth:`step`."""

    def __init__(self, model: nn.Module, train: Mapping) -> None:
        self.model = model
        self.adam = torch.optim.Adam(model.parameters(), lr=train["learning_rate"])
        self.grad_clip = float(train["grad_clip"])

    def step(self, loss: torch.Tensor) -> float:
        self.adam.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.adam.step()
        return loss.item()


def _schedule(optimizer: torch.optim.Optimizer, train: Mapping):
    """The per-epoch learning-rate schedule ``train.lr_schedule`` (None: constant)."""
    if train["lr_schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    if train["lr_schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"])
    return None


def _train_step(
    model: nn.Module,
    optimiser: _Optimiser,
    loss_fn: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    tbptt_samples: int,
) -> list[float]:
    """Optimiser step(s) on one batch; their losses. The loss skips the context samples.

    Models with ``tbptt`` run the context through ``stream`` without gradients (warm-up), then
    take one step per ``tbptt_samples`` segment, detaching their state in between.
    """
    clean, processed, first = batch
    context = model.receptive_field - 1
    if not (tbptt_samples and getattr(model, "tbptt", False)):
        latency = latency_of(model)  # output sample t + latency answers t
        prediction = run(model, clean, first)[..., context + latency :]
        target = processed[..., context : processed.shape[-1] - latency]
        return [optimiser.step(loss_fn(prediction, target))]
    state = None
    if context:
        with torch.no_grad():
            _, state = model.stream(clean[..., :context], None)
    losses = []
    for start in range(context, clean.shape[-1], tbptt_samples):
        stop = start + tbptt_samples
        prediction, state = model.stream(clean[..., start:stop], state)
        losses.append(optimiser.step(loss_fn(prediction, processed[..., start:stop])))
        state = detach_state(state)
    return losses


def _resume(
    path: Path,
    job_fingerprint: str,
    epochs: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule,
) -> tuple[list[dict], dict, dict[str, int]] | None:
    """Load a matching checkpoint into ``model``/``optimizer``/``schedule``; return (history,
    best-so-far, LFO shifts), or None when there is no usable checkpoint."""
    state = load_checkpoint(path, job_fingerprint)
    if state is None:
        return None
    if state["epoch"] > epochs:
        log.warning("%s: ignored, it has more epochs (%d) than train.epochs", path, state["epoch"])
        return None
    initial = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: ignored, it does not fit the model (%s)", path, exc)
        model.load_state_dict(initial[0])
        optimizer.load_state_dict(initial[1])
        return None
    torch.set_rng_state(state["torch_rng"])
    log.info("%s: resuming after epoch %d", path, state["epoch"])
    return state["history"], state["best"], state.get("shifts", {})


def _write_history(path: Path, history: list[dict]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def _epoch(
    model: nn.Module,
    optimiser: _Optimiser,
    loss_fn: nn.Module,
    batches,
    device: torch.device,
    train: Mapping,
    deadline: float,
    progress: TrainingProgress,
) -> list[float]:
    """One epoch's optimiser steps (until ``deadline``, perf_counter seconds); their losses."""
    model.train()
    losses: list[float] = []
    for batch in batches:
        batch = tuple(t.to(device) for t in batch)
        losses += _train_step(model, optimiser, loss_fn, batch, train["tbptt_samples"])
        progress.batch(losses[-1])
        if time.perf_counter() >= deadline:
            break
    return losses


def _checkpoint(path: Path, job_fingerprint: str, model: nn.Module, optimiser: _Optimiser,
                schedule, history: list[dict], best: dict, shifts: dict[str, int]) -> None:
    """Save everything :func:`_resume` needs to continue after the last epoch of ``history``."""
    save_torch(path, {
        "fingerprint": job_fingerprint,
        "epoch": history[-1]["epoch"],
        "model": model.state_dict(),
        "optimizer": optimiser.adam.state_dict(),
        "schedule": None if schedule is None else schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "best": best,
        "shifts": shifts,
    })


def train_model(
    effect: str,
    arch: str,
    params: Mapping,
    clean_dir: Path,
    processed_dir: Path,
    out_dir: Path,
) -> dict:
    """Train ``arch`` on ``clean_dir`` → ``processed_dir`` (train/valid splits) for ``effect``.

    ``arch`` is the effect's own model (``effects.<effect>.model``) or a baseline (``archs``,
    ``models.<arch>``); its ``train`` overrides apply. A model with ``initialise`` is first
    fitted in closed form on the train split. Each epoch takes ``train.steps_per_epoch``
    batches (clipped Adam steps; truncated BPTT for recurrent models), then scores the whole
    valid split; the learning rate follows ``train.lr_schedule``; training stops after
    ``train.epochs``, after ``train.patience`` epochs without a better validation loss, or
    when ``train.max_seconds`` are spent (mid-epoch; the budget makes results depend on speed).
    On a terminal a progress bar shows the batches, losses and time left.

    Writes ``out_dir/model.pt`` (the best-validation weights with their metadata) and
    ``out_dir/history.csv``; keeps ``out_dir/checkpoint.pt`` after every epoch and continues
    from it when it matches this configuration and data (more ``train.epochs`` extend a finished
    run). One MLflow run is logged per call. Returns the summary stored in model.pt, without
    the weights, plus the MLflow ``run_id``.

    Raises:
        DeepfxError: bad parameters (naming the key) or bad data files (naming the file).
    """
    clean_dir, processed_dir, out_dir = Path(clean_dir), Path(processed_dir), Path(out_dir)
    where, hyper, train = training_settings(params, effect, arch)
    hyper = resolve_hyperparameters(arch, hyper, where)
    sample_rate = int(params["sample_rate"])
    loss_fn = _check_train(train)
    device = configure_torch(train)
    torch.manual_seed(train["seed"])
    model = build_model(arch, hyper, sample_rate=sample_rate, where=where).to(device)
    optimiser = _Optimiser(model, train)
    schedule = _schedule(optimiser.adam, train)
    train_pairs = paired_files(clean_dir, processed_dir, "train", sample_rate)
    valid_pairs = paired_files(clean_dir, processed_dir, "valid", sample_rate)

    config = {
        "effect": effect,
        "effect_spec": params["effects"][effect],
        "arch": arch,
        "model": hyper,
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
    resumed = _resume(
        checkpoint_path, job_fingerprint, train["epochs"], model, optimiser.adam, schedule
    )
    if resumed is None:
        history: list[dict] = []
        best = {"valid_loss": math.inf, "epoch": 0, "state_dict": None}
        if hasattr(model, "initialise"):
            _best_start(model, train_pairs, valid_pairs, loss_fn, sample_rate)
            model.to(device)
        shifts = _align(model, {"train": train_pairs, "valid": valid_pairs}, sample_rate)
    else:
        history, best, shifts = resumed
    context = model.receptive_field - 1  # after initialise: a fit may lengthen it (a lag)
    sampler = ExcerptSampler(train_pairs, context, train["excerpt_samples"], train["seed"],
                             [shifts.get(f"train/{pair.name}", 0) for pair in train_pairs])

    with start_run(params, effect, arch) as run_log, TrainingProgress(effect, arch, train, len(history)) as progress:
        for row in history:
            run_log.log_epoch(row["epoch"], row["train_loss"], row["valid_loss"])
        if history:
            run_log.set_tag("resumed_from_epoch", str(len(history)))
        budget = float(train["max_seconds"]) or math.inf
        deadline = time.perf_counter() + budget - sum(row["seconds"] for row in history)
        stop = _early_stop(history, best, train["patience"])
        for epoch in range(len(history) + 1, train["epochs"] + 1):
            if stop or time.perf_counter() >= deadline:
                break
            started = time.perf_counter()
            batches = sampler.batches(epoch, train["steps_per_epoch"], train["batch_size"])
            train_loss = float(np.mean(_epoch(model, optimiser, loss_fn, batches, device, train, deadline, progress)))
            valid = _validation_loss(model, valid_pairs, loss_fn, sample_rate, shifts)
            if not (math.isfinite(train_loss) and math.isfinite(valid)):
                raise DeepfxError(
                    f"{where}: training diverged in epoch {epoch} (train loss {train_loss}, "
                    f"valid loss {valid}); try a smaller train.learning_rate"
                )
            history.append({
                "epoch": epoch,
                "train_loss": train_loss,
                "valid_loss": valid,
                "learning_rate": optimiser.adam.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            })
            if valid < best["valid_loss"]:
                weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                best = {"valid_loss": valid, "epoch": epoch, "state_dict": weights}
            if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                schedule.step(valid)
            elif schedule is not None:
                schedule.step()
            _checkpoint(checkpoint_path, job_fingerprint, model, optimiser, schedule, history, best, shifts)
            run_log.log_epoch(epoch, train_loss, valid)
            log.info("%s/%s epoch %d/%d: train %.4g, valid %.4g (%.1f s)",
                     effect, arch, epoch, train["epochs"], train_loss, valid, history[-1]["seconds"])
            progress.epoch(train_loss, valid, deadline)
            stop = _early_stop(history, best, train["patience"])
        if best["state_dict"] is None:
            raise DeepfxError(f"train.max_seconds: {budget} s ran out before the first epoch")
        summary = _finish(model, best, history, out_dir, arch, effect, hyper, sample_rate)
        run_log.log_metrics(
            {k: v for k, v in summary.items() if isinstance(v, (int, float)) and k != "sample_rate"}
        )
        run_log.log_artifact(out_dir / "model.pt")
    return {**summary, "run_id": run_log.run_id}


def _finish(model: nn.Module, best: dict, history: list[dict], out_dir: Path, arch: str,
            effect: str, hyper: dict, sample_rate: int) -> dict:
    """Write model.pt (the best weights, after the model's ``finalise``) and history.csv;
    return the summary stored beside the weights."""
    if hasattr(model, "finalise"):  # a closed-form touch-up of the best weights
        model.load_state_dict(best["state_dict"])
        model.finalise()
        best["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    summary = {
        "effect": effect,
        "arch": arch,
        "config": hyper,
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
    return summary


def _early_stop(history: list[dict], best: dict, patience: int) -> bool:
    """Whether ``patience`` (> 0) epochs have passed since the best validation loss."""
    return patience > 0 and len(history) - best["epoch"] >= patience
