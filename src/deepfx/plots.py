"""The seed's figures for one effect × arch: mel-spectrogram triptych, amplitude overlay, losses.

Every figure is drawn on its own ``matplotlib.figure.Figure`` (Agg backend, no pyplot state)
and written atomically. Clean, effect and model keep the same colours in every figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: must precede librosa.display, which imports pyplot

import librosa  # noqa: E402
import librosa.display  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from deepfx.atomic import atomic_file  # noqa: E402
from deepfx.audio import list_audio, read_audio  # noqa: E402
from deepfx.errors import DeepfxError  # noqa: E402

__all__ = [
    "CLEAN_COLOUR",
    "EFFECT_COLOUR",
    "MODEL_COLOUR",
    "HISTORY_COLUMNS",
    "loudest_start",
    "plot_melspec",
    "plot_amplitude",
    "plot_losses",
    "make_plots",
]

#: Colours shared by every figure (Okabe–Ito palette, readable by colour-blind viewers).
CLEAN_COLOUR = "#0072B2"  # blue
EFFECT_COLOUR = "#D55E00"  # vermilion: the target the model imitates
MODEL_COLOUR = "#009E73"  # bluish green

#: Columns a training history CSV must have.
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "seconds")

_DPI = 110
_TOP_DB = 80.0  # dynamic range shown in the spectrograms (dB below the loudest bin)
_N_FFT = 2048  # samples
_HOP = 512  # samples
_N_MELS = 128


def _save(fig: Figure, out_path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG to ``out_path`` atomically."""
    with atomic_file(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)


