"""Hand audio to an external effect host (lv2apply, Reaper) and take its output back.

External tools read and write files in formats, rates and lengths of their own; these two
functions pin both sides to deepfx's: mono float32 wav at the working rate, input length kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfx.audio import read_audio, write_audio
from deepfx.errors import DeepfxError

__all__ = ["collect_output", "stage_input"]


def stage_input(src: Path, dst: Path, sample_rate: int, lead_in: int = 0) -> int:
    """Copy ``src`` as a mono float32 wav at ``sample_rate`` Hz to ``dst``, after ``lead_in``
    samples of silence; returns the length of ``src`` (samples)."""
    x = read_audio(src, sample_rate)
    write_audio(dst, np.pad(x, (lead_in, 0)), sample_rate)
    return len(x)


def collect_output(src: Path, dst: Path, n_samples: int, sample_rate: int, where: str,
                   lead_in: int = 0) -> None:
    """Read an external tool's output ``src`` (any format, rate or channel count) and write it
    to ``dst`` as a mono float32 wav without its first ``lead_in`` samples, trimmed or
    zero-padded to ``n_samples``."""
    y = read_audio(src, sample_rate)[lead_in : lead_in + n_samples]
    if not np.isfinite(y).all():
        raise DeepfxError(f"{where}: the effect produced NaN or infinite samples ({src})")
    write_audio(dst, np.pad(y, (0, n_samples - len(y))), sample_rate)
