"""The trials of one ABX session: which models are tested, which excerpts, and what X is.

A is the clean input, B the effect's output and X, drawn on the server, either the model's
output or (a control trial) A or B itself. Excerpts come from the test split: the clean files
in ``data/clean/test``, the effect's in ``data/processed/{effect}/test`` and the model's in
``reports/effects/{effect}/{arch}/predictions``.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from deepfx.abx.loudness import fade, match_loudness, wav_bytes
from deepfx.audio import read_audio, read_window
from deepfx.errors import DeepfxError
from deepfx.excerpts import paired_files
from deepfx.pipeline import models_of

__all__ = [
    "Source",
    "Window",
    "Trial",
    "Deck",
    "find_sources",
    "audible_windows",
    "plan_trials",
    "render_trial",
]

_AUDIBLE_DB = 10.0  # windows with an RMS level this far below the loudest one's are not used (dB)


@dataclass(frozen=True)
class Source:
    """One model under test and where its test files are."""

    effect: str
    arch: str
    clean: Path  #: data/clean/test
    processed: Path  #: data/processed/{effect}/test
    predictions: Path  #: reports/effects/{effect}/{arch}/predictions


@dataclass(frozen=True)
class Window:
    """An excerpt of one test file: ``samples`` samples from sample ``start``."""

    file: str
    start: int
    samples: int


@dataclass(frozen=True)
class Trial:
    """One ABX trial; ``token`` is all the page sees of it."""

    token: str
    number: int  #: 1-based position in the session
    source: Source
    x_is: str  #: one of deepfx.abx.results.X_KINDS
    window: Window


def _check_prediction(path: Path, samples: int, sample_rate: int) -> None:
    """``path`` is a readable wav of ``samples`` samples at ``sample_rate`` Hz."""
    if not path.is_file():
        raise DeepfxError(f"{path}: missing; evaluate the model first (snakemake or dvc repro)")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise DeepfxError(f"{path}: cannot be read as audio ({exc})") from None
    if info.samplerate != sample_rate or info.frames != samples:
        raise DeepfxError(
            f"{path}: {info.frames} samples at {info.samplerate} Hz, but its test file has "
            f"{samples} samples at {sample_rate} Hz"
        )


def find_sources(
    params: Mapping,
    effects: Sequence[str],
    archs: Sequence[str] | None,
    clean_dir: Path,
    processed_root: Path,
    reports_dir: Path,
) -> list[Source]:
    """The models to test (every effect × arch given; archs None: each effect's trained
    models), after checking all their test files.

    ``clean_dir`` is ``data/clean``, ``processed_root`` ``data/processed``, ``reports_dir``
    ``reports``. Raises DeepfxError naming an unknown effect or arch, or the first missing or
    mismatched file.
    """
    rate = int(params["sample_rate"])
    sources = []
    for effect in effects:
        if effect not in params["effects"]:
            known = ", ".join(params["effects"])
            raise DeepfxError(f"effects: no effect named {effect!r} in the params (known: {known})")
        pairs = paired_files(Path(clean_dir), Path(processed_root) / effect, "test", rate)
        listed = models_of(params, effect)
        for arch in archs or listed:
            if arch not in listed:
                raise DeepfxError(
                    f"archs: {effect} trains {', '.join(listed)} in the params, not {arch!r}"
                )
            predictions = Path(reports_dir) / "effects" / effect / arch / "predictions"
            for pair in pairs:
                _check_prediction(predictions / pair.name, pair.samples, rate)
            sources.append(Source(effect, arch, pairs[0].clean.parent,
                                  pairs[0].processed.parent, predictions))
    if not sources:
        raise DeepfxError("abx: no effect × arch to test")
    return sources


def audible_windows(clean_test: Path, sample_rate: int, seconds: float) -> list[Window]:
    """Excerpts of ``seconds`` s of the clean test files, every quarter excerpt, keeping those
    whose RMS level is within 10 dB of the loudest's (mostly pause makes a poor trial). Files
    shorter than an excerpt give one window of their whole length."""
    length = max(1, int(round(seconds * sample_rate)))
    windows, levels = [], []
    for path in sorted(Path(clean_test).glob("*.wav")):
        x = read_audio(path, sample_rate)
        n = min(length, len(x))
        for start in range(0, len(x) - n + 1, max(1, n // 4)):
            windows.append(Window(path.name, start, n))
            power = float(np.mean(np.square(x[start:start + n], dtype=np.float64)))
            levels.append(10 * np.log10(power) if power > 0 else -np.inf)
    if not windows or not np.isfinite(max(levels)):
        raise DeepfxError(f"{clean_test}: the clean test files are silent or absent")
    loudest = max(levels)
    return [w for w, level in zip(windows, levels) if level >= loudest - _AUDIBLE_DB]


def plan_trials(
    sources: Sequence[Source],
    windows: Sequence[Window],
    trials_per_model: int,
    control_share: float,
    rng: random.Random,
) -> list[Trial]:
    """``trials_per_model`` trials per source in random order, each with a random window.

    ``round(trials_per_model * control_share)`` of a source's trials are controls, X = A and
    X = B alternately from a random first; the others have X = the model.
    """
    trials = []
    for source in sources:
        n_controls = round(trials_per_model * control_share)
        first = rng.randrange(2)
        kinds = ["model"] * (trials_per_model - n_controls) + [
            ("clean", "effect")[(first + i) % 2] for i in range(n_controls)
        ]
        trials += [(source, kind) for kind in kinds]
    rng.shuffle(trials)
    return [
        Trial(secrets.token_urlsafe(16), number, source, kind, rng.choice(windows))
        for number, (source, kind) in enumerate(trials, start=1)
    ]


def render_trial(
    trial: Trial, sample_rate: int, loudness_db: float, rng: np.random.Generator
) -> dict[str, bytes]:
    """The trial's A, B and X as 16-bit wav files in memory (keys ``a``, ``b``, ``x``).

    Clean, effect and model excerpts are matched to ``loudness_db`` (dBFS, gated RMS) with
    one clip-safe gain, faded in and out over 10 ms and dithered independently.
    """
    source, window = trial.source, trial.window
    span = (window.start, window.start + window.samples)
    raw = {
        "clean": read_window(source.clean / window.file, *span),
        "effect": read_window(source.processed / window.file, *span),
        "model": read_window(source.predictions / window.file, *span),
    }
    matched = match_loudness(raw, sample_rate, loudness_db)
    signals = {"a": matched["clean"], "b": matched["effect"], "x": matched[trial.x_is]}
    return {key: wav_bytes(fade(x, sample_rate), sample_rate, rng) for key, x in signals.items()}


class Deck:
    """The session's trials in order; the current trial is the first not yet answered.

    Thread-safe: ``answer`` records each token once.
    """

    def __init__(self, trials: Sequence[Trial]) -> None:
        self._trials = list(trials)
        self._by_token = {trial.token: trial for trial in self._trials}
        self._answered: set[str] = set()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self._trials)

    @property
    def answered(self) -> int:
        return len(self._answered)

    def current(self) -> Trial | None:
        """The first unanswered trial, or None when the session is done."""
        with self._lock:
            return next((t for t in self._trials if t.token not in self._answered), None)

    def get(self, token: str) -> Trial | None:
        """The trial of ``token``, or None for a token this session never issued."""
        return self._by_token.get(token)

    def answer(self, token: str, record: Callable[[Trial], None]) -> Trial:
        """Call ``record`` with the trial of ``token``, then mark it answered; returns it.

        Raises:
            DeepfxError: the token is unknown or was already answered (a replay); nothing is
                recorded then. If ``record`` raises, the trial stays unanswered.
        """
        with self._lock:
            trial = self._by_token.get(token)
            if trial is None:
                raise DeepfxError(f"trial token {token!r} is unknown to this session")
            if token in self._answered:
                raise DeepfxError(
                    f"trial {trial.number} (token {token!r}) was already answered; "
                    "a replayed answer is not recorded"
                )
            record(trial)
            self._answered.add(token)
            return trial
