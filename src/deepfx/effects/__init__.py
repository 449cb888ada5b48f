"""Apply real audio effects to the clean dataset: one backend per module, one calling convention.

Every backend is ``process(in_paths, out_paths, spec, sample_rate, name, progress=None)``:
it applies the effect ``spec`` (one entry of ``params["effects"]``, named ``name``) to each
input wav and writes each output as a mono float32 wav of the input's length (samples),
calling ``progress(1)`` after each file. Bad specs raise DeepfxError naming
``effects.<name>.<key>``. :func:`apply_effect` adds what every backend shares: the choice of
backend and the ``lead_in`` of free-running effects.
"""

from __future__ import annotations

import sys
import tempfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deepfx.atomic import atomic_dir
from deepfx.audio import list_audio, read_audio, write_audio
from deepfx.effects import lv2, pedalboard_fx, reaper
from deepfx.errors import DeepfxError
from deepfx.generate import SPLITS

__all__ = ["BACKENDS", "Backend", "apply_effect", "lead_in_audio", "process_dataset"]

#: A backend's ``process`` function (see the module docstring).
Backend = Callable[
    [Sequence[Path], Sequence[Path], Mapping[str, Any], int, str, Callable[[int], object] | None],
    None,
]

#: ``effects.<name>.backend`` → the function applying it.
BACKENDS: dict[str, Backend] = {
    "pedalboard": pedalboard_fx.process,
    "vst3": pedalboard_fx.process_vst3,
    "lv2": lv2.process,
    "reaper": reaper.process,
}


def _backend(name: str, spec: Any) -> Backend:
    """The backend function of ``effects.<name>``, or a DeepfxError naming the bad key."""
    if not isinstance(spec, Mapping):
        raise DeepfxError(f"effects.{name}: must be a mapping like {{backend: pedalboard, ...}}")
    if not isinstance(spec.get("backend"), str) or spec["backend"] not in BACKENDS:
        raise DeepfxError(
            f"effects.{name}.backend: {spec.get('backend')!r} is not a backend; choose one of "
            + ", ".join(BACKENDS)
        )
    return BACKENDS[spec["backend"]]


def lead_in_audio(x: np.ndarray, file_name: str, lead_in: Mapping[str, Any],
                  sample_rate: int) -> np.ndarray:
    """The lead-in played before ``x`` (samples): silence or a stretch of ``x`` itself, its length
    drawn from ``lead_in["seconds"]`` by a generator seeded with ``lead_in["seed"]`` and the
    file's name (so a file's lead-in does not depend on which other files are processed)."""
    low, high = sorted(lead_in["seconds"])
    rng = np.random.default_rng([int(lead_in.get("seed", 0)), zlib.crc32(file_name.encode())])
    n = int(round(rng.uniform(low, high) * sample_rate))
    if rng.random() < 0.5 or len(x) == 0:
        return np.zeros(n, dtype=np.float32)
    return np.resize(np.roll(x, -int(rng.integers(len(x)))), n).astype(np.float32)


def apply_effect(name: str, spec: Mapping[str, Any], in_paths: Sequence[Path],
                 out_paths: Sequence[Path], sample_rate: int,
                 progress: Callable[[int], object] | None = None) -> None:
    """Apply effect ``name`` to each input wav, writing each output (same length, mono float32).

    With ``spec["lead_in"]``, each file is run after its :func:`lead_in_audio`, which is then cut.
    """
    backend = _backend(name, spec)
    if not spec.get("lead_in"):
        backend(in_paths, out_paths, spec, sample_rate, name, progress)
        return
    with tempfile.TemporaryDirectory(prefix="deepfx-lead-in-") as tmp:
        staged_in = [Path(tmp) / f"in_{k}.wav" for k in range(len(in_paths))]
        staged_out = [Path(tmp) / f"out_{k}.wav" for k in range(len(in_paths))]
        spans = []
        for src, staged in zip(in_paths, staged_in):
            x = read_audio(src, sample_rate)
            lead = lead_in_audio(x, Path(src).name, spec["lead_in"], sample_rate)
            write_audio(staged, np.concatenate([lead, x]), sample_rate)
            spans.append((len(lead), len(lead) + len(x)))
        backend(staged_in, staged_out, spec, sample_rate, name, progress)
        for staged, dst, (start, stop) in zip(staged_out, out_paths, spans):
            write_audio(dst, read_audio(staged, sample_rate)[start:stop], sample_rate)


def process_dataset(name: str, spec: Mapping[str, Any], clean_dir: Path, out_dir: Path,
                    sample_rate: int) -> list[Path]:
    """Apply effect ``name`` to ``clean_dir/{split}/*.wav``, writing ``out_dir/{split}/*.wav``.

    File names are kept. ``out_dir`` appears only when every file is done (nothing is left
    behind on an error). Returns the written files, split by split, sorted by name.
    """
    _backend(name, spec)
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    if not clean_dir.is_dir():
        raise DeepfxError(
            f"{clean_dir}: the clean audio folder does not exist (run generate first)"
        )
    inputs = {split: list_audio(clean_dir / split) for split in SPLITS}
    total = sum(len(files) for files in inputs.values())
    if total == 0:
        raise DeepfxError(
            f"{clean_dir}: no wav files in " + ", ".join(f"{s}/" for s in SPLITS)
            + " (run generate first)"
        )
    with atomic_dir(out_dir) as tmp, tqdm(
        total=total, desc=f"process {name}", unit="file", file=sys.stderr,
        disable=not sys.stderr.isatty(),
    ) as bar:
        for split in SPLITS:
            (tmp / split).mkdir()
        apply_effect(
            name, spec, [src for files in inputs.values() for src in files],
            [tmp / split / src.name for split, files in inputs.items() for src in files],
            sample_rate, bar.update,
        )
    return [out_dir / split / src.name for split, files in inputs.items() for src in files]
