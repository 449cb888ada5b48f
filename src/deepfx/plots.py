"""The report material of one effect × arch: the seed's figures (mel-spectrogram triptych,
amplitude overlay), loss curves, an error spectrum, and the test excerpt they show as wavs.

Every figure is drawn on its own ``matplotlib.figure.Figure`` (Agg backend, no pyplot state)
and written atomically. Clean, effect and model keep the same colours in every figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: must precede librosa.display, which imports pyplot

import librosa  # noqa: E402
import librosa.display  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: E402
from scipy.signal import welch  # noqa: E402

from deepfx.atomic import atomic_dir, atomic_file  # noqa: E402
from deepfx.audio import read_audio, write_audio  # noqa: E402
from deepfx.errors import DeepfxError  # noqa: E402
from deepfx.excerpts import paired_files  # noqa: E402

__all__ = [
    "CLEAN_COLOUR",
    "EFFECT_COLOUR",
    "MODEL_COLOUR",
    "HISTORY_COLUMNS",
    "FIGURES",
    "EXCERPTS",
    "loudest_start",
    "plot_melspec",
    "plot_amplitude",
    "plot_error_spectrum",
    "plot_losses",
    "make_plots",
]

#: Colours shared by every figure (Okabe–Ito palette, readable by colour-blind viewers).
CLEAN_COLOUR = "#0072B2"  # blue
EFFECT_COLOUR = "#D55E00"  # vermilion: the target the model imitates
MODEL_COLOUR = "#009E73"  # bluish green

#: Figures ``make_plots`` writes (file name in its out_dir → caption), in reading order.
FIGURES = {
    "melspec.png": "Mel spectrograms of the test excerpt: clean | model | effect, one dB scale",
    "error_spectrum.png": "Where in frequency the model misses: error spectra over the test "
                          "files and the ESR per third-octave band, model vs. doing nothing",
    "amplitude.png": "Amplitude of the loudest samples: clean, effect and model on one axis",
    "loss.png": "Training and validation loss per epoch",
}

#: The test excerpt of the figures as wavs (signal → file in out_dir), for the report's players.
EXCERPTS = {"clean": "excerpt/clean.wav", "effect": "excerpt/effect.wav", "model": "excerpt/model.wav"}

#: Columns a training history CSV must have.
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "seconds")

_DPI = 110
_TOP_DB = 80.0  # dynamic range shown in the spectrograms (dB below the loudest bin)
_N_FFT = 2048  # samples
_HOP = 512  # samples
_N_MELS = 128
_WELCH_SAMPLES = 8192  # Welch segment length (samples): 5.4 Hz resolution at 44.1 kHz
_LOWEST_HZ = 20.0  # lowest frequency in the error spectrum (Hz)


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
    excerpt's start, y the amplitude (full scale = 1); the legend sits below the axis, clear
    of the curves. Returns the figure (one line per signal).
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
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=3, frameon=False)
    _save(fig, out_path)
    return fig


def _bands(freqs: np.ndarray, per_octave: int) -> list[np.ndarray]:
    """Masks of ``freqs`` for the 1/``per_octave``-octave bands centred on 1 kHz · 2^(k/n),
    from ``_LOWEST_HZ`` (or the first non-zero bin) up to the last bin; empty bands left out."""
    lowest = max(_LOWEST_HZ, float(freqs[1]))
    ks = np.arange(np.ceil(per_octave * np.log2(lowest / 1000)),
                   np.floor(per_octave * np.log2(freqs[-1] / 1000)) + 1)
    half = 2 ** (0.5 / per_octave)
    masks = [(freqs >= c / half) & (freqs < c * half) for c in 1000.0 * 2.0 ** (ks / per_octave)]
    return [m for m in masks if m.any()]


def plot_error_spectrum(
    signals: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    sample_rate: int,
    out_path: str | os.PathLike,
    title: str,
) -> Figure:
    """Write where in frequency the model misses, over (clean, effect, model) signal triples.

    Left: power spectral density (Welch, averaged over the signals weighted by length, smoothed
    to ⅙-octave bands; dB re. full scale²/Hz) of the effect's output, of the model's error
    (effect − model) and of the do-nothing error (effect − clean). Right: the ESR per
    ⅓-octave band (dB; 0 dB = the error is as strong as the effect there) of model and clean
    input; bands where the effect is silent are left out. x is frequency (Hz, log scale).
    Returns the figure.
    """
    n_fft = min(_WELCH_SAMPLES, *(len(target) for _, target, _ in signals))
    total = sum(len(target) for _, target, _ in signals)
    psd = {"target": 0.0, "model": 0.0, "clean": 0.0}
    for clean, target, model in signals:
        weight = len(target) / total
        for key, x in (("target", target), ("model", target - model), ("clean", target - clean)):
            freqs, power = welch(x.astype(np.float64), fs=sample_rate, nperseg=n_fft)
            psd[key] = psd[key] + weight * power

    fig = Figure(figsize=(14, 4.4), layout="constrained")
    top, bottom = fig.subplots(1, 2, sharex=True)
    sixths = _bands(freqs, 6)
    centres = np.array([np.sqrt(freqs[m][0] * freqs[m][-1]) for m in sixths])
    curves = (("target", "effect output (target)", EFFECT_COLOUR, "-", 2.4),
              ("clean", "do-nothing error (effect − clean)", CLEAN_COLOUR, "--", 1.5),
              ("model", "model error (effect − model)", MODEL_COLOUR, "-", 1.5))
    for key, label, colour, style, width in curves:
        db = [10 * np.log10(max(float(psd[key][m].mean()), 1e-20)) for m in sixths]
        top.plot(centres, db, color=colour, linestyle=style, linewidth=width, label=label)
    top.set_ylabel("Power density (dB re. FS²/Hz)")
    top.legend(loc="lower left", framealpha=0.9)
    top.set_title("Spectra (⅙-octave smoothed)")
    fig.suptitle(title)

    floor = 1e-9 * float(psd["target"].max())  # bands 90 dB below the effect's peak: no verdict
    thirds = [m for m in _bands(freqs, 3) if psd["target"][m].sum() > floor * m.sum()]
    centres = np.array([np.sqrt(freqs[m][0] * freqs[m][-1]) for m in thirds])
    for key, label, colour, style in (("clean", "clean input (doing nothing)", CLEAN_COLOUR, "--"),
                                       ("model", "model", MODEL_COLOUR, "-")):
        ratio = [10 * np.log10(max(float(psd[key][m].sum()), 1e-30) / float(psd["target"][m].sum()))
                 for m in thirds]
        bottom.plot(centres, ratio, color=colour, linestyle=style, marker="o", markersize=3.5,
                    linewidth=1.5, label=label)
    bottom.axhline(0.0, color="0.4", linewidth=0.8, zorder=0)
    bottom.set_ylabel("ESR per ⅓ octave (dB)")
    bottom.legend(loc="best", framealpha=0.9)
    bottom.set_title("Error-to-signal ratio per band (0 dB: as loud as the effect)")
    bottom.set_xscale("log")
    bottom.set_xlim(max(_LOWEST_HZ, float(freqs[1])), sample_rate / 2)
    for ax in (top, bottom):
        ax.xaxis.set_major_formatter(EngFormatter(unit="Hz"))
        ax.set_xlabel("Frequency (Hz)")
        ax.grid(alpha=0.3, which="both")
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
    fig = Figure(figsize=(10, 4.5), layout="constrained")
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
    """Write ``FIGURES`` and ``EXCERPTS`` into ``out_dir`` for one effect × arch.

    ``clean_dir`` (``data/clean``) and ``processed_dir`` (``data/processed/{effect}``) hold the
    splits; their ``test`` folders are read. ``predictions_dir`` holds the model's test outputs
    directly. The error spectrum covers every test file; the other figures and the excerpt wavs
    show the first clean test file by name and its namesakes, ``params["evaluate"]
    ["excerpt_seconds"]`` s from the start. Every input is checked before anything is written.
    Returns the paths written.
    """
    predictions_dir, history_csv, out_dir = Path(predictions_dir), Path(history_csv), Path(out_dir)
    rate = int(params["sample_rate"])
    pairs = paired_files(Path(clean_dir), Path(processed_dir), "test", rate)
    signals = []
    for pair in pairs:
        clean, target = read_audio(pair.clean, rate), read_audio(pair.processed, rate)
        model = read_audio(predictions_dir / pair.name, rate)
        if len(model) != len(target):
            raise DeepfxError(
                f"{predictions_dir / pair.name}: {len(model)} samples, but the effect's "
                f"output {pair.processed} has {len(target)}"
            )
        signals.append((clean, target, model))
    excerpt = int(round(float(params["evaluate"]["excerpt_seconds"]) * rate))
    clean, target, model = (x[:excerpt] for x in signals[0])
    n_overlay = int(params["evaluate"]["overlay_samples"])
    start = loudest_start(clean, n_overlay)
    _read_history(history_csv)

    out_dir.mkdir(parents=True, exist_ok=True)
    label, name, seconds = f"{effect} · {arch}", pairs[0].name, len(clean) / rate
    paths = {figure: out_dir / figure for figure in FIGURES}
    plot_melspec(clean, model, target, rate, paths["melspec.png"],
                 title=f"{label} — mel spectrograms of {name} (first {seconds:.1f} s)")
    test_seconds = sum(pair.samples for pair in pairs) / rate
    plot_error_spectrum(signals, rate, paths["error_spectrum.png"], title=f"{label} — error "
                        f"spectrum over {len(pairs)} test file(s), {test_seconds:.1f} s")
    plot_amplitude(clean, target, model, rate, paths["amplitude.png"], n_samples=n_overlay,
                   start=start, title=f"{label} — amplitude of {name}, loudest {n_overlay} samples")
    plot_losses(history_csv, paths["loss.png"], title=f"{label} — training and validation loss")
    folder = out_dir / Path(EXCERPTS["clean"]).parent
    with atomic_dir(folder) as tmp:  # the three excerpts appear together or not at all
        for key, x in (("clean", clean), ("effect", target), ("model", model)):
            write_audio(tmp / Path(EXCERPTS[key]).name, x, rate)
    return list(paths.values()) + [out_dir / EXCERPTS[key] for key in EXCERPTS]
