"""Training data: (clean, processed) file pairs of a split and seeded random excerpt batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from deepfx.audio import list_audio, read_window
from deepfx.errors import DeepfxError

__all__ = ["Pair", "ExcerptSampler", "paired_files"]


@dataclass(frozen=True)
class Pair:
    """One clean file and the effect's output for it (same name, same length in samples)."""

    name: str
    clean: Path
    processed: Path
    samples: int


def _samples(path: Path, sample_rate: int) -> int:
    """Length of ``path`` in samples, after checking it is readable audio at ``sample_rate`` Hz."""
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise DeepfxError(f"{path}: cannot be read as audio ({exc})") from None
    if info.samplerate != sample_rate:
        raise DeepfxError(f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    return info.frames


def paired_files(clean_dir: Path, processed_dir: Path, split: str, sample_rate: int) -> list[Pair]:
    """The pairs of ``clean_dir/split/*.wav`` and ``processed_dir/split/*.wav``, sorted by name.

    Raises:
        DeepfxError: the clean split has no files, a processed file is missing, or a file is
            unreadable, at another sample rate (Hz) or of another length (samples) than its pair.
    """
    clean_files = list_audio(Path(clean_dir) / split)
    if not clean_files:
        raise DeepfxError(f"{Path(clean_dir) / split}: no .wav files in the {split} split")
    pairs = []
    for clean in clean_files:
        processed = Path(processed_dir) / split / clean.name
        if not processed.is_file():
            raise DeepfxError(
                f"{processed}: missing; the clean file {clean} has no processed counterpart"
            )
        n_clean = _samples(clean, sample_rate)
        n_processed = _samples(processed, sample_rate)
        if n_clean != n_processed:
            raise DeepfxError(
                f"{processed}: {n_processed} samples, but the clean file {clean} has {n_clean}"
            )
        pairs.append(Pair(clean.name, clean, processed, n_clean))
    return pairs


class ExcerptSampler:
    """Random aligned excerpts of the pairs, read from disk window by window.

    An excerpt's target covers ``excerpt_samples`` samples inside one file; its input adds the
    ``context`` samples before them (receptive_field - 1; zeros before the file start). Files
    are drawn in proportion to their number of possible excerpts (files shorter than
    ``excerpt_samples`` are never drawn). The draws of an epoch depend
    only on (seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, pairs: list[Pair], context: int, excerpt_samples: int, seed: int,
                 shifts: Sequence[int] | None = None) -> None:
        self.pairs = pairs
        #: Added to each file's start indices: where its LFO stands (see deepfx.models.lfo).
        self.shifts = list(shifts) if shifts is not None else [0] * len(pairs)
        self.context = context
        self.excerpt_samples = excerpt_samples
        self.seed = seed
        starts = np.array([max(p.samples - excerpt_samples + 1, 0) for p in pairs])
        if starts.sum() == 0:
            raise DeepfxError(
                f"train.excerpt_samples: {excerpt_samples} samples is longer than every file of "
                f"the split ({pairs[0].clean.parent})"
            )
        self.starts = starts
        self.weights = starts / starts.sum()

    def batches(
        self, epoch: int, steps: int, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``steps`` batches (clean, processed, start): signals (batch_size, 1, context +
        excerpt_samples) and the (batch_size,) int64 index of each input's first sample in its
        file (negative where the context reaches before the file: zeros there), plus the
        file's shift."""
        rng = np.random.default_rng([self.seed, epoch])
        for _ in range(steps):
            files = rng.choice(len(self.pairs), size=batch_size, p=self.weights)
            clean, processed, first = [], [], []
            for i in files:
                pair = self.pairs[i]
                start = int(rng.integers(self.starts[i]))
                window = (start - self.context, start + self.excerpt_samples)
                clean.append(read_window(pair.clean, *window))
                processed.append(read_window(pair.processed, *window))
                first.append(window[0] + self.shifts[i])
            yield (
                torch.from_numpy(np.stack(clean)[:, None]),
                torch.from_numpy(np.stack(processed)[:, None]),
                torch.tensor(first, dtype=torch.int64),
            )
