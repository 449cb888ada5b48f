"""Score a trained model on the test split: predictions, ESR and MR-STFT against the effect."""

from __future__ import annotations

import json
import pickle
import time
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfx.atomic import atomic_dir, atomic_file
from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError
from deepfx.excerpts import paired_files
from deepfx.losses import esr, log_mel_distance, mrstft
from deepfx.models import apply_model, build_model
from deepfx.models.lfo import align_lfo, lfo_of
from deepfx.train import configure_torch

__all__ = ["evaluate_model", "load_model"]

#: Keys every model.pt holds besides the weights (written by deepfx.train).
_MODEL_KEYS = (
    "arch", "config", "state_dict", "effect", "sample_rate", "receptive_field", "n_params",
    "train_seconds",
)


def load_model(path: Path) -> tuple[nn.Module, dict]:
    """The model saved at ``path`` (in eval mode, on the CPU) and its metadata without weights.

    Raises:
        DeepfxError: the file is missing, unreadable or not a deepfx model (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise DeepfxError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch's own error is a number
        raise DeepfxError(f"{path}: not a deepfx model file (not a PyTorch archive written by `deepfx train`)")
    try:
        with warnings.catch_warnings():  # torch's advice on pickle protocols is no help here
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's weights-only loader refusing other objects
        raise DeepfxError(
            f"{path}: cannot be loaded as a deepfx model (it holds Python objects that no "
            "deepfx model.pt holds; was it written by `deepfx train`?)"
        ) from None
    except Exception as exc:  # truncated zip, not a torch file at all, …
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeepfxError(f"{path}: cannot be loaded as a deepfx model ({reason})") from None
    missing = [k for k in _MODEL_KEYS if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise DeepfxError(f"{path}: not a deepfx model file (it lacks {', '.join(missing)})")
    try:
        model = build_model(blob["arch"], blob["config"], sample_rate=blob["sample_rate"])
        model.load_state_dict(blob["state_dict"])
    except (DeepfxError, RuntimeError) as exc:
        raise DeepfxError(f"{path}: the stored model does not load ({exc})") from None
    model.eval()
    return model, {k: v for k, v in blob.items() if k != "state_dict"}


def evaluate_model(
    model_path: Path, clean_dir: Path, processed_dir: Path, out_dir: Path, params: Mapping
) -> dict:
    """Run the model over every test file; write ``out_dir/predictions/*.wav`` and metrics.json.

    Metrics: ``esr`` (model vs effect) and ``esr_clean`` (clean input vs effect) are the total
    error energy over the total target energy of all test files; ``mrstft``/``mrstft_clean``
    and ``log_mel``/``log_mel_clean`` (dB, :func:`deepfx.losses.log_mel_distance`, the metric of
    phase-free effects such as pitch shift) are length-weighted means; ``inference_rtf`` is inference seconds
    per second of audio; ``files`` holds the per-file values (for a model with an LFO also
    ``lfo_shift``, samples: the LFO's phase in that file, estimated from the file's clean and
    processed audio as a free-running effect needs). Returns the metrics.

    Raises:
        DeepfxError: bad model file, bad test data, or a model trained at another sample rate.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    model, meta = load_model(model_path)
    sample_rate = int(params["sample_rate"])
    if meta["sample_rate"] != sample_rate:
        raise DeepfxError(
            f"{model_path}: trained at {meta['sample_rate']} Hz, "
            f"but sample_rate is {sample_rate} Hz"
        )
    model.to(configure_torch(params["train"]))
    pairs = paired_files(Path(clean_dir), Path(processed_dir), "test", sample_rate)

    files, energies, inference_seconds = [], [], 0.0
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / "predictions") as predictions:
        for pair in pairs:
            clean = read_audio(pair.clean, sample_rate)
            target = read_audio(pair.processed, sample_rate)
            shift = align_lfo(model, clean, target) if lfo_of(model) is not None else None
            started = time.perf_counter()
            prediction = apply_model(model, clean)
            inference_seconds += time.perf_counter() - started
            write_audio(predictions / pair.name, prediction, sample_rate)
            energies.append(float(np.sum(np.square(target, dtype=np.float64))))
            files.append(
                {
                    "name": pair.name,
                    "seconds": pair.samples / sample_rate,
                    "esr": esr(prediction, target),
                    "esr_clean": esr(clean, target),
                    "mrstft": mrstft(prediction, target),
                    "mrstft_clean": mrstft(clean, target),
                    "log_mel": log_mel_distance(prediction, target, sample_rate),
                    "log_mel_clean": log_mel_distance(clean, target, sample_rate),
                    **({} if shift is None else {"lfo_shift": shift}),
                }
            )
        if sum(energies) == 0:
            raise DeepfxError(f"{Path(processed_dir) / 'test'}: the effect's test output is silent")

        def pooled(key: str, weights: list[float]) -> float:
            return float(np.average([f[key] for f in files], weights=weights))

        lengths = [f["seconds"] for f in files]
        model_esr, clean_esr = pooled("esr", energies), pooled("esr_clean", energies)
        metrics = {
            "effect": meta["effect"],
            "arch": meta["arch"],
            "esr": model_esr,
            "esr_clean": clean_esr,
            "mrstft": pooled("mrstft", lengths),
            "mrstft_clean": pooled("mrstft_clean", lengths),
            "log_mel": pooled("log_mel", lengths),
            "log_mel_clean": pooled("log_mel_clean", lengths),
            "closer_than_clean": model_esr < clean_esr,
            "closer_on_every_file": all(f["esr"] < f["esr_clean"] for f in files),
            "n_params": meta["n_params"],
            "receptive_field": meta["receptive_field"],
            "train_seconds": meta["train_seconds"],
            "inference_rtf": inference_seconds / sum(lengths),
            "files": files,
        }
        with atomic_file(out_dir / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
