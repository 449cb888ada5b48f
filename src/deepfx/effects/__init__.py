"""Apply real audio effects to the clean dataset: one backend per module, one calling convention.

Every backend is ``process(in_paths, out_paths, spec, sample_rate, name, progress=None)``:
it applies the effect ``spec`` (one entry of ``params["effects"]``, named ``name``) to each
input wav and writes each output as a mono float32 wav of the input's length (samples),
calling ``progress(1)`` after each file. Bad specs raise DeepfxError naming
``effects.<name>.<key>``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepfx.atomic import atomic_dir
from deepfx.audio import list_audio
from deepfx.effects import lv2, pedalboard_fx, reaper
from deepfx.errors import DeepfxError
from deepfx.generate import SPLITS

__all__ = ["BACKENDS", "Backend", "process_dataset"]

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


def process_dataset(name: str, spec: Mapping[str, Any], clean_dir: Path, out_dir: Path,
                    sample_rate: int) -> list[Path]:
    """Apply effect ``name`` to ``clean_dir/{split}/*.wav``, writing ``out_dir/{split}/*.wav``.

    File names are kept. ``out_dir`` appears only when every file is done (nothing is left
    behind on an error). Returns the written files, split by split, sorted by name.
    """
    if not isinstance(spec, Mapping):
        raise DeepfxError(f"effects.{name}: must be a mapping like {{backend: pedalboard, ...}}")
    if not isinstance(spec.get("backend"), str) or spec["backend"] not in BACKENDS:
        raise DeepfxError(
            f"effects.{name}.backend: {spec.get('backend')!r} is not a backend; choose one of "
            + ", ".join(BACKENDS)
        )
    backend = BACKENDS[spec["backend"]]
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
        backend(
            [src for files in inputs.values() for src in files],
            [tmp / split / src.name for split, files in inputs.items() for src in files],
            spec, sample_rate, name, bar.update,
        )
    return [out_dir / split / src.name for split, files in inputs.items() for src in files]
