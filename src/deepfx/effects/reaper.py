"""The ``reaper`` backend: Reaper's batch converter (``reaper -batchconvert filelist.txt``).

Spec: ``{backend: reaper, fx_chain: chain.RfxChain, executable: reaper}`` (``executable`` is
optional: a name on PATH or a path). The file list follows Reaper's command-line help:
input files one per line, then a ``<CONFIG`` … ``>`` block with ``SRATE``, ``NCH``,
``DITHER``, ``USESRCSTART``, ``USESRCMETADATA``, ``PAD_START``, ``PAD_END``, ``OUTPATH``,
``OUTPATTERN`` and ``FXCHAIN``. Each input is staged under a numbered name, Reaper renders
into ``OUTPATH`` as ``$source`` (the staged name), and the renders are read back (any
format Reaper chose), fitted to the input length and written as mono float32 wavs.

Real Reaper is untested here (it cannot be installed in the build environment): the tests
run a stand-in executable that parses the documented file-list format and applies a gain.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfx.effects.staging import collect_output, stage_input
from deepfx.errors import DeepfxError

__all__ = ["batch_file_list", "process"]


def _quote(value: str, where: str) -> str:
    """``value`` in the first of Reaper's quote characters (\" ' `) it does not contain."""
    for mark in "\"'`":
        if mark not in value:
            return f"{mark}{value}{mark}"
    raise DeepfxError(f"{where}: {value!r} contains all of \" ' and ` and cannot be quoted")


def batch_file_list(inputs: Sequence[Path], out_dir: Path, fx_chain: Path, sample_rate: int,
                    where: str) -> str:
    """The text of a ``-batchconvert`` file list rendering ``inputs`` through ``fx_chain``.

    Output: mono at ``sample_rate`` Hz, no dither, padding or source offsets, one file per
    input in ``out_dir`` named like the input (``$source``).
    """
    for path in (*inputs, out_dir, fx_chain):
        if "\n" in str(path) or "\t" in str(path) or "\r" in str(path):
            raise DeepfxError(f"{where}: the path {str(path)!r} holds a tab or line break")
    config = [
        "<CONFIG",
        f"SRATE {sample_rate}",
        "NCH 1",
        "DITHER 0",
        "USESRCSTART 0",
        "USESRCMETADATA 0",
        "PAD_START 0",
        "PAD_END 0",
        f"OUTPATH {_quote(str(out_dir.resolve()), where)}",
        "OUTPATTERN '$source'",
        f"FXCHAIN {_quote(str(fx_chain.resolve()), where)}",
        ">",
    ]
    return "\n".join([*(str(p.resolve()) for p in inputs), *config]) + "\n"


def _executable(spec: Mapping[str, Any], name: str) -> str:
    """The Reaper program to run: ``spec["executable"]`` or ``reaper`` on PATH."""
    given = spec.get("executable")
    found = shutil.which(str(given or "reaper"))
    if found is None and given:
        raise DeepfxError(f"effects.{name}.executable: {given!r} is not an executable program")
    if found is None:
        raise DeepfxError(
            f"effects.{name}: Reaper is not installed; put `reaper` on PATH or set "
            f"effects.{name}.executable"
        )
    return found


def process(in_paths: Sequence[Path], out_paths: Sequence[Path], spec: Mapping[str, Any],
            sample_rate: int, name: str,
            progress: Callable[[int], object] | None = None) -> None:
    """Render each input wav through the Reaper FX chain ``spec["fx_chain"]`` in one batch."""
    if len(in_paths) != len(out_paths):
        raise ValueError("in_paths and out_paths differ in length")
    where = f"effects.{name}"
    fx_chain = Path(str(spec.get("fx_chain") or ""))
    if not spec.get("fx_chain") or not fx_chain.is_file():
        raise DeepfxError(f"{where}.fx_chain: no Reaper FX chain file at {str(fx_chain)!r}")
    executable = _executable(spec, name)
    with tempfile.TemporaryDirectory(prefix="deepfx-reaper-") as tmp:
        staged_dir, render_dir = Path(tmp) / "in", Path(tmp) / "out"
        staged_dir.mkdir()
        render_dir.mkdir()
        width = len(str(len(in_paths)))
        staged = [staged_dir / f"{i:0{width}d}.wav" for i in range(len(in_paths))]
        lengths = [stage_input(src, dst, sample_rate) for src, dst in zip(in_paths, staged)]
        file_list = Path(tmp) / "filelist.txt"
        file_list.write_text(batch_file_list(staged, render_dir, fx_chain, sample_rate, where))
        run = subprocess.run(
            [executable, "-newinst", "-nosplash", "-ignoreerrors", "-batchconvert",
             str(file_list)],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            raise DeepfxError(
                f"{where}: Reaper's batch converter failed (exit {run.returncode}): "
                f"{(run.stderr.strip() or run.stdout.strip())[-2000:]}"
            )
        for src, dst, stage, n_samples in zip(in_paths, out_paths, staged, lengths):
            renders = sorted(p for p in render_dir.iterdir() if p.stem == stage.stem)
            if not renders:
                raise DeepfxError(
                    f"{where}: Reaper rendered nothing for {src} (expected "
                    f"{render_dir / stage.stem}.*; its output: {run.stdout.strip()[-500:]})"
                )
            collect_output(renders[0], dst, n_samples, sample_rate, where)
            if progress is not None:
                progress(1)