def plot_melspec(
    clean: np.ndarray,
    model: np.ndarray,
    effect: np.ndarray,
    sample_rate: int,
    out_path: str | os.PathLike,
    title: str,
) -> Figure:
    """Write the mel-spectrogram triptych clean | model | effect to ``out_path`` (PNG).

    The three panels share one colour scale in dB relative to the loudest mel bin of all three
    (``_TOP_DB`` dB of range) and one colourbar; x is time (s), y frequency (Hz, mel-spaced).
    Returns the figure.
    """
    panels = (("clean", clean, CLEAN_COLOUR), ("model", model, MODEL_COLOUR),
              ("effect", effect, EFFECT_COLOUR))
    powers = [
        librosa.feature.melspectrogram(
            y=np.asarray(x, dtype=np.float32), sr=sample_rate, n_fft=_N_FFT, hop_length=_HOP,
            n_mels=_N_MELS, fmax=sample_rate / 2,
        )
        for _, x, _ in panels
    ]
    ref = max(float(p.max()) for p in powers) or 1.0  # all-silent input: avoid log of 0/0
    fig = Figure(figsize=(14, 4.4), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for ax, (name, _, colour), power in zip(axes, panels, powers):
        db = librosa.power_to_db(power, ref=ref, top_db=None)
        image = librosa.display.specshow(
            db, sr=sample_rate, hop_length=_HOP, x_axis="s", y_axis="mel", fmax=sample_rate / 2,
            ax=ax, vmin=-_TOP_DB, vmax=0.0, cmap="magma",
        )
        ax.set_title(name, color=colour, fontweight="bold")
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Frequency (Hz, mel scale)" if ax is axes[0] else "")
    fig.colorbar(image, ax=axes, label="Power (dB re. loudest bin)", format="%+.0f")
    fig.suptitle(title)
    _save(fig, out_path)
    return fig


def loudest_start(x: np.ndarray, n_samples: int) -> int:
    """First sample of the ``n_samples``-long window of ``x`` with the most energy."""
    if n_samples > len(x):
        raise DeepfxError(
            f"evaluate.overlay_samples: {n_samples} samples asked, "
            f"but the excerpt has only {len(x)}"
        )
    energy = np.concatenate(([0.0], np.cumsum(np.square(x, dtype=np.float64))))
    return int(np.argmax(energy[n_samples:] - energy[:-n_samples]))


def plot_amplitude(
    clean: np.ndarray,
    effect: np.ndarray,
    model: np.ndarray,
    sample_rate: int,
    out_path: str | os.PathLike,
    n_samples: int = 300,
    title: str = "",
    start: int | None = None,
) -> Figure:
    """Write the seed's overlay of ``n_samples`` samples of clean, effect and model on one axis.

    ``start`` (samples) defaults to the loudest window of ``clean``. x is time (ms) from the
    excerpt's start, y the amplitude (full scale = 1). Returns the figure (one line per signal).
    """
    length = min(len(clean), len(effect), len(model))
    if start is None:
        start = loudest_start(clean[:length], n_samples)
    if not 0 <= start <= length - n_samples:
        raise DeepfxError(
            f"evaluate.overlay_samples: samples {start}..{start + n_samples} do not fit "
            f"in an excerpt of {length} samples"
        )
    span = slice(start, start + n_samples)
    t_ms = (start + np.arange(n_samples)) * 1000.0 / sample_rate
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(t_ms, clean[span], color=CLEAN_COLOUR, linewidth=1.4, label="clean (input)")
    ax.plot(t_ms, effect[span], color=EFFECT_COLOUR, linewidth=2.4, label="effect (target)")
    ax.plot(t_ms, model[span], color=MODEL_COLOUR, linewidth=1.4, linestyle="--", label="model")
    ax.axhline(0.0, color="0.6", linewidth=0.6, zorder=0)
    ax.set_xlim(t_ms[0], t_ms[-1])
    ax.set_xlabel(f"Time (ms) from excerpt start — {n_samples} samples at {sample_rate} Hz")
    ax.set_ylabel("Amplitude (full scale)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", framealpha=0.9)
    ax.set_title(title)
    _save(fig, out_path)
    return fig


def _read_history(history_csv: Path) -> pd.DataFrame:
    """Read a training history CSV and check its columns and that it has rows."""
    if not history_csv.is_file():
        raise DeepfxError(f"{history_csv}: no such training history file")
    try:
        history = pd.read_csv(history_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepfxError(f"{history_csv}: cannot be read as CSV ({exc})") from None
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise DeepfxError(f"{history_csv}: missing column(s) {', '.join(missing)}")
    if history.empty:
        raise DeepfxError(f"{history_csv}: holds no epochs")
    return history


def plot_losses(history_csv: str | os.PathLike, out_path: str | os.PathLike, title: str) -> Figure:
    """Write train and valid loss per epoch (log y) from ``history_csv``; returns the figure."""
    history = _read_history(Path(history_csv))
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(history["epoch"], history["train_loss"], color="0.25", marker="o", markersize=3,
            label="train")
    ax.plot(history["epoch"], history["valid_loss"], color="#CC79A7", marker="s", markersize=3,
            linestyle="--", label="valid")
    if history["valid_loss"].notna().any():  # a diverged run may log only NaN
        best = history.loc[history["valid_loss"].idxmin()]
        ax.plot([best["epoch"]], [best["valid_loss"]], marker="*", markersize=13,
                color="#CC79A7", linestyle="none", label=f"best valid (epoch {int(best['epoch'])})")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss (log scale)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title)
    _save(fig, out_path)
    return fig


def make_plots(
    effect: str,
    arch: str,
    params: Mapping,
    clean_dir: Path,
    processed_dir: Path,
    predictions_dir: Path,
    history_csv: Path,
    out_dir: Path,
) -> list[Path]:
    """Write ``out_dir``/melspec.png, amplitude.png and loss.png for one effect × arch.

    ``clean_dir`` (``data/clean``) and ``processed_dir`` (``data/processed/{effect}``) hold the
    splits; their ``test`` folders are read. ``predictions_dir`` holds the model's test outputs
    directly. The first clean test file by name and its namesakes give an excerpt of
    ``params["evaluate"]["excerpt_seconds"]`` s from the start. Every input is checked before any
    figure is written. Returns the three paths.
    """
    clean_test, processed_test = Path(clean_dir) / "test", Path(processed_dir) / "test"
    history_csv, out_dir = Path(history_csv), Path(out_dir)
    files = list_audio(clean_test)
    if not files:
        raise DeepfxError(f"{clean_test}: no test .wav files to plot")
    name = files[0].name
    rate = int(params["sample_rate"])
    excerpt = int(round(float(params["evaluate"]["excerpt_seconds"]) * rate))
    n_overlay = int(params["evaluate"]["overlay_samples"])
    clean, target, model = (
        read_audio(Path(folder) / name, rate)[:excerpt]
        for folder in (clean_test, processed_test, predictions_dir)
    )
    length = min(len(clean), len(target), len(model))
    clean, target, model = clean[:length], target[:length], model[:length]
    start = loudest_start(clean, n_overlay)
    _read_history(history_csv)

    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"{effect} · {arch}"
    paths = [out_dir / "melspec.png", out_dir / "amplitude.png", out_dir / "loss.png"]
    plot_melspec(clean, model, target, rate, paths[0],
                 title=f"{label} — mel spectrograms of {name} (first {length / rate:.1f} s)")
    plot_amplitude(clean, target, model, rate, paths[1], n_samples=n_overlay, start=start,
                   title=f"{label} — amplitude of {name}, loudest {n_overlay} samples")
    plot_losses(history_csv, paths[2], title=f"{label} — training and validation loss")
    return paths
